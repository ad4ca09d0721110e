"""The ensembles a finished ``kfold run`` wrote, found again from its files (for ``kfold track sync``).

``kfold run`` writes each ensemble's submission to ``SUBMISSIONS/{run}-{method}.csv``, its agreement report to
``RUN/report-{method}/`` (``inputs.csv`` names the probability files it combined, in ``RUN/probs/``) and, with a
solution, ``RUN/leaderboard/leaderboard.csv`` (the submission's path as it was given, its local Public/Private).
``past_ensembles`` reads these back, so that a run made before tracking existed (or while the store was down)
gets its ensembles logged afterwards. Only what can be checked is returned: a report whose submission file is
found and whose every input file exists; the rest is listed with the reason it was skipped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kfold.files.rundir import RunDir, safe_name

__all__ = ["PastEnsemble", "past_ensembles"]

REPORT_PREFIX = "report-"


@dataclass
class PastEnsemble:
    """One ensemble of a run: its submission, method, input files and local scores (None: not scored)."""

    submission: Path
    method: str
    inputs: list[Path]
    public: float | None = None
    private: float | None = None
    report: Path | None = None


@dataclass
class Found:
    """``ensembles`` found whole; ``skipped``: (report folder, why) of the others."""

    ensembles: list[PastEnsemble] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _score(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _board(run: RunDir) -> pd.DataFrame | None:
    path = run.leaderboard / "leaderboard.csv"
    try:
        table = pd.read_csv(path, dtype={"submission": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return table if {"submission", "public", "private"} <= set(table.columns) else None


def _candidates(run: RunDir, name: str, board: pd.DataFrame | None, submissions: Path | None) -> list[Path]:
    """Where the submission ``name`` may be: the folder given, the leaderboard's paths (relative to the working
    directory then: tried from here, the project folder above ``runs/`` and the runs folder), ``submissions/``."""
    roots = [Path.cwd(), run.path.resolve().parent.parent, run.path.resolve().parent]
    found = [submissions / name] if submissions is not None else []
    if board is not None:
        for text in board["submission"].dropna():
            if Path(text).name == name:
                found += [Path(text)] if Path(text).is_absolute() else [root / text for root in roots]
    found += [root / "submissions" / name for root in roots]
    return found


def past_ensembles(run_dir: str | Path, submissions: str | Path | None = None) -> Found:
    """The ensembles of the run directory ``run_dir`` that can be found whole (see the module docstring).

    Parameters
    ----------
    run_dir : str or Path
        A ``kfold run`` directory (its ``report-{method}/`` folders).
    submissions : str or Path, optional
        The folder the submissions were written to, when not ``submissions/`` beside ``runs/`` or the path the
        leaderboard recorded.

    Returns
    -------
    Found
        The ensembles (sorted by method) and the report folders skipped, each with its reason.

    Examples
    --------
    >>> past_ensembles("no/such/run").ensembles
    []
    """
    run = RunDir(run_dir)
    found = Found()
    reports = sorted(p for p in run.path.glob(REPORT_PREFIX + "*") if p.is_dir()) if run.path.is_dir() else []
    if not reports:
        return found
    board = _board(run)
    for report in reports:
        method = report.name[len(REPORT_PREFIX):]
        name = f"{safe_name(run.name)}-{method}.csv"
        where = next((p for p in _candidates(run, name, board, None if submissions is None else Path(submissions))
                      if p.is_file()), None)
        if where is None:
            found.skipped.append((report, f"its submission {name} was not found (not where the leaderboard recorded it, nor "
                                          f"in submissions/ beside the runs: give its folder with --submissions)"))
            continue
        try:
            names = pd.read_csv(report / "inputs.csv", dtype={"input": str})["input"].dropna().tolist()
        except (OSError, KeyError, ValueError, pd.errors.ParserError):
            found.skipped.append((report, "its inputs.csv cannot be read"))
            continue
        odd = [text for text in names if text != Path(text).name or text in (".", "..")]
        if odd:
            found.skipped.append((report, f"input {odd[0]!r} is not a file name"))
            continue
        inputs = [run.probs.path / text for text in names]
        missing = [p.name for p in inputs if not p.is_file()]
        if not names or missing:
            found.skipped.append((report, f"input {missing[0] if missing else '(none)'} is missing from {run.probs.path}"))
            continue
        public = private = None
        if board is not None:
            rows = board[board["submission"].map(lambda text: Path(str(text)).name == name)]
            if len(rows):
                public, private = _score(rows.iloc[0]["public"]), _score(rows.iloc[0]["private"])
        found.ensembles.append(PastEnsemble(where, method, inputs, public, private, report))
    return found
