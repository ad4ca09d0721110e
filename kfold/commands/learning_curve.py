"""``kfold learning-curve``: out-of-fold error against training rows over runs of one recipe with different k,
a power-law fit with bootstrap intervals, and the rows a target accuracy needs (``kfold.scoring.learning_curve``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags


def build_parser(prog: str = "kfold learning-curve") -> argparse.ArgumentParser:
    p = flags.parser(prog, __doc__)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished train.py runs of one recipe, different --k")
    p.add_argument("--out", required=True, type=Path, help="folder for learning_curve.csv/.md/.png")
    p.add_argument("--target", type=flags.finite_float(0, 1, low_open=True, high_open=True),
                   help="an accuracy to estimate the training rows for, e.g. 0.995")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold learning-curve") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.scoring.learning_curve import learning_curve

    text = learning_curve(args.runs, args.out, args.target)
    print(text + f"wrote {args.out / 'learning_curve.csv'}, .md and .png")
    return 0
