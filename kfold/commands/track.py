"""``kfold track sync RUN_DIR|TUNE_DIR ...``: log finished runs and searches to MLflow or W&B from their files.

The same code the training commands' ``--track mlflow`` (or ``--track wandb``) runs as folds and runs finish, applied
afterwards: to runs made before tracking existed, or to fill the gap a failing store left. Idempotent: a run synced
again is updated, never duplicated (the kfold run's id is a tag, or W&B's run id), a fold is logged once; a run's
ensembles (its ``report-*`` folders, their local scores from its leaderboard) are logged when their submission files
are found.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags


def build_parser(prog: str = "kfold track") -> argparse.ArgumentParser:
    p = flags.parser(prog, __doc__)
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = sub.add_parser("sync", help="log run directories and kfold tune folders to MLflow or W&B (idempotent)",
                          description="Log run directories and kfold tune folders (with their trials table) to "
                                      "MLflow or Weights & Biases from their files; a run synced before is updated, "
                                      "never duplicated.")
    sync.add_argument("paths", nargs="+", type=Path, metavar="RUN_DIR|TUNE_DIR")
    sync.add_argument("--track", default=None, type=flags.one_of("tracker", ["mlflow", "wandb"]),
                      metavar="mlflow|wandb",
                      help="the tracker (default: $KFOLD_TRACK when it names one, else mlflow); wandb writes to "
                           "$WANDB_DIR, else PARENT/wandb/ beside the first path, offline unless logged in")
    sync.add_argument("--uri", default=None, metavar="URI",
                      help="MLflow's tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///PARENT/mlflow.db beside "
                           "the first path)")
    sync.add_argument("--track-models", action="store_true", help="also log every model's weights (safetensors)")
    sync.add_argument("--submissions", type=Path, default=None, metavar="DIR",
                      help="where kfold run wrote the runs' ensembles (default: where their leaderboard recorded them, "
                           "else submissions/ beside the runs)")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold track") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.flows.tracking import sync

    sync(args.paths, uri=args.uri, models=args.track_models, submissions=args.submissions, track=args.track)
    return 0
