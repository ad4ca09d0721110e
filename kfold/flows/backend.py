"""Where folds train and runs predict: the ``Backend`` protocol and ``LocalBackend`` (this process).

A backend trains the fold jobs of a prepared run (``train_folds``), predicts finished runs' test probabilities
(``predict``), says how many torch threads a fold uses (``threads``), refuses before any file is written a run it
cannot train (``check``) and releases what it holds (``close``; a backend is a context manager).
``LocalBackend`` trains one fold after another here; ``kfold.flows.ray_backend.RayBackend`` runs every fold (and
every prediction) as a Ray task. The flows (``train_run``, ``run_competition``, ``compare``, ``tune``) only talk to
this protocol. This module never imports torch: ``LocalBackend`` imports ``kfold.nn`` when it trains or predicts.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

from kfold.config import TrainConfig
from kfold.data.jobs import FoldJob, TaskSpec
from kfold.data.task import Task
from kfold.errors import param
from kfold.files.rundir import FULL, RunDir

__all__ = ["Backend", "LocalBackend"]


@runtime_checkable
class Backend(Protocol):
    """What the flows ask of a backend; ``LocalBackend`` and ``RayBackend`` are two.

    Methods
    -------
    train_folds(jobs, task)
        Train every ``FoldJob`` of ``jobs`` (each writes its fold's folder); ``task`` is the loaded task (a backend
        in this process uses it, one elsewhere loads ``job.task`` again).
    predict(runs, task, out, *, spec, tta, device, threads, fmt, echo)
        Write the test probabilities of every finished run of ``runs`` into ``out``; returns the paths written.
    threads(requested)
        The torch CPU threads of every fold for a requested count (``None``: the backend's choice).
    check(cfg, task, spec, device)
        Refuse, before any file is written, a run this backend cannot train (no such device, a model that does not
        fit the images); a backend whose folds run elsewhere may check nothing here.
    close()
        Release what the backend started (an embedded Ray cluster); also on leaving a ``with`` block.
    """

    def train_folds(self, jobs: Sequence[FoldJob], task: Task) -> None: ...

    def predict(self, runs: Sequence[RunDir | str | Path], task: Task, out: str | Path, *, spec: TaskSpec | None = None,
                tta: int | None = None, device: str = "auto", threads: int | None = None, fmt: str = "npz",
                echo: Callable[[str], None] | None = None) -> list[Path]: ...

    def threads(self, requested: int | None) -> int | None: ...

    def check(self, cfg: TrainConfig, task: Task, spec: TaskSpec, device: str) -> None: ...

    def close(self) -> None: ...

    def __enter__(self): ...

    def __exit__(self, *exc) -> None: ...


class LocalBackend:
    """The ``Backend`` that trains folds one after another in this process and predicts here.

    Parameters
    ----------
    echo : callable, default print
        Receives each fold's start and end line and the prediction's lines.

    Examples
    --------
    >>> with LocalBackend(echo=lambda line: None) as backend:
    ...     backend.threads(None), backend.threads(2), isinstance(backend, Backend)
    (None, 2, True)
    >>> backend.closed
    True
    """

    def __init__(self, echo: Callable[[str], None] = print):
        self.echo = echo
        self.closed = False
        self.on_fold: Callable[[int | str], None] | None = None  # told each finished fold (a tracker logs it)

    def __enter__(self) -> "LocalBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release here; marks the backend closed."""
        self.closed = True

    def threads(self, requested: int | None) -> int | None:
        """The requested count as it is (``None``: torch's own choice)."""
        return requested

    def check(self, cfg: TrainConfig, task: Task, spec: TaskSpec, device: str) -> None:
        """Training here: the device exists, and the model is built on torch's meta device (shapes only, no memory)
        to fit the task's images."""
        from kfold.nn.checks import check_model_fits
        from kfold.nn.inference import resolve_device

        resolve_device(device)  # device=cuda (or mps) where there is none: refused before the run folder exists
        check_model_fits(cfg, task.num_classes, task.image_shape, f"{param('data')}={spec.data}", channels=task.channels)

    def train_folds(self, jobs: Sequence[FoldJob], task: Task) -> None:
        """Train ``jobs`` one after another with the loaded ``task`` (not loaded again); one line per fold."""
        from kfold.nn.fold import train_fold

        echo = self.echo
        start = time.perf_counter()
        for done, job in enumerate(jobs, 1):
            meta = train_fold(job, task, echo=echo)
            elapsed = time.perf_counter() - start
            left = len(jobs) - done
            eta = f"; about {elapsed / done * left / 60:.1f} min left for the {left} remaining" if left else ""
            val = "" if meta.get("val_accuracy") is None else f"val_acc {meta['val_accuracy']:.4f} "
            echo(f"{'full' if job.fold == FULL else f'fold {job.fold}'} done: {val}in {meta['seconds']:.1f}s "
                 f"({done}/{len(jobs)}{eta})")
            if self.on_fold is not None:
                self.on_fold(job.fold)

    def predict(self, runs: Sequence[RunDir | str | Path], task: Task, out: str | Path, *, spec: TaskSpec | None = None,
                tta: int | None = None, device: str = "auto", threads: int | None = None, fmt: str = "npz",
                echo: Callable[[str], None] | None = None) -> list[Path]:
        """``kfold.nn.predict.predict_run`` here, with the loaded ``task`` (``spec`` is not needed)."""
        from kfold.nn.predict import predict_run

        return predict_run(list(runs), task, out, tta=tta, device=device, fmt=fmt, threads=threads,
                           echo=self.echo if echo is None else echo)
