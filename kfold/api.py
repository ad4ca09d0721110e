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

from kfold.errors import UsageError, check_list
from kfold.files.rundir import FULL, PredDir, RunDir
from kfold.flows.leaderboard import guard_leaderboard  # noqa: F401 - kfold.api.guard_leaderboard, as before

DEVICES = ("auto", "cpu", "cuda", "mps")


# ---- argument checks: one UsageError line naming the parameter, before anything is read or written ------------

def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_int(name: str, value: Any, low: int, high: int | None = None, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or \
            (high is not None and value > high):
        bound = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise UsageError(f"{name}={_show(value)}: must be {bound}" + (" or None" if optional else ""))


def _check_number(name: str, value: Any, low: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not np.isfinite(value) or value < low:
        raise UsageError(f"{name}={_show(value)}: must be a finite number >= {low:g}")


def _check_bool(name: str, value: Any, *, optional: bool = False) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        raise UsageError(f"{name}={_show(value)}: must be True or False" + (" (or None)" if optional else ""))


def _check_path(name: str, value: Any, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, (str, Path)) and not hasattr(value, "__fspath__") or value == "":
        raise UsageError(f"{name}={_show(value)}: must be a path (str or pathlib.Path)")


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise UsageError(f"{name}={_show(value)}: must be one of {', '.join(map(repr, choices))}")


def _check_device(value: Any) -> None:
    if not isinstance(value, str) or not (value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit())):
        raise UsageError(f"device={_show(value)}: must be one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")


def _paths(name: str, value: Any) -> list:
    """A list of paths: a single str or path is refused (``ListTypeError``, a ``TypeError``), as is an empty list."""
    items = check_list(name, value)
    if not items:
        raise UsageError(f"{name}=[]: give at least one path")
    for item in items:
        if not isinstance(item, (str, Path)) and not hasattr(item, "__fspath__") or item == "":
            raise UsageError(f"{name}: {_show(item)} is not a path (str or pathlib.Path)")
    return items


def _check_folds(value: Any) -> None:
    if value is None:
        return
    items = check_list("folds", value)
    if not items or any(isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 0 for f in items):
        raise UsageError(f"folds={_show(value)}: must be a non-empty list of fold numbers >= 0 like [0, 2]")


def _check_threads(value: Any) -> None:
    _check_int("threads", value, 1, 4096, optional=True)


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

        oof = read_probs(self.dir.oof)
        self.dir.check_oof(oof)  # a file copied from another run is refused
        return oof

    def predict(self, out: str | Path | None = None, *, data: str | None = None, tta: int | None = None,
                device: str = "auto", threads: int | None = None, fmt: str = "npz") -> Predictions:
        """Write test probabilities of every model (default folder: ``RUN/probs``) and return them."""
        from kfold.flows.backend import LocalBackend
        from kfold.flows.training import TaskSpec

        _check_path("out", out, optional=True)
        _check_path("data", data, optional=True)
        _check_int("tta", tta, 1, 9, optional=True)
        _check_device(device)
        _check_threads(threads)
        _check_choice("fmt", fmt, ("npz", "csv"))
        data = data or self.data or self.dir.read_config().get("data")
        if data is None:
            raise UsageError("give data=... (the competition the run was trained on)")
        spec = TaskSpec(str(data))
        task = self._task if self._task is not None and data == self.data else spec.load(progress=False)
        folder = PredDir(out) if out is not None else self.dir.probs
        with LocalBackend(echo=lambda _: None) as backend:
            backend.predict([self.dir], task, folder.path, spec=spec, tta=tta, device=device, threads=threads, fmt=fmt)
        k = self.dir.defined_folds()
        folds = [folder.fold(self.dir.name, fold, fmt) for fold in range(k) if self.dir.is_done(fold)]
        oof = folder.oof(self.dir.name, fmt)
        return Predictions(folder, folds, folder.mean(self.dir.name, fmt), oof if oof.is_file() else None)


def load_run(path: str | Path) -> Run:
    """A finished (or partly finished) run directory."""
    _check_path("path", path)
    run = RunDir(path)
    config = run.read_config()
    summary = run.read_summary() if run.summary.is_file() else {}  # every field checked
    return Run(run, summary, config.get("data"))


def train(data: str, preset: str = "fast", *, k: int = 5, seed: int = 0, out: str | Path | None = None,
          folds: Sequence[int] | None = None, device: str = "auto", threads: int | None = None, resume: bool | None = None,
          progress: bool = True, config: str | Path | None = None, backend: Any = "local", address: str | None = None,
          cpus_per_fold: float = 1.0, gpus_per_fold: float = 0.0, max_retries: int = 3, track: str | None = None,
          track_models: bool = False, **overrides: Any) -> Run:
    """Train a k-fold run; keyword ``overrides`` are config fields (``epochs=3``, ``lr=0.05``, ``model="vgg_bn"``).

    ``resume`` defaults to continuing an existing run directory with the same settings. ``backend="ray"`` trains
    every fold as a Ray task (on ``address``, ``$RAY_ADDRESS``, the Ray this process already started, or an
    embedded local cluster); a backend object (``kfold.flows.backend.Backend``: a ``LocalBackend``, a
    ``kfold.flows.ray_backend.RayBackend``) is used as it is, and left open.

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
    track : {"mlflow", "wandb", None}, optional
        Log the run and its folds to MLflow (``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` beside the run
        directory) or to Weights & Biases (offline in ``wandb/`` beside the run directory, or ``$WANDB_DIR``, unless
        logged in or ``$WANDB_MODE`` says otherwise); default ``$KFOLD_TRACK``, else nothing. ``track_models=True``
        also logs the weights.
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
    from kfold.flows.backend import Backend, LocalBackend
    from kfold.flows.training import RunRequest, TaskSpec, train_run

    _check_path("data", data)
    if not isinstance(preset, str):
        raise UsageError(f"preset={_show(preset)}: must be a preset name (kfold presets lists them)")
    _check_int("k", k, 2, 10_000)
    _check_int("seed", seed, 0, 2 ** 32 - 1)
    _check_path("out", out, optional=True)
    _check_folds(folds)
    _check_device(device)
    _check_threads(threads)
    _check_bool("resume", resume, optional=True)
    _check_bool("progress", progress)
    _check_path("config", config, optional=True)
    if isinstance(backend, str):
        _check_choice("backend", backend, ("local", "ray"))
    elif not isinstance(backend, Backend):
        raise UsageError(f"backend={_show(backend)}: must be 'local', 'ray' or a backend object (RayBackend)")
    if address is not None:
        from kfold.flows.ray_backend import check_address

        try:
            check_address(address)
        except UsageError:
            raise UsageError(f"address={_show(address)}: not a Ray cluster address; give 'HOST:PORT' "
                             "(e.g. '10.0.0.5:6379'), 'ray://HOST:PORT' or 'auto'") from None
    _check_number("cpus_per_fold", cpus_per_fold, 0)
    _check_number("gpus_per_fold", gpus_per_fold, 0)
    _check_int("max_retries", max_retries, 0, 100)
    if address is not None and backend == "local":
        raise UsageError("address=... needs backend='ray'")
    if backend == "local" and (cpus_per_fold != 1.0 or gpus_per_fold != 0.0 or max_retries != 3):
        raise UsageError("cpus_per_fold, gpus_per_fold and max_retries need backend='ray'")
    cfg = resolve_config(preset, config, overrides)
    echo = print if progress else lambda _: None
    from kfold.flows.tracking import open_tracker

    tracker = open_tracker(track, Path(out if out is not None else Path("runs") / preset).parent, models=track_models)
    owned = None
    if isinstance(backend, str):
        from kfold.flows.ray_backend import make_backend

        backend = owned = make_backend(backend, address=address, cpus_per_fold=cpus_per_fold, gpus_per_fold=gpus_per_fold,
                                       max_retries=max_retries, device=device, progress=progress) or LocalBackend(echo=echo)
    threads = backend.threads(threads)
    spec = TaskSpec(str(data))
    task = spec.load(progress=progress)
    run = RunDir(out if out is not None else Path("runs") / preset)
    try:
        request = RunRequest(cfg, spec, preset=preset, k=k, seed=seed, folds=folds, device=device, threads=threads,
                             resume=run.is_run() if resume is None else resume, progress=progress)
        result = train_run(request, task, run, backend=backend, echo=echo, tracker=tracker)
    finally:
        if owned is not None:
            owned.close()
    return Run(run, result.values, str(data), task)


def tune(data: str, preset: str = "fast", *, trials: int, out: str | Path | None = None, space: Any = None,
         metric: str | None = None, k: int = 5, seed: int = 0, folds: Sequence[int] | None = None,
         timeout: float | None = None, pruner: str = "median", prune_after: int = 2, storage: str | None = None,
         device: str = "auto", threads: int | None = None, progress: bool = True, config: str | Path | None = None,
         backend: Any = "local", address: str | None = None, cpus_per_fold: float = 1.0, gpus_per_fold: float = 0.0,
         max_retries: int = 3, trials_in_parallel: int = 1, ensemble_top: int | None = None, track: str | None = None,
         track_models: bool = False, **overrides: Any):
    """Search hyperparameters with Optuna: ``trials`` k-fold runs in ``out`` (default ``runs/tune``); returns a
    ``kfold.flows.tune.TuneResult`` (``table``: one row per trial; ``best_config``: the best trial's config).

    ``space`` is a file path or a mapping (``{"lr": {"log_uniform": [0.01, 0.3]}}``; default: the preset
    family's); keyword ``overrides`` fix config fields for every trial. Re-running continues the study.
    ``track="mlflow"`` (or ``"wandb"``) logs the study, every trial and its folds (as ``kfold.train``).
    """
    from kfold.config import resolve_config
    from kfold.flows.training import TaskSpec
    from kfold.flows.tune import import_optuna, parse_space, read_space, tune as run_search

    from kfold.flows.tracking import open_tracker

    _check_folds(folds)
    cfg = resolve_config(preset, config, overrides)
    tracker = open_tracker(track, Path(out if out is not None else Path("runs") / "tune").parent, models=track_models)
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
                          ensemble_top=ensemble_top, echo=lambda _: None, tracker=tracker)
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


def ensemble(inputs: str | Path | Sequence[str | Path], method: str = "mean", *, seed: int = 0,
             out: str | Path = "submissions/ensemble.csv",
             weights: Sequence[float] | None = None, sample: str | Path | None = None, report: str | Path | None = None,
             tiebreak: str = "random") -> Submission:
    """Combine probability files and/or submissions (mean, geomean or vote) and write the submission CSV.

    Parameters
    ----------
    inputs : str, Path or a sequence of them
        One path, or several: probability files (``.npz``/``.csv``/``.npy``) and/or submission CSVs of the same rows.
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

    inputs = _paths("inputs", inputs)
    _check_choice("method", method, ("mean", "geomean", "vote", "rank"))
    _check_int("seed", seed, 0, 2 ** 32 - 1)
    _check_path("out", out)
    _check_path("sample", sample, optional=True)
    _check_path("report", report, optional=True)
    _check_choice("tiebreak", tiebreak, ("random", "prob"))
    if weights is not None:
        weights = check_list("weights", weights)
        for weight in weights:
            _check_number("weights", weight, 0)
    made = make_submission(inputs, out, method=method, weights=weights, seed=seed, tiebreak=tiebreak,
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
    from kfold.flows.leaderboard import local_leaderboard
    from kfold.scoring.leaderboard import leaderboard as board, read_solution

    _check_path("solution", solution)
    submissions = _paths("submissions", submissions)
    _check_int("seed", seed, 0, 2 ** 32 - 1)
    _check_int("bootstrap", bootstrap, 1, 10_000_000)
    _check_path("out", out, optional=True)
    if out is not None:
        return local_leaderboard([str(s) for s in submissions], solution, out, seed=seed, bootstrap=bootstrap).table
    return board([str(s) for s in submissions], read_solution(solution, seed=seed), n_bootstrap=bootstrap, seed=seed)


__all__ = ["FULL", "Predictions", "Run", "Submission", "ensemble", "leaderboard", "load_run", "train", "tune"]
