"""Kaggle submission CSVs in the competition's own schema: read, validate against a sample, write in sample order.

Without a schema a submission is KMNIST's ``Id,Category`` (integer Ids, integer classes). With one
(:class:`kfold.files.schema.Schema`, read from the competition's sample submission) the header, the Id type,
the class values and, for probability targets, one probability column per class (or one for a binary
target) are the competition's.

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
from kfold.files.csvtext import _at, check_unique_ids, read_csv_frame  # noqa: F401  (re-exported)
from kfold.files.probs import numeric_column
from kfold.files.schema import KMNIST, Schema, clip_for_metric

__all__ = ["align_ids", "check_categories", "check_header", "check_unique_ids", "FIRST_DATA_LINE", "HEADER",
           "id_category_columns", "read_csv_frame", "read_submission", "sample_ids", "Submission", "validate_submission",
           "write_submission"]

HEADER = KMNIST.header
FIRST_DATA_LINE = 2
PROBABILITY_TOLERANCE = 1e-3  # a probability submission's rows must sum to 1 within this


@dataclass
class Submission:
    """Class predictions: ``categories[i]`` is the predicted class index of image ``ids[i]``; for probability
    targets ``probs`` holds the submitted (N, C) probabilities (``categories`` their argmax)."""

    ids: np.ndarray
    categories: np.ndarray
    path: Path | None = None
    probs: np.ndarray | None = None
    schema: Schema | None = None

    def name(self) -> str:
        return self.path.name if self.path is not None else "submission"


def check_header(frame: pd.DataFrame, expected: list[str], where: str) -> None:
    columns = [str(c) for c in frame.columns]
    if columns != expected:
        raise DataError(f"{where}: line 1: {header_problem(columns, expected)}")


def header_problem(columns: list[str], expected: list[str]) -> str:
    """What is wrong with header ``columns`` against the sample's ``expected``, the first broken rule named: a
    repeated column, columns missing or extra (with names that differ only in case or spaces), the Id column not
    first, the target columns in another order (and that reordering them fixes it).

    >>> header_problem(["id", "Bee", "Ant"], ["id", "Ant", "Bee"])
    "header 'id,Bee,Ant' must be 'id,Ant,Bee': the class columns come in another order than the sample's; reordering the columns fixes it"
    """
    head = f"header '{','.join(columns)}' must be '{','.join(expected)}'"
    twice = next((c for i, c in enumerate(columns) if c in columns[:i]), None)
    if twice is not None:
        return f"{head}: column {twice!r} appears twice"
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    if missing or extra:
        near = {c.strip().lower(): c for c in extra}
        alike = [f"{near[m.strip().lower()]!r} for {m!r}" for m in missing if m.strip().lower() in near]
        parts = ([f"no column {', '.join(map(repr, missing))}"] if missing else []) + \
                ([f"unexpected column {', '.join(map(repr, extra))}"] if extra else [])
        hint = f" ({'; '.join(alike)}: another case or spaces)" if alike else ""
        return f"{head}: {'; '.join(parts)}{hint}"
    if columns[0] != expected[0]:
        return (f"{head}: the Id column {expected[0]!r} must come first (it is column {columns.index(expected[0]) + 1}); "
                "reordering the columns fixes it")
    what = "class columns" if len(expected) > 2 else "columns"
    return f"{head}: the {what} come in another order than the sample's; reordering the columns fixes it"


def check_categories(ids: np.ndarray, categories: np.ndarray, num_classes: int | None, where: str,
                     first_line: int = FIRST_DATA_LINE, suffix: str = "") -> None:
    high = np.inf if num_classes is None else num_classes
    bad = (categories < 0) | (categories >= high)
    if bad.any():
        row = int(np.argmax(bad))
        allowed = "a non-negative class index" if num_classes is None else f"in 0..{num_classes - 1}"
        raise DataError(f"{where}: line {row + first_line} (Id {ids[row]}), column '{HEADER[1]}': "
                        f"{categories[row]} is not {allowed}{suffix}")


def id_category_columns(frame: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The integer ``Id`` and ``Category`` columns of a submission or solution, Ids checked unique."""
    if frame.empty:
        raise DataError(f"{where}: no rows after the header")
    ids = numeric_column(frame, HEADER[0], where, "an integer Id", integer=True, first_line=FIRST_DATA_LINE).astype(np.int64)
    categories = numeric_column(frame, HEADER[1], where, "an integer Category", integer=True,
                                first_line=FIRST_DATA_LINE).astype(np.int64)
    check_unique_ids(ids, where)
    return ids, categories


def _is_plain_kmnist(schema: Schema | None) -> bool:
    """KMNIST-shaped: integer Ids and integer classes 0..C-1 in one label column (today's exact messages)."""
    return schema is None or (schema.header == KMNIST.header and schema.target == "label" and schema.id_kind == "int"
                              and schema.class_kind == "int"
                              and list(schema.classes) == [str(i) for i in range(schema.num_classes)])


def read_submission(path: str | os.PathLike, num_classes: int | None = None, schema: Schema | None = None) -> Submission:
    """Read a submission; check header, blank lines, Ids (type, duplicates) and the target's values.

    ``schema`` None: KMNIST's ``Id,Category`` with integer classes (``0..num_classes-1`` when given)."""
    path = Path(path)
    where = str(path)
    frame = read_csv_frame(path, "submission")
    if _is_plain_kmnist(schema):
        check_header(frame, HEADER, where)
        ids, categories = id_category_columns(frame, where)
        check_categories(ids, categories, num_classes if schema is None else schema.num_classes, where)
        return Submission(ids=ids, categories=categories, path=path, schema=schema)
    if schema.multilabel:  # tags, or independent probability columns (kfold.files.multilabel_submission)
        from kfold.files.multilabel_submission import read_multilabel_submission

        ids, values = read_multilabel_submission(path, schema)
        tags = schema.target == "tags"
        return Submission(ids=ids, categories=values if tags else (values >= 0.5).astype(np.int64), path=path,
                          probs=None if tags else values, schema=schema)
    check_header(frame, schema.header, where)
    if frame.empty:
        raise DataError(f"{where}: no rows after the header")
    ids = schema.parse_ids(frame[schema.id_column], where, FIRST_DATA_LINE)
    check_unique_ids(ids, where)
    if schema.target == "label":
        categories = schema.encode(frame[schema.label_column].tolist(), where, schema.label_column, FIRST_DATA_LINE)
        return Submission(ids=ids, categories=categories, path=path, schema=schema)
    columns = list(schema.target_columns)
    values = np.column_stack([numeric_column(frame, c, where, "a probability", integer=False,
                                             first_line=FIRST_DATA_LINE) for c in columns])
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{where}: line {row + FIRST_DATA_LINE} ({schema.id_column} {ids[row]}), column "
                        f"'{columns[col]}': {values[row, col]!s} is not a probability in [0, 1]")
    if schema.target == "binary":
        probs = np.column_stack([1.0 - values[:, 0], values[:, 0]])
    else:
        sums = values.sum(axis=1)
        off = np.abs(sums - 1.0) > PROBABILITY_TOLERANCE
        if off.any():
            row = int(np.argmax(off))
            raise DataError(f"{where}: line {row + FIRST_DATA_LINE} ({schema.id_column} {ids[row]}): the probabilities "
                            f"sum to {sums[row]:.6g}, not 1")
        probs = values
    return Submission(ids=ids, categories=probs.argmax(axis=1).astype(np.int64), path=path, probs=probs, schema=schema)


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


def sample_ids(sample_path: str | os.PathLike, schema: Schema | None = None) -> np.ndarray:
    """The Ids of a sample submission, in its row order (KMNIST's reader without a schema)."""
    if _is_plain_kmnist(schema):
        return read_submission(sample_path).ids
    from kfold.files.schema import read_sample

    sample = read_sample(sample_path, id_column=schema.id_column)
    if sample.columns != schema.header:
        raise DataError(f"{sample_path}: line 1: header '{','.join(sample.columns)}' must be '{','.join(schema.header)}'")
    return schema.parse_ids(sample.frame[schema.id_column], str(sample_path))


def validate_submission(path: str | os.PathLike, sample_path: str | os.PathLike | None = None,
                        num_classes: int | None = None, schema: Schema | None = None) -> Submission:
    """Read a submission and check it covers exactly the Ids of ``sample_path`` (when given), in the sample's
    row order for a competition with its own schema (Kaggle checks the Id set; kfold writes the sample's order)."""
    submission = read_submission(path, num_classes=num_classes, schema=schema)
    if sample_path is not None:
        sample = Submission(ids=sample_ids(sample_path, schema), categories=np.empty(0, dtype=np.int64))
        where = str(path)
        if len(submission.ids) != len(sample.ids):
            where = f"{where}: {len(submission.ids)} rows but the sample has {len(sample.ids)}"
        align_ids(submission.ids, sample.ids, where, f"the sample {sample_path}")
    return submission


def write_submission(path: str | os.PathLike, ids, categories, sample_path: str | os.PathLike | None = None,
                     transaction=None, schema: Schema | None = None, probs=None) -> None:
    """Write a submission atomically in the competition's schema (KMNIST's ``Id,Category`` without one), in the
    row order of ``sample_path`` when given. Probability targets are written from ``probs`` (clipped and
    renormalized when the metric is log loss); a label target from ``categories`` (class indices)."""
    from kfold.files.schema import as_ids

    ids = as_ids(ids) if schema is not None else np.asarray(ids, dtype=np.int64)
    categories = np.asarray(categories, dtype=np.int64)
    if ids.shape != categories.shape or ids.ndim != 1:
        raise DataError(f"{path}: {ids.shape} Ids but {categories.shape} categories")
    if schema is not None and schema.writes_probabilities and probs is None:
        raise DataError(f"{path}: the competition's submission holds probabilities "
                        f"({','.join(schema.target_columns)}), and only hard votes were given")
    check_unique_ids(ids, f"predictions for {path}", first_line=None)
    if sample_path is not None:
        reference = sample_ids(sample_path, schema)
        order = align_ids(ids, reference, f"predictions for {path}", f"the sample {sample_path}", first_line=None)
        ids, categories = ids[order], categories[order]
        probs = None if probs is None else np.asarray(probs)[order]
    if schema is None:
        frame = pd.DataFrame({HEADER[0]: ids, HEADER[1]: categories})
    else:
        frame = schema.submission_frame(ids, categories, None if probs is None else clip_for_metric(probs, schema.metric))
    write_csv(path, frame, transaction, lineterminator="\n")
