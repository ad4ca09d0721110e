"""Experiment tracking: the ``Tracker`` protocol the flows call, ``NullTracker`` (the default) and ``open_tracker``.

The run directory stays the source of truth: a tracker logs FROM THE FILES (``config.json``, ``summary.json``, each
fold's ``meta.json`` and ``metrics.csv`` ...) when a fold, a run, a trial or an ensemble has finished writing them,
in the driver process (so folds trained on Ray workers land in the same tracked run). ``kfold track sync`` applies
the very same code to finished runs afterwards, idempotently. Tracking never breaks a run: ``open_tracker`` wraps
the tracker so that a failing or unreachable store gives one warning line and the run goes on (``SafeTracker``).

The MLflow tracker lives in ``kfold.flows.mlflow_tracker``, the Weights & Biases one in ``kfold.flows.wandb_tracker``;
each imports its library only when it is used; this module imports nothing heavy, so ``import kfold`` stays light.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable
from urllib.parse import urlsplit

from kfold.errors import UsageError, check_list, param
from kfold.flows.track_params import flatten  # re-exported: the trackers' shared config flattening

__all__ = ["KINDS", "NullTracker", "SafeTracker", "Tracker", "check_uri", "default_uri", "flatten", "open_tracker", "sync",
           "tracking_uri"]

KINDS = ("mlflow", "wandb")
ENV = "KFOLD_TRACK"
DB_NAME = "mlflow.db"  # the embedded store beside the runs (a runs folder's file, not a run directory's)
SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
SQLITE_MAGIC = b"SQLite format 3\x00"


@runtime_checkable
class Tracker(Protocol):
    """What the flows tell a tracker; every method reads what it logs from the files named.

    Methods
    -------
    run_started(run_dir)
        A k-fold run's ``config.json`` and ``folds.csv`` are written (its tracked run appears, running).
    fold_done(run_dir, fold)
        A fold finished (its ``meta.json`` is written, last): its epochs, scores and files.
    run_done(run_dir)
        ``summary.json`` is written: the run's metrics and files, every finished fold not logged yet.
    trial_done(tune_dir, trial)
        A ``kfold tune`` trial ended (an Optuna trial, or a ``trials.csv`` row as a dict).
    tune_done(tune_dir)
        ``trials.csv`` is written: every trial of the study.
    ensemble_done(submission, inputs, method, *, public=None, private=None, report=None)
        An ensemble's submission was written from ``inputs`` (probability files of tracked runs).
    scored(submission, public, private)
        The local leaderboard scored a submission file (logged to the ensembles that wrote those bytes).
    kaggle_score(sha256, public, private=None, *, ref=None, competition=None)
        Kaggle scored the submission whose bytes have this SHA-256.
    close()
        Release the store.
    """

    def run_started(self, run_dir: str | Path) -> None: ...

    def fold_done(self, run_dir: str | Path, fold: int | str) -> None: ...

    def run_done(self, run_dir: str | Path) -> None: ...

    def trial_done(self, tune_dir: str | Path, trial: Any) -> None: ...

    def tune_done(self, tune_dir: str | Path) -> None: ...

    def ensemble_done(self, submission: str | Path, inputs: Sequence[str | Path], method: str, *,
                      public: float | None = None, private: float | None = None,
                      report: str | Path | None = None) -> None: ...

    def scored(self, submission: str | Path, public: float | None, private: float | None) -> None: ...

    def kaggle_score(self, sha256: str, public: float | None, private: float | None = None, *, ref: Any = None,
                     competition: str | None = None) -> None: ...

    def close(self) -> None: ...


class NullTracker:
    """The default tracker: records nothing.

    Examples
    --------
    >>> tracker = NullTracker()
    >>> tracker.run_done("runs/x"), isinstance(tracker, Tracker), bool(tracker)
    (None, True, False)
    """

    uri = None

    def __bool__(self) -> bool:
        return False

    def run_started(self, run_dir) -> None:
        pass

    def fold_done(self, run_dir, fold) -> None:
        pass

    def run_done(self, run_dir) -> None:
        pass

    def trial_done(self, tune_dir, trial) -> None:
        pass

    def tune_done(self, tune_dir) -> None:
        pass

    def ensemble_done(self, submission, inputs, method, *, public=None, private=None, report=None) -> None:
        pass

    def scored(self, submission, public, private) -> None:
        pass

    def kaggle_score(self, sha256, public, private=None, *, ref=None, competition=None) -> None:
        pass

    def close(self) -> None:
        pass


class SafeTracker:
    """A tracker whose failures never reach the run: the first failure prints one warning line (with ``hint``, the
    command that fills the gap later) and silences the tracker for the rest of the command.

    Examples
    --------
    >>> class Broken(NullTracker):
    ...     def run_done(self, run_dir):
    ...         raise ConnectionError("store down")
    >>> lines = []
    >>> safe = SafeTracker(Broken(), echo=lines.append, uri="http://127.0.0.1:9")
    >>> safe.run_done("runs/x"); safe.run_done("runs/x"); safe.failed
    True
    >>> len(lines), lines[0][:56]
    (1, 'warning: tracking: http://127.0.0.1:9: ConnectionError: ')
    """

    def __init__(self, tracker: Tracker, *, echo: Callable[[str], None] = print, uri: str | None = None,
                 hint: str = "kfold track sync RUN_DIR"):
        self.tracker, self.echo, self.uri, self.failed, self.hint = tracker, echo, uri, False, hint
        self.seconds, self.calls = 0.0, 0  # the time the run spent in the tracker (MLflow's import included)

    def __bool__(self) -> bool:
        return True

    def _call(self, name: str, *args, **kwargs) -> Any:
        if self.failed:
            return None
        start = time.perf_counter()
        try:
            return getattr(self.tracker, name)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, the run goes on
            self.failed = True
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            self.echo(f"warning: tracking: {self.uri}: {type(exc).__name__}: {first}; the run goes on untracked "
                      f"(log it later with: {self.hint})")
            return None
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def cost_line(self, total_seconds: float | None = None) -> str:
        """What tracking cost this command, in one line (its share of ``total_seconds`` when given).

        >>> safe = SafeTracker(NullTracker(), echo=print, uri="sqlite:////tmp/mlflow.db")
        >>> safe.run_done("runs/x"); safe.calls
        1
        >>> safe.seconds = 2.5; safe.cost_line(500.0)
        'tracking: 1 calls to sqlite:////tmp/mlflow.db took 2.5 s (0.50% of 500 s)'
        """
        share = f" ({100 * self.seconds / total_seconds:.2f}% of {total_seconds:.0f} s)" if total_seconds else ""
        return f"tracking: {self.calls} calls to {self.uri} took {self.seconds:.1f} s{share}"

    def run_started(self, run_dir) -> None:
        self._call("run_started", run_dir)

    def fold_done(self, run_dir, fold) -> None:
        self._call("fold_done", run_dir, fold)

    def run_done(self, run_dir) -> None:
        self._call("run_done", run_dir)

    def trial_done(self, tune_dir, trial) -> None:
        self._call("trial_done", tune_dir, trial)

    def tune_done(self, tune_dir) -> None:
        self._call("tune_done", tune_dir)

    def ensemble_done(self, submission, inputs, method, *, public=None, private=None, report=None) -> None:
        self._call("ensemble_done", submission, inputs, method, public=public, private=private, report=report)

    def scored(self, submission, public, private) -> None:
        self._call("scored", submission, public, private)

    def kaggle_score(self, sha256, public, private=None, *, ref=None, competition=None) -> None:
        return self._call("kaggle_score", sha256, public, private, ref=ref, competition=competition)

    def close(self) -> None:
        try:
            self.tracker.close()
        except Exception:  # noqa: BLE001 - closing a broken store changes nothing for the run
            pass


def default_uri(runs_folder: str | Path) -> str:
    """The embedded SQLite store beside the runs.

    >>> default_uri("/tmp/runs")
    'sqlite:////tmp/runs/mlflow.db'
    """
    return f"sqlite:///{Path(runs_folder).resolve() / DB_NAME}"


def tracking_uri(runs_folder: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``default_uri(runs_folder)``."""
    return os.environ.get("MLFLOW_TRACKING_URI", "").strip() or default_uri(runs_folder)


def _local_path(uri: str, scheme: str) -> Path:
    if scheme == "sqlite":
        return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else Path("")
    parts = urlsplit(uri)
    return Path(parts.path) if scheme == "file" else Path(uri)


def check_uri(uri: str, source: str = "MLFLOW_TRACKING_URI") -> str:
    """Refuse a tracking URI that cannot work, before anything is written: an unknown scheme, a server URI without a
    host or with a bad port, a local store whose path runs through a file, lies in a folder that cannot be written,
    or is a file of another kind. A store that is merely unreachable is not refused here (one warning at its first
    use). Returns ``uri``.

    Examples
    --------
    >>> check_uri("http://127.0.0.1:5000")
    'http://127.0.0.1:5000'
    >>> check_uri("ftp://host/x")
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: MLFLOW_TRACKING_URI='ftp://host/x': unknown scheme 'ftp' (use sqlite:///PATH, file:///PATH, http(s)://HOST:PORT, postgresql://..., mysql://..., mssql://... or databricks)
    """
    where = f"{source}={uri!r}"
    if not isinstance(uri, str) or not uri.strip() or any(ord(c) < 32 for c in uri):
        raise UsageError(f"{where}: not a tracking URI")
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if len(scheme) == 1:  # a Windows drive letter: a path
        scheme = ""
    if scheme and scheme not in SCHEMES:
        raise UsageError(f"{where}: unknown scheme {scheme!r} (use sqlite:///PATH, file:///PATH, http(s)://HOST:PORT, "
                         f"postgresql://..., mysql://..., mssql://... or databricks)")
    if scheme in ("http", "https", "postgresql", "mysql", "mssql"):
        try:
            parts.port  # noqa: B018 - urlsplit checks the port when it is read
        except ValueError:
            raise UsageError(f"{where}: the port is not a number in 0..65535") from None
        if not parts.hostname:
            raise UsageError(f"{where}: no host (expected {scheme}://HOST:PORT)")
        return uri
    if scheme == "databricks":
        return uri
    path = _local_path(uri, scheme)
    if not str(path) or str(path) in (".", ":memory:"):
        raise UsageError(f"{where}: no file path (expected sqlite:////absolute/path/mlflow.db)")
    path = Path(os.path.abspath(path))
    folder_store = scheme in ("", "file")
    if path.exists():
        if folder_store and not path.is_dir():
            raise UsageError(f"{where}: {path} is a file; a file store is a folder")
        if not folder_store:
            if not path.is_file():
                raise UsageError(f"{where}: {path} is not a file")
            try:
                with open(path, "rb") as handle:
                    head = handle.read(16)
            except OSError as exc:
                raise UsageError(f"{where}: {path} cannot be read ({exc.strerror})") from None
            if head and head != SQLITE_MAGIC:
                raise UsageError(f"{where}: {path} is not an SQLite database")
        if not os.access(path, os.W_OK):
            raise UsageError(f"{where}: {path} cannot be written")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{where}: {parent} is a file where a folder is expected")
    if not os.access(parent, os.W_OK | os.X_OK) and not path.exists():
        raise UsageError(f"{where}: the folder {parent} cannot be written")
    return uri


def _kind(track: str | None) -> str | None:
    text = track if track is not None else os.environ.get(ENV, "")
    if text is None or str(text).strip().lower() in ("", "none", "off", "0"):
        return None
    if not isinstance(text, str) or text.strip().lower() not in KINDS:
        shown = f"{ENV}={text!r}" if track is None else f"{param('track')}={text!r}"
        raise UsageError(f"{shown}: unknown tracker; available: {', '.join(KINDS)} (or none)")
    return text.strip().lower()


def open_tracker(track: str | None, runs_folder: str | Path, *, models: bool = False,
                 echo: Callable[[str], None] = print) -> Tracker:
    """The tracker a command asked for, wrapped in ``SafeTracker``; ``NullTracker`` when nothing is tracked.

    ``"mlflow"``: the store at ``$MLFLOW_TRACKING_URI`` or ``sqlite:///RUNS_FOLDER/mlflow.db``. ``"wandb"``: Weights &
    Biases, offline (files under ``RUNS_FOLDER/wandb/``, or ``$WANDB_DIR/wandb/``) unless the user is logged in or
    ``$WANDB_MODE`` says otherwise (``kfold.flows.wandb_tracker``). Everything is checked here (``UsageError``);
    the store is opened at its first use.

    Parameters
    ----------
    track : str, optional
        ``"mlflow"``, ``"wandb"``, or ``None`` for ``$KFOLD_TRACK`` (unset: no tracking).
    runs_folder : str or Path
        The folder of the runs: the embedded store ``mlflow.db``, or W&B's ``wandb/`` folder, goes there.
    models : bool, default False
        Also log every model's weights (safetensors).
    echo : callable, default print
        Receives the line naming the store and the warning line of a failing store.

    Returns
    -------
    Tracker
        A ``SafeTracker`` around an ``MlflowTracker`` or a ``WandbTracker``, or a ``NullTracker``.

    Raises
    ------
    UsageError
        An unknown tracker name, a tracking URI, ``$WANDB_MODE`` or ``$WANDB_DIR`` that cannot work.

    Examples
    --------
    >>> open_tracker(None, "runs", echo=print)  # KFOLD_TRACK unset
    NullTracker()
    >>> open_tracker("comet", "runs")
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: track='comet': unknown tracker; available: mlflow, wandb (or none)
    """
    if not isinstance(models, bool):
        raise UsageError(f"{param('track_models')}={models!r}: must be True or False")
    kind = _kind(track)
    if kind is None:
        if models:
            raise UsageError(f"{param('track_models')} needs {param('track')}='mlflow' or 'wandb' "
                             f"(or {ENV}=mlflow|wandb)")
        return NullTracker()
    if kind == "wandb":
        from kfold.flows.wandb_tracker import SYNC_HINT, open_wandb

        tracker = open_wandb(runs_folder, models=models, echo=echo)
        return NullTracker() if tracker is None else SafeTracker(tracker, echo=echo, uri=tracker.label, hint=SYNC_HINT)
    uri = tracking_uri(runs_folder)
    check_uri(uri, "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI", "").strip() else "the default store")
    from kfold.flows.mlflow_tracker import MlflowTracker, ui_command

    echo(f"tracking: MLflow at {uri}; open it with: {ui_command(uri)}")
    return SafeTracker(MlflowTracker(uri, models=models), echo=echo, uri=uri)


NullTracker.__repr__ = lambda self: "NullTracker()"  # type: ignore[method-assign]


def _sync_ensembles(tracker, run_dir: Path, echo: Callable[[str], None], submissions: Path | None) -> None:
    """The ensembles ``kfold run`` wrote from this run (its ``report-{method}/`` folders, its leaderboard's local
    scores), logged again when their submission files are found (``kfold.files.past_ensembles``)."""
    from kfold.files.past_ensembles import past_ensembles

    found = past_ensembles(run_dir, submissions)
    for ens in found.ensembles:
        tracker.ensemble_done(ens.submission, ens.inputs, ens.method, public=ens.public, private=ens.private,
                              report=ens.report)
        echo(f"  synced ensemble {ens.submission} ({ens.method} of {len(ens.inputs)} files)")
    for report, why in found.skipped:
        echo(f"  not synced: ensemble {report.name}: {why}")


def sync(paths: Sequence[str | Path], *, uri: str | None = None, models: bool = False,
         submissions: str | Path | None = None, echo: Callable[[str], None] = print,
         track: str | None = None) -> list[str]:
    """Log finished run directories and ``kfold tune`` folders into a tracker (``kfold track sync``), from their
    files, idempotently: a run tracked before is updated, never duplicated; a fold is logged once; the ensembles
    ``kfold run`` wrote from a run (with their local scores) are logged when their submissions are found.

    Parameters
    ----------
    paths : sequence of str or Path
        Run directories (``config.json``) or search folders (``trials.csv``).
    uri : str, optional
        MLflow's tracking URI (default ``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` beside the first path).
    models : bool, default False
        Also log the weights.
    submissions : str or Path, optional
        The folder ``kfold run --submissions`` wrote the runs' ensembles to, when it is neither where their
        leaderboard recorded them nor ``submissions/`` beside the runs.
    echo : callable, default print
        One line per path.
    track : {"mlflow", "wandb"}, optional
        The tracker (default ``$KFOLD_TRACK`` when it names one, else ``"mlflow"``). W&B writes to ``$WANDB_DIR``, else
        the ``wandb/`` folder beside the first path, offline unless the user is logged in.

    Returns
    -------
    list of str
        The tracker's run id of each path (MLflow's, or W&B's).

    Raises
    ------
    UsageError
        A path that is neither a run nor a search folder, a bad URI or W&B setting, the tracker not installed.

    Examples
    --------
    >>> sync(["runs/x"], track="wandb", uri="sqlite:////tmp/mlflow.db")
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: uri='sqlite:////tmp/mlflow.db' is MLflow's tracking URI; W&B writes to $WANDB_DIR, else beside the runs
    """
    from kfold.files.rundir import RunDir, TuneDir

    paths = [Path(p) for p in check_list("paths", paths)]
    kind = _kind(track) or "mlflow"
    if kind == "wandb" and uri is not None:
        raise UsageError(f"{param('uri')}={uri!r} is MLflow's tracking URI; W&B writes to $WANDB_DIR, else beside the "
                         f"runs")
    if not paths:
        raise UsageError("give at least one RUN_DIR or TUNE_DIR")
    for path in paths:
        if not RunDir(path).is_run() and not TuneDir(path).is_tune():
            raise UsageError(f"{path}: neither a kfold run directory (no {RunDir(path).config.name}) nor a kfold tune "
                             f"folder (no {TuneDir(path).trials_csv.name})")
    if submissions is not None and not Path(submissions).is_dir():
        raise UsageError(f"{param('submissions')}={str(submissions)!r}: not a folder")
    if kind == "wandb":
        from kfold.flows.wandb_tracker import open_wandb

        tracker = open_wandb(paths[0].resolve().parent, models=models, echo=echo)
        if tracker is None:
            raise UsageError("WANDB_MODE=disabled: W&B logs nothing; unset it (or use offline) to sync")
        name, last = "W&B", tracker.closing_line()
    else:
        uri = uri or tracking_uri(paths[0].resolve().parent)
        check_uri(uri, "the tracking URI")
        from kfold.flows.mlflow_tracker import MlflowTracker, ui_command

        tracker, name, last = MlflowTracker(uri, models=models), "MLflow", f"store {uri}; open it with: {ui_command(uri)}"
    ids = []
    try:
        for path in paths:
            if TuneDir(path).is_tune():
                ids.append(tracker.tune_done(path))
                echo(f"synced search {path} -> {name} run {ids[-1]}")
            else:
                ids.append(tracker.run_done(path))
                echo(f"synced run {path} -> {name} run {ids[-1]}")
                _sync_ensembles(tracker, path, echo, submissions)
    finally:
        tracker.close()
    echo(last)
    return ids
