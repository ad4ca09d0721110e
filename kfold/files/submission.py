"""Kaggle submission CSVs (``Id,Category``): read, validate against a sample, write in sample order.

Decisions (documented for users in the CLI help too):

* A UTF-8 byte-order mark is accepted silently (Excel writes one; Kaggle accepts it), and so are
  CRLF line endings. Any other non-UTF-8 content is an error.
* Blank lines are errors, wherever they are, including at the end of the file.
* Ids and Categories must be whole numbers (``3`` or ``3.0``); Categories must lie in
  ``0..num_classes-1`` when the number of classes is known, and be non-negative otherwise.
* Error messages give the file line: line 1 is the header, line 2 the first row.

Nothing here imports torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.files.atomic import write_csv
from kfold.errors import DataError
from kfold.files.probs import numeric_column

HEADER = ["Id", "Category"]
FIRST_DATA_LINE = 2


@dataclass
class Submission:
    """Hard class predictions: ``categories[i]`` is the predicted class of image ``ids[i]``."""

    ids: np.ndarray
    categories: np.ndarray
    path: Path | None = None

    def name(self) -> str:
        return self.path.name if self.path is not None else "submission"


def read_csv_frame(path: str | os.PathLike, what: str = "file", pad_short: bool = True) -> pd.DataFrame:
    """Read a CSV as strings (BOM stripped); every line is checked against the header (exact line numbers).

    ``pad_short=False``: a line with fewer fields than the header is refused too (else its missing fields are blank)."""
    from kfold.files.csvtext import parse_csv

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: empty file, expected a header line")
    return parse_csv(text, str(path), pad_short=pad_short)


def check_header(frame: pd.DataFrame, expected: list[str], where: str) -> None:
    columns = list(frame.columns)
    if columns != expected:
        raise DataError(f"{where}: line 1: header '{','.join(map(str, columns))}' must be '{','.join(expected)}'")


def _at(row: int, first_line: int | None) -> str:
    """'line L' of a file (``first_line`` = line of row 0) or 'row R' of an in-memory array."""
    return f"row {row}" if first_line is None else f"line {row + first_line}"


def check_unique_ids(ids: np.ndarray, where: str, first_line: int | None = FIRST_DATA_LINE) -> None:
    dup = pd.Index(ids).duplicated()
    if dup.any():
        row = int(np.argmax(dup))
        raise DataError(f"{where}: {_at(row, first_line)}: duplicate Id {ids[row]}")


def check_categories(ids: np.ndarray, categories: np.ndarray, num_classes: int | None, where: str,
                     first_line: int = FIRST_DATA_LINE, suffix: str = "") -> None:
    high = np.inf if num_classes is None else num_classes
    bad = (categories < 0) | (categories >= high)
    if bad.any():
        row = int(np.argmax(bad))
        allowed = "a non-negative class index" if num_classes is None else f"in 0..{num_classes - 1}"
        raise DataError(f"{where}: line {row + first_line} (Id {ids[row]}), column 'Category': "
                        f"{categories[row]} is not {allowed}{suffix}")


def id_category_columns(frame: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The integer ``Id`` and ``Category`` columns of a submission or solution, Ids checked unique."""
    if frame.empty:
        raise DataError(f"{where}: no rows after the header")
    ids = numeric_column(frame, "Id", where, "an integer Id", integer=True, first_line=FIRST_DATA_LINE).astype(np.int64)
    categories = numeric_column(frame, "Category", where, "an integer Category", integer=True,
                                first_line=FIRST_DATA_LINE).astype(np.int64)
    check_unique_ids(ids, where)
    return ids, categories


def read_submission(path: str | os.PathLike, num_classes: int | None = None) -> Submission:
    """Read ``Id,Category`` rows; check header, blank lines, integers, duplicate Ids and range."""
    path = Path(path)
    where = str(path)
    frame = read_csv_frame(path, "submission")
    check_header(frame, HEADER, where)
    ids, categories = id_category_columns(frame, where)
    check_categories(ids, categories, num_classes, where)
    return Submission(ids=ids, categories=categories, path=path)


def align_ids(ids: np.ndarray, reference_ids: np.ndarray, where: str, reference: str,
              first_line: int | None = FIRST_DATA_LINE) -> np.ndarray:
    """Positions in ``ids`` of each reference Id, in reference order.

    Both arrays must hold unique Ids. An Id missing from ``ids`` or one not in the reference
    raises DataError naming the first offender (by file line when ``first_line`` is given).
    """
    reference_index = pd.Index(reference_ids)
    extra = reference_index.get_indexer(ids) < 0
    if extra.any():
        row = int(np.argmax(extra))
        raise DataError(f"{where}: {_at(row, first_line)}: Id {ids[row]} is not in {reference} "
                        f"({int(extra.sum())} such Id(s))")
    order = pd.Index(ids).get_indexer(reference_ids)
    missing = order < 0
    if missing.any():
        raise DataError(f"{where}: Id {reference_ids[int(np.argmax(missing))]} from {reference} is missing "
                        f"({int(missing.sum())} missing Id(s))")
    return order


def validate_submission(path: str | os.PathLike, sample_path: str | os.PathLike | None = None,
                        num_classes: int | None = None) -> Submission:
    """Read a submission and check it covers exactly the Ids of ``sample_path`` (when given)."""
    submission = read_submission(path, num_classes=num_classes)
    if sample_path is not None:
        sample = read_submission(sample_path)
        where = str(path)
        if len(submission.ids) != len(sample.ids):
            where = f"{where}: {len(submission.ids)} rows but the sample has {len(sample.ids)}"
        align_ids(submission.ids, sample.ids, where, f"the sample {sample_path}")
    return submission


def write_submission(path: str | os.PathLike, ids, categories, sample_path: str | os.PathLike | None = None,
                     transaction=None) -> None:
    """Write ``Id,Category`` atomically, in the row order of ``sample_path`` when given."""
    ids = np.asarray(ids, dtype=np.int64)
    categories = np.asarray(categories, dtype=np.int64)
    if ids.shape != categories.shape or ids.ndim != 1:
        raise DataError(f"{path}: {ids.shape} Ids but {categories.shape} categories")
    check_unique_ids(ids, f"predictions for {path}", first_line=None)
    if sample_path is not None:
        sample = read_submission(sample_path)
        order = align_ids(ids, sample.ids, f"predictions for {path}", f"the sample {sample_path}", first_line=None)
        ids, categories = ids[order], categories[order]
    write_csv(path, pd.DataFrame({"Id": ids, "Category": categories}), transaction, lineterminator="\n")
