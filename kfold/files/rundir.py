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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kfold.errors import DataError

CONFIG, FOLDS, SUMMARY, OOF = "config.json", "folds.csv", "summary.json", "oof.npz"
META, WEIGHTS, CHECKPOINT, METRICS = "meta.json", "model.safetensors", "checkpoint.pt", "metrics.csv"
LEARNING_CURVE, CONFUSION_CSV, CONFUSION_PNG = "learning_curve.png", "confusion.csv", "confusion.png"
FULL = "full"
PROBS_SUFFIX = ".probs.npz"  # the probabilities written beside an ensemble's submission CSV


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
class RunDir:
    """A run directory: every path in it comes from here.

    >>> run = RunDir("runs/exp 1")
    >>> run.name, run.weights(2).as_posix(), run.meta("full").as_posix()
    ('exp-1', 'runs/exp 1/fold2/model.safetensors', 'runs/exp 1/full/meta.json')
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

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
        if not self.is_run():
            raise DataError(f"{self.path}: not a kfold run directory (no {CONFIG})")
        return self.read_json(self.config)

    def defined_folds(self) -> int:
        """k of the run (from its config)."""
        k = self.read_config().get("k")
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise DataError(f"{self.config}: bad k {k!r}")
        return k

    def finished(self, k: int) -> list[int]:
        return [fold for fold in range(k) if self.is_done(fold)]

    def models(self, allow_incomplete: bool = False) -> list[int | str]:
        """The finished models the run defines: fold 0..k-1 (all of them unless ``allow_incomplete``), then ``full``.

        Directories the run does not define (``fold0-old/``, ``fold7`` of a 5-fold run) are never counted.
        """
        if not self.is_run():
            raise DataError(f"{self.path}: not a kfold run directory (no {CONFIG})")
        if not any(self.path.glob(f"fold*/{META}")) and not self.is_done(FULL):
            raise DataError(f"{self.path}: no finished models (train first, or --resume an interrupted run)")
        k = self.defined_folds()
        done = self.finished(k)
        missing = [fold for fold in range(k) if fold not in done]
        if missing and not allow_incomplete:
            raise DataError(f"{self.path}: folds {','.join(map(str, missing))} of {k} are not finished "
                            f"(train.py --resume finishes them; --allow-incomplete predicts with the finished ones)")
        found: list[int | str] = list(done)
        if self.is_done(FULL):
            found.append(FULL)
        if not found:
            raise DataError(f"{self.path}: no finished models (train first, or --resume an interrupted run)")
        return found

    def inputs(self) -> list[Path]:
        """The run's own files that later steps read (config, folds, summary, out-of-fold files, every model's
        metadata, weights, metrics and checkpoint): the inputs an output guard compares outputs with."""
        files = [self.config, self.folds_csv, self.summary, self.oof]
        if self.path.is_dir():
            for folder in sorted(self.path.glob("fold*")) + [self.model_dir(FULL)]:
                files += [folder / name for name in (META, WEIGHTS, METRICS, OOF, CHECKPOINT)]
        return [path for path in files if path.exists()]

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


@dataclass(frozen=True)
class PredDir:
    """A folder of probability files written by ``predict.py``.

    >>> PredDir("probs").fold("exp-1", 0).as_posix(), PredDir("probs").mean("exp-1", "csv").as_posix()
    ('probs/exp-1-fold0.npz', 'probs/exp-1-mean.csv')
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    def model(self, run: str, fold: int | str, fmt: str = "npz") -> Path:
        return self.path / f"{safe_name(run)}-{model_name(fold)}.{fmt}"

    def fold(self, run: str, fold: int | str, fmt: str = "npz") -> Path:
        return self.model(run, fold, fmt)

    def mean(self, run: str, fmt: str = "npz") -> Path:
        return self.path / f"{safe_name(run)}-mean.{fmt}"

    def oof(self, run: str, fmt: str = "npz") -> Path:
        return self.path / f"{safe_name(run)}-oof.{fmt}"
