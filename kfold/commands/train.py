"""``train.py`` / ``kfold train``: one model per stratified fold (or on all data with ``--full``).

Parses flags, calls ``kfold.flows.training.train_run`` and prints the run summary.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    p = flags.parser(prog, "Train one model per stratified fold (or on all data with --full).")
    flags.add_data_flags(p)
    p.add_argument("--k", type=flags.k_folds, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=flags.seed, default=0, help="seed of the folds, the weights and the augmentation (default 0)")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--folds", type=flags.comma_list(flags.int_at_least(0)),
                   help="comma-separated subset of folds to train, e.g. 0,2 (spread folds over processes or machines)")
    p.add_argument("--full", action="store_true", help="train on all data for the fold runs' mean best epoch (or --epochs)")
    p.add_argument("--resume", action="store_true", help="skip finished folds, continue an interrupted fold from its checkpoint")
    flags.add_training_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "train.py") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.full and args.folds is not None:
        from kfold.errors import UsageError

        raise UsageError(f"{prog}: --full trains one model on all data; --folds {','.join(map(str, args.folds))} "
                         "does not apply to it")
    from kfold.flows.training import format_summary, train_run

    tracker = flags.open_tracker(args, args.out.parent)  # checked before anything is written
    request, backend = flags.open_run(args, seed=args.seed, folds=args.folds, full=args.full, full_epochs=args.epochs,
                                      resume=args.resume)  # config, data, backend and threads, once
    with backend:
        task = request.task_spec.load(progress=request.progress)
        result = train_run(request, task, args.out, backend=backend, tracker=tracker)
    print(format_summary(result.values))
    print(f"wall time {result['wall_seconds']:.1f}s; run directory {args.out}")
    flags.tracking_cost(tracker)
    return 0
