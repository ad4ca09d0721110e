"""The local submission log: one CSV per competition, one row per upload, rewritten atomically. Its format only:
read strictly, validate, append (the provenance and the scores in it come from ``kfold.flows.kaggle_loop``).

Columns (``LOG_COLUMNS``, in this order; columns a user added after them are kept):

=================  ==========================================================================================
time               UTC time of the upload (ISO 8601)
competition        the competition's slug
file               the submission CSV as given on the command line
sha256             its SHA-256 (the exact bytes uploaded)
rows               its number of rows
message            the submission message (``-m``)
ref                Kaggle's submission ref (joins the log with Kaggle's list); empty when the server gave none
method             ensemble method (mean/geomean/vote) from the ``.probs.npz`` beside the CSV, if any
inputs             the probability files the ensemble combined (``;``-separated)
weights            their weights (``;``-separated)
runs               the training runs behind those files (run names, from the files' metadata)
presets, seeds     the runs' presets and seeds
folds              the folds of the probability files (``mean``, ``0``, ``full``, ...)
local_cv           local cross-validation accuracy: OOF accuracy of the run, or of the same ensemble of the
                   runs' out-of-fold predictions when several runs made it; empty when unknown
local_cv_source    how ``local_cv`` was obtained
local_public       accuracy on the Public rows of a local solution file (``--solution``), when given
local_private      accuracy on its Private rows
solution           that solution file
kernel             code submissions only: the notebook Kaggle ran (``OWNER/KERNEL_SLUG``)
version            code submissions only: the kernel's version whose output was submitted
=================  ==========================================================================================

``kernel`` and ``version`` (``CODE_COLUMNS``) are written once a code submission is logged: a log without them
(every log written before code submissions, or one of CSV uploads only) reads as before, and a CSV upload leaves
them empty.

Reading is strict, as for submissions (``kfold.files.submission.read_csv_frame``): UTF-8, the header, the
number of fields on every line (a trailing comma or a missing field is refused with the file line), and the
type of every cell (a time, a SHA-256, whole numbers, finite numbers: ``inf`` and ``nan`` are refused), each
error one line naming file, line and column. A log that does not read cleanly is never rewritten. Nothing
here imports torch.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from kfold.errors import DataError
from kfold.files.atomic import write_text
from kfold.files.csvtext import parse_csv
from kfold.files.submission import read_csv_frame

LOG_COLUMNS = ["time", "competition", "file", "sha256", "rows", "message", "ref", "method", "inputs", "weights", "runs",
               "presets", "seeds", "folds", "local_cv", "local_cv_source", "local_public", "local_private", "solution"]
CODE_COLUMNS = ["kernel", "version"]
LOG_DIR = Path("submissions") / "log"
FIRST_DATA_LINE = 2

# what each column holds: one table for the reader and for the rows kfold appends
LOG_TYPES = {"time": "time", "competition": "required", "file": "required", "sha256": "sha256", "rows": "count",
             "message": "text", "ref": "ref", "method": "text", "inputs": "text", "weights": "numbers",
             "runs": "text", "presets": "text", "seeds": "text", "folds": "text", "local_cv": "number",
             "local_cv_source": "text", "local_public": "number", "local_private": "number", "solution": "text",
             "kernel": "kernel", "version": "version"}
_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_WHOLE = re.compile(r"^[0-9]{1,18}$")
_KERNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def default_log_path(competition: str) -> Path:
    return LOG_DIR / f"{competition}.csv"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty_log() -> pd.DataFrame:
    return pd.DataFrame(columns=LOG_COLUMNS, dtype=str)


def read_log(path: str | os.PathLike) -> pd.DataFrame:
    """The log as validated strings; a missing file is an empty log. Anything else that is not a clean log
    (a folder, a symbolic link, not UTF-8, empty, a bad header, a line with too many or too few fields, a cell
    of the wrong type, a ref twice) raises DataError naming the file, line and column."""
    path = Path(path)
    if path.is_symlink():
        raise DataError(f"{path}: the submission log is a symbolic link; kfold rewrites the log in place, "
                        f"give the file it points to")
    if not path.exists():
        return empty_log()
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a submission log")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file, not a submission log")
    frame = read_csv_frame(path, "submission log", pad_short=False)
    check_log(frame, str(path))
    return frame


def check_log(frame: pd.DataFrame, where: str, first_line: int = FIRST_DATA_LINE) -> None:
    """The header, then every cell's type, then refs unique; ``first_line`` is the file line of row 0."""
    columns = [str(c) for c in frame.columns]
    if columns[:len(LOG_COLUMNS)] != LOG_COLUMNS:
        missing = [c for c in LOG_COLUMNS if c not in columns]
        detail = f"column(s) {', '.join(missing)} missing" if missing else "its columns are out of order"
        raise DataError(f"{where}: line 1: not a submission log ({detail}; the header must start with "
                        f"'{','.join(LOG_COLUMNS)}')")
    for position, name in enumerate(columns):
        if not name.strip():
            raise DataError(f"{where}: line 1: column {position + 1} has no name"
                            + (" (a trailing comma?)" if position == len(columns) - 1 else ""))
    for column, kind in LOG_TYPES.items():
        if column in CODE_COLUMNS and column not in columns:  # a log without code submissions
            continue
        for row, cell in enumerate(frame[column]):
            problem = _cell_problem(str(cell), kind)
            if problem:
                raise DataError(f"{where}: line {row + first_line}, column '{column}': {problem}")
    seen: dict[str, int] = {}
    for row, ref in enumerate(frame["ref"]):
        if ref in seen:
            raise DataError(f"{where}: line {row + first_line}, column 'ref': ref {ref} is logged twice "
                            f"(also line {seen[ref] + first_line})")
        if ref:
            seen[ref] = row


def _cell_problem(cell: str, kind: str) -> str | None:
    """Why ``cell`` cannot be a value of ``kind``; None when it can."""
    shown = repr(cell[:40] + ("..." if len(cell) > 40 else ""))
    if kind == "text":
        return None
    if kind in ("required", "time", "sha256", "count") and not cell.strip():
        return "empty, expected a value"
    if kind == "time":
        try:
            datetime.fromisoformat(cell[:-1] + "+00:00" if cell.endswith("Z") else cell)
        except ValueError:
            return f"{shown} is not an ISO 8601 time"
    elif kind == "sha256" and not _SHA256.match(cell):
        return f"{shown} is not a SHA-256 (64 hexadecimal digits)"
    elif kind == "count" and not _WHOLE.match(cell):
        return f"{shown} is not a whole number of rows"
    elif kind == "kernel" and cell and not _KERNEL.match(cell):
        return f"{shown} is not a Kaggle kernel (OWNER/KERNEL_SLUG)"
    elif kind == "version" and cell and not (_WHOLE.match(cell) and int(cell) > 0):
        return f"{shown} is not a kernel version (a whole number from 1)"
    elif kind == "ref" and cell and not _WHOLE.match(cell):
        return f"{shown} is not a Kaggle submission ref (a whole number)"
    elif kind == "number" and cell and not _finite(cell):
        return f"{shown} is not a finite number"
    elif kind == "numbers" and cell and not all(_finite(part) for part in cell.split(";")):
        return f"{shown} is not a ';'-separated list of finite numbers"
    return None


def _finite(text: str) -> bool:
    return bool(_NUMBER.match(text.strip())) and math.isfinite(float(text))


def log_row(values: dict) -> dict[str, str]:
    """The cells of one log row (LOG_COLUMNS order, then CODE_COLUMNS for a code submission) from ``values``:
    numbers with 6 decimals, lists ';'-joined, line breaks flattened (a log line is one line)."""
    code = any(_cell(values.get(column, "")) for column in CODE_COLUMNS)
    return {column: _cell(values.get(column, "")) for column in LOG_COLUMNS + (CODE_COLUMNS if code else [])}


def check_append(path: str | os.PathLike, values: dict) -> pd.DataFrame:
    """Read the log strictly and check that ``values`` makes a valid row: what ``append_log`` will do, without
    writing. Returns the log."""
    path = Path(path)
    frame = read_log(path)
    check_log(pd.DataFrame([log_row(values)], dtype=str), f"{path}: the new row", first_line=len(frame) + 2)
    return frame


def append_log(path: str | os.PathLike, values: dict) -> None:
    """Append one row: the log is read strictly (a log that did not read cleanly is never rewritten), the new
    text is checked to read back, then written to a temporary file and renamed into place."""
    path = Path(path)
    frame = check_append(path, values)
    new = pd.DataFrame([log_row(values)], dtype=str)
    frame = pd.concat([frame, new], ignore_index=True).fillna("")  # columns a user added: kept, empty in the new row
    text = frame.to_csv(index=False, lineterminator="\n")
    check_log(parse_csv(text, str(path), pad_short=False), str(path))  # never write a log that would not read back
    write_text(path, text)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    if isinstance(value, (list, tuple)):
        return ";".join(_cell(v) for v in value)
    return " ".join(str(value).splitlines()) if ("\n" in str(value) or "\r" in str(value)) else str(value)
