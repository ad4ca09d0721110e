"""``predict.py``: one probability file per model (fold) for the competition test set, a fold-averaged
file per run, and the run's out-of-fold probabilities re-exported beside them.

With ``--tta N`` the test-time-augmentation gain is measured on each fold's validation rows
(out-of-fold accuracy and log loss with 1 view against N views) and printed, not assumed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError, param
from kfold.files.rundir import FULL, PredDir, RunDir, model_name
from kfold.files.probs import read_probs, write_probs
from kfold.data.task import Task


def _describe(height: int, width: int, channels: int) -> str:
    return f"{height}x{width} images with {channels} channel{'s' if channels > 1 else ''}"


def check_model_matches(where: Path, meta: dict, task: Task) -> None:
    """The model's classes, image size and channels fit the task (a model of another competition or a foreign
    or edited header otherwise)."""
    if meta["num_classes"] != task.num_classes:
        raise DataError(f"{where}: model has {meta['num_classes']} classes but {param('data')} has {task.num_classes}")
    size, channels = meta.get("image_size", 28), meta.get("channels", 1)
    images = task.test_images
    test_channels = 1 if images.ndim == 3 else int(images.shape[3])
    if images.ndim not in (3, 4) or tuple(images.shape[1:3]) != (size, size) or test_channels != channels:
        shape = (_describe(images.shape[1], images.shape[2], test_channels) if images.ndim in (3, 4)
                 else f"images of shape {images.shape}")
        raise DataError(f"{where}: model takes {_describe(size, size, channels)} but the test images are {shape}")


def _thresholds(run: RunDir, task: Task) -> dict:
    """A tag target's out-of-fold thresholds (the run's ``summary.json``) for its test probability files."""
    if task.schema.target != "tags" or not run.summary.is_file():
        return {}
    found = run.read_json(run.summary).get("thresholds")
    return {"thresholds": found} if found else {}


def tta_gain(model, meta: dict, task: Task, run: RunDir, fold: int, views: int, batch_size: int, device, channels_last: bool) -> dict:
    """Out-of-fold accuracy / log loss of one fold model with 1 view and with ``views`` views (and the
    accuracy per group, e.g. per MNIST-MIX language, when the task has groups)."""
    from sklearn.metrics import log_loss

    from kfold.files.folds import read_folds
    from kfold.nn.inference import predict_proba
    from kfold.scoring.metrics import accuracy_by_group

    folds = read_folds(run.folds_csv, task.train_labels)
    fold = meta["fold"]
    if isinstance(fold, bool) or not isinstance(fold, int) or not (folds == fold).any():
        raise DataError(f"{run.weights(fold) if isinstance(fold, int) else run.path}: metadata fold {fold!r} is not a fold of "
                        f"{run.folds_csv} (0..{int(folds.max())}), so its out-of-fold rows for {param('tta')} are unknown")
    rows = np.flatnonzero(folds == fold)
    labels = task.train_labels[rows]
    norm = meta["normalization"]
    result = {"model": f"{run.name}/{model_name(fold)}"}
    for n in (1, views):
        probs = predict_proba(model, task.train_images[rows], norm["mean"], norm["std"], device, batch_size, n, channels_last)
        correct = probs.argmax(1) == labels
        result[f"acc_tta{n}"] = float(correct.mean())
        result[f"logloss_tta{n}"] = float(log_loss(labels, probs, labels=range(task.num_classes)))
        if task.train_groups is not None:
            groups = task.train_groups[rows]
            result.update({f"acc_tta{n}_{name}": value
                           for name, value in accuracy_by_group(correct, groups, task.group_names).items()})
    return result


def model_probs(model, meta: dict, task: Task, device, batch_size: int, views: int, where) -> tuple[np.ndarray, bool]:
    """(test probabilities, channels_last) of one loaded fold model: evaluated as its out-of-fold rows were scored
    (the fold's recorded bf16/channels_last choice on the CPU, else the config's rule). ``kfold predict`` and a
    packaged notebook (:func:`predict_packaged`) both predict through here, so that their outputs agree."""
    from kfold.nn.inference import predict_proba
    from kfold.nn.precision import for_prediction

    channels_last, bf16 = for_prediction(meta, device, str(where))
    if channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)
    norm = meta["normalization"]
    probs = predict_proba(model, task.test_images, norm["mean"], norm["std"], device, batch_size, views, channels_last, bf16,
                          multilabel=task.schema.multilabel)
    return probs, channels_last


def test_file_meta(meta: dict, run_name: str, views: int, task: Task) -> dict:
    """The metadata of one model's test probability file."""
    return {"kind": "test", "run": run_name, "model": meta["model"], "fold": meta["fold"], "preset": meta["preset"],
            "seed": meta["seed"], "tta": views, "fingerprint": meta["fingerprint"], "task": task.name,
            **task.schema_meta()}


def check_trained_for(where: Path, meta: dict, task: Task, classes: Sequence[str]) -> None:
    """A packaged model fits the competition met at run time by what it was trained on, not by the test set:
    its classes are the package's (and the competition's now), its input size and channels the test images'."""
    check_model_matches(where, meta, task)
    if list(task.class_names) != list(classes):
        raise DataError(f"{where}: trained for the classes {_shown(classes)} but the competition's data gives "
                        f"{_shown(task.class_names)}")


def _shown(values: Sequence[str]) -> str:
    return "[" + ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "") + "]"


def check_models(models: Sequence[tuple[str, int, Path]], task: Task, classes: Sequence[str]) -> list[dict]:
    """Every model read as the packaged kfold will read it (a header, architecture or weights it cannot read is
    one DataError naming the file) and trained for ``task``'s classes, image size and channels; their metadata."""
    from kfold.nn.inference import load_model, resolve_device

    metas = []
    for _, _, weights in models:
        _, meta = load_model(weights, resolve_device("cpu"))
        check_trained_for(weights, meta, task, classes)
        metas.append(meta)
    return metas


def predict_packaged(models: Sequence[tuple[str, int, Path]], task: Task, out: str | Path, *, classes: Sequence[str],
                     tta: int, batch_size: int = 2048, device: str = "cpu", threads: int | None = None,
                     echo=print) -> tuple[list[Path], str]:
    """The test probabilities of packaged fold models ``(run name, fold, weights)`` on whatever test images
    ``task`` holds, one file per model in prediction folder ``out`` (as ``kfold predict`` names them); returns the
    paths in the order of ``models`` and the device used. On the CPU ``threads`` (the count the package recorded)
    is set: CPU results are bit-identical at the same thread count.

    Unlike :func:`predict_run` the data fingerprint is not compared (the hidden test set of a code competition is
    not the one the models were trained beside): :func:`check_trained_for` checks what the models were trained
    on instead; the weights' integrity is the package manifest's sha256.
    """
    from kfold.files.atomic import together
    from kfold.nn.inference import load_model, resolve_device

    device = resolve_device(device)
    if threads and device.type == "cpu":
        import torch

        torch.set_num_threads(int(threads))
    pred, written = PredDir(out), []
    with together():
        for run_name, fold, weights in models:
            model, meta = load_model(weights, device)
            check_trained_for(weights, meta, task, classes)
            start = time.perf_counter()
            probs, _ = model_probs(model, meta, task, device, batch_size, tta, weights)
            path = pred.model(run_name, fold)
            thresholds = _thresholds(RunDir(weights.parent.parent), task)  # a packaged run folder (tags)
            write_probs(path, task.test_ids, probs, task.class_names, {**test_file_meta(meta, run_name, tta, task), **thresholds})
            echo(f"{run_name}/{model_name(fold)}: {len(probs)} rows, {tta} view(s), "
                 f"{len(probs) / max(time.perf_counter() - start, 1e-9):,.0f} images/s")
            written.append(path)
    return written, str(device)


def predict_run(runs: Sequence[RunDir | str | Path], task: Task, out: str | Path, *, tta: int | None = None,
                batch_size: int = 2048, device: str = "auto", fmt: str = "npz", allow_incomplete: bool = False,
                threads: int | None = None, echo=print) -> list[Path]:
    """Test probabilities of every model of ``runs``, their fold mean and the run's out-of-fold file, in ``out``.

    Every run is checked (its defined folds all finished unless ``allow_incomplete``, data fingerprint) and every
    file computed before the first is written; the files then appear together. Returns the paths written.
    """
    from tqdm.auto import tqdm

    from kfold.files.atomic import guard_outputs, together
    from kfold.nn.inference import load_model, resolve_device

    if tta is not None and (isinstance(tta, bool) or not isinstance(tta, int) or tta < 1):
        raise UsageError(f"{param('tta')}={tta!r}: needs at least 1 view")
    if tta is not None and tta > 9:
        raise UsageError(f"{param('tta')}={tta!r}: at most 9 views")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"{param('batch_size')}={batch_size!r}: must be at least 1")
    if fmt not in ("npz", "csv"):
        raise UsageError(f"{param('fmt')}={fmt!r}: must be npz or csv")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4096):
        raise UsageError(f"{param('threads')}={threads!r}: must be an integer in 1..4096")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if not task.has_test:
        raise DataError(f"{task.source or task.name}: no test images, so there is nothing to predict "
                        f"(a run's out-of-fold probabilities are its {RunDir('.').oof.name})")
    device = resolve_device(device)
    fingerprint = task.fingerprint()
    pred = PredDir(out)
    runs = [run if isinstance(run, RunDir) else RunDir(run) for run in runs]
    planned = [(run, run.models(allow_incomplete)) for run in runs]  # every run checked first
    guard_outputs([pred.path, *(path for run, models in planned for path in
                                (*(pred.model(run.name, m, fmt) for m in models), pred.mean(run.name, fmt),
                                 pred.oof(run.name, fmt)))],
                  [path for run in runs for path in run.inputs()], root=pred.path.parent)
    gains, pending = [], {}  # pending: output path -> write_probs arguments; written only when all succeeded

    def add(path: Path, *write_args, **write_kwargs) -> None:
        if path in pending:
            raise UsageError(f"two runs would both write {path}: give run directories distinct names")
        pending[path] = (write_args, write_kwargs)

    for run, models in planned:
        k = run.defined_folds()
        fold_probs = []
        for fold in tqdm(models, desc=f"predict {run.name}", leave=False, disable=None):  # no bar in logs
            model, meta = load_model(run.weights(fold), device)
            check_model_matches(run.weights(fold), meta, task)  # first: names the size or channels that differ
            if meta["fingerprint"] != fingerprint:
                raise DataError(f"{run.model_dir(fold)}: trained on different data (fingerprint {meta['fingerprint']}, {param('data')} gives {fingerprint})")
            run.check_belongs(run.weights(fold), meta, fold)  # weights copied from another run or fold: refused
            views = tta if tta is not None else meta["config"].get("tta", 1)
            start = time.perf_counter()
            probs, channels_last = model_probs(model, meta, task, device, batch_size, views, run.weights(fold))
            seconds = time.perf_counter() - start
            file_meta = {**test_file_meta(meta, run.name, views, task), **_thresholds(run, task)}
            path = pred.model(run.name, fold, fmt)
            add(path, task.test_ids, probs, task.class_names, file_meta)
            tqdm.write(f"{path}: {len(probs)} rows, {views} view(s), {len(probs) / max(seconds, 1e-9):,.0f} images/s")
            if fold != FULL:
                fold_probs.append(probs)
                if views > 1 and not task.schema.multilabel:  # (the TTA gain table scores one class per image)
                    gains.append(tta_gain(model, meta, task, run, int(fold), views, batch_size, device, channels_last))
        if fold_probs:
            mean_meta = {**file_meta, "fold": "mean", "folds": len(fold_probs), "folds_defined": k,
                         "complete": len(fold_probs) == k}
            add(pred.mean(run.name, fmt), task.test_ids, np.mean(fold_probs, axis=0), task.class_names, mean_meta)
            if len(fold_probs) < k:
                echo(f"warning: {run.path}: the mean uses {len(fold_probs)} of {k} folds (--allow-incomplete)")
        if run.oof.is_file():
            oof = read_probs(run.oof)
            run.check_oof(oof)  # copied from another run: refused
            if oof.meta.get("kind") not in (None, "oof"):
                raise DataError(f"{run.oof}: a {oof.meta.get('kind')!r} probability file, not out-of-fold predictions")
            add(pred.oof(run.name, fmt), oof.ids, oof.probs, oof.classes, oof.meta, labels=oof.labels)
    with together():
        for path, (write_args, write_kwargs) in pending.items():
            write_probs(path, *write_args, **write_kwargs)
    if gains:
        table = pd.DataFrame(gains)
        echo("TTA gain on out-of-fold rows:")
        echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    echo(f"wrote {len(pending)} probability files to {pred.path}")
    return list(pending)
