"""Probability files: one row of class probabilities per image, plus metadata.

Two forms, chosen by suffix:

* ``.csv`` — self-describing text. Line 1 is ``#kfold-probs {json}`` (the metadata, with the
  class names under ``"classes"``), line 2 the header ``Id,<class 0>,...,<class C-1>[,label]``,
  then one row per image.
* ``.npz`` — ``np.savez`` arrays ``ids`` (int64, or text for a competition whose Ids are strings), ``probs`` (float32), ``classes`` (str),
  ``meta`` (JSON string) and optionally ``labels`` (int64). Always read with
  ``allow_pickle=False``; stored uncompressed so that large files load at disk speed.

Column ``i`` holds the probability of class ``i`` (the competition's class values are the class names; the
metadata's ``schema`` names the Id column, which the CSV form uses as its first column). Out-of-fold files
(``meta["kind"] == "oof"``) carry the true labels. Every read is validated and a bad file
raises one ``DataError`` naming the file, the row (file line for CSV), the Id and the column.
Nothing here imports torch.
"""
from __future__ import annotations

import json
import mmap
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from kfold.files.atomic import atomic_path, write_text
from kfold.errors import DataError, UsageError, param
from kfold.files.schema import ID_COLUMN, LABEL_COLUMN

RESERVED = (ID_COLUMN, LABEL_COLUMN)

__all__ = ["CHUNK_ROWS", "from_log_probs", "is_multilabel", "is_prob_csv", "KINDS", "looks_like_log_probs", "MAGIC",
           "numeric_column", "ProbFile", "read_probs", "ROW_SUM_TOLERANCE", "SUFFIXES", "validate", "write_probs"]

MAGIC = "#kfold-probs"
SUFFIXES = (".csv", ".npz")
ROW_SUM_TOLERANCE = 1e-3
KINDS = ("test", "oof")
_CSV_FIRST_DATA_LINE = 3  # line 1 metadata, line 2 header
CHUNK_ROWS = 8192  # rows per pass of the value checks and of the ensemble accumulators


@dataclass
class ProbFile:
    """Class probabilities for a set of image Ids, with their metadata."""

    ids: np.ndarray
    probs: np.ndarray
    classes: list[str]
    meta: dict
    labels: np.ndarray | None = None
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "test"))

    def predictions(self) -> np.ndarray:
        """Predicted class per row (argmax; the lowest index wins exact ties)."""
        return self.probs.argmax(axis=1).astype(np.int64)

    def name(self) -> str:
        return self.path.name if self.path is not None else str(self.meta.get("run", "probs"))


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"{path}: probability files must end in .csv or .npz, not '{path.suffix}'")
    return suffix


def is_prob_csv(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the ``#kfold-probs`` line (as opposed to a submission CSV)."""
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC) + 3)
    return head.lstrip(b"\xef\xbb\xbf").startswith(MAGIC.encode())


def _where(where: str, ids: np.ndarray, row: int, line_offset: int | None) -> str:
    """Describe row ``row`` as 'file: line L (Id X)' for CSV or 'file: row R (Id X)' for npz."""
    if line_offset is None:
        return f"{where}: row {row} (Id {ids[row]})"
    return f"{where}: line {row + line_offset} (Id {ids[row]})"


def validate(ids: np.ndarray, probs: np.ndarray, classes: list[str], labels: np.ndarray | None,
             meta: dict, where: str, line_offset: int | None = None) -> None:
    """Check shapes, values and metadata; raise DataError naming the first problem."""
    if probs.ndim != 2:
        raise DataError(f"{where}: probabilities must be a 2-D array (rows x classes), got shape {probs.shape}")
    n_rows, n_cols = probs.shape
    if ids.shape != (n_rows,):
        raise DataError(f"{where}: {ids.shape[0] if ids.ndim else 0} Ids for {n_rows} probability rows")
    if n_cols != len(classes):
        raise DataError(f"{where}: {n_cols} probability columns but {len(classes)} class names in the metadata")
    if n_cols < 2:
        raise DataError(f"{where}: need at least 2 classes, got {n_cols}")
    reserved = [name for name in classes if name in (_id_column(meta), LABEL_COLUMN)]
    if reserved:
        raise DataError(f"{where}: class name '{reserved[0]}' collides with the '{reserved[0]}' column of probability "
                        "CSV files; rename the class")
    if len(set(classes)) != len(classes):
        dup = pd.Series(classes)[pd.Series(classes).duplicated()].iloc[0]
        raise DataError(f"{where}: class name '{dup}' appears twice")
    kind = meta.get("kind", "test")
    if kind not in KINDS:
        raise DataError(f"{where}: metadata kind '{kind}' is not one of {', '.join(KINDS)}")
    if n_rows == 0:
        raise DataError(f"{where}: no rows")

    multi = is_multilabel(meta)
    for start in range(0, n_rows, CHUNK_ROWS):  # one cache-friendly pass; the slow search only on failure
        chunk = probs[start:start + CHUNK_ROWS]
        if multi:  # one independent probability per tag: each in [0, 1], no sum rule
            if not (chunk.min() >= 0 and chunk.max() <= 1):  # NaN fails both
                _raise_bad_tag_values(ids, probs, classes, where, line_offset, start)
            continue
        sums = chunk.sum(axis=1, dtype=np.float32 if chunk.dtype == np.float32 else np.float64)
        if not (chunk.min() >= 0 and np.all(np.abs(sums - 1.0) <= ROW_SUM_TOLERANCE)):  # NaN fails both
            _raise_bad_values(ids, probs, classes, where, line_offset, start)
    dup = pd.Index(ids).duplicated()
    if dup.any():
        row = int(np.argmax(dup))
        raise DataError(f"{_where(where, ids, row, line_offset)}: duplicate Id {ids[row]}")

    if labels is not None and multi:
        if labels.shape != (n_rows, n_cols) or not np.isin(labels, (0, 1)).all():
            raise DataError(f"{where}: multi-label true labels must be an {n_rows} x {n_cols} array of 0/1, got shape "
                            f"{labels.shape}")
    elif labels is not None:
        if labels.shape != (n_rows,):
            raise DataError(f"{where}: {labels.shape[0] if labels.ndim else 0} labels for {n_rows} rows")
        bad = (labels < 0) | (labels >= n_cols)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{_where(where, ids, row, line_offset)}, column 'label': "
                            f"label {labels[row]} is outside 0..{n_cols - 1}")
    elif kind == "oof":
        raise DataError(f"{where}: out-of-fold probability file (kind 'oof') without true labels")


def _raise_bad_values(ids, probs, classes, where, line_offset, start: int = 0) -> NoReturn:
    """Name the first non-finite, negative or badly summing row at or after ``start``."""
    chunk = np.asarray(probs[start:], dtype=np.float64)
    for bad, what in ((~np.isfinite(chunk), "is not a finite number"), (chunk < 0, "is negative")):
        if bad.any():
            row, col = np.argwhere(bad)[0]
            if what == "is negative" and looks_like_log_probs(probs):
                raise DataError(f"{where}: values look like log-probabilities (all <= 0, each row's exp() sums to 1): "
                                f"pass {param('log_probs')}=True to read them")
            raise DataError(f"{_where(where, ids, start + row, line_offset)}, column '{classes[col]}': "
                            f"probability {probs[start + row, col]!s} {what}")
    sums = chunk.sum(axis=1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    row = int(np.argmax(off))
    raise DataError(f"{_where(where, ids, start + row, line_offset)}: probabilities sum to {sums[row]:.6g}, "
                    f"not 1 (tolerance {ROW_SUM_TOLERANCE:g})")


def is_multilabel(meta: dict) -> bool:
    """A multi-label task's file (its schema's target is ``tags`` or ``multilabel-probs``): one sigmoid per tag."""
    schema = meta.get("schema") if isinstance(meta, dict) else None
    return isinstance(schema, dict) and schema.get("target") in ("tags", "multilabel-probs")


def _raise_bad_tag_values(ids, probs, classes, where, line_offset, start: int) -> NoReturn:
    chunk = np.asarray(probs[start:], dtype=np.float64)
    for bad, what in ((~np.isfinite(chunk), "is not a finite number"), (chunk < 0, "is negative"),
                      (chunk > 1, "is above 1")):
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(f"{_where(where, ids, start + row, line_offset)}, column '{classes[col]}': "
                            f"probability {probs[start + row, col]!s} {what}")
    raise DataError(f"{where}: a probability outside [0, 1]")


def looks_like_log_probs(values: np.ndarray) -> bool:
    """True when every value is <= 0 (or -inf) and each row's exp() sums to 1: natural-log probabilities."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).any() or (values > 0).any():
        return False
    return bool(np.all(np.abs(np.exp(values).sum(axis=1) - 1.0) <= ROW_SUM_TOLERANCE))


def from_log_probs(values: np.ndarray, classes: list[str], ids: np.ndarray, where: str,
                   line_offset: int | None = None) -> np.ndarray:
    """exp() of natural-log probabilities (``--log-probs``); a positive or NaN value is refused by name."""
    values = np.asarray(values)
    bad = np.isnan(values) | (values > 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{_where(where, ids, row, line_offset)}, column '{classes[col]}': value {values[row, col]!s} "
                        f"is not a log-probability ({param('log_probs')}=True given)")
    return np.exp(values, dtype=np.float32) if values.dtype == np.float32 else np.exp(values).astype(np.float32)


def _id_column(meta: dict) -> str:
    """The Id column's name: the competition's (``meta["schema"]["id_column"]``) or kfold's own."""
    schema = meta.get("schema") if isinstance(meta, dict) else None
    column = schema.get("id_column") if isinstance(schema, dict) else None
    return column if isinstance(column, str) and column else ID_COLUMN


def _id_kind(meta: dict) -> str:
    schema = meta.get("schema") if isinstance(meta, dict) else None
    return "str" if isinstance(schema, dict) and schema.get("id_kind") == "str" else "int"


def _as_ids(values, where: str) -> np.ndarray:
    """int64 Ids, or text Ids (a competition whose Ids are strings) kept exactly."""
    array = np.asarray(values)
    if array.dtype.kind == "U":
        if array.ndim == 1 and (np.char.str_len(array) == 0).any():
            row = int(np.argmax(np.char.str_len(array) == 0))
            raise DataError(f"{where}: row {row}: empty Id")
        return array
    return _as_int_array(values, "Ids", where)


def _as_int_array(values, name: str, where: str) -> np.ndarray:
    from kfold.files.csvtext import int64_array

    return int64_array(values, name, where)


def _json_default(value):
    """numpy scalars become Python numbers, anything else (paths, dates) its string."""
    return value.item() if isinstance(value, np.generic) else str(value)


def write_probs(path: str | os.PathLike, ids, probs, classes, meta: dict, labels=None, transaction=None) -> None:
    """Validate and write a probability file atomically; the format follows the suffix (.csv/.npz)."""
    path = Path(path)
    suffix = _suffix(path)
    where = str(path)
    ids = _as_ids(ids, where)
    probs = np.asarray(probs, dtype=np.float32)
    classes = [str(c) for c in classes]
    if labels is not None and np.ndim(labels) == 2:
        labels = np.asarray(labels).astype(np.int64)  # multi-label: (rows, tags) of 0/1
    else:
        labels = None if labels is None else _as_int_array(labels, "labels", where)
    meta = {k: v for k, v in dict(meta).items() if k != "classes"}
    validate(ids, probs, classes, labels, meta, where)
    meta_json = json.dumps(meta, default=_json_default, ensure_ascii=False)

    if suffix == ".npz":
        arrays = {"ids": ids, "probs": probs, "classes": np.array(classes, dtype=str), "meta": np.array(meta_json)}
        if labels is not None:
            arrays["labels"] = labels
        with atomic_path(path, transaction=transaction) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
        return

    frame = pd.DataFrame(probs, columns=classes)
    frame.insert(0, _id_column(meta), ids)
    if labels is not None:
        frame[LABEL_COLUMN] = labels if labels.ndim == 1 else [" ".join(map(str, np.flatnonzero(r))) for r in labels]
    header = MAGIC + " " + json.dumps({**meta, "classes": classes}, default=_json_default, ensure_ascii=False) + "\n"
    write_text(path, header + frame.to_csv(index=False, float_format="%.7g", lineterminator="\n"), transaction)


def read_probs(path: str | os.PathLike, log_probs: bool = False) -> ProbFile:
    """Read and validate a probability file (.csv or .npz); ``log_probs``: the file holds natural-log probabilities."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise DataError(f"{path}: probability file not found")
    reader = _read_npz if suffix == ".npz" else _read_csv
    return reader(path, log_probs)


def _mapped_member(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray | None:
    """The array ``name`` of an uncompressed .npz, memory-mapped read-only (no copy); None when it cannot be.

    The size the array header claims is checked against the file before anything is mapped."""
    try:
        info = archive.getinfo(name + ".npy")
    except KeyError:
        return None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        fh.seek(start)
        try:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
        except ValueError:
            return None
        offset = fh.tell()
        if dtype.hasobject or fortran:
            return None
        nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if offset + nbytes > min(start + info.file_size, os.fstat(fh.fileno()).st_size) or nbytes == 0:
            return None  # truncated or lying header: np.load gives the precise message
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return np.ndarray(shape, dtype=dtype, buffer=mapped, offset=offset)


def _read_npz(path: Path, log_probs: bool = False) -> ProbFile:
    where = str(path)
    if not zipfile.is_zipfile(path):
        raise DataError(f"{where}: not a readable .npz file (not a zip archive)")
    from kfold.files.npyguard import check_arrays

    check_arrays(path)  # truncated arrays and headers claiming more than the file holds, before any allocation
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"ids", "probs", "classes", "meta"} - set(data.files)
            if missing:
                raise DataError(f"{where}: not a kfold probability file, missing array(s) {', '.join(sorted(missing))}")
            probs = _mapped_member(path, data.zip, "probs")  # large files: no copy, read at page-cache speed
            ids, classes, meta_json = data["ids"], data["classes"], data["meta"]
            if probs is None:
                probs = data["probs"]
            labels = data["labels"] if "labels" in data.files else None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{where}: not a readable .npz file ({exc})") from None
    except ValueError as exc:  # object arrays are refused because allow_pickle=False; anything else is damage
        if "allow_pickle" in str(exc):
            raise DataError(f"{where}: contains pickled object arrays, which kfold never loads") from None
        raise DataError(f"{where}: truncated or damaged array ({' '.join(str(exc).split())[:200]})") from None
    try:
        meta = json.loads(str(meta_json))
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: metadata must be a JSON object")
    if probs.dtype.kind != "f":
        raise DataError(f"{where}: probabilities must be floating point, got dtype {probs.dtype}")
    ids = _as_ids(ids, where)
    labels = None if labels is None else _as_int_array(labels, "labels", where)
    classes = [str(c) for c in np.atleast_1d(classes)]
    if log_probs and probs.ndim == 2:
        probs = from_log_probs(probs, classes, ids, where)
    probs = probs.astype(np.float32, copy=False)
    validate(ids, probs, classes, labels, meta, where)
    return ProbFile(ids=ids, probs=probs, classes=classes, meta=meta, labels=labels, path=path)


def numeric_column(frame: pd.DataFrame, column: str, where: str, what: str, integer: bool,
                   first_line: int = _CSV_FIRST_DATA_LINE) -> np.ndarray:
    """Column of a CSV read with ``na_filter=False`` as float64.

    A blank line, a blank cell, a cell that is not a number, or (``integer``) not a whole number
    raises DataError naming the file line (``first_line`` is the line of the first data row).
    """
    series = frame[column]
    if integer and series.dtype.kind not in "iuf":  # exact: no rounding through float64, no wrap-around
        from kfold.files.csvtext import integer_column

        def out_of_range(row: int) -> NoReturn:
            raise DataError(f"{where}: line {row + first_line}, column '{column}': '{str(series.iloc[row]).strip()}' "
                            "is outside the signed 64-bit integer range")
        return integer_column(series, lambda row: _raise_cell(frame, row, column, where, what, first_line), out_of_range)
    if series.dtype.kind in "iuf":
        values = series.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        literal_nan = series.str.strip().str.lower().isin(["nan", "-nan", "+nan"]).to_numpy()
        bad = np.isnan(values) & ~literal_nan
        if bad.any():
            _raise_cell(frame, int(np.argmax(bad)), column, where, what, first_line)
    if integer:
        ok = np.isfinite(values) & (values == np.round(values))
        if not ok.all():
            _raise_cell(frame, int(np.argmax(~ok)), column, where, what, first_line)
    return values


def _raise_cell(frame: pd.DataFrame, row: int, column: str, where: str, what: str, first_line: int) -> NoReturn:
    line = row + first_line
    cells = frame.iloc[row]
    if (cells.isna() | (cells.astype(str).str.strip() == "")).all():
        raise DataError(f"{where}: line {line} is blank")
    value = frame[column].iloc[row]
    value = "" if pd.isna(value) else str(value).strip()
    shown = "a blank value" if value == "" else f"'{value}'"
    raise DataError(f"{where}: line {line}, column '{column}': {shown} is not {what}")


def _tag_index_cells(cells: pd.Series, n_tags: int, where: str) -> np.ndarray:
    """A multi-label file's label column: the row's tag indices joined by spaces (``0 3``) -> (rows, tags) 0/1."""
    out = np.zeros((len(cells), n_tags), dtype=np.int64)
    for row, cell in enumerate(cells.astype(str)):
        for part in cell.split():
            if not part.isdigit() or int(part) >= n_tags:
                raise DataError(f"{where}: line {row + _CSV_FIRST_DATA_LINE}, column '{LABEL_COLUMN}': {part!r} is not a "
                                f"tag index 0..{n_tags - 1}")
            out[row, int(part)] = 1
    return out


def _read_csv(path: Path, log_probs: bool = False) -> ProbFile:
    where = str(path)
    with open(path, encoding="utf-8-sig") as fh:
        first = fh.readline().rstrip("\r\n")
        if not first.startswith(MAGIC):
            raise DataError(f"{where}: line 1 must start with '{MAGIC}' (is this a submission CSV, not a probability file?)")
        try:
            meta = json.loads(first[len(MAGIC):])
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: line 1: metadata is not valid JSON ({exc.msg})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("classes"), list):
            raise DataError(f"{where}: line 1: metadata must be a JSON object with a 'classes' list")
        classes = [str(c) for c in meta.pop("classes")]
        reserved = [name for name in classes if name in (_id_column(meta), LABEL_COLUMN)]
        if reserved:
            raise DataError(f"{where}: line 1: class name '{reserved[0]}' collides with the '{reserved[0]}' column; "
                            "rename the class")
        from kfold.files.csvtext import parse_csv

        frame = parse_csv(fh.read(), where, first_line=2)

    id_column = _id_column(meta)
    expected = [id_column, *classes]
    columns = list(frame.columns)
    has_labels = columns == [*expected, LABEL_COLUMN]
    if columns != expected and not has_labels:
        raise DataError(f"{where}: line 2: header {','.join(columns)} does not match the metadata classes "
                        f"(expected {','.join(expected)}[,label])")

    if _id_kind(meta) == "str":
        from kfold.files.schema import parse_ids

        ids = parse_ids(frame[id_column], where, id_column, "str", _CSV_FIRST_DATA_LINE)
    else:
        ids = numeric_column(frame, id_column, where, "an integer Id", integer=True).astype(np.int64)
    values = np.column_stack([numeric_column(frame, c, where, "a number", integer=False) for c in classes])
    labels = None
    if has_labels and is_multilabel(meta):
        labels = _tag_index_cells(frame[LABEL_COLUMN], len(classes), where)
    elif has_labels:
        labels = numeric_column(frame, LABEL_COLUMN, where, "an integer label", integer=True).astype(np.int64)

    if log_probs:
        values = from_log_probs(values, classes, ids, where, _CSV_FIRST_DATA_LINE)
    probs = values.astype(np.float32)
    validate(ids, probs, classes, labels, meta, where, line_offset=_CSV_FIRST_DATA_LINE)
    return ProbFile(ids=ids, probs=probs, classes=classes, meta=meta, labels=labels, path=path)
