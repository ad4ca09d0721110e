"""``kfold run``: the whole competition flow in one command.

train (k folds; several seeds with --seeds) -> predict (one probability file per fold + fold mean) ->
ensemble (mean and vote, with agreement reports) -> validate the submissions -> local leaderboard (when
the competition directory has a solution file) -> the recommended submission and the command to submit it.
Re-running the same command continues (or reuses) the runs.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags


def build_parser(prog: str = "kfold run") -> argparse.ArgumentParser:
    p = flags.parser(prog, __doc__)
    flags.add_data_flags(p, default="kmnist")
    p.add_argument("--k", type=flags.k_folds, default=5, help="number of folds (default 5)")
    p.add_argument("--seeds", type=flags.comma_list(flags.seed), default=None,
                   help="comma-separated seeds; several seeds train one run each, all ensembled (default: 0)")
    p.add_argument("--seed", type=flags.seed, default=None, help="one seed (the same as --seeds N; not with --seeds)")
    p.add_argument("--folds", type=flags.comma_list(flags.int_at_least(0)), help="train only these folds now (e.g. 0,2)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<preset>)")
    p.add_argument("--submissions", type=Path, default=Path("submissions"), help="where submission CSVs go (default: submissions)")
    flags.add_training_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold run") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.errors import UsageError
    from kfold.flows.pipeline import run_competition

    if args.seed is not None and args.seeds is not None:
        raise UsageError(f"{prog}: give --seed or --seeds, not both (--seed {args.seed}, --seeds "
                         f"{','.join(map(str, args.seeds))})")
    seeds = [args.seed] if args.seed is not None else (args.seeds or [0])
    out = args.out or Path("runs") / args.preset
    tracker = flags.open_tracker(args, out.parent)  # checked before anything is written; logs from the files
    request, backend = flags.open_run(args, folds=args.folds)  # config, data, backend and threads, once
    with backend:
        task = request.task_spec.load(progress=request.progress)
        result = run_competition(request, task, out, seeds=seeds, submissions=args.submissions, backend=backend,
                                 tracker=tracker)
    if result.lines:
        print("\n== done\n" + "\n".join(result.lines))
    flags.tracking_cost(tracker)
    return 0
