"""The ``kfold`` command: validate, leaderboard, ensemble, submit, submissions, download, train, predict, run,
report, errors, make-competition, presets, models, learning-curve, tune.

Subcommand modules are imported only when their subcommand runs, so ``kfold validate`` and
``kfold --help`` never import torch. ``ensemble``, ``train`` and ``predict`` hand the rest of the
command line to the ``main`` of their module (the same one behind ``ensemble.py``, ``train.py``,
``predict.py``).
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags
from kfold.commands import kaggle as kaggle_loop
from kfold.commands.args import add_track_flags, open_tracker
from kfold.errors import ArgumentParser, UsageError, run_cli
from kfold.files.rundir import PROBS_SUFFIX
from kfold.files.split import PUBLIC_FRACTION

# subcommand -> (module whose main(argv) takes the remaining arguments, one-line help)
DELEGATED = {
    "ensemble": ("kfold.commands.ensemble", "combine probability files / submissions (same as ensemble.py)"),
    "train": ("kfold.commands.train", "k-fold training (same as train.py)"),
    "predict": ("kfold.commands.predict", "test predictions of a trained run (same as predict.py)"),
    "run": ("kfold.commands.run", "the whole flow: train -> predict -> ensemble -> validate -> leaderboard"),
    "compare": ("kfold.commands.compare", "presets side by side over seeds, ensembles, Public/Private comparison (same as compare.py)"),
    "mnist-mix": ("kfold.commands.mnist_mix", "the MNIST-MIX report's experiments (same as mnist_mix.py)"),
    "tune": ("kfold.commands.tune", "hyperparameter search with Optuna: one k-fold run per trial, folds pruned early "
             "(pip install -e '.[tune]')"),
    "learning-curve": ("kfold.commands.learning_curve", "out-of-fold error against training rows over runs with different k"),
    "report": ("kfold.commands.report", "one self-contained HTML page for a trained run (curves, confusion, errors, "
               "folds, ensembles, leaderboard)"),
    "errors": ("kfold.commands.report", "out-of-fold error analysis: confusion with class names, per-class accuracy, "
               "error gallery"),
    "inspect": ("kfold.commands.inspect", "show what kfold detects in a competition folder: layout, rows, images, "
                "classes, Id and target columns, metric"),
    "track": ("kfold.commands.track", "experiment tracking: 'kfold track sync RUN_DIR|TUNE_DIR ...' logs finished runs "
              "and searches to MLflow (pip install -e '.[track]')"),
    "package": ("kfold.commands.package", "trained runs -> a Kaggle dataset and an offline notebook for a code "
                "competition, rehearsed offline"),
    "rehearse": ("kfold.commands.rehearse", "run a package's notebook offline in Kaggle's image only and check its "
                 "output byte for byte against the local submission"),
    "make-competition": ("kfold.commands.make_competition", "labelled data (MNIST-MIX, official KMNIST test labels) -> "
                         "competition directory with a seeded Public/Private solution.csv"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="kfold", description="Stratified k-fold training, ensembling and local "
                                     "leaderboards for small-image Kaggle competitions.")
    from kfold import __version__

    parser.add_argument("--version", action="version", version=f"kfold {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check submission CSVs and probability files",
                              description="Check submission CSVs and probability files (.npz, or .csv starting with "
                                          "'#kfold-probs') against the competition's sample: its Id column and "
                                          "target columns (KMNIST's without --sample), the sample's Ids in its "
                                          "order, class values among the training classes or probabilities in "
                                          "[0, 1] summing to 1 per row. A UTF-8 BOM is accepted; blank lines, "
                                          "duplicate/missing/extra Ids and unknown classes are errors.")
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument("--sample", type=Path, help="sample_submission.csv: the Ids every file must cover; the "
                          "competition beside it (kmnist_classmap.csv, the data) gives the classes")
    validate.add_argument("--num-classes", type=flags.int_at_least(2, 1_000_000), metavar="N", help="integer classes must lie in 0..N-1 (default: the competition's)")
    _input_flags(validate)

    board = sub.add_parser("leaderboard", help="score submissions on Public/Private rows of a solution file",
                           description="Score submission CSVs (accuracy) and probability files (accuracy, log loss) "
                                       "on the Public, Private and all scored rows of a solution file; rank by "
                                       "Public. A submission CSV with OUT" + PROBS_SUFFIX + " beside it (from ensemble.py) "
                                       "gets that file's log loss. Each submission is compared with the best "
                                       "Public one on the same rows (paired bootstrap interval of the difference, "
                                       "McNemar's exact test; '*' marks p < 0.05).")
    board.add_argument("submissions", nargs="*", type=Path, metavar="SUB")
    board.add_argument("--solution", type=Path, help="the host's solution file: the sample's columns and "
                       "optionally Usage (Public/Private)")
    board.add_argument("--public-fraction", type=flags.fraction, default=PUBLIC_FRACTION,
                       help="Public share of a seeded split when the solution has no Usage column (default: %(default)s)")
    board.add_argument("--seed", type=flags.seed, default=0, help="seed of that split and of the bootstrap, 0..2**32-1 (default: 0)")
    board.add_argument("--bootstrap", type=flags.int_at_least(1, 10_000_000), metavar="N", default=1000, help="bootstrap resamples for the 95%% intervals")
    board.add_argument("--out", type=Path, default=Path("runs") / "leaderboard",
                       help="folder for leaderboard.csv/.md (and .png) (default: %(default)s)")
    board.add_argument("--plot", action="store_true", help="also draw leaderboard.png: the paired differences with "
                       "their intervals (matplotlib; adds about a second)")
    _input_flags(board)
    kaggle_loop.add_remote_leaderboard_arguments(board)
    add_track_flags(board)

    submit = sub.add_parser("submit", help="validate a submission, then upload it to Kaggle (or, with --code, "
                                           "run a package's notebook on Kaggle and submit its output)",
                            description="Validate a submission, then upload it with the kaggle client "
                                        "(pip install -e '.[kaggle]' in the kfold clone; credentials in ~/.kaggle/). "
                                        "A code competition takes notebooks only: kfold submit --code --package PKG "
                                        "uploads the package's dataset, pushes and runs its notebook, checks the "
                                        "output against the local submission and submits it.")
    submit.add_argument("file", type=Path, metavar="SUB", nargs="?", help="the submission CSV (not with --code)")
    submit.add_argument("--competition", "-c", required=True)
    submit.add_argument("--message", "-m", required=True)
    submit.add_argument("--sample", type=Path, help="sample_submission.csv to check the Ids against")
    submit.add_argument("--num-classes", type=flags.int_at_least(2, 1_000_000), metavar="N", help="Categories must lie in 0..N-1")
    kaggle_loop.add_submit_arguments(submit)
    add_track_flags(submit)
    kaggle_loop.add_submissions_parser(sub)

    download = sub.add_parser("download", help="download and unpack a Kaggle competition's files",
                              description="Download and unpack a competition's files with the kaggle client.")
    download.add_argument("competition", nargs="?")
    kaggle_loop.add_download_arguments(download)

    presets = sub.add_parser("presets", help="list the training presets, or print one's resolved recipe",
                             description="List the presets; with --show NAME print its fully resolved recipe "
                                         "(config and augmentation policy) as JSON.")
    presets.add_argument("--show", metavar="NAME", help="the preset to print")
    sub.add_parser("models", help="list the models and their options", description="List the registered models, "
                   "their options (with defaults) and what each is.")

    for name, (_, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _input_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for probability files of other tools: Ids of .npy arrays, log-probabilities."""
    parser.add_argument("--ids", type=Path, metavar="FILE", help="row Ids of .npy inputs (and of CSVs without an "
                        "Id column): a CSV with an Id column (e.g. the sample) or a 1-D .npy")
    parser.add_argument("--log-probs", action="store_true", help="probability inputs hold natural-log probabilities")


def _row_ids(path: Path | None):
    if path is None:
        return None
    from kfold.files.readers import read_ids

    return read_ids(path)


def _check_num_classes(num_classes: int | None) -> None:
    if num_classes is not None and num_classes < 2:
        raise UsageError(f"--num-classes must be at least 2, got {num_classes}")


def cmd_validate(args) -> int:
    from kfold.scoring.ensemble import load_input
    from kfold.files.probs import ProbFile
    from kfold.files.submission import align_ids

    from kfold.data.classes import resolve_num_classes

    _check_num_classes(args.num_classes)
    from kfold.files.readers import read_submission_fast

    schema = None
    if args.sample:
        from kfold.data.classes import competition_schema

        schema = competition_schema(args.sample)
    if schema is not None:  # a competition in its own columns: header, Id type and order, classes or probabilities
        from kfold.files.submission import validate_submission

        for path in args.files:
            checked = validate_submission(path, args.sample, schema=schema)
            kind = "probabilities" if checked.probs is not None else f"{schema.num_classes} classes"
            print(f"ok: {path}: submission in the competition's columns ({','.join(schema.header[:4])}"
                  f"{',...' if len(schema.header) > 4 else ''}), {len(checked.ids)} rows, {kind}")
        return 0
    sample = read_submission_fast(args.sample) if args.sample else None
    num_classes, source = resolve_num_classes(args.num_classes, args.sample)
    ids = _row_ids(args.ids) if args.ids else (sample.ids if sample is not None else None)
    for path in args.files:
        item = load_input(path, num_classes=num_classes, ids=ids, log_probs=args.log_probs)
        if isinstance(item, ProbFile):
            what = f"probability file ({item.kind}), {len(item.ids)} rows x {item.num_classes} classes"
        else:
            what = f"submission, {len(item.ids)} rows" + (f", Categories in 0..{num_classes - 1} ({source})" if source else "")
        if sample is not None:
            align_ids(item.ids, sample.ids, str(path), f"the sample {args.sample}",
                      first_line=None if isinstance(item, ProbFile) else 2)
        print(f"ok: {path}: {what}")
    return 0


def cmd_leaderboard(args) -> int:
    from kfold.flows.leaderboard import local_leaderboard

    if args.competition and not args.remote:
        raise UsageError("kfold leaderboard: -c COMP goes with --remote (Kaggle's public leaderboard)")
    if (args.submissions or not args.remote) and (args.solution is None or not args.submissions):
        raise UsageError("kfold leaderboard: give SUB files and --solution (or -c COMP --remote)")
    if args.remote:  # then the local leaderboard of SUB files too, when given
        kaggle_loop.remote_leaderboard_command(args)
        if not args.submissions:
            return 0
        print()
    tracker = open_tracker(args, Path("runs"))  # checked before anything is written
    board = local_leaderboard(args.submissions, args.solution, args.out, public_fraction=args.public_fraction,
                              seed=args.seed, bootstrap=args.bootstrap, ids=args.ids, log_probs=args.log_probs,
                              plot=args.plot, tracker=tracker)  # printed after the files are written
    if board.solution.split_generated:
        print(f"{args.solution} has no Usage column: seeded split, {board.solution.public.sum()} Public / "
              f"{board.solution.private.sum()} Private rows (seed {args.seed})")
    print(board.text)
    print("wrote " + " and ".join(str(path) for path in board.written))
    return 0


def cmd_presets(args) -> int:
    import json

    from kfold.config import PRESETS, preset_names, resolve_config
    from kfold.registry import check_aug

    if args.show is None:
        for name in preset_names():
            cfg = resolve_config(name)
            options = "".join(f" {k}={v}" for k, v in cfg.model_kwargs.items())
            print(f"{name:<15} {cfg.model}{options}, {cfg.optimizer} lr {cfg.lr:g}, {cfg.epochs} epochs {cfg.schedule}, "
                  f"aug {cfg.aug if isinstance(cfg.aug, str) else 'custom'}, keep {cfg.keep}")
        return 0
    if args.show not in PRESETS:
        raise UsageError(f"unknown preset {args.show!r}; available: {', '.join(preset_names())}")
    cfg = resolve_config(args.show)
    recipe = {"preset": args.show, "config": cfg.to_dict(), "augmentation": check_aug(cfg.aug).to_dict()}
    print(json.dumps(recipe, indent=2))
    return 0


def cmd_models(args) -> int:
    from kfold.registry import MODELS, model_names

    for name in model_names():
        spec = MODELS[name]
        options = ", ".join(f"{k}={v}" for k, v in spec.options.items()) or "-"
        print(f"{name:<16} options: {options:<22} {spec.summary}")
    return 0


COMMANDS = {"presets": cmd_presets, "models": cmd_models, "validate": cmd_validate, "leaderboard": cmd_leaderboard,
            "submit": kaggle_loop.submit_command, "download": kaggle_loop.download_command,
            "submissions": kaggle_loop.submissions_command}


def _delegate(name: str, argv: list[str]) -> int:
    module_name, _ = DELEGATED[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise UsageError(f"'kfold {name}' is not available in this installation ({module_name} is missing)") from None
        raise UsageError(f"'kfold {name}' needs the package '{exc.name}', which is not installed") from None
    if name == "errors":
        return module.errors_main(argv)
    return module.main(argv, prog=f"kfold {name}")


def _main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return int(_delegate(argv[0], argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kfold`` console script."""
    return run_cli(_main, argv)
