"""Command line of ``mnist_mix.py`` / ``kfold mnist-mix``: one subcommand per experiment.

Torch is imported only after the arguments are parsed, so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags
from kfold.errors import ArgumentParser, UsageError

# experiment -> (module, runner, one-line help)
EXPERIMENTS = {
    "compare": ("compare", "run_compare", "1. ff 2x100/2x250/2x500 against resnet8..32 on all language x digit classes"),
    "roundrobin": ("schedules", "run_roundrobin", "2. digit labels, one epoch of each language in turn for R rounds, vs mixed"),
    "transfer": ("transfer", "run_transfer", "3. train on each language alone, test on every language (L x L matrix)"),
    "sequential": ("schedules", "run_sequential", "4. each language once, in order, vs mixed: forgetting curve"),
}
QUICK_EPOCHS = 1
PRESET_EPOCHS = "default: the model's preset (ff-2x250: 10, resnet26: 15)"
EPOCHS_HELP = {
    "compare": f"epochs per model; {PRESET_EPOCHS}",
    "transfer": f"epochs per single-language training; {PRESET_EPOCHS}",
    "sequential": f"epochs per language stage, and of the mixed baseline; {PRESET_EPOCHS}",
}


def build_parser(prog: str = "mnist_mix.py") -> argparse.ArgumentParser:
    common = ArgumentParser(add_help=False)
    common.add_argument("--data", required=True, help="MNIST-MIX combined .npz, or a directory with it or with component files")
    common.add_argument("--out", required=True, type=Path, help="output directory (CSV tables, PNG figures, summary.md)")
    common.add_argument("--models", type=flags.comma_list(), metavar="MODEL[,MODEL...]", help="comma-separated model names")
    common.add_argument("--languages", type=flags.comma_list(), metavar="LANG[,LANG...]",
                        help="comma-separated subset of languages (default: all present)")
    common.add_argument("--seed", type=flags.seed, default=0, help="seed of the weights, sampling and shuffling (default 0)")
    common.add_argument("--quick", action="store_true", help="smoke run of about a minute: a sample of 300/100 train/test "
                                                             f"images per language, {QUICK_EPOCHS} epoch/round and small "
                                                             "models (ff-2x100/2x250, resnet8) unless given")
    flags.add_device_flags(common)
    flags.add_backend_flags(common)  # with --backend ray every model of the experiment trains as a Ray task
    common.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser = ArgumentParser(prog=prog, description="The MNIST-MIX report's experiments. Each writes CSV tables, "
                                     "PNG figures and summary.md into --out.")
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT", help="which experiment to run")
    for name, (_, _, text) in EXPERIMENTS.items():
        experiment = sub.add_parser(name, parents=[common], help=text, description=text)
        if name == "roundrobin":
            experiment.add_argument("--rounds", type=flags.positive_int, metavar="R", help="rounds R, each one epoch per language "
                                                               "(default: the model's preset epochs)")
        else:
            experiment.add_argument("--epochs", type=flags.positive_int, metavar="N", help=EPOCHS_HELP[name])
    return parser


def _check_positive(args) -> None:
    for flag in ("epochs", "rounds", "threads"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UsageError(f"--{flag} {value}: must be at least 1")


def main(argv: Sequence[str] | None = None, prog: str = "mnist_mix.py") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    _check_positive(args)
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    # the output guard: --out and every folder already in it real folders, no output a data file
    existing = sorted(args.out.rglob("*")) if args.out.is_dir() and not args.out.is_symlink() else []
    guard_outputs([args.out, args.out / "summary.md", *existing], data_inputs(args.data), root=args.out.parent)
    from kfold.nn.experiments.runner import run_experiment

    tables = run_experiment(args.experiment, args.data, args.out, models=args.models,
                            languages=args.languages, device=args.device, seed=args.seed,
                            epochs=getattr(args, "epochs", None), rounds=getattr(args, "rounds", None), quick=args.quick,
                            threads=args.threads, progress=not args.no_progress, command=f"{prog} {shlex.join(argv)}",
                            backend=flags.backend_from_args(args, progress=not args.no_progress))
    for title, table in tables.items():
        print(f"\n{title}\n{table.to_string(index=False, float_format=lambda v: f'{v:.4f}')}")
    print(f"\nwrote {args.out / 'summary.md'}")
    return 0
