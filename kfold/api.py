"""The Python API for notebooks: the same steps as the commands, returning objects instead of printing files.

>>> import kfold
>>> sorted(name for name in ("train", "load_run", "ensemble", "leaderboard") if hasattr(kfold, name))
['ensemble', 'leaderboard', 'load_run', 'train']

``import kfold`` stays torch-free; torch is imported when a model trains or predicts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from kfold.files.rundir import FULL, PredDir, RunDir


@dataclass
class Predictions:
    """Test probabilities written by ``Run.predict``: the folder, one file per model and the fold mean."""

    folder: PredDir
    folds: list[Path]
    mean_path: Path
    oof_path: Path | None = None

    @property
    def mean(self):
        """The fold-mean probabilities (``ProbFile``: ``ids``, ``probs``, ``classes``, ``meta``)."""
        from kfold.files.probs import read_probs

        return read_probs(self.mean_path)


@dataclass
class Run:
    """A k-fold run directory with its summary; ``predict`` writes its test probabilities."""

    dir: RunDir
    summary: dict[str, Any]
    data: str | None = None
    _task: Any = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def table(self) -> pd.DataFrame:
        """One row per finished fold: kept epoch, validation accuracy and loss, seconds."""
        return pd.DataFrame(self.summary.get("folds", []))

    @property
    def oof_accuracy(self) -> float | None:
        return self.summary.get("oof_accuracy")

    @property
    def oof(self):
        """The run's out-of-fold probabilities (``ProbFile`` with ``labels``), once every fold finished."""
        from kfold.files.probs import read_probs

        return read_probs(self.dir.oof)

    def predict(self, out: str | Path | None = None, *, data: str | None = None, tta: int | None = None,
                device: str = "auto", threads: int | None = None, fmt: str = "npz") -> Predictions:
        """Write test probabilities of every model (default folder: ``RUN/probs``) and return them."""
        from kfold.errors import UsageError
        from kfold.flows.training import TaskSpec
        from kfold.nn.predict import predict_run

        data = data or self.data or self.dir.read_config().get("data")
        if data is None:
            raise UsageError("give data=... (the competition the run was trained on)")
        task = self._task if self._task is not None and data == self.data else TaskSpec(str(data)).load(progress=False)
        folder = PredDir(out) if out is not None else self.dir.probs
        predict_run([self.dir], task, folder.path, tta=tta, device=device, fmt=fmt, threads=threads, echo=lambda _: None)
        k = self.dir.defined_folds()
        folds = [folder.fold(self.dir.name, fold, fmt) for fold in range(k) if self.dir.is_done(fold)]
        oof = folder.oof(self.dir.name, fmt)
        return Predictions(folder, folds, folder.mean(self.dir.name, fmt), oof if oof.is_file() else None)


def load_run(path: str | Path) -> Run:
    """A finished (or partly finished) run directory."""
    run = RunDir(path)
    config = run.read_config()
    summary = run.read_json(run.summary) if run.summary.is_file() else {}
    return Run(run, summary, config.get("data"))


def train(data: str, preset: str = "fast", *, k: int = 5, seed: int = 0, out: str | Path | None = None,
          folds: Sequence[int] | None = None, device: str = "auto", threads: int | None = None, resume: bool | None = None,
          progress: bool = True, config: str | Path | None = None, backend: Any = "local", address: str | None = None,
          cpus_per_fold: float = 1.0, gpus_per_fold: float = 0.0, max_retries: int = 3, **overrides: Any) -> Run:
    """Train a k-fold run; keyword ``overrides`` are config fields (``epochs=3``, ``lr=0.05``, ``model="vgg_bn"``).

    ``resume`` defaults to continuing an existing run directory with the same settings. ``backend="ray"`` trains
    every fold as a Ray task (on ``address``, ``$RAY_ADDRESS``, the Ray this process already started, or an
    embedded local cluster); a ``kfold.flows.ray_backend.RayBackend`` object is used as it is.
    """
    from kfold.config import resolve_config
    from kfold.flows.training import TaskSpec, train_run

    cfg = resolve_config(preset, config, overrides)
    owned = None
    if isinstance(backend, str):
        from kfold.flows.ray_backend import make_backend

        backend = owned = make_backend(backend, address=address, cpus_per_fold=cpus_per_fold, gpus_per_fold=gpus_per_fold,
                                       max_retries=max_retries, device=device, progress=progress)
    if backend is not None and hasattr(backend, "options"):
        threads = backend.options.threads(threads)
    spec = TaskSpec(str(data))
    task = spec.load(progress=progress)
    run = RunDir(out if out is not None else Path("runs") / preset)
    try:
        result = train_run(cfg, task, run, task_spec=spec, preset=preset, k=k, seed=seed, folds=folds, device=device,
                           resume=run.is_run() if resume is None else resume, threads=threads, progress=progress,
                           backend=backend, echo=lambda _: None)
    finally:
        if owned is not None:
            owned.close()
    return Run(run, result.values, str(data), task)


def tune(data: str, preset: str = "fast", *, trials: int, out: str | Path | None = None, space: Any = None,
         metric: str | None = None, k: int = 5, seed: int = 0, folds: Sequence[int] | None = None,
         timeout: float | None = None, pruner: str = "median", prune_after: int = 2, storage: str | None = None,
         device: str = "auto", threads: int | None = None, progress: bool = True, config: str | Path | None = None,
         backend: Any = "local", address: str | None = None, cpus_per_fold: float = 1.0, gpus_per_fold: float = 0.0,
         max_retries: int = 3, trials_in_parallel: int = 1, ensemble_top: int | None = None, **overrides: Any):
    """Search hyperparameters with Optuna: ``trials`` k-fold runs in ``out`` (default ``runs/tune``); returns a
    ``kfold.flows.tune.TuneResult`` (``table``: one row per trial; ``best_config``: the best trial's config).

    ``space`` is a file path or a mapping (``{"lr": {"log_uniform": [0.01, 0.3]}}``; default: the preset
    family's); keyword ``overrides`` fix config fields for every trial. Re-running continues the study.
    """
    from kfold.config import resolve_config
    from kfold.flows.training import TaskSpec
    from kfold.flows.tune import import_optuna, parse_space, read_space, tune as run_search

    cfg = resolve_config(preset, config, overrides)
    if space is not None and not hasattr(space, "params"):
        space = parse_space(space, "space") if isinstance(space, dict) else read_space(space)
    owned = None
    if isinstance(backend, str):
        from kfold.flows.ray_backend import make_backend

        backend = owned = make_backend(backend, address=address, cpus_per_fold=cpus_per_fold, gpus_per_fold=gpus_per_fold,
                                       max_retries=max_retries, device=device, progress=progress)
    if backend is not None and hasattr(backend, "options"):
        threads = backend.options.threads(threads)
    import_optuna()
    spec = TaskSpec(str(data))
    task = spec.load(progress=progress)
    try:
        return run_search(cfg, task, out if out is not None else Path("runs") / "tune", task_spec=spec, trials=trials,
                          preset=preset, space=space, fixed=list(overrides), metric=metric, k=k, seed=seed, folds=folds,
                          timeout=timeout, pruner=pruner, prune_after=prune_after, storage=storage, device=device,
                          threads=threads, progress=progress, backend=backend, trials_in_parallel=trials_in_parallel,
                          ensemble_top=ensemble_top, echo=lambda _: None)
    finally:
        if owned is not None:
            owned.close()


@dataclass
class Submission:
    """An ensemble written as a submission CSV (and its probabilities for mean/geomean)."""

    submission: Path
    probabilities: Path | None
    ids: np.ndarray
    categories: np.ndarray
    tied_rows: int
    frame: pd.DataFrame


def ensemble(inputs: Sequence[str | Path], method: str = "mean", *, seed: int = 0, out: str | Path = "submissions/ensemble.csv",
             weights: Sequence[float] | None = None, sample: str | Path | None = None, report: str | Path | None = None,
             tiebreak: str = "random") -> Submission:
    """Combine probability files and/or submissions (mean, geomean or vote) and write the submission CSV."""
    from kfold.flows.ensembling import make_submission

    made = make_submission(list(inputs), out, method=method, weights=weights, seed=seed, tiebreak=tiebreak,
                           sample=sample, report=report)
    frame = pd.read_csv(made.submission)
    return Submission(made.submission, made.probabilities, made.ensemble.ids, made.ensemble.categories,
                      made.ensemble.tied_rows, frame)


def leaderboard(solution: str | Path, submissions: Sequence[str | Path], *, seed: int = 0, bootstrap: int = 1000,
                out: str | Path | None = None) -> pd.DataFrame:
    """Public/Private scores (with bootstrap intervals) of submissions and probability files, ranked like Kaggle."""
    from kfold.scoring.leaderboard import leaderboard as board, read_solution, write_leaderboard

    table = board([str(s) for s in submissions], read_solution(solution, seed=seed), n_bootstrap=bootstrap, seed=seed)
    if out is not None:
        write_leaderboard(table, out)
    return table


__all__ = ["FULL", "Predictions", "Run", "Submission", "ensemble", "leaderboard", "load_run", "train", "tune"]
