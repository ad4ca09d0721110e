"""One fold's training: the typed function every backend (this process, a Ray task) calls.

``train_fold(job, task)`` trains fold ``job.fold`` (or the ``full`` model) of a prepared run directory and
writes its folder; the run-level steps (config, folds, summary) are in ``kfold.flows.training``.
"""
from __future__ import annotations

import platform
from typing import Callable

import numpy as np

from kfold.config import TrainConfig
from kfold.data.jobs import FoldJob
from kfold.data.task import Task
from kfold.errors import UsageError, param
from kfold.files.atomic import write_csv, write_json
from kfold.files.folds import read_folds
from kfold.files.probs import write_probs
from kfold.files.rundir import FULL, RunDir


def library_versions() -> dict[str, str]:
    """The versions behind a result, read from the installed distributions (importing albumentations would
    also make it look for a newer release on PyPI)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from kfold.identity import code_identity

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {**code_identity(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "kornia": installed("kornia"), "albumentations": installed("albumentations"),
            "scikit-learn": installed("scikit-learn")}


def _check_threads(run: RunDir, job: FoldJob, threads: int) -> None:
    """CPU results depend on the thread count: refuse to mix counts within one run."""
    for fold in [*range(job.k), FULL]:
        if fold == job.fold or not run.is_done(fold):
            continue
        recorded = run.read_json(run.meta(fold)).get("threads")
        if recorded is not None and recorded != threads:
            raise UsageError(f"{run.meta(fold)}: {run.path} was trained with {recorded} CPU thread(s), this process uses "
                             f"{threads}; CPU results differ with the thread count: pass {param('threads')}={recorded}")


def interrupted_hint(desc: str, epoch: int, epochs: int, fold_dir) -> str:
    """What Ctrl-C leaves behind and how to continue."""
    kept = f"its checkpoint after epoch {epoch} is in {fold_dir}" if epoch else "it had no finished epoch yet"
    return (f"interrupted in {desc}, epoch {epoch + 1} of {epochs}: finished folds are kept and {kept}; to continue, run "
            "the same command again with --resume (kfold run continues by itself)")


def _confusion_counts(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, true class by row and predicted class by column: scikit-learn's
    ``confusion_matrix(labels, predicted, labels=range(num_classes))`` without importing scikit-learn and SciPy
    (seconds of every fold's process, a Ray worker's among them)."""
    pairs = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(predicted, dtype=np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).astype(np.int64).reshape(num_classes, num_classes)


def train_fold(job: FoldJob, task: Task | None = None, echo: Callable[[str], None] = print) -> dict:
    """Train ``job.fold`` of the run ``job.run_dir``; returns the fold's meta dict (also written as meta.json).

    ``task`` is the loaded task (default: loaded from ``job.task``, as a Ray task does); ``job.config`` is the
    run's validated config, used as it is. ``echo`` reports the fold's header line and its precision choice (epoch
    lines go through tqdm, which keeps its bars intact)."""
    import pandas as pd
    import torch

    from kfold.figures import plot_confusion, plot_learning_curve
    from kfold.nn import precision as precisions
    from kfold.nn.engine import FoldTrainer, build_model, checkpoint_precision, save_weights
    from kfold.nn.inference import resolve_device
    from kfold.nn.models import count_parameters

    if job.threads is not None:
        torch.set_num_threads(job.threads)  # explicit per fold: a reused worker keeps its thread pool otherwise
    device = resolve_device(job.device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    task = job.task.load(progress=False) if task is None else task
    cfg: TrainConfig = job.config
    run = RunDir(job.run_dir)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        _check_threads(run, job, threads)
    fold = job.fold
    if fold == FULL:
        train_rows, val_rows = np.arange(len(task.train_labels)), None
    else:
        folds = read_folds(run.folds_csv, task.train_labels)
        train_rows, val_rows = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    fold_dir = run.model_dir(fold)
    if fold_dir.is_symlink():
        from kfold.errors import DataError

        raise DataError(f"{fold_dir}: is a symbolic link; kfold writes only into directories it created")
    fold_dir.mkdir(parents=True, exist_ok=True)
    desc = "full" if fold == FULL else f"fold {fold}"
    # bf16 / channels_last: a resumed fold keeps its checkpoint's choice, a fold of a run takes its finished folds'
    # choice; only the first fold of a run (on a machine without a cached answer) runs the timed probe
    recorded, recorded_by = None, "run"
    if precisions.probed(cfg, device):
        mine = checkpoint_precision(run.checkpoint(fold)) if job.resume else None
        if mine is not None:
            recorded, recorded_by = precisions.check_record(mine, str(run.checkpoint(fold))), "checkpoint"
        else:
            recorded = precisions.run_record([run.meta(f) for f in [*range(job.k), FULL] if f != fold and run.is_done(f)])
    chosen = precisions.decide(cfg, device, sample=task.train_images[train_rows[: cfg.batch_size]],
                               num_classes=task.num_classes, build=build_model, recorded=recorded, recorded_by=recorded_by,
                               echo=lambda line: echo(f"{desc}: {line}"))
    trainer = FoldTrainer(cfg, task.train_images, task.train_labels, task.num_classes, train_rows, val_rows, device,
                          seed=job.seed * 1000 + (job.k if fold == FULL else int(fold)), work_dir=fold_dir, desc=desc,
                          progress=job.progress, unlabeled=task.test_images, precision=chosen)
    params = count_parameters(trainer.model)
    echo(f"{desc}: {cfg.model} with {params:,} parameters, {len(train_rows)} train / "
         f"{0 if val_rows is None else len(val_rows)} val images on {device}")
    try:
        result = trainer.fit(resume=job.resume)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(interrupted_hint(desc, trainer.state["epoch"], cfg.epochs, fold_dir)) from None

    meta = {
        "task": task.name, "fold": fold, "k": job.k, "seed": job.seed, "preset": job.preset, "model": cfg.model,
        "parameters": params, "num_classes": task.num_classes, "classes": task.class_names, "config": cfg.to_dict(),
        "best_epoch": result.best_epoch, "val_accuracy": result.val_accuracy, "val_loss": result.val_loss,
        "normalization": {"mean": trainer.mean, "std": trainer.std}, "fingerprint": task.fingerprint(),
        "train_rows": len(train_rows), "val_rows": 0 if val_rows is None else len(val_rows),
        "pseudo_label_pool": len(trainer.pseudo_pool), "seconds": result.seconds, "image_size": int(task.image_shape[0]),
        "channels": trainer.channels, **({"multilabel": True} if trainer.multilabel else {}),
        "device": str(device), "threads": threads, "host": platform.node(), "versions": library_versions(),
        "precision": trainer.precision.record(),
    }
    save_weights(run.weights(fold), result.state_dict, meta)
    history = pd.DataFrame(result.history)
    write_csv(run.metrics(fold), history)
    plot_learning_curve(history, run.learning_curve(fold), title=desc)
    if val_rows is not None and task.schema.multilabel:  # per-tag counts instead of a confusion matrix
        from kfold.scoring.multilabel import per_tag_table

        labels = task.train_labels[val_rows]
        write_csv(run.confusion_csv(fold), per_tag_table(labels, result.val_probs, task.class_names))
        write_probs(run.fold_oof(fold), val_rows, result.val_probs, task.class_names,
                    {**run.oof_meta(meta), **task.schema_meta()}, labels=labels)
    elif val_rows is not None:
        labels = task.train_labels[val_rows]
        matrix = _confusion_counts(labels, result.val_probs.argmax(1), task.num_classes)
        write_csv(run.confusion_csv(fold), pd.DataFrame(matrix, index=pd.Index(range(task.num_classes), name="true")), index=True)
        plot_confusion(matrix, task.class_names, run.confusion_png(fold),
                       title=f"{desc} validation (kept the {cfg.keep} epoch, {result.best_epoch} of {cfg.epochs})")
        write_probs(run.fold_oof(fold), val_rows, result.val_probs, task.class_names, run.oof_meta(meta), labels=labels)
    write_json(run.meta(fold), meta)  # last: its presence marks the fold as finished
    run.checkpoint(fold).unlink(missing_ok=True)
    return meta
