"""A k-fold training run as typed functions: prepare the run directory, train every fold, summarize.

This module never imports torch: it validates, writes ``config.json``/``folds.csv`` and the summary, and
hands each fold to a backend that calls ``kfold.nn.fold.train_fold`` (in this process, or as a Ray task).
Everything is checked before the first file of a run is written.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kfold.config import TrainConfig, resolve_config
from kfold.data.task import Task
from kfold.errors import DataError, UsageError, param
from kfold.files.atomic import guard_outputs, sweep_stale_temps, write_json
from kfold.files.folds import assign_folds, check_k, read_folds, write_folds
from kfold.files.probs import read_probs, write_probs
from kfold.files.rundir import FULL, RunDir, data_inputs, read_metrics

__all__ = ["check_run_dir", "check_task", "fold_jobs", "FoldJob", "folds_sha256", "format_summary", "full_epochs",
           "load_saved_config", "local_backend", "parse_fold_list", "prepare_run", "RUN_KEYS", "RunSummary",
           "summarize", "TaskSpec", "train_run"]

RUN_KEYS = ("config", "k", "seed", "fingerprint", "folds_sha256", "threads")  # a resume must match every one


@dataclass(frozen=True)
class TaskSpec:
    """How to load a task again (a worker process or another node loads it from these values)."""

    data: str
    cache_dir: str | None = None
    languages: tuple[str, ...] | None = None
    label_mode: str = "specific"
    expected: str = "auto"  # kmnist | mnist-mix | auto
    options: tuple = ()  # (field, value) pairs of kfold.data.layouts.LoadOptions: what layout detection cannot decide

    def load(self, progress: bool = False) -> Task:
        from kfold.data import load_task
        from kfold.data.layouts import LoadOptions

        task = load_task(self.data, cache_dir=None if self.cache_dir is None else Path(self.cache_dir),
                         languages=None if self.languages is None else list(self.languages),
                         label_mode=self.label_mode, progress=progress,
                         options=LoadOptions(**dict(self.options)) if self.options else None)
        kind = "mnist-mix" if task.name == "mnist-mix" else "kmnist"
        if self.expected not in ("auto", kind):
            raise UsageError(f"{param('task')}={self.expected}: {param('data')}={self.data} holds a {kind} dataset")
        return task


@dataclass(frozen=True)
class FoldJob:
    """Everything one fold's training needs, as plain values (picklable for a Ray task)."""

    run_dir: str
    fold: int | str  # 0..k-1 or "full"
    k: int
    seed: int
    preset: str | None
    config: dict
    task: TaskSpec
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    progress: bool = True


@dataclass
class RunSummary:
    """What a finished (or partly finished) run reports; ``table`` is the per-fold DataFrame."""

    run: RunDir
    values: dict[str, Any]

    @property
    def oof_accuracy(self) -> float | None:
        return self.values.get("oof_accuracy")

    @property
    def table(self):
        import pandas as pd

        return pd.DataFrame(self.values.get("folds", []))

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def folds_sha256(folds: np.ndarray) -> str:
    """Hash of a fold assignment (the fold column of folds.csv)."""
    return hashlib.sha256(np.ascontiguousarray(folds, dtype=np.int64).tobytes()).hexdigest()


def parse_fold_list(folds: str | Sequence[int] | None, k: int) -> list[int]:
    """``None`` -> every fold; ``"0,2"`` or ``[0, 2]`` -> those folds, each in 0..k-1."""
    if folds is None:
        return list(range(k))
    if isinstance(folds, str):
        try:
            values = sorted({int(part) for part in folds.split(",") if part.strip()})
        except ValueError:
            raise UsageError(f"{param('folds')}={folds!r}: expected comma-separated integers like 0,2") from None
    else:
        values = sorted({int(f) for f in folds})
    bad = [f for f in values if not 0 <= f < k]
    if bad or not values:
        shown = folds if isinstance(folds, str) else ",".join(map(str, folds))
        raise UsageError(f"{param('folds')}={shown!r}: folds must be in 0..{k - 1}")
    return values


def _differences(saved: dict, wanted: dict, ignored: set[str]) -> list[str]:
    """'key: saved -> wanted' for every run key (and config field) that differs."""
    out = []
    for key in RUN_KEYS:
        old, new = saved.get(key), wanted.get(key)
        if key == "config" and isinstance(old, dict):
            old = {**TrainConfig().to_dict(), **old}  # a field added since: its default reproduces the old behaviour
            for name in sorted(set(old) | set(new)):
                if name not in ignored and old.get(name, "<absent>") != new.get(name, "<absent>"):
                    out.append(f"config.{name}: {old.get(name, '<absent>')!r} in the run, {new.get(name, '<absent>')!r} now")
        elif key == "folds_sha256" and old is None:
            continue  # a run from before the hash: folds.csv is still checked against the labels
        elif key == "threads" and key not in saved:
            continue  # a run from before threads were recorded
        elif old != new:
            out.append(f"{key}: {old!r} in the run, {new!r} now")
    return out


def load_saved_config(run: RunDir) -> dict:
    try:
        return run.read_json(run.config)
    except DataError:
        raise DataError(f"{run.config}: damaged run config; use a new {param('out')} directory") from None


def run_outputs(run: RunDir, k: int) -> list[Path]:
    """What training writes in a run directory (each model's folder and its files): the output guard's list."""
    files = [run.config, run.folds_csv, run.oof, run.summary]
    for fold in (*range(k), FULL):
        files += [run.model_dir(fold), run.meta(fold), run.weights(fold), run.metrics(fold), run.fold_oof(fold),
                  run.checkpoint(fold), run.learning_curve(fold), run.confusion_csv(fold), run.confusion_png(fold)]
    return files


def check_run_dir(run: RunDir, wanted: dict, resume: bool, full: bool = False) -> dict | None:
    """Refuse to mix runs: an existing run needs ``resume`` (or ``full``) and the same settings.

    Returns the saved config of an existing run, ``None`` for a new one. A refusal names every key
    that differs with both values.
    """
    guard_outputs(run_outputs(run, wanted["k"]), data_inputs(wanted.get("data")), root=run.path, error=DataError, links="all")
    if run.path.exists() and not run.path.is_dir():
        raise UsageError(f"{param('out')}={run.path}: exists and is not a directory")
    if not run.config.exists():
        return None
    saved = load_saved_config(run)
    if saved.get("folds_sha256") not in (None, wanted["folds_sha256"]):
        raise DataError(f"{run.folds_csv}: the fold assignment was changed after the run was created "
                        f"(sha256 {wanted['folds_sha256'][:12]}..., the run recorded {str(saved['folds_sha256'])[:12]}...); "
                        f"use a new {param('out')} directory")
    if not (resume or full):
        raise UsageError(f"{run.path} already holds a run; pass {param('resume')}=True to continue it or choose a new {param('out')}")
    differ = _differences(saved, wanted, {"epochs"} if full else set())
    if differ:
        raise UsageError(f"{run.config}: config differs from this command's ({'; '.join(differ)}); "
                         f"use a new {param('out')} directory for a new setup")
    return saved


def check_task(task: Task, data: str) -> None:
    """A task a classifier can be trained on (checked before anything is written)."""
    if task.num_classes < 2:
        raise DataError(f"{param('data')}={data}: {task.num_classes} class ({', '.join(task.class_names)}); "
                        f"a classifier needs at least 2 classes")


def prepare_run(run: RunDir, cfg: TrainConfig, task: Task, *, preset: str | None, k: int, seed: int, data: str,
                resume: bool = False, full: bool = False, threads: int | None = None) -> np.ndarray:
    """Validate, then write config.json and folds.csv (once); return the fold of every training row."""
    check_k(k)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"{param('threads')}={threads!r}: must be an integer >= 1")
    check_task(task, data)
    # the output guard first: no output is a data file, nothing is read or written through a planted link
    guard_outputs(run_outputs(run, k), data_inputs(data), root=run.path, error=DataError, links="all")
    if run.config.exists():
        load_saved_config(run)  # a damaged config is named before anything else is read
    if run.folds_csv.exists() and not run.folds_csv.is_symlink():
        folds = read_folds(run.folds_csv, task.train_labels)
        if folds.max() + 1 != k:
            raise UsageError(f"{run.folds_csv} has {folds.max() + 1} folds but {param('k')}={k} was given; "
                             f"use a new {param('out')} directory")
    else:
        folds = assign_folds(task.train_labels, k, seed)  # a k larger than a class fails before anything is written
    wanted = {"config": cfg.to_dict(), "preset": preset, "k": k, "seed": seed, "data": str(data), "task": task.name,
              "fingerprint": task.fingerprint(), "classes": task.class_names, "folds_sha256": folds_sha256(folds),
              "threads": threads, **task.schema_meta()}
    saved = check_run_dir(run, wanted, resume, full)
    if saved is None:
        run.path.mkdir(parents=True, exist_ok=True)
        write_json(run.config, wanted)
    if not run.folds_csv.exists():  # also after a kill between the two writes: the same seed gives the same file
        write_folds(run.folds_csv, task.train_labels, folds)
    for directory in [run.path, *(run.model_dir(f) for f in (*range(k), FULL))]:
        sweep_stale_temps(directory)  # hidden temporary files of a killed earlier run of this command
    return folds


def fold_jobs(run: RunDir, cfg: TrainConfig, task_spec: TaskSpec, folds: Sequence[int | str], *, k: int, seed: int,
              preset: str | None, device: str, threads: int | None, resume: bool, progress: bool) -> list[FoldJob]:
    return [FoldJob(str(run.path), fold, k, seed, preset, cfg.to_dict(), task_spec, device, threads, resume, progress)
            for fold in folds]


def _meta(run: RunDir, fold: int | str) -> dict:
    """A finished model's meta.json: its fields checked, and it belongs to this run and this fold."""
    meta = run.read_meta(fold)
    run.check_belongs(run.meta(fold), meta, fold)
    return meta


def summarize(run: RunDir, task: Task, k: int, cfg: TrainConfig, *, preset: str | None, seed: int) -> dict:
    """Run summary from every finished fold; run-level oof.npz once all k folds are finished."""
    import pandas as pd
    from sklearn.metrics import log_loss

    from kfold.identity import code_identity
    from kfold.metrics import score
    from kfold.scoring.metrics import accuracy_by_group

    fold_rows, oof_parts, last_correct, threads = [], [], 0.0, set()
    for fold in run.finished(k):
        meta = _meta(run, fold)
        threads.add(meta.get("threads"))
        fold_rows.append({key: meta[key] for key in ("fold", "best_epoch", "val_accuracy", "val_loss", "seconds")})
        part = read_probs(run.fold_oof(fold))
        run.check_belongs(run.fold_oof(fold), part.meta, fold)
        if part.labels is None:
            raise DataError(f"{run.fold_oof(fold)}: out-of-fold file without labels")
        oof_parts.append(part)
        last = read_metrics(run.metrics(fold))["val_accuracy"].iloc[-1]
        if not 0 <= last <= 1:
            raise DataError(f"{run.metrics(fold)}: the last epoch has no validation accuracy")
        last_correct += last * meta["val_rows"]
    summary = {"task": task.name, "preset": preset, "model": cfg.model, "k": k, "seed": seed, "keep": cfg.keep,
               "folds_done": len(fold_rows), "folds": fold_rows, "train_seconds": float(sum(r["seconds"] for r in fold_rows)),
               "code": code_identity()}
    threads = sorted(threads - {None})
    if threads:
        summary["threads"] = threads[0] if len(threads) == 1 else threads
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
        summary["metric"] = task.schema.metric  # the competition's metric on the out-of-fold rows
        summary["oof_score"] = float(score(task.schema.metric, labels, probs, task.num_classes))
        if task.train_groups is not None:
            groups = task.train_groups[ids]
            summary["oof_accuracy_by_group"] = accuracy_by_group(predicted == labels, groups, task.group_names)
        if len(fold_rows) == k:
            meta = run.oof_meta({"model": cfg.model, "fold": "all", "preset": preset, "seed": seed,
                                  "fingerprint": task.fingerprint(), "task": task.name})
            write_probs(run.oof, ids, probs, task.class_names, meta, labels=labels)
    if run.is_done(FULL):
        summary["full"] = {key: _meta(run, FULL)[key] for key in ("best_epoch", "seconds")}
    write_json(run.summary, summary)
    return summary


def full_epochs(run: RunDir, k: int, explicit: int | None) -> int:
    """``full`` trains for ``epochs`` if given, else the mean best epoch of the finished folds."""
    if explicit is not None:
        return explicit
    best = [_meta(run, f)["best_epoch"] for f in run.finished(k)] if run.is_run() else []
    if not best:
        raise UsageError(f"{param('full')}=True needs finished fold runs in {param('out')} (to pick the epoch count) or an "
                         f"explicit {param('epochs')}")
    return max(1, round(float(np.mean(best))))


def format_summary(summary: dict) -> str:
    """The console table of a run summary."""
    import pandas as pd

    lines = []
    if summary["folds"]:
        table = pd.DataFrame(summary["folds"]).rename(columns={"val_accuracy": "val_acc"})
        table["seconds"] = table["seconds"].map("{:.1f}".format)  # not 161.9340
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if "oof_accuracy" in summary:
        lines.append(f"OOF accuracy {summary['oof_accuracy']:.4f}  OOF log loss {summary['oof_logloss']:.4f}  "
                     f"({summary['oof_rows']} rows, {summary['folds_done']}/{summary['k']} folds)")
        if summary.get("keep", "best") == "last":
            lines.append("  every fold keeps its last epoch: no epoch was picked on the validation rows")
        else:
            lines.append(f"  at each fold's best epoch, chosen on the same validation rows (slightly optimistic); "
                         f"at the last epoch: {summary['oof_accuracy_last_epoch']:.4f}")
        for name, acc in summary.get("oof_accuracy_by_group", {}).items():
            lines.append(f"  {name:<12} {acc:.4f}")
    lines.append(f"train time {summary['train_seconds']:.1f}s")
    return "\n".join(lines)


Backend = Callable[[list[FoldJob], Task], None]


def local_backend(jobs: list[FoldJob], task: Task, echo: Callable[[str], None] = print) -> None:
    """Train the folds one after another in this process (the task is passed, not loaded again); ``echo``
    reports each fold's start and end."""
    from kfold.nn.fold import train_fold

    start = time.perf_counter()
    for done, job in enumerate(jobs, 1):
        meta = train_fold(job, task, echo=echo)
        elapsed = time.perf_counter() - start
        left = len(jobs) - done
        eta = f"; about {elapsed / done * left / 60:.1f} min left for the {left} remaining" if left else ""
        val = "" if meta.get("val_accuracy") is None else f"val_acc {meta['val_accuracy']:.4f} "
        echo(f"{'full' if job.fold == FULL else f'fold {job.fold}'} done: {val}in {meta['seconds']:.1f}s "
             f"({done}/{len(jobs)}{eta})")


def train_run(cfg: TrainConfig, task: Task, run: RunDir | str | Path, *, task_spec: TaskSpec, preset: str | None = None,
              k: int = 5, seed: int = 0, folds: str | Sequence[int] | None = None, full: bool = False,
              full_epochs_explicit: int | None = None, device: str = "auto", resume: bool = False,
              threads: int | None = None, progress: bool = True, backend: Backend | None = None,
              echo: Callable[[str], None] = print) -> RunSummary:
    """Train a k-fold run (or its ``full`` model) into ``run`` and return its summary.

    ``cfg`` is a validated config; ``task`` is loaded once by the caller. ``backend`` trains the fold jobs
    (default: one after another in this process).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    train_folds = backend or (lambda jobs, task: local_backend(jobs, task, echo=echo))
    check_k(k)
    fold_list = parse_fold_list(folds, k)
    full_cfg = None
    if full:  # every usage check runs before the first file of the run is written
        epochs = full_epochs(run, k, full_epochs_explicit)
        full_cfg = resolve_config(None, None, {**cfg.to_dict(), "epochs": epochs})
    check_task(task, task_spec.data)
    if backend is None:  # training here anyway: build the model on torch's meta device first (shapes only, no memory)
        from kfold.nn.checks import check_model_fits
        from kfold.nn.inference import resolve_device

        resolve_device(device)  # --device cuda (or mps) where there is none: refused before the run folder exists
        check_model_fits(cfg, task.num_classes, task.image_shape, f"{param('data')}={task_spec.data}",
                         channels=task.channels)
    prepare_run(run, cfg, task, preset=preset, k=k, seed=seed, data=task_spec.data, resume=resume, full=full, threads=threads)
    start = time.perf_counter()
    if full:
        if run.is_done(FULL) and resume:
            echo("full: already finished, skipping")
        else:
            jobs = fold_jobs(run, full_cfg, task_spec, [FULL], k=k, seed=seed, preset=preset, device=device,
                             threads=threads, resume=resume, progress=progress)
            train_folds(jobs, task)
    else:
        todo = []
        for fold in fold_list:
            if resume and run.is_done(fold):
                echo(f"fold {fold}: already finished, skipping")
                run.checkpoint(fold).unlink(missing_ok=True)  # killed before its deletion
            else:
                todo.append(fold)
        if todo:
            jobs = fold_jobs(run, cfg, task_spec, todo, k=k, seed=seed, preset=preset, device=device,
                             threads=threads, resume=resume, progress=progress)
            train_folds(jobs, task)
    summary = summarize(run, task, k, cfg, preset=preset, seed=seed)
    summary["wall_seconds"] = time.perf_counter() - start
    return RunSummary(run, summary)
