"""The single owner of every on-disk name kfold uses for a run directory and a prediction folder.

Run directory::

    RUN/config.json      resolved config, k, seed, data spec and fingerprint, fold-assignment hash, threads
    RUN/folds.csv        Id, label, fold (written once, reused by every later step)
    RUN/fold{i}/         model.safetensors, meta.json (written last: the 'done' marker), metrics.csv,
                         learning_curve.png, confusion.csv/.png, oof.npz, checkpoint.pt (while training)
    RUN/full/            --full: one model on all training data
    RUN/oof.npz          out-of-fold probabilities of all rows (when every fold is done)
    RUN/summary.json     out-of-fold scores, per-fold kept epoch and accuracy, train seconds
    RUN/probs/           the prediction folder of ``kfold run`` (see PredDir)
    RUN/report-{method}/ ensemble agreement reports of ``kfold run``; RUN/leaderboard/ its leaderboard

Prediction folder (``predict.py --out``)::

    {run}-fold{i}.{npz|csv}   one model's test probabilities   {run}-full.*   the --full model
    {run}-mean.*              the fold mean                     {run}-oof.*    the run's out-of-fold file

``{run}`` is the run directory's name made safe for a file name (``safe_name``). Nothing here imports torch,
and no other module spells one of these names.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kfold.errors import DataError, param

__all__ = ["FULL", "LEADERBOARD_FILES", "model_name", "MULTILABEL_REPORT_FILES", "PredDir", "probs_path", "PROBS_SUFFIX",
           "REPORT_FILES", "RunDir", "safe_name", "TuneDir"]

CONFIG, FOLDS, SUMMARY, OOF = "config.json", "folds.csv", "summary.json", "oof.npz"
META, WEIGHTS, CHECKPOINT, METRICS = "meta.json", "model.safetensors", "checkpoint.pt", "metrics.csv"
LEARNING_CURVE, CONFUSION_CSV, CONFUSION_PNG = "learning_curve.png", "confusion.csv", "confusion.png"
REPORT_HTML = "report.html"  # kfold report's page
FULL = "full"
PROBS_SUFFIX = ".probs.npz"  # the probabilities written beside an ensemble's submission CSV
# an ensemble's agreement report (RUN/report-{method}/, ensemble --report DIR): single-label, then multi-label
REPORT_FILES = ("agreement.csv", "inputs.csv", "report.md", "agreement.png", "groups.csv")
MULTILABEL_REPORT_FILES = ("agreement_tags.csv", "agreement_models.csv", "report.md")
LEADERBOARD_FILES = ("leaderboard.csv", "leaderboard.md", "leaderboard.png")  # a local leaderboard's folder


# ---- the fields of a run's JSON files: every reader checks what it reads (one DataError naming file and field) ----

def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _integer(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int)


KINDS = {  # kind -> (test, what a value must be)
    "int": (_integer, "an integer"),
    "count": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "k": (lambda v: _integer(v) and 2 <= v <= 10_000, "an integer in 2..10000"),
    "number": (_number, "a finite number"),
    "nonneg": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "fraction": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "dict": (lambda v: isinstance(v, dict), "a JSON object"),
    "list": (lambda v: isinstance(v, list), "a JSON list"),
    "strings": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "fold": (lambda v: v == FULL or (_integer(v) and v >= 0), "a fold number or 'full'"),
}


def check_fields(path, obj: dict, required: dict[str, str], optional: dict[str, str] | None = None,
                 where: str = "") -> dict:
    """``obj`` (read from ``path``) holds every ``required`` field, and every field present is of its kind; a kind
    ending in '?' also allows null. Returns ``obj``; else one DataError naming the file and the field."""
    for fields, needed in ((required, True), (optional or {}, False)):
        for key, kind in fields.items():
            if key not in obj:
                if needed:
                    raise DataError(f"{path}: field '{where}{key}' is missing (a damaged or foreign run file)")
                continue
            value = obj[key]
            if kind.endswith("?") and value is None:
                continue
            test, what = KINDS[kind.rstrip("?")]
            if not test(value):
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                raise DataError(f"{path}: field '{where}{key}' is {shown}, expected {what}")
    return obj


CONFIG_FIELDS = {"k": "k"}
CONFIG_OPTIONAL = {"data": "str", "seed": "count", "config": "dict", "preset": "str?", "task": "str", "fingerprint": "str",
                   "classes": "strings", "folds_sha256": "str", "threads": "count?"}
META_FIELDS = {"fold": "fold", "best_epoch": "count", "seconds": "nonneg", "val_rows": "count", "train_rows": "count"}
META_OPTIONAL = {"val_accuracy": "fraction?", "val_loss": "nonneg?", "threads": "count?", "k": "k", "seed": "count",
                 "fingerprint": "str", "model": "str", "num_classes": "count", "config": "dict"}
SUMMARY_FIELDS = {"k": "k", "folds_done": "count"}
SUMMARY_OPTIONAL = {"folds": "list", "train_seconds": "nonneg", "task": "str", "preset": "str?", "model": "str",
                    "seed": "count", "keep": "str",
                    "oof_rows": "count", "oof_accuracy": "fraction", "oof_accuracy_last_epoch": "fraction",
                    "oof_logloss": "nonneg", "oof_accuracy_by_group": "dict", "full": "dict"}
SUMMARY_FOLD = {"fold": "count", "best_epoch": "count", "val_accuracy": "fraction", "val_loss": "nonneg", "seconds": "nonneg"}


def check_summary(path, summary: dict) -> dict:
    """A run's summary.json: every field the report, the learning curve and the API read, of its kind."""
    check_fields(path, summary, SUMMARY_FIELDS, SUMMARY_OPTIONAL)
    if summary["folds_done"] > summary["k"]:
        raise DataError(f"{path}: field 'folds_done' is {summary['folds_done']}, more than k {summary['k']}")
    for index, row in enumerate(summary.get("folds", [])):
        if not isinstance(row, dict):
            raise DataError(f"{path}: field 'folds[{index}]' is not a JSON object")
        check_fields(path, row, SUMMARY_FOLD, where=f"folds[{index}].")
    for name, value in summary.get("oof_accuracy_by_group", {}).items():
        if not KINDS["fraction"][0](value):
            raise DataError(f"{path}: field 'oof_accuracy_by_group.{name}' is {value!r}, expected a number in [0, 1]")
    if "full" in summary:
        check_fields(path, summary["full"], {"best_epoch": "count", "seconds": "nonneg"}, where="full.")
    return summary


METRIC_COLUMNS = {"epoch": "count", "train_accuracy": "fraction", "val_accuracy": "fraction", "val_loss": "number"}


def read_table(path, columns: dict[str, str], optional: dict[str, str] | None = None, *, index_col=None,
               allow_empty: bool = False, text: tuple[str, ...] = ()):
    """A CSV of a run (metrics, agreement, leaderboard ...) with its ``columns`` present and every cell of a
    numeric column of its kind ('number', 'count', 'fraction'; an empty cell allowed in 'number?'/'fraction?'
    columns); ``text`` columns are kept as they are. Else one DataError naming the file, row and column."""
    import pandas as pd

    try:
        table = pd.read_csv(path, index_col=index_col)
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: damaged CSV ({' '.join(str(exc).split())[:120]})") from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DataError(f"{path}: column '{missing[0]}' is missing (a damaged or foreign file)")
    if table.empty and not allow_empty:
        raise DataError(f"{path}: no rows")
    kinds = {**columns, **{c: k for c, k in (optional or {}).items() if c in table.columns}}
    for column, kind in kinds.items():
        if column in text:
            continue
        empty_ok = kind.endswith("?")
        kind = kind.rstrip("?")
        values = pd.to_numeric(table[column], errors="coerce")
        bad = (values.isna() & (table[column].notna() | (not empty_ok))) | values.isin([math.inf, -math.inf])
        if kind == "fraction":
            bad |= (values < 0) | (values > 1)
        elif kind == "count":
            bad |= ((values < 0) | (values != values.round())) & values.notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise DataError(f"{path}: row {row + 2}, column '{column}': {table[column].iloc[row]!r} is not "
                            f"{KINDS[kind][1]}")
        table[column] = values
    return table


def read_metrics(path):
    """A model's metrics.csv (one row per epoch): epoch, accuracies in [0, 1] (empty for a model without
    validation rows), losses; else one DataError naming file, row and column."""
    return read_table(path, {"epoch": "count", "train_accuracy": "fraction", "val_accuracy": "fraction?",
                             "val_loss": "number?"}, {"lr": "number?", "train_loss": "number?", "seconds": "number?"})


def safe_name(text: str) -> str:
    """A file-name component that cannot leave its directory.

    >>> safe_name("exp 1"), safe_name("lr=0.1"), safe_name("../x"), safe_name("")
    ('exp-1', 'lr-0.1', 'x', 'run')
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return cleaned or "run"


def probs_path(submission: str | Path) -> Path:
    """Where the ensemble probabilities of submission CSV ``submission`` go.

    >>> probs_path("submissions/fast-mean.csv").as_posix()
    'submissions/fast-mean.probs.npz'
    """
    submission = Path(submission)
    return submission.with_name(submission.stem + PROBS_SUFFIX)


def model_name(fold: int | str) -> str:
    """``fold3`` for fold 3, ``full`` for the all-data model."""
    return FULL if fold == FULL else f"fold{int(fold)}"


@dataclass(frozen=True)
class _Folder:
    """A folder kfold writes, held by its path (``os.fspath`` and ``str`` give the path)."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


class RunDir(_Folder):
    """A run directory: every path in it comes from here.

    >>> run = RunDir("runs/exp 1")
    >>> run.name, run.weights(2).as_posix(), run.meta("full").as_posix()
    ('exp-1', 'runs/exp 1/fold2/model.safetensors', 'runs/exp 1/full/meta.json')
    """

    @property
    def name(self) -> str:
        """The run's name in file names: its directory name, made safe."""
        return safe_name(self.path.resolve().name)

    # ---- run level
    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def folds_csv(self) -> Path:
        return self.path / FOLDS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def oof(self) -> Path:
        return self.path / OOF

    @property
    def probs(self) -> "PredDir":
        return PredDir(self.path / "probs")

    @property
    def leaderboard(self) -> Path:
        return self.path / "leaderboard"

    def report(self, method: str) -> Path:
        return self.path / f"report-{safe_name(method)}"

    @property
    def report_html(self) -> Path:
        """``kfold report``'s page."""
        return self.path / REPORT_HTML

    # ---- model level
    def model_dir(self, fold: int | str) -> Path:
        return self.path / model_name(fold)

    def meta(self, fold: int | str) -> Path:
        return self.model_dir(fold) / META

    def weights(self, fold: int | str) -> Path:
        return self.model_dir(fold) / WEIGHTS

    def checkpoint(self, fold: int | str) -> Path:
        return self.model_dir(fold) / CHECKPOINT

    def metrics(self, fold: int | str) -> Path:
        return self.model_dir(fold) / METRICS

    def learning_curve(self, fold: int | str) -> Path:
        return self.model_dir(fold) / LEARNING_CURVE

    def confusion_csv(self, fold: int | str) -> Path:
        return self.model_dir(fold) / CONFUSION_CSV

    def confusion_png(self, fold: int | str) -> Path:
        return self.model_dir(fold) / CONFUSION_PNG

    def fold_oof(self, fold: int | str) -> Path:
        return self.model_dir(fold) / OOF

    def is_done(self, fold: int | str) -> bool:
        """A model is finished when its meta.json exists (written last)."""
        return self.meta(fold).is_file()

    # ---- reading
    def is_run(self) -> bool:
        return self.config.is_file()

    def read_json(self, path: Path) -> dict:
        """A JSON object of this run, or one DataError line naming the file."""
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: not found (is {self.path} a finished kfold run?)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: damaged JSON ({exc})") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}: expected a JSON object, got {type(value).__name__}")
        return value

    def read_config(self) -> dict:
        """config.json, its fields checked (k, data, and every other field present of its kind)."""
        if not self.is_run():
            raise DataError(f"{self.path}: not a kfold run directory (no {CONFIG})")
        return check_fields(self.config, self.read_json(self.config), CONFIG_FIELDS, CONFIG_OPTIONAL)

    def read_summary(self) -> dict:
        """summary.json with every field checked."""
        return check_summary(self.summary, self.read_json(self.summary))

    def read_meta(self, fold: int | str, required: dict[str, str] | None = None) -> dict:
        """A finished model's meta.json with its fields checked (``required``: default every field training reads),
        and its fold the one its folder names."""
        path = self.meta(fold)
        meta = check_fields(path, self.read_json(path), META_FIELDS if required is None else required,
                            {**META_FIELDS, **META_OPTIONAL})
        if "fold" in meta and meta["fold"] != (FULL if fold == FULL else int(fold)):
            raise DataError(f"{path}: field 'fold' is {meta['fold']!r}, but the file is in {model_name(fold)}/ "
                            f"(copied from another fold?)")
        return meta

    def defined_folds(self) -> int:
        """k of the run (from its config)."""
        return self.read_config()["k"]

    def finished(self, k: int) -> list[int]:
        return [fold for fold in range(k) if self.is_done(fold)]

    def models(self, allow_incomplete: bool = False) -> list[int | str]:
        """The finished models the run defines: fold 0..k-1 (all of them unless ``allow_incomplete``), then ``full``.

        Directories the run does not define (``fold0-old/``, ``fold7`` of a 5-fold run) are never counted.
        """
        if not self.is_run():
            raise DataError(f"{self.path}: not a kfold run directory (no {CONFIG})")
        if not any(self.path.glob(f"fold*/{META}")) and not self.is_done(FULL):
            raise DataError(f"{self.path}: no finished models (train first, or resume an interrupted run: {param('resume')}=True)")
        k = self.defined_folds()
        done = self.finished(k)
        missing = [fold for fold in range(k) if fold not in done]
        if missing and not allow_incomplete:
            raise DataError(f"{self.path}: folds {','.join(map(str, missing))} of {k} are not finished "
                            f"(training with {param('resume')}=True finishes them; {param('allow_incomplete')}=True predicts with the finished ones)")
        found: list[int | str] = list(done)
        if self.is_done(FULL):
            found.append(FULL)
        if not found:
            raise DataError(f"{self.path}: no finished models (train first, or resume an interrupted run: {param('resume')}=True)")
        return found

    def inputs(self) -> list[Path]:
        """The run's own files that later steps read (config, folds, summary, out-of-fold files, every model's
        metadata, weights, metrics and checkpoint): the inputs an output guard compares outputs with."""
        files = [self.config, self.folds_csv, self.summary, self.oof]
        if self.path.is_dir():
            for folder in sorted(self.path.glob("fold*")) + [self.model_dir(FULL)]:
                files += [folder / name for name in (META, WEIGHTS, METRICS, OOF, CHECKPOINT)]
        return [path for path in files if path.exists()]

    def check_belongs(self, path, meta: dict, fold: int | str | None, config: dict | None = None) -> None:
        """``meta`` (of a probability file or a model read from ``path``) belongs to this run and to ``fold`` ('all':
        the run's out-of-fold file; None: any fold): its data fingerprint, seed, preset and model are the run's,
        its fold the expected one. Else one DataError: a file copied from another run or fold."""
        config = self.read_config() if config is None else config
        recipe = config.get("config") if isinstance(config.get("config"), dict) else {}
        expected = {"fingerprint": config.get("fingerprint"), "seed": config.get("seed"), "preset": config.get("preset"),
                    "model": recipe.get("model")}
        for key, want in expected.items():
            if want is not None and key in meta and meta[key] != want:
                raise DataError(f"{path}: {key} {meta[key]!r} is not this run's ({want!r} in {self.config}): "
                                f"a file of another run; not used")
        if fold is not None and "fold" in meta and meta["fold"] != fold:
            raise DataError(f"{path}: it holds fold {meta['fold']!r} but stands for "
                            f"{'the whole run' if fold == 'all' else model_name(fold)}: a file of another fold; not used")

    def check_oof(self, oof) -> None:
        """The run-level out-of-fold file (a ``ProbFile``) belongs to this run: its metadata (``check_belongs``), and
        its rows and accuracy are the ones summary.json recorded when both were written."""
        self.check_belongs(self.oof, oof.meta, "all")
        if not self.summary.is_file() or oof.labels is None:
            return
        summary = self.read_summary()
        rows, accuracy = summary.get("oof_rows"), summary.get("oof_accuracy")
        if rows is not None and rows != len(oof.ids):
            raise DataError(f"{self.oof}: {len(oof.ids)} rows, but {self.summary} records {rows}: "
                            "a file of another run; not used")
        if accuracy is not None and len(oof.ids):
            multilabel = oof.labels.ndim == 2  # the share of right (image, tag) decisions at 0.5
            actual = float(((oof.probs >= 0.5) == oof.labels).mean() if multilabel else
                           (oof.probs.argmax(1) == oof.labels).mean())
            if abs(actual - accuracy) > 1e-6:
                raise DataError(f"{self.oof}: out-of-fold accuracy {actual:.6f}, but {self.summary} records "
                                f"{accuracy:.6f}: a file of another run; not used")
        logloss = summary.get("oof_logloss")
        if logloss is not None and len(oof.ids) and oof.labels.ndim == 1 and 0 <= oof.labels.min() and oof.labels.max() < oof.probs.shape[1]:
            import numpy as np

            probs = np.clip(np.asarray(oof.probs, dtype=np.float64), 1e-15, 1)
            actual = float(-np.mean(np.log(probs[np.arange(len(probs)), oof.labels] / probs.sum(1))))
            if abs(actual - logloss) > 1e-3 * max(1.0, logloss):
                raise DataError(f"{self.oof}: out-of-fold log loss {actual:.6f}, but {self.summary} records "
                                f"{logloss:.6f}: a file of another run; not used")

    def oof_meta(self, meta: dict) -> dict:
        """Metadata of an out-of-fold probability file of this run (a fold's, or the run's with fold 'all')."""
        return {"kind": "oof", "run": self.name, "model": meta["model"], "fold": meta["fold"], "preset": meta["preset"],
                "seed": meta["seed"], "tta": 1, "fingerprint": meta["fingerprint"], "task": meta["task"]}

    def temp_files(self) -> Iterator[Path]:
        """Hidden temporary files of interrupted writes in this run (``.NAME.XXXX.tmp``)."""
        for directory in [self.path, *(d for d in self.path.iterdir() if d.is_dir() and not d.is_symlink())] if self.path.is_dir() else []:
            yield from (p for p in directory.glob(".*.tmp*") if p.is_file())


def data_inputs(data: str | Path | None) -> list[Path]:
    """The files of ``--data`` a command reads: the file itself, or a folder's top-level files (a run directory's
    own file names left out: a run kept inside its competition folder is not read as data)."""
    if data is None:
        return []
    path = Path(data)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    try:
        return [child for child in sorted(path.iterdir())
                if child.name not in (CONFIG, FOLDS, SUMMARY, OOF) and child.is_file()]
    except OSError:
        return []


class PredDir(_Folder):
    """A folder of probability files written by ``predict.py``.

    >>> PredDir("probs").fold("exp-1", 0).as_posix(), PredDir("probs").mean("exp-1", "csv").as_posix()
    ('probs/exp-1-fold0.npz', 'probs/exp-1-mean.csv')
    """

    def model(self, run: str, fold: int | str, fmt: str = "npz") -> Path:
        return self.path / f"{safe_name(run)}-{model_name(fold)}.{fmt}"

    def fold(self, run: str, fold: int | str, fmt: str = "npz") -> Path:
        return self.model(run, fold, fmt)

    def mean(self, run: str, fmt: str = "npz") -> Path:
        return self.path / f"{safe_name(run)}-mean.{fmt}"

    def oof(self, run: str, fmt: str = "npz") -> Path:
        return self.path / f"{safe_name(run)}-oof.{fmt}"


class TuneDir(_Folder):
    """The folder ``kfold tune --out`` writes: the study, one run directory per trial, the results.

    >>> t = TuneDir("runs/tune")
    >>> t.trials_csv.as_posix(), t.best_json.as_posix(), t.trial(7).as_posix()
    ('runs/tune/trials.csv', 'runs/tune/best.json', 'runs/tune/trials/0007')
    """

    STUDY_DB = "study.db"
    TRIALS_DIR = "trials"
    TRIALS_CSV = "trials.csv"
    BEST_JSON = "best.json"
    FIGURES = ("history.png", "importance.png", "params.png")
    # Optuna's trial states as trials.csv writes them
    STATE_WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
                   "WAITING": "waiting"}
    STATES = tuple(STATE_WORDS.values())

    @property
    def study_db(self) -> Path:
        return self.path / self.STUDY_DB

    @property
    def trials_dir(self) -> Path:
        return self.path / self.TRIALS_DIR

    def trial(self, number: int) -> Path:
        return self.trials_dir / f"{int(number):04d}"

    def trial_run(self, number: int, recorded: str = "") -> Path | None:
        """The run directory of trial ``number``: its folder in this search when it holds a run, else the absolute
        path ``trials.csv`` recorded (a relative one was relative to the working directory of the search, so it is
        not trusted); None for a trial that failed before it had a run directory."""
        own = self.trial(number)
        if (own / CONFIG).is_file():
            return own
        path = Path(recorded) if recorded else None
        return path if path is not None and path.is_absolute() and (path / CONFIG).is_file() else None

    @property
    def trials_csv(self) -> Path:
        return self.path / self.TRIALS_CSV

    @property
    def best_json(self) -> Path:
        return self.path / self.BEST_JSON

    @property
    def figures(self) -> list[Path]:
        return [self.path / name for name in self.FIGURES]

    def is_tune(self) -> bool:
        """A folder ``kfold tune`` wrote results to (its trials.csv is there)."""
        return self.trials_csv.is_file()

    def inputs(self) -> list[Path]:
        """The result files a reader of this folder reads (those present)."""
        return [p for p in (self.trials_csv, self.best_json, *self.figures) if p.is_file()]
