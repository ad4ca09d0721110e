"""``kfold make-competition``: labelled data -> a competition directory with a seeded Public/Private solution."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags
from kfold.files.split import PUBLIC_FRACTION, SOLUTION_SEED

HELP = "labelled data (MNIST-MIX, official KMNIST test labels) -> competition directory with solution.csv"
LAYOUTS = ["arrays", "pixel-csv", "image-files", "class-folders"]


def build_parser(prog: str = "kfold make-competition") -> argparse.ArgumentParser:
    from kfold.scoring.metrics import METRICS

    p = flags.parser(prog, (
        "Turn labelled data into a Kaggle-style competition directory: the training and test data in the chosen "
        "layout, sample_submission.csv in the competition's own columns, solution.csv (Id, label, Usage with a "
        "seeded Public/Private split) and competition.json (schema, metric, layout), so that 'kfold run --data DIR' "
        "ends with a local leaderboard. The input is never changed.\n\nlayouts:\n"
        "  arrays         kmnist-*.npy (KMNIST) or MNIST_MIX_train_test.npz, Id,Category\n"
        "  pixel-csv      train.csv (label,pixel0..), test.csv (pixels), like Digit Recognizer\n"
        "  image-files    train/<id>.png + train.csv (id,label), test/<id>.png, like Histopathologic Cancer\n"
        "  class-folders  train/<class>/<id>.png, test/<id>.png (sample Ids are file names), like Plant Seedlings"))
    p.add_argument("--data", required=True, help="labelled data: MNIST-MIX file or directory, an official KMNIST "
                                                 "directory with test labels, 'kmnist' (downloaded), a pixel CSV "
                                                 "folder whose test.csv has its label column, or (with "
                                                 "--test-fraction) any competition kfold reads")
    p.add_argument("--out", type=Path, required=True, help="competition directory to write (new files only)")
    p.add_argument("--layout", default="arrays", type=flags.one_of("layout", LAYOUTS), metavar="|".join(LAYOUTS),
                   help="the competition's file layout (default: arrays)")
    targets = ["label", "probs", "tags", "multilabel-probs"]
    p.add_argument("--target", default="label", type=flags.one_of("target", targets), metavar="|".join(targets),
                   help="the submission holds a class per row (label, default) or one probability column per class "
                        "(probs; one column for two classes); tags / multilabel-probs: multi-label practice data, "
                        "mosaics of 2-4 images in a 2x2 grid whose labels are the classes present, as space-separated "
                        "tags (Planet-style) or one 0/1 column per class (CheXpert-style) (image-files layout)")
    p.add_argument("--metric", type=flags.one_of("metric", list(METRICS)), metavar="|".join(METRICS),
                   help="the competition's metric (default: accuracy for label, log loss for probs, AUC for 2 classes)")
    p.add_argument("--id-column", metavar="NAME", help="name of the Id column (default: id; arrays: Id)")
    p.add_argument("--label-column", metavar="NAME", help="name of the label column (default: label; arrays: Category)")
    p.add_argument("--string-ids", action="store_true", help="Ids are file stems like 0a3f9c1b2e (default: integers)")
    p.add_argument("--class-values", default="index", type=flags.one_of("class values", ["index", "names"]),
                   metavar="index|names", help="classes written as 0..C-1 (index, default) or as the data's class "
                                               "names (names)")
    p.add_argument("--rgb", action="store_true", help="write RGB images (gray copied to 3 channels, tinted per image)")
    p.add_argument("--resize", type=flags.int_at_least(1, 4096), metavar="N", help="write N x N images")
    p.add_argument("--test-id-column", action="store_true", help="pixel-csv: test.csv holds the Id column (default: "
                   "none; row i is the sample's i-th Id)")
    p.add_argument("--test-fraction", type=flags.fraction, metavar="F",
                   help="hold out a seeded, stratified share F of the training images as the labelled test set (for "
                        "data without test labels, such as a competition downloaded from Kaggle; its own test images "
                        "are then not used)")
    p.add_argument("--public-fraction", type=flags.fraction, default=PUBLIC_FRACTION,
                   help="share of the test rows on the Public leaderboard (default: %(default)s)")
    p.add_argument("--seed", type=flags.seed, default=SOLUTION_SEED, help="seed of the Public/Private split, the held-out "
                   "test images, the string Ids and the tints (default: %(default)s)")
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
    from kfold.data.make_competition import MakeOptions, hold_out, make_competition
    from kfold.errors import UsageError
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs

    args = build_parser(prog).parse_args(argv)
    options = MakeOptions(layout=args.layout, target=args.target, metric=args.metric, id_column=args.id_column,
                          label_column=args.label_column, string_ids=args.string_ids, class_values=args.class_values,
                          rgb=args.rgb, resize=args.resize, test_id_column=args.test_id_column).check()
    languages = [name.strip() for name in args.languages.split(",")] if args.languages else None
    if args.languages is not None and not all(languages):
        raise UsageError(f"{prog}: --languages {args.languages!r}: empty item in the comma-separated list")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    names = {*output_files_of("kmnist"), *output_files_of("mnist-mix")}  # whichever the data turns out to be
    guard_outputs([args.out, *(args.out / name for name in sorted(names))], data_inputs(args.data), root=args.out.parent)
    task = load_task(args.data, cache_dir=args.cache_dir, languages=languages)
    if args.test_fraction is not None:
        task = hold_out(task, args.test_fraction, seed=args.seed)
    files = make_competition(task, args.out, public_fraction=args.public_fraction, seed=args.seed, options=options)
    for path in files:
        print(f"wrote {path}")
    n_train, n_test = len(task.train_labels), len(task.test_ids)
    n_public = round(args.public_fraction * n_test)
    print(f"{task.name}: {n_train} training / {n_test} test images, {task.num_classes} classes; "
          f"{args.layout} layout; solution {n_public} Public / {n_test - n_public} Private rows (seed {args.seed})")
    print(f"next: kfold run --data {args.out}")
    return 0
