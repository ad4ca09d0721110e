"""Run-level orchestration behind ``train.py``: folds, one model per fold, run summary, ``--full``.

Run directory layout::

    RUN_DIR/config.json      resolved config, k, seed, data spec and fingerprint
    RUN_DIR/folds.csv        Id, label, fold (written once, reused by every later step)
    RUN_DIR/fold{i}/         model.safetensors, meta.json (written last: the 'done' marker),
                             metrics.csv, learning_curve.png, confusion.csv/.png, oof.npz
    RUN_DIR/full/            --full: one model on all training data
    RUN_DIR/oof.npz          out-of-fold probabilities of all rows (when every fold is done)
    RUN_DIR/summary.json     oof_accuracy (at the kept epochs), oof_accuracy_last_epoch, oof_logloss, per-fold kept epoch /
                         accuracy, train_seconds
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, log_loss

from kfold import __version__
from kfold.files.atomic import write_csv, write_json
from kfold.config import TrainConfig, preset_names, resolve_config
from kfold.errors import ArgumentParser, DataError, UsageError
from kfold.files.folds import assign_folds, load_or_create_folds
from kfold.files.probs import read_probs, write_probs
from kfold.data.task import Task

CONFIG_FLAGS = {  # CLI flag -> TrainConfig field (flags left unset keep the preset's value)
    "epochs": int, "batch_size": int, "lr": float, "optimizer": str, "momentum": float, "weight_decay": float,
    "schedule": str, "label_smoothing": float, "aug": str, "aug_backend": str, "model": str, "dropout": float,
    "mixup": float, "cutmix": float, "ema": float, "early_stopping": int, "num_workers": int, "tta": int,
    "warmup_epochs": float, "eval_batch_size": int, "pseudo_label": float, "pseudo_start": float, "keep": str,
}


def library_versions() -> dict[str, str]:
    import albumentations
    import kornia
    import sklearn
    import torch

    return {"kfold": __version__, "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "kornia": kornia.__version__, "albumentations": albumentations.__version__, "scikit-learn": sklearn.__version__}


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="train.py", description="Train one model per stratified fold (or on all data with --full).")
    p.add_argument("--data", required=True, help="competition directory, official KMNIST/MNIST-MIX files, or the word 'kmnist'")
    p.add_argument("--preset", default="fast", help=f"one of: {', '.join(preset_names())} (default: fast)")
    p.add_argument("--config", help="JSON file with config overrides (applied after the preset)")
    p.add_argument("--k", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--folds", help="comma-separated subset of folds to train, e.g. 0,2")
    p.add_argument("--full", action="store_true", help="train on all data for the fold runs' mean best epoch (or --epochs)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--resume", action="store_true", help="skip finished folds, continue an interrupted fold from its checkpoint")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (falls back to eager)")
    p.add_argument("--task", default="auto", choices=["auto", "kmnist", "mnist-mix"], help="expected task (default: detect from --data)")
    p.add_argument("--languages", help="MNIST-MIX: comma-separated subset of languages")
    p.add_argument("--label-mode", default="specific", choices=["specific", "agnostic"], help="MNIST-MIX label mode")
    p.add_argument("--cache-dir", help="download cache for --data kmnist")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (epoch lines are still printed)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 can be much faster for small models on a busy machine)")
    p.add_argument("--parallel-folds", type=int, default=1, metavar="N",
                   help="train N folds at once in separate processes (for a large GPU that one small model cannot fill)")
    for flag, kind in CONFIG_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, default=None)
    return p


def parse_fold_list(text: str | None, k: int) -> list[int]:
    if text is None:
        return list(range(k))
    try:
        folds = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--folds {text!r}: expected comma-separated integers like 0,2") from None
    bad = [f for f in folds if not 0 <= f < k]
    if bad or not folds:
        raise UsageError(f"--folds {text!r}: folds must be in 0..{k - 1}")
    return folds


def load_task_for(args) -> Task:
    from kfold.data import load_task

    languages = [name.strip() for name in args.languages.split(",")] if args.languages else None
    task = load_task(args.data, cache_dir=args.cache_dir, languages=languages, label_mode=args.label_mode,
                     progress=not getattr(args, "no_progress", False))
    expected = getattr(args, "task", "auto")
    kind = "mnist-mix" if task.name == "mnist-mix" else "kmnist"
    if expected not in ("auto", kind):
        raise UsageError(f"--task {expected}: --data {args.data} holds a {kind} dataset")
    return task


def prepare_run_dir(run_dir: Path, run_config: dict, resume: bool, full: bool = False) -> None:
    """Refuse to mix runs: an existing run directory needs --resume (or --full) and the same settings.

    ``--full`` picks its own epoch count, so the epochs may differ from the fold runs'. A config saved
    before a field existed has that field's default (which reproduces the behaviour of the time).
    """
    path = run_dir / "config.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DataError(f"{path}: damaged run config; use a new --out directory") from None
        if not (resume or full):
            raise UsageError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new --out")
        ignored = {"epochs"} if full else set()
        for key in ("config", "k", "seed", "fingerprint"):
            saved_value, value = saved.get(key), run_config[key]
            if key == "config" and isinstance(saved_value, dict):
                saved_value = {**TrainConfig().to_dict(), **saved_value}  # a field added since: its default
                saved_value, value = ({k: v for k, v in d.items() if k not in ignored} for d in (saved_value, value))
            if saved_value != value:
                raise UsageError(f"{path}: {key} differs from this command's; use a new --out directory for a new setup")
        return
    write_json(path, run_config)


def fold_meta_path(run_dir: Path, fold: int | str) -> Path:
    name = "full" if fold == "full" else f"fold{fold}"
    return run_dir / name / "meta.json"


def train_one(cfg: TrainConfig, task: Task, run_dir: Path, fold: int | str, train_rows: np.ndarray, val_rows: np.ndarray | None,
              args, device, k: int) -> dict:
    """Train fold ``fold`` (or 'full') and write its directory; returns its meta dict."""
    from kfold.nn.engine import FoldTrainer, save_weights
    from kfold.nn.models import count_parameters
    from kfold.figures import plot_confusion, plot_learning_curve

    fold_dir = fold_meta_path(run_dir, fold).parent
    fold_dir.mkdir(parents=True, exist_ok=True)
    desc = "full" if fold == "full" else f"fold {fold}"
    trainer = FoldTrainer(cfg, task.train_images, task.train_labels, task.num_classes, train_rows, val_rows, device,
                          seed=args.seed * 1000 + (k if fold == "full" else int(fold)), work_dir=fold_dir, desc=desc,
                          progress=not args.no_progress, unlabeled=task.test_images)
    params = count_parameters(trainer.model)
    print(f"{desc}: {cfg.model} with {params:,} parameters, {len(train_rows)} train / {0 if val_rows is None else len(val_rows)} val images on {device}")
    try:
        result = trainer.fit(resume=args.resume)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(interrupted_hint(desc, trainer.state["epoch"], cfg.epochs, fold_dir)) from None

    meta = {
        "task": task.name, "fold": fold, "k": k, "seed": args.seed, "preset": args.preset, "model": cfg.model,
        "parameters": params, "num_classes": task.num_classes, "classes": task.class_names, "config": cfg.to_dict(),
        "best_epoch": result.best_epoch, "val_accuracy": result.val_accuracy, "val_loss": result.val_loss,
        "normalization": {"mean": trainer.mean, "std": trainer.std}, "fingerprint": task.fingerprint(),
        "train_rows": len(train_rows), "val_rows": 0 if val_rows is None else len(val_rows),
        "pseudo_label_pool": len(trainer.pseudo_pool), "seconds": result.seconds,
        "device": str(device), "versions": library_versions(),
    }
    save_weights(fold_dir / "model.safetensors", result.state_dict, meta)
    history = pd.DataFrame(result.history)
    write_csv(fold_dir / "metrics.csv", history)
    plot_learning_curve(history, fold_dir / "learning_curve.png", title=desc)
    if val_rows is not None:
        labels = task.train_labels[val_rows]
        matrix = confusion_matrix(labels, result.val_probs.argmax(1), labels=range(task.num_classes))
        write_csv(fold_dir / "confusion.csv", pd.DataFrame(matrix, index=pd.Index(range(task.num_classes), name="true")), index=True)
        plot_confusion(matrix, task.class_names, fold_dir / "confusion.png",
                       title=f"{desc} validation (kept the {cfg.keep} epoch, {result.best_epoch} of {cfg.epochs})")
        write_probs(fold_dir / "oof.npz", val_rows, result.val_probs, task.class_names, oof_meta(meta, run_dir), labels=labels)
    write_json(fold_dir / "meta.json", meta)  # last: its presence marks the fold as finished
    (fold_dir / "checkpoint.pt").unlink(missing_ok=True)
    return meta


def interrupted_hint(desc: str, epoch: int, epochs: int, fold_dir: Path) -> str:
    """What Ctrl-C leaves behind and how to continue."""
    kept = f"its checkpoint after epoch {epoch} is in {fold_dir}" if epoch else "it had no finished epoch yet"
    return (f"interrupted in {desc}, epoch {epoch + 1} of {epochs}: finished folds are kept and {kept}; to continue, run "
            "the same command again with --resume (kfold run continues by itself)")


def oof_meta(meta: dict, run_dir: Path) -> dict:
    return {"kind": "oof", "run": run_dir.name, "model": meta["model"], "fold": meta["fold"], "preset": meta["preset"],
            "seed": meta["seed"], "tta": 1, "fingerprint": meta["fingerprint"], "task": meta["task"]}


def summarize(run_dir: Path, task: Task, k: int, cfg: TrainConfig, args) -> dict:
    """Run summary from every finished fold; run-level oof.npz once all k folds are finished."""
    fold_rows, oof_parts, last_correct = [], [], 0.0
    for fold in range(k):
        path = fold_meta_path(run_dir, fold)
        if not path.exists():
            continue
        meta = json.loads(path.read_text(encoding="utf-8"))
        fold_rows.append({key: meta[key] for key in ("fold", "best_epoch", "val_accuracy", "val_loss", "seconds")})
        oof_parts.append(read_probs(path.parent / "oof.npz"))
        last_correct += pd.read_csv(path.parent / "metrics.csv")["val_accuracy"].iloc[-1] * meta["val_rows"]
    summary = {"task": task.name, "preset": args.preset, "model": cfg.model, "k": k, "seed": args.seed, "keep": cfg.keep,
               "folds_done": len(fold_rows), "folds": fold_rows, "train_seconds": float(sum(r["seconds"] for r in fold_rows))}
    if oof_parts:
        ids = np.concatenate([part.ids for part in oof_parts])
        probs = np.concatenate([part.probs for part in oof_parts])
        labels = np.concatenate([part.labels for part in oof_parts])
        order = np.argsort(ids)
        ids, probs, labels = ids[order], probs[order], labels[order]
        predicted = probs.argmax(1)
        summary.update(oof_rows=int(len(ids)), oof_accuracy=float((predicted == labels).mean()),
                       oof_accuracy_last_epoch=float(last_correct / len(ids)),
                       oof_logloss=float(log_loss(labels, probs, labels=range(task.num_classes))))
        if task.train_groups is not None:
            groups = task.train_groups[ids]
            summary["oof_accuracy_by_group"] = {name: float((predicted[groups == g] == labels[groups == g]).mean())
                                                for g, name in enumerate(task.group_names) if (groups == g).any()}
        if len(fold_rows) == k:
            meta = dict(oof_meta({"model": cfg.model, "fold": "all", "preset": args.preset, "seed": args.seed,
                                  "fingerprint": task.fingerprint(), "task": task.name}, run_dir))
            write_probs(run_dir / "oof.npz", ids, probs, task.class_names, meta, labels=labels)
    full = fold_meta_path(run_dir, "full")
    if full.exists():
        summary["full"] = {key: json.loads(full.read_text(encoding="utf-8"))[key] for key in ("best_epoch", "seconds")}
    write_json(run_dir / "summary.json", summary)
    return summary


def print_summary(summary: dict) -> None:
    if summary["folds"]:
        table = pd.DataFrame(summary["folds"]).rename(columns={"val_accuracy": "val_acc"})
        table["seconds"] = table["seconds"].map("{:.1f}".format)  # not 161.9340
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if "oof_accuracy" in summary:
        print(f"OOF accuracy {summary['oof_accuracy']:.4f}  OOF log loss {summary['oof_logloss']:.4f}  "
              f"({summary['oof_rows']} rows, {summary['folds_done']}/{summary['k']} folds)")
        if summary.get("keep", "best") == "last":
            print("  every fold keeps its last epoch: no epoch was picked on the validation rows")
        else:
            print(f"  at each fold's best epoch, chosen on the same validation rows (slightly optimistic); "
                  f"at the last epoch: {summary['oof_accuracy_last_epoch']:.4f}")
        for name, acc in summary.get("oof_accuracy_by_group", {}).items():
            print(f"  {name:<12} {acc:.4f}")
    print(f"train time {summary['train_seconds']:.1f}s")


def full_epochs(run_dir: Path, k: int, explicit: int | None) -> int:
    """--full trains for --epochs if given, else the mean best epoch of the finished folds."""
    if explicit is not None:
        return explicit
    best = [json.loads(fold_meta_path(run_dir, f).read_text())["best_epoch"] for f in range(k) if fold_meta_path(run_dir, f).exists()]
    if not best:
        raise UsageError("--full needs finished fold runs in --out (to pick the epoch count) or an explicit --epochs")
    return max(1, round(float(np.mean(best))))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from kfold.nn.inference import resolve_device

    overrides = {key: getattr(args, key) for key in CONFIG_FLAGS if getattr(args, key) is not None}
    if args.compile:
        overrides["compile"] = True
    cfg = resolve_config(args.preset, args.config, overrides)
    if args.k < 2:
        raise UsageError(f"--k {args.k}: k-fold needs k >= 2")
    if args.parallel_folds < 1:
        raise UsageError(f"--parallel-folds {args.parallel_folds}: must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    fold_list = parse_fold_list(args.folds, args.k)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    task = load_task_for(args)
    run_dir = Path(args.out)
    run_config = {"config": cfg.to_dict(), "preset": args.preset, "k": args.k, "seed": args.seed, "data": str(args.data),
                  "task": task.name, "fingerprint": task.fingerprint(), "classes": task.class_names}
    if args.full:  # every usage check runs before the first file of the run is written
        full_cfg = resolve_config(args.preset, args.config, {**overrides, "epochs": full_epochs(run_dir, args.k, args.epochs)})
    folds = load_or_create_folds_checked(run_dir, run_config, task, args)
    start = time.perf_counter()
    if args.full:
        if fold_meta_path(run_dir, "full").exists() and args.resume:
            print("full: already finished, skipping")
        else:
            train_one(full_cfg, task, run_dir, "full", np.arange(len(task.train_labels)), None, args, device, args.k)
    else:
        todo = []
        for fold in fold_list:
            if args.resume and fold_meta_path(run_dir, fold).exists():
                print(f"fold {fold}: already finished, skipping")
                (fold_meta_path(run_dir, fold).parent / "checkpoint.pt").unlink(missing_ok=True)  # killed before its deletion
            else:
                todo.append(fold)
        if args.parallel_folds > 1 and len(todo) > 1:
            train_parallel(todo, args, argv)
        else:
            for fold in todo:
                train_one(cfg, task, run_dir, fold, np.flatnonzero(folds != fold), np.flatnonzero(folds == fold), args, device, args.k)
    summary = summarize(run_dir, task, args.k, cfg, args)
    print_summary(summary)
    print(f"wall time {time.perf_counter() - start:.1f}s; run directory {run_dir}")
    return 0


def _train_worker(argv: list[str], threads: int) -> int:
    import torch

    torch.set_num_threads(threads)
    return main(argv)


def train_parallel(todo: list[int], args, argv: Sequence[str] | None) -> None:
    """Train folds in ``--parallel-folds`` worker processes, each a ``--resume`` run of its own folds.

    The run directory and folds.csv exist already, so workers only add their fold directories.
    On CPU the cores are divided between the workers.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import torch

    workers = min(args.parallel_folds, len(todo))
    threads = max(1, torch.get_num_threads() // workers) if args.device in ("cpu", "auto") and not torch.cuda.is_available() else 1
    base = list(sys.argv[1:] if argv is None else argv)
    for flag in ("--folds", "--parallel-folds", "--threads"):  # each worker gets its own folds and share of threads
        base = _without_flag(base, flag)
    groups = [todo[i::workers] for i in range(workers)]
    print(f"training folds {todo} in {workers} processes ({threads} CPU thread(s) each, pid {os.getpid()})")
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        jobs = [pool.submit(_train_worker, [*base, "--folds", ",".join(map(str, g)), "--resume"], threads) for g in groups]
        for job in jobs:
            job.result()


def _without_flag(argv: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == flag:
            skip = True
        elif not item.startswith(flag + "="):
            out.append(item)
    return out


def load_or_create_folds_checked(run_dir: Path, run_config: dict, task: Task, args) -> np.ndarray:
    if not (run_dir / "folds.csv").exists():
        assign_folds(task.train_labels, args.k, args.seed)  # a k larger than a class fails before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    prepare_run_dir(run_dir, run_config, args.resume, args.full)
    return load_or_create_folds(run_dir / "folds.csv", task.train_labels, args.k, args.seed)


