"""``predict.py``: one probability file per model (fold) for the competition test set, a fold-averaged
file per run, and the run's out-of-fold probabilities re-exported beside them.

With ``--tta N`` the test-time-augmentation gain is measured on each fold's validation rows
(out-of-fold accuracy and log loss with 1 view against N views) and printed, not assumed.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import ArgumentParser, DataError, UsageError
from .probs import read_probs, write_probs
from .task import Task


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="predict.py", description="Write per-model test probability files for trained runs.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by train.py")
    p.add_argument("--data", required=True, help="the competition data the runs were trained on")
    p.add_argument("--out", required=True, help="directory for the probability files")
    p.add_argument("--tta", type=int, default=None, help="test-time augmentation views (default: the run's config, usually 1)")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--device", default="auto")
    p.add_argument("--format", choices=["npz", "csv"], default="npz", help="npz (fast, default) or csv (interchange)")
    p.add_argument("--task", default="auto", choices=["auto", "kmnist", "mnist-mix"], help="expected task (default: detect from --data)")
    p.add_argument("--languages", help="MNIST-MIX: comma-separated subset of languages")
    p.add_argument("--label-mode", default="specific", choices=["specific", "agnostic"])
    p.add_argument("--cache-dir")
    return p


def safe_name(text: str) -> str:
    """A file-name component that cannot leave the output directory."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return cleaned or "run"


def model_dirs(run_dir: Path) -> list[Path]:
    """Finished model directories of a run (fold0..fold{k-1}, then full)."""
    if not (run_dir / "config.json").is_file():
        raise DataError(f"{run_dir}: not a kfold run directory (no config.json)")
    found = sorted((d for d in run_dir.glob("fold*") if (d / "meta.json").is_file()), key=lambda d: int(d.name[4:]) if d.name[4:].isdigit() else 1 << 30)
    if (run_dir / "full" / "meta.json").is_file():
        found.append(run_dir / "full")
    if not found:
        raise DataError(f"{run_dir}: no finished models (train first, or --resume an interrupted run)")
    return found


def tta_gain(model, meta: dict, task: Task, run_dir: Path, model_dir: Path, views: int, args, device, channels_last: bool) -> dict:
    """Out-of-fold accuracy / log loss of one fold model with 1 view and with ``views`` views (and the
    accuracy per group, e.g. per MNIST-MIX language, when the task has groups)."""
    from sklearn.metrics import log_loss

    from .folds import read_folds
    from .inference import predict_proba

    folds = read_folds(run_dir / "folds.csv", task.train_labels)
    rows = np.flatnonzero(folds == int(meta["fold"]))
    labels = task.train_labels[rows]
    norm = meta["normalization"]
    result = {"model": f"{run_dir.name}/{model_dir.name}"}
    for n in (1, views):
        probs = predict_proba(model, task.train_images[rows], norm["mean"], norm["std"], device, args.batch_size, n, channels_last)
        correct = probs.argmax(1) == labels
        result[f"acc_tta{n}"] = float(correct.mean())
        result[f"logloss_tta{n}"] = float(log_loss(labels, probs, labels=range(task.num_classes)))
        if task.train_groups is not None:
            groups = task.train_groups[rows]
            result.update({f"acc_tta{n}_{name}": float(correct[groups == g].mean())
                           for g, name in enumerate(task.group_names) if (groups == g).any()})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tta is not None and args.tta < 1:
        raise UsageError(f"--tta {args.tta}: needs at least 1 view")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be at least 1")
    from tqdm.auto import tqdm

    from .inference import load_model, predict_proba, resolve_device, use_bf16, use_channels_last
    from .training import load_task_for

    device = resolve_device(args.device)
    task = load_task_for(args)
    fingerprint = task.fingerprint()
    out_dir = Path(args.out)
    runs = [(run_dir, model_dirs(run_dir)) for run_dir in map(Path, args.runs)]  # every run checked first
    gains, pending = [], {}  # pending: output path -> write_probs arguments; written only when all succeeded

    def add(path: Path, *write_args, **write_kwargs) -> None:
        if path in pending:
            raise UsageError(f"two runs would both write {path}: give run directories distinct names")
        pending[path] = (write_args, write_kwargs)

    for run_dir, dirs in runs:
        run_name = safe_name(run_dir.resolve().name)
        fold_probs = []
        for model_dir in tqdm(dirs, desc=f"predict {run_name}", leave=False, disable=None):  # no bar in logs
            model, meta = load_model(model_dir / "model.safetensors", device)
            if meta["fingerprint"] != fingerprint:
                raise DataError(f"{model_dir}: trained on different data (fingerprint {meta['fingerprint']}, --data gives {fingerprint})")
            views = args.tta if args.tta is not None else meta["config"].get("tta", 1)
            channels_last = use_channels_last(meta["config"].get("channels_last", "auto"), device)
            if channels_last:
                import torch

                model = model.to(memory_format=torch.channels_last)
            start = time.perf_counter()
            norm = meta["normalization"]
            bf16 = use_bf16(meta["config"].get("bf16", "auto"), device)  # as the OOF rows were scored
            probs = predict_proba(model, task.test_images, norm["mean"], norm["std"], device, args.batch_size, views, channels_last, bf16)
            seconds = time.perf_counter() - start
            file_meta = {"kind": "test", "run": run_name, "model": meta["model"], "fold": meta["fold"], "preset": meta["preset"],
                         "seed": meta["seed"], "tta": views, "fingerprint": meta["fingerprint"], "task": task.name}
            path = out_dir / f"{run_name}-{safe_name(model_dir.name)}.{args.format}"
            add(path, task.test_ids, probs, task.class_names, file_meta)
            tqdm.write(f"{path}: {len(probs)} rows, {views} view(s), {len(probs) / max(seconds, 1e-9):,.0f} images/s")
            if model_dir.name != "full":
                fold_probs.append(probs)
                if views > 1:
                    gains.append(tta_gain(model, meta, task, run_dir, model_dir, views, args, device, channels_last))
        if fold_probs:
            mean_meta = {**file_meta, "fold": "mean", "folds": len(fold_probs)}
            add(out_dir / f"{run_name}-mean.{args.format}", task.test_ids, np.mean(fold_probs, axis=0), task.class_names, mean_meta)
        if (run_dir / "oof.npz").is_file():
            oof = read_probs(run_dir / "oof.npz")
            add(out_dir / f"{run_name}-oof.{args.format}", oof.ids, oof.probs, oof.classes, oof.meta, labels=oof.labels)
    for path, (write_args, write_kwargs) in pending.items():
        write_probs(path, *write_args, **write_kwargs)
    if gains:
        table = pd.DataFrame(gains)
        print("TTA gain on out-of-fold rows:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {len(pending)} probability files to {out_dir}")
    return 0
