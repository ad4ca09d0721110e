"""Fast and foreign readers: submission CSVs at disk speed, probability files written by other tools.

* :func:`read_submission_fast` parses a plain ``Id,Category`` file (digits, one comma per line) with
  pandas' C parser straight into int64, after a byte-level check that the file holds nothing else. Any
  file that is not that simple (a BOM is fine; quotes, spaces, ``3.0``, blank lines, extra fields, ...)
  goes to :func:`kfold.files.submission.read_submission`, the strict reader whose messages name the line:
  both accept and reject exactly the same files, the fast one is only faster.
* :func:`read_foreign_csv`: ``Id,<class 0>,...,<class C-1>`` probabilities without kfold's ``#kfold-probs``
  line (class headers ``0..C-1`` are *positional*: they line up with any file of C classes).
* :func:`read_npy`: a NumPy ``.npy`` array of shape (N, C) whose Ids come from elsewhere (``--ids FILE``
  or the sample submission), classes positional.
* :func:`read_ids`: the Ids of ``--ids FILE``: a CSV with an ``Id`` column (a sample submission) or a 1-D
  integer ``.npy``.

Log-probabilities (every value <= 0, each row's exp() summing to 1) are read with ``log_probs=True``;
without it they are refused with a message that offers the flag. Nothing here imports torch.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError, param
from kfold.files.probs import ProbFile, from_log_probs, numeric_column, validate
from kfold.files.submission import HEADER, Submission, check_categories, check_unique_ids, read_submission

__all__ = ["check_ids_option", "csv_header", "is_positional", "is_submission_header", "read_foreign_csv",
           "read_ids", "read_npy", "read_submission_fast"]

_SUBMISSION_HEADER = ",".join(HEADER).encode()
_ALLOWED = b"0123456789,\n-"
_POSITIONAL = "positional_classes"  # meta key: class names are the column indices 0..C-1


def _fast_body(data: bytes) -> bytes | None:
    """The body of a plain ``Id,Category`` file (digits, one comma per line, nothing blank), else None."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data = data.replace(b"\r\n", b"\n")
    head, sep, body = data.partition(b"\n")
    if head != _SUBMISSION_HEADER or not sep or not body:
        return None
    if body.translate(None, _ALLOWED):  # any other byte: quotes, spaces, dots, letters, lone CR
        return None
    lines = body.count(b"\n") + (not body.endswith(b"\n"))
    if (body.count(b",") != lines or b"\n\n" in body or body.startswith((b"\n", b",")) or b",\n" in body
            or b"\n," in body or body.endswith(b",")):
        return None
    return body


def read_submission_fast(path: str | os.PathLike, num_classes: int | None = None) -> Submission:
    """:func:`read_submission` with the same checks and messages, parsing simple files several times faster."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return read_submission(path, num_classes)
    body = _fast_body(data)
    if body is None:
        return read_submission(path, num_classes)
    try:
        frame = pd.read_csv(io.BytesIO(body), header=None, names=HEADER, dtype=np.int64, engine="c")
    except (ValueError, OverflowError, pd.errors.ParserError):  # '-', '3-4', |Id| >= 2**63: the strict reader says where
        return read_submission(path, num_classes)
    ids, categories = frame[HEADER[0]].to_numpy(), frame[HEADER[1]].to_numpy()
    where = str(path)
    check_unique_ids(ids, where)
    check_categories(ids, categories, num_classes, where)
    return Submission(ids=ids, categories=categories, path=path)


def csv_header(path: str | os.PathLike) -> list[str]:
    """The fields of line 1 (BOM and line end stripped; no quoting expected in headers)."""
    with open(path, "rb") as fh:
        line = fh.readline(1 << 16)
    return line.lstrip(b"\xef\xbb\xbf").rstrip(b"\r\n").decode("utf-8", "replace").split(",")


def is_submission_header(fields: list[str]) -> bool:
    return [f.strip() for f in fields] == HEADER


def read_ids(path: str | os.PathLike) -> np.ndarray:
    """Row Ids for files that have none: a CSV with an ``Id`` column (e.g. the sample), or a 1-D ``.npy``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: Id file not found")
    if path.suffix.lower() == ".npy":
        try:
            ids = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise DataError(f"{path}: Ids must be a 1-D integer array, got shape {ids.shape} dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        check_unique_ids(ids, str(path), first_line=None)
        return ids
    try:
        frame = pd.read_csv(path, usecols=[HEADER[0]], dtype=str, na_filter=False, skip_blank_lines=False,
                            encoding="utf-8-sig")
    except ValueError:
        raise DataError(f"{path}: no '{HEADER[0]}' column (header {','.join(csv_header(path))})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    ids = numeric_column(frame, HEADER[0], str(path), "an integer Id", integer=True, first_line=2).astype(np.int64)
    check_unique_ids(ids, str(path))
    return ids


def _positional(classes: list[str]) -> bool:
    return classes == [str(i) for i in range(len(classes))]


def _finish(path: Path, ids: np.ndarray, values: np.ndarray, classes: list[str], meta: dict, log_probs: bool,
            line_offset: int | None) -> ProbFile:
    values = np.asarray(values)
    if values.dtype.kind != "f":
        values = values.astype(np.float32)
    if log_probs:
        values = from_log_probs(values, classes, ids, str(path), line_offset)
    probs = values.astype(np.float32, copy=False)
    validate(ids, probs, classes, None, meta, str(path), line_offset=line_offset)
    return ProbFile(ids=ids, probs=probs, classes=classes, meta=meta, path=path)


def read_foreign_csv(path: str | os.PathLike, ids: np.ndarray | None = None, log_probs: bool = False) -> ProbFile:
    """Probabilities ``Id,<class names>`` (or only class columns, with ``ids``) written by another tool."""
    path = Path(path)
    where = str(path)
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: not a readable CSV ({str(exc).strip().splitlines()[0]})") from None
    columns = [str(c).strip() for c in frame.columns]
    frame.columns = columns
    has_id = bool(columns) and columns[0] == HEADER[0]
    classes = columns[1:] if has_id else columns
    if len(classes) < 2 or HEADER[0] in classes:
        raise DataError(f"{where}: line 1: header '{','.join(columns)}' is neither a submission (Id,Category) nor "
                        f"probabilities (Id,<class 0>,...,<class C-1>)")
    if not has_id and ids is None:
        raise DataError(f"{where}: no Id column (header {','.join(columns[:4])}{',...' if len(columns) > 4 else ''}): "
                        f"give the row Ids with {param('ids')}=FILE or {param('sample')}")
    if frame.empty:
        raise DataError(f"{where}: no rows after the header")
    if has_id:
        file_ids = numeric_column(frame, HEADER[0], where, "an integer Id", integer=True, first_line=2).astype(np.int64)
    else:
        if len(ids) != len(frame):
            raise DataError(f"{where}: {len(frame)} rows but {param('ids')}/{param('sample')} gives {len(ids)} Ids")
        file_ids = np.asarray(ids, dtype=np.int64)
    if all(frame[c].dtype.kind == "f" for c in classes):
        values = frame[classes].to_numpy(dtype=np.float64)
    else:
        values = np.column_stack([numeric_column(frame, c, where, "a number", integer=False, first_line=2) for c in classes])
    meta = {"kind": "test", "source": "csv without #kfold-probs line", _POSITIONAL: _positional(classes)}
    return _finish(path, file_ids, values, classes, meta, log_probs, line_offset=2)


def read_npy(path: str | os.PathLike, ids: np.ndarray | None = None, log_probs: bool = False) -> ProbFile:
    """A (N, C) ``.npy`` of probabilities (or log-probabilities); the Ids come from ``ids`` (--ids / the sample)."""
    path = Path(path)
    where = str(path)
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{where}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
    if values.ndim != 2 or values.dtype.kind != "f":
        raise DataError(f"{where}: expected a 2-D float array (rows x classes), got shape {values.shape} "
                        f"dtype {values.dtype}")
    if ids is None:
        raise DataError(f"{where}: a .npy file holds no Ids: give them with {param('ids')}=FILE (e.g. the sample submission) "
                        f"or {param('sample')}")
    if len(ids) != values.shape[0]:
        raise DataError(f"{where}: {values.shape[0]} rows but {param('ids')}/{param('sample')} gives {len(ids)} Ids")
    classes = [str(i) for i in range(values.shape[1])]
    meta = {"kind": "test", "source": "npy", _POSITIONAL: True}
    return _finish(path, np.asarray(ids, dtype=np.int64), values, classes, meta, log_probs, line_offset=None)


def is_positional(item: ProbFile) -> bool:
    return bool(item.meta.get(_POSITIONAL, False))


def check_ids_option(ids_path, sample_path) -> None:
    if ids_path is not None and sample_path is not None:
        raise UsageError(f"give the Ids of .npy inputs with either {param('ids')} or {param('sample')}, not both")
