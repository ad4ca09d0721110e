"""Multi-label submissions and solutions on disk, in the competition's own columns. Torch-free.

* ``tags``: ``image_name,tags`` -- each row's tags joined by one space, in the competition's tag vocabulary;
* ``multilabel-probs``: ``id,<tag 1>,...,<tag C>`` -- one probability per tag in [0, 1], rows not renormalized.

A solution adds ``Usage`` (Public / Private / Ignored); a ``multilabel-probs`` solution holds 0/1 per tag.
Every read is strict: one ``DataError`` naming the file, line, Id and column.

>>> import tempfile, pathlib
>>> import numpy as np
>>> from kfold.files.schema import Schema
>>> schema = Schema(id_column="image_name", target_columns=("tags",), classes=("clear", "haze", "road"),
...                 target="tags", id_kind="str", class_kind="str", metric="f2-samples")
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sub.csv"
>>> write_multilabel_submission(path, schema, np.array(["a", "b"]), tags=np.array([[1, 0, 1], [0, 1, 0]]))
>>> print(path.read_text(), end="")
image_name,tags
a,clear road
b,haze
>>> read_multilabel_submission(path, schema)[1].tolist()
[[1, 0, 1], [0, 1, 0]]
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.errors import DataError
from kfold.files.schema import USAGE_COLUMN, USAGE_VALUES, Schema

__all__ = ["multilabel_frame", "read_multilabel_solution", "read_multilabel_submission", "write_multilabel_submission"]

FIRST_DATA_LINE = 2


def multilabel_frame(schema: Schema, ids: np.ndarray, tags: np.ndarray | None = None,
                     probs: np.ndarray | None = None) -> pd.DataFrame:
    """The submission table: tags joined by one space (``tags``: an (N, C) 0/1 matrix), or probability columns."""
    from kfold.files.multilabel import decode_tags

    frame = pd.DataFrame({schema.id_column: ids})
    if schema.target == "tags":
        frame[schema.target_columns[0]] = decode_tags(tags, schema.classes)
    else:
        values = np.asarray(probs, dtype=np.float64)
        for j, column in enumerate(schema.target_columns):
            frame[column] = values[:, j]
    return frame


def write_multilabel_submission(path: str | os.PathLike, schema: Schema, ids: np.ndarray, *, tags=None, probs=None,
                                transaction=None) -> None:
    """Write a multi-label submission atomically (the Ids exactly as the sample writes them)."""
    from kfold.files.atomic import write_csv

    write_csv(path, multilabel_frame(schema, ids, tags, probs), transaction)


def _frame(path: Path, what: str, header: list[str]) -> pd.DataFrame:
    from kfold.files.csvtext import read_csv_frame

    frame = read_csv_frame(path, what)
    columns = [str(c) for c in frame.columns]
    if columns != header:
        raise DataError(f"{path}: line 1: header '{','.join(columns)}' must be '{','.join(header)}'")
    if frame.empty:
        raise DataError(f"{path}: no rows after the header")
    return frame


def _ids(frame: pd.DataFrame, schema: Schema, where: str) -> np.ndarray:
    from kfold.files.csvtext import check_unique_ids

    ids = schema.parse_ids(frame[schema.id_column], where, FIRST_DATA_LINE)
    check_unique_ids(ids, where)
    return ids


def _tag_cells(frame: pd.DataFrame, schema: Schema, ids: np.ndarray, where: str) -> np.ndarray:
    from kfold.files.multilabel import encode_tags

    column = schema.target_columns[0]
    cells = frame[column].astype(str)
    empty = (cells.str.strip() == "").to_numpy()
    if empty.any():
        row = int(np.argmax(empty))
        raise DataError(f"{where}: line {row + FIRST_DATA_LINE} ({schema.id_column} {ids[row]}), column '{column}': no tag; "
                        f"metric {schema.metric} needs at least one tag per row")
    return encode_tags(cells.tolist(), schema.classes, where, column, FIRST_DATA_LINE)


def _numbers(frame: pd.DataFrame, schema: Schema, ids: np.ndarray, where: str, what: str) -> np.ndarray:
    from kfold.files.probs import numeric_column

    columns = list(schema.target_columns)
    values = np.column_stack([numeric_column(frame, c, where, what, integer=False, first_line=FIRST_DATA_LINE)
                              for c in columns])
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{where}: line {row + FIRST_DATA_LINE} ({schema.id_column} {ids[row]}), column "
                        f"'{columns[col]}': {values[row, col]!s} is not a probability in [0, 1]")
    return values


def read_multilabel_submission(path: str | os.PathLike, schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, values)``: an (N, C) 0/1 int64 matrix of tags, or (N, C) float64 probabilities (any row sums)."""
    path = Path(path)
    where = str(path)
    frame = _frame(path, "submission", schema.header)
    ids = _ids(frame, schema, where)
    if schema.target == "tags":
        return ids, _tag_cells(frame, schema, ids, where).astype(np.int64)
    return ids, _numbers(frame, schema, ids, where, "a probability")


def read_multilabel_solution(path: str | os.PathLike, schema: Schema) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(ids, truth, usage)`` of a multi-label solution: an (N, C) 0/1 matrix and the Usage cells (None: no column)."""
    path = Path(path)
    where = str(path)
    from kfold.files.csvtext import read_csv_frame

    columns = [str(c) for c in read_csv_frame(path, "solution").columns]
    header = schema.header + ([USAGE_COLUMN] if USAGE_COLUMN in columns else [])
    frame = _frame(path, "solution", header)
    ids = _ids(frame, schema, where)
    if schema.target == "tags":
        truth = _tag_cells(frame, schema, ids, where)
    else:
        truth = _numbers(frame, schema, ids, where, "a 0/1 label")
        fractional = ~np.isin(truth, (0.0, 1.0))
        if fractional.any():
            row, col = (int(v) for v in np.argwhere(fractional)[0])
            raise DataError(f"{where}: line {row + FIRST_DATA_LINE} ({schema.id_column} {ids[row]}), column "
                            f"'{schema.target_columns[col]}': {truth[row, col]!s} is not 0 or 1")
    usage = None
    if USAGE_COLUMN in frame:
        usage = frame[USAGE_COLUMN].astype(str).str.strip().to_numpy(dtype=object)
        bad = ~np.isin(usage, USAGE_VALUES)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{where}: line {row + FIRST_DATA_LINE} ({schema.id_column} {ids[row]}), column "
                            f"'{USAGE_COLUMN}': '{usage[row]}' is not one of {', '.join(USAGE_VALUES)}")
    return ids, truth.astype(np.int64), usage
