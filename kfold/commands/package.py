"""``kfold package``: trained runs -> a Kaggle dataset and an offline notebook for a code competition, rehearsed
offline at the end (``--no-rehearse`` skips it). Parses flags, calls ``kfold.flows.package.package``, prints."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags
from kfold.files.package import ACCELERATORS

HELP = "trained runs -> a Kaggle dataset + offline notebook for a code competition, rehearsed offline"

DESCRIPTION = """\
Package trained runs for a Kaggle code competition (the notebook runs on Kaggle with the internet off). Writes
OUT/dataset (the fold models, kfold's wheel built from this source, dataset-metadata.json, the manifest
kfold-package.json with every file's sha256), OUT/kernel (kernel-metadata.json with "enable_internet": false,
and the notebook) and OUT/local/submission.csv (the local submission of the same recipe, computed by the very
function the notebook runs). Everything is checked before anything is written; OUT must be new or empty. At the
end the package is rehearsed: its notebook runs here offline in an environment holding only Kaggle's image and
must reproduce the local submission byte for byte (kfold rehearse)."""


def build_parser(prog: str = "kfold package") -> argparse.ArgumentParser:
    p = flags.parser(prog, DESCRIPTION)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", type=Path, help="finished run directories of one competition")
    p.add_argument("-c", "--competition", required=True, help="the competition's Kaggle slug (e.g. kmnist-practice)")
    p.add_argument("--owner", required=True, help="your Kaggle user name: the dataset is OWNER/SLUG")
    p.add_argument("--slug", help="the dataset's slug, 6-50 lower-case letters, digits, hyphens "
                                  "(default: COMPETITION-kfold); the notebook is SLUG-predict")
    p.add_argument("--out", required=True, type=Path, help="the package folder to write (new or empty)")
    p.add_argument("--method", default="mean", choices=["mean", "geomean", "vote", "rank"],
                   help="how the fold models combine (default: mean)")
    p.add_argument("--tta", type=flags.int_at_least(1, 9), default=None, metavar="N",
                   help="test-time augmentation views (default: the runs' config)")
    p.add_argument("--seed", type=flags.seed, default=0, help="seed of the vote's tie-breaks (default: 0)")
    p.add_argument("--accelerator", default="none", metavar="|".join(ACCELERATORS),
                   help="Kaggle's accelerator for the notebook (default: none, the CPU); TPUs are refused")
    p.add_argument("--threads", type=flags.int_at_least(1, 4096), default=None, metavar="N",
                   help="torch CPU threads of the local and the notebook's prediction (recorded; CPU results are "
                        "bit-identical at the same count)")
    p.add_argument("--no-rehearse", action="store_true", help="skip the offline rehearsal at the end")
    p.add_argument("--time-limit", type=flags.finite_float(0, 72, low_open=True), default=9.0, metavar="HOURS",
                   help="the competition's notebook time limit the rehearsal projects against (default: 9)")
    p.add_argument("--data", type=Path, default=None,
                   help="the competition's folder, as Kaggle ships it (default: the runs' training data)")
    flags.add_layout_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold package") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.flows.package import package

    options = {name: getattr(args, name) for name in flags.LAYOUT_FLAGS if getattr(args, name, None) is not None}
    result = package(args.runs, args.competition, args.owner, args.out, data=args.data, load_options=options,
                     slug=args.slug, method=args.method, tta=args.tta, seed=args.seed, accelerator=args.accelerator,
                     threads=args.threads, rehearse=not args.no_rehearse, time_limit=args.time_limit)
    if result.rehearsal is None:
        print(f"not rehearsed: kfold rehearse {result.path}")
        return 0
    for line in result.rehearsal.lines:
        print(line)
    return 0 if result.rehearsal.ok else 1
