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
    flags.add_device_flags(p)
    flags.add_progress_flag(p)
    flags.add_recipe_flags(p)
    flags.add_backend_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "train.py") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.full and args.folds is not None:
        from kfold.errors import UsageError

        raise UsageError(f"{prog}: --full trains one model on all data; --folds {','.join(map(str, args.folds))} "
                         "does not apply to it")
    from kfold.config import resolve_config
    from kfold.flows.training import format_summary, train_run

    overrides = flags.recipe_overrides(args)
    cfg = resolve_config(args.preset, args.config, overrides)
    spec = flags.task_spec(args)
    backend = flags.backend_from_args(args, progress=not args.no_progress)  # checked; Ray starts at the first fold
    threads = args.threads if backend is None else backend.options.threads(args.threads)
    task = spec.load(progress=not args.no_progress)
    try:
        result = train_run(cfg, task, args.out, task_spec=spec, preset=args.preset, k=args.k, seed=args.seed,
                           folds=args.folds, full=args.full, full_epochs_explicit=args.epochs, device=args.device,
                           resume=args.resume, threads=threads, progress=not args.no_progress, backend=backend)
    finally:
        if backend is not None:
            backend.close()
    print(format_summary(result.values))
    print(f"wall time {result['wall_seconds']:.1f}s; run directory {args.out}")
    return 0
