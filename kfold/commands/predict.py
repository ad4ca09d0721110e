"""``predict.py`` / ``kfold predict``: test probabilities of trained runs (one file per model, the fold mean,
the run's out-of-fold file). Parses flags, calls ``kfold.nn.predict.predict_run``.

With ``--tta N`` the test-time-augmentation gain is measured on each fold's validation rows (out-of-fold
accuracy and log loss with 1 view against N views) and printed, not assumed.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags


def build_parser(prog: str = "predict.py") -> argparse.ArgumentParser:
    p = flags.parser(prog, __doc__)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", type=Path, help="run directories written by train.py")
    flags.add_data_flags(p)
    p.add_argument("--out", required=True, type=Path, help="directory for the probability files")
    p.add_argument("--tta", type=flags.int_at_least(1, 9), default=None, metavar="N",
                   help="test-time augmentation views (default: the run's config, usually 1)")
    p.add_argument("--batch-size", type=flags.positive_int, default=2048, help="prediction batch size (default 2048)")
    p.add_argument("--format", choices=["npz", "csv"], default="npz", help="npz (fast, default) or csv (interchange)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="predict with the finished folds of an unfinished run (the mean file records how many)")
    flags.add_device_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "predict.py") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.nn.predict import predict_run

    spec = flags.task_spec(args)
    task = spec.load(progress=True)
    predict_run(args.runs, task, args.out, tta=args.tta, batch_size=args.batch_size, device=args.device,
                fmt=args.format, allow_incomplete=args.allow_incomplete, threads=args.threads)
    return 0
