"""``kfold run``: the whole competition flow in one command.

train (k folds) -> predict (one probability file per fold + fold mean) -> ensemble (mean and vote,
with agreement reports) -> validate the submissions -> local leaderboard (when the competition
directory has a solution file). Each step is the same code as its own command.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.errors import ArgumentParser


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="kfold run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="kmnist", help="competition directory or 'kmnist' (official release, downloaded; default)")
    p.add_argument("--preset", default="fast")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<preset>)")
    p.add_argument("--submissions", type=Path, default=Path("submissions"), help="where submission CSVs go")
    p.add_argument("--device", default="auto")
    p.add_argument("--tta", type=int, default=None, help="test-time augmentation views for predict")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kfold.commands.main import _main as kfold_command  # errors propagate to this command's run_cli
    from kfold.data import load_task
    from kfold.commands.ensemble import main as ensemble_main
    from kfold.nn.predict import main as predict_main
    from kfold.nn.training import main as train_main

    run_dir = args.out or Path("runs") / args.preset
    name = run_dir.name
    train_argv = ["--data", args.data, "--preset", args.preset, "--k", str(args.k), "--seed", str(args.seed),
                  "--out", str(run_dir), "--device", args.device]
    train_argv += ["--epochs", str(args.epochs)] if args.epochs is not None else []
    train_argv += ["--no-progress"] if args.no_progress else []
    if (run_dir / "config.json").exists():
        train_argv.append("--resume")  # re-running the pipeline continues (or reuses) the run
    print(f"== train: python train.py {' '.join(train_argv)}")
    train_main(train_argv)

    probs_dir = run_dir / "probs"
    predict_argv = [str(run_dir), "--data", args.data, "--out", str(probs_dir), "--device", args.device]
    predict_argv += ["--tta", str(args.tta)] if args.tta is not None else []
    print(f"\n== predict: python predict.py {' '.join(predict_argv)}")
    predict_main(predict_argv)

    task = load_task(args.data, progress=False)
    folds = [str(probs_dir / f"{name}-fold{fold}.npz") for fold in range(args.k)]
    sample = ["--sample", str(task.sample_submission)] if task.sample_submission else []
    submissions = []
    for method in ("mean", "vote"):
        out = args.submissions / f"{name}-{method}.csv"
        ensemble_argv = [*folds, "--method", method, "--out", str(out), "--seed", str(args.seed),
                         "--report", str(run_dir / f"report-{method}"), *sample]
        print(f"\n== ensemble: python ensemble.py {' '.join(ensemble_argv)}")
        ensemble_main(ensemble_argv)
        submissions.append(str(out))

    kfold_command(["validate", *submissions, *sample])
    if task.solution is None:
        print(f"\nno solution file beside the data: submit with  kfold submit {submissions[0]} -c COMPETITION -m MESSAGE")
        return 0
    board_argv = ["leaderboard", "--solution", str(task.solution), *folds, *submissions, "--out", str(run_dir / "leaderboard")]
    print(f"\n== leaderboard: kfold {' '.join(board_argv)}")
    return kfold_command(board_argv)
