"""A k-fold training run as typed functions: prepare the run directory, train every fold, summarize.

This module never imports torch: it validates, writes ``config.json``/``folds.csv`` and the summary, and
hands each fold to a backend that calls ``kfold.nn.fold.train_fold`` (in this process, or as a Ray task).
Everything is checked before the first file of a run is written.
"""
from __future__ import annotations

import hashlib
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kfold.config import TrainConfig
from kfold.data.jobs import FoldJob, TaskSpec
from kfold.data.task import Task
from kfold.errors import DataError, UsageError, param
from kfold.files.atomic import guard_outputs, sweep_stale_temps, write_json
from kfold.files.folds import assign_folds, check_k, read_folds, write_folds
from kfold.files.probs import read_probs, write_probs
from kfold.files.rundir import FULL, RunDir, data_inputs, read_metrics
from kfold.flows.backend import Backend, LocalBackend

__all__ = ["Backend", "check_run_dir", "check_task", "fold_jobs", "FoldJob", "folds_sha256", "format_summary",
           "full_epochs", "load_saved_config", "LocalBackend", "parse_fold_list", "prepare_run", "RUN_KEYS",
           "RunRequest", "RunSummary", "summarize", "TaskSpec", "train_run"]

RUN_KEYS = ("config", "k", "seed", "fingerprint", "folds_sha256", "threads")  # a resume must match every one


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


def _class_values(task: Task) -> list[str]:
    """The classes as the competition spells them: the schema's values (folder names, label values, probability
    columns; KMNIST's 0..9), else the task's class names."""
    schema = getattr(task, "schema", None)
    return list(schema.classes) if schema is not None else list(task.class_names)


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
        folds = assign_folds(task.train_labels, k, seed, class_names=_class_values(task))  # before anything is written
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
    """One ``FoldJob`` per fold of ``folds``, each with the validated ``cfg`` itself (not resolved again)."""
    return [FoldJob(str(run.path), fold, k, seed, preset, cfg, task_spec, device, threads, resume, progress)
            for fold in folds]


def _meta(run: RunDir, fold: int | str) -> dict:
    """A finished model's meta.json: its fields checked, and it belongs to this run and this fold."""
    meta = run.read_meta(fold)
    run.check_belongs(run.meta(fold), meta, fold)
    return meta


def summarize(run: RunDir, task: Task, k: int, cfg: TrainConfig, *, preset: str | None, seed: int) -> dict:
    """Run summary from every finished fold; run-level oof.npz once all k folds are finished."""
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
        if task.schema.multilabel:  # per-tag decisions, binary cross-entropy, the metric with the chosen thresholds
            from kfold.scoring.multilabel import oof_summary

            summary.update(oof_summary(labels, probs, task.schema), oof_accuracy_last_epoch=float(last_correct / len(ids)))
        else:
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
            if task.schema.multilabel:
                meta.update(task.schema_meta())
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
    if "oof_accuracy" in summary and summary.get("multilabel"):
        found = summary.get("thresholds")
        chosen = (f"  thresholds: global {found['global']:.2f} ({found['score_global']:.4f}), per tag "
                  f"({found['score_per_tag']:.4f}); using {found['used']}") if found else ""
        lines.append(f"OOF {summary['metric']} {summary['oof_score']:.4f}  tag accuracy {summary['oof_accuracy']:.4f}  "
                     f"BCE {summary['oof_logloss']:.4f}  ({summary['oof_rows']} rows, {summary['folds_done']}/"
                     f"{summary['k']} folds){chosen}")
    elif "oof_accuracy" in summary:
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


@dataclass(frozen=True)
class RunRequest:
    """One k-fold run asked for: the validated config, the data, the folds and where they train.

    Commands build it once from their shared flag groups (``kfold.commands.args.open_run``), the notebook API from
    its arguments; ``train_run`` and ``run_competition`` take it instead of a long list of keywords. Its values are
    checked when it is made (``k``, ``folds`` against ``k``, ``threads``), with messages in parameter words;
    ``cfg`` is a ``TrainConfig`` already validated by ``kfold.config.resolve_config``, not resolved again.

    Parameters
    ----------
    cfg : TrainConfig
        The validated config every fold trains with.
    task_spec : TaskSpec
        How to load the data (again, in a Ray task).
    preset : str, optional
        The preset's name, recorded with the run.
    k : int, default 5
        Number of stratified folds (2..10000).
    seed : int, default 0
        Seed of the folds, the weights and the augmentation.
    folds : str or sequence of int, optional
        Train only these folds (``"0,2"`` or ``[0, 2]``); default all ``k``.
    full : bool, default False
        Train the ``full`` model on all rows instead (for ``full_epochs``, else the folds' mean best epoch).
    full_epochs : int, optional
        The ``full`` model's explicit epoch count.
    device : str, default "auto"
        Where folds train and predict.
    threads : int, optional
        Torch CPU threads (recorded in the run; a resume must use the same).
    resume : bool, default False
        Continue an existing run directory with the same settings.
    progress : bool, default True
        Progress bars.
    tta : int, optional
        Test-time augmentation views of the prediction (default: each model's config).

    Raises
    ------
    UsageError
        ``k`` outside 2..10000, ``folds`` outside ``0..k-1``, ``threads`` not an integer >= 1.

    Examples
    --------
    >>> request = RunRequest(TrainConfig(), TaskSpec("kmnist"), k=3, folds="2,0")
    >>> request.fold_list, request.replace(seed=4).seed
    ([0, 2], 4)
    >>> RunRequest(TrainConfig(), TaskSpec("kmnist"), k=3, folds=[3])
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: folds='3': folds must be in 0..2
    """

    cfg: TrainConfig
    task_spec: TaskSpec
    preset: str | None = None
    k: int = 5
    seed: int = 0
    folds: str | Sequence[int] | None = None
    full: bool = False
    full_epochs: int | None = None
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    progress: bool = True
    tta: int | None = None

    def __post_init__(self) -> None:
        check_k(self.k)
        parse_fold_list(self.folds, self.k)
        threads = self.threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"{param('threads')}={threads!r}: must be an integer >= 1")

    @property
    def fold_list(self) -> list[int]:
        """The folds to train, sorted (every fold when ``folds`` is ``None``)."""
        return parse_fold_list(self.folds, self.k)

    def replace(self, **changes: Any) -> "RunRequest":
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)


def train_run(request: RunRequest, task: Task, run: RunDir | str | Path, *, backend: Backend | None = None,
              echo: Callable[[str], None] = print, tracker=None) -> RunSummary:
    """Train the k-fold run (or its ``full`` model) that ``request`` asks for into ``run``; return its summary.

    Parameters
    ----------
    request : RunRequest
        The config, data, folds, device and threads.
    task : Task
        The data, loaded once by the caller (``request.task_spec.load()``).
    run : RunDir, str or Path
        The run directory.
    backend : Backend, optional
        Trains the fold jobs (default: a ``LocalBackend``, one fold after another in this process, reporting
        through ``echo``).
    echo : callable, default print
        Receives every progress line.
    tracker : kfold.flows.tracking.Tracker, optional
        Told when the run starts, each fold finishes and the summary is written (``open_tracker``); default none.

    Returns
    -------
    RunSummary
        The summary of every finished fold (``oof_accuracy`` once all ``k`` are).

    Raises
    ------
    UsageError
        A run directory that holds another run (without ``resume``), a device or model the backend refuses.
    DataError
        Unreadable or inconsistent data or run files.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    backend = LocalBackend(echo=echo) if backend is None else backend
    cfg, k, seed, preset, spec = request.cfg, request.k, request.seed, request.preset, request.task_spec
    fold_list = request.fold_list
    threads = backend.threads(request.threads)
    full_cfg = None
    if request.full:  # every usage check runs before the first file of the run is written
        epochs = full_epochs(run, k, request.full_epochs)
        full_cfg = dataclasses.replace(cfg, epochs=epochs).validate()
    check_task(task, spec.data)
    backend.check(cfg, task, spec, request.device)
    prepare_run(run, cfg, task, preset=preset, k=k, seed=seed, data=spec.data, resume=request.resume, full=request.full,
                threads=threads)
    if tracker:  # logs from the run's files, here on the driver, as each fold finishes (never fails the run)
        tracker.run_started(run)
        backend.on_fold = lambda fold: tracker.fold_done(run, fold)
    start = time.perf_counter()

    def jobs_of(job_cfg: TrainConfig, folds: Sequence[int | str]) -> list[FoldJob]:
        return fold_jobs(run, job_cfg, spec, folds, k=k, seed=seed, preset=preset, device=request.device,
                         threads=threads, resume=request.resume, progress=request.progress)

    if request.full:
        if run.is_done(FULL) and request.resume:
            echo("full: already finished, skipping")
        else:
            backend.train_folds(jobs_of(full_cfg, [FULL]), task)
    else:
        todo = []
        for fold in fold_list:
            if request.resume and run.is_done(fold):
                echo(f"fold {fold}: already finished, skipping")
                run.checkpoint(fold).unlink(missing_ok=True)  # killed before its deletion
            else:
                todo.append(fold)
        if todo:
            backend.train_folds(jobs_of(cfg, todo), task)
    summary = summarize(run, task, k, cfg, preset=preset, seed=seed)
    summary["wall_seconds"] = time.perf_counter() - start
    if tracker:
        backend.on_fold = None
        tracker.run_done(run)
    return RunSummary(run, summary)
