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

    Parameters
    ----------
    data : str
        Competition directory, official KMNIST/MNIST-MIX files, or ``"kmnist"`` (downloaded once).
    preset : str, default "fast"
        A recipe of ``kfold.config.PRESETS``; ``config`` (a JSON file) and ``overrides`` apply on top.
    k : int, default 5
        Number of stratified folds (2..10000).
    seed : int, default 0
        Seed of the folds, the weights and the augmentation.
    out : str or Path, optional
        Run directory (default: ``runs/PRESET``).
    folds : sequence of int, optional
        The folds to train (default: all ``k``).
    device : {"auto", "cpu", "cuda", "mps"}, default "auto"
    threads : int, optional
        Torch CPU threads; CPU results are bit-identical at the same count (recorded in the run).
    resume : bool, optional
        Continue an existing run directory (default: when it holds a run).
    progress : bool, default True
        Progress bars and one line per fold.
    backend, address, cpus_per_fold, gpus_per_fold, max_retries
        Where folds train: ``"local"`` (here, one after another) or ``"ray"`` and its resources.
    **overrides
        Config fields (``kfold.config.PARAMS`` lists their types and bounds).

    Returns
    -------
    Run
        The run directory with its summary: ``oof_accuracy``, ``table`` (one row per fold), ``predict()``.

    Raises
    ------
    UsageError
        A bad parameter or config value (``lr=inf``, ``folds=[7]`` with ``k=5``), named before any file is written.
    DataError
        Unreadable or inconsistent data, or a run directory made for other settings.

    Examples
    --------
    >>> import tempfile, kfold
    >>> from kfold.data.toy import make_toy_competition
    >>> tmp = tempfile.mkdtemp()
    >>> comp = make_toy_competition(f"{tmp}/comp")
    >>> run = kfold.train(comp, "lenet5", k=2, epochs=1, out=f"{tmp}/run", threads=1, progress=False)
    fold 0 epoch   1/1 loss ...
    >>> run.table["fold"].tolist(), 0 <= run.oof_accuracy <= 1
    ([0, 1], True)
    >>> kfold.train(comp, "lenet5", k=2, lr=float("inf"), out=f"{tmp}/bad")
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: config value lr=inf must be a finite number
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
                           backend=backend, echo=print if progress else lambda _: None)
    finally:
        if owned is not None:
            owned.close()
    return Run(run, result.values, str(data), task)


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
    """Combine probability files and/or submissions (mean, geomean or vote) and write the submission CSV.

    Parameters
    ----------
    inputs : sequence of str or Path
        Probability files (``.npz``/``.csv``/``.npy``) and/or submission CSVs of the same rows.
    method : {"mean", "geomean", "vote", "rank"}, default "mean"
    seed : int, default 0
        Seed of the vote's tie-breaks.
    out : str or Path, default "submissions/ensemble.csv"
        The submission CSV; mean and geomean also write its probabilities beside it.
    weights : sequence of float, optional
        One weight per input.
    sample : str or Path, optional
        A sample submission: its Ids and row order.
    report : str or Path, optional
        Folder of the agreement report.
    tiebreak : {"random", "prob"}, default "random"

    Returns
    -------
    Submission
        The files written, the ensemble's Ids and categories, the number of tied rows and the CSV as a frame.

    Raises
    ------
    UsageError
        A bad parameter (``out`` not a .csv file, weights that do not match the inputs).
    DataError
        Inputs that are unreadable or do not hold the same rows.

    Examples
    --------
    >>> import tempfile, numpy as np, kfold
    >>> from kfold.files.probs import write_probs
    >>> tmp = tempfile.mkdtemp()
    >>> for name, p in (("a", [[0.9, 0.1], [0.4, 0.6]]), ("b", [[0.7, 0.3], [0.2, 0.8]])):
    ...     write_probs(f"{tmp}/{name}.npz", np.array([0, 1]), np.array(p), ["0", "1"], {})
    >>> sub = kfold.ensemble([f"{tmp}/a.npz", f"{tmp}/b.npz"], out=f"{tmp}/sub.csv")
    >>> sub.frame.to_dict("list")
    {'Id': [0, 1], 'Category': [0, 1]}
    """
    from kfold.flows.ensembling import make_submission

    made = make_submission(list(inputs), out, method=method, weights=weights, seed=seed, tiebreak=tiebreak,
                           sample=sample, report=report)
    frame = pd.read_csv(made.submission)
    return Submission(made.submission, made.probabilities, made.ensemble.ids, made.ensemble.categories,
                      made.ensemble.tied_rows, frame)


def leaderboard(solution: str | Path, submissions: Sequence[str | Path], *, seed: int = 0, bootstrap: int = 1000,
                out: str | Path | None = None) -> pd.DataFrame:
    """Public/Private scores (with bootstrap intervals) of submissions and probability files, ranked like Kaggle.

    Parameters
    ----------
    solution : str or Path
        The host's ``Id,Category,Usage`` file (``Usage``: Public or Private).
    submissions : sequence of str or Path
        Submission CSVs and/or probability files to score.
    seed : int, default 0
        Seed of the bootstrap (and of the Public/Private split of a solution without ``Usage``).
    bootstrap : int, default 1000
        Bootstrap resamples of each score's interval.
    out : str or Path, optional
        Folder to write the leaderboard to (CSV and Markdown).

    Returns
    -------
    pandas.DataFrame
        One row per submission, ranked by Public score: public/private accuracy with intervals, ranks.

    Raises
    ------
    DataError
        A solution or submission that is unreadable or does not hold the solution's Ids.

    Examples
    --------
    >>> import tempfile, pandas as pd, kfold
    >>> tmp = tempfile.mkdtemp()
    >>> pd.DataFrame({"Id": range(4), "Category": [0, 1, 1, 0], "Usage": ["Public", "Private"] * 2}).to_csv(
    ...     f"{tmp}/solution.csv", index=False)
    >>> pd.DataFrame({"Id": range(4), "Category": [0, 1, 0, 0]}).to_csv(f"{tmp}/sub.csv", index=False)
    >>> board = kfold.leaderboard(f"{tmp}/solution.csv", [f"{tmp}/sub.csv"], bootstrap=10)
    >>> board[["public", "private"]].values.tolist()
    [[0.5, 1.0]]
    """
    from kfold.scoring.leaderboard import leaderboard as board, read_solution, write_leaderboard

    table = board([str(s) for s in submissions], read_solution(solution, seed=seed), n_bootstrap=bootstrap, seed=seed)
    if out is not None:
        write_leaderboard(table, out)
    return table


__all__ = ["FULL", "Predictions", "Run", "Submission", "ensemble", "leaderboard", "load_run", "train"]
