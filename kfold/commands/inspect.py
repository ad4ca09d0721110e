"""``kfold inspect DATA``: what kfold reads in a competition folder (layout, rows, images, classes, columns, metric)."""
from __future__ import annotations

import argparse
from typing import Sequence

from kfold.commands import args as flags

HELP = "show what kfold detects in a competition folder: layout, rows, image size, classes, Id/target columns, metric"


def build_parser(prog: str = "kfold inspect") -> argparse.ArgumentParser:
    p = flags.parser(prog, "Load a competition folder as training would and print what was detected: the layout\n"
                           "(arrays, pixel-csv, image-files, class-folders), the rows, the image size and channels,\n"
                           "the classes with their counts, the Id and target columns and the metric. Images are\n"
                           "decoded once into the cache ($KFOLD_CACHE or ~/.cache/kfold), so training starts at once\n"
                           "afterwards. Nothing else is written.")
    p.add_argument("data", metavar="DATA", help="competition folder, MNIST-MIX file, or 'kmnist'")
    p.add_argument("--cache-dir", help="cache folder (default: $KFOLD_CACHE or ~/.cache/kfold)")
    flags.add_layout_flags(p)
    flags.add_progress_flag(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold inspect") -> int:
    from kfold.data import load_task
    from kfold.data.describe import describe

    args = build_parser(prog).parse_args(argv)
    from kfold.errors import UsageError

    try:
        task = load_task(args.data, cache_dir=args.cache_dir, progress=not args.no_progress,
                         options=flags.layout_options(args))
    except UsageError as exc:
        raise flags.in_flag_words(exc) from None
    for line in describe(task):
        print(line)
    return 0
