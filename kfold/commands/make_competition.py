"""``kfold make-competition``: labelled data -> a competition directory with a seeded Public/Private solution."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.errors import ArgumentParser
from kfold.files.split import PUBLIC_FRACTION, SOLUTION_SEED

HELP = "labelled data (MNIST-MIX, official KMNIST test labels) -> competition directory with solution.csv"


def build_parser(prog: str = "kfold make-competition") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=(
        "Turn labelled data into a Kaggle-style competition directory: the training and test images, "
        "sample_submission.csv and solution.csv (Id,Category,Usage with a seeded Public/Private split), so that "
        "'kfold run --data DIR' ends with a local leaderboard. The input is never changed."))
    p.add_argument("--data", required=True, help="MNIST-MIX file or directory, an official KMNIST directory with "
                                                 "test labels, or 'kmnist' (the official release, downloaded)")
    p.add_argument("--out", type=Path, required=True, help="competition directory to write (new files only)")
    p.add_argument("--public-fraction", type=float, default=PUBLIC_FRACTION,
                   help="share of the test rows on the Public leaderboard (default: %(default)s)")
    p.add_argument("--seed", type=int, default=SOLUTION_SEED, help="seed of the Public/Private split (default: %(default)s)")
    p.add_argument("--languages", help="MNIST-MIX: comma-separated subset of languages (default: all present)")
    p.add_argument("--cache-dir", help="download cache for --data kmnist")
    return p


def output_files_of(kind: str) -> list[str]:
    """The files make-competition writes for a KMNIST or an MNIST-MIX task."""
    from types import SimpleNamespace

    from kfold.data.make_competition import output_files

    return output_files(SimpleNamespace(name=kind))  # it reads only the task's name


def main(argv: Sequence[str] | None = None, prog: str = "kfold make-competition") -> int:
    from kfold.data import load_task
    from kfold.data.make_competition import make_competition
    from kfold.errors import UsageError
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs

    args = build_parser(prog).parse_args(argv)
    languages = [name.strip() for name in args.languages.split(",")] if args.languages else None
    if args.languages is not None and not all(languages):
        raise UsageError(f"{prog}: --languages {args.languages!r}: empty item in the comma-separated list")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    names = {*output_files_of("kmnist"), *output_files_of("mnist-mix")}  # whichever the data turns out to be
    guard_outputs([args.out, *(args.out / name for name in sorted(names))], data_inputs(args.data), root=args.out.parent)
    task = load_task(args.data, cache_dir=args.cache_dir, languages=languages)
    files = make_competition(task, args.out, public_fraction=args.public_fraction, seed=args.seed)
    for path in files:
        print(f"wrote {path}")
    n_public = round(args.public_fraction * len(task.test_ids))
    print(f"{task.name}: {len(task.train_labels)} training / {len(task.test_ids)} test images, {task.num_classes} classes; "
          f"solution {n_public} Public / {len(task.test_ids) - n_public} Private rows (seed {args.seed})")
    print(f"next: kfold run --data {args.out}")
    return 0
