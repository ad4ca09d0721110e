"""A competition's schema: the one owner of its column names, Id type and class list. Torch-free.

Kaggle ships every image-classification competition with its own ``sample_submission.csv``: its first
column names the Ids (``Id``, ``ImageId``, ``id``, ``file``), their values and order are the test set's,
and the other columns are the target:

* ``label`` -- one column holding a class per row (``Category``, ``Label``, ``species``); the class is an
  integer (not necessarily ``0..C-1``) or a name (``cat``, ``Type_2``);
* ``probs`` -- one probability column per class (multi-class log loss; the column names are the classes);
* ``binary`` -- one probability column for a binary target (``id,has_cactus``).

:class:`Schema` holds that, plus the class list (index ``i`` <-> the competition's own class value
``classes[i]``) and the metric. Every file kfold writes for a competition -- submissions, probability files,
solution files -- takes its column names and class values from here; no other module spells ``Id`` or
``Category`` (``tests/test_architecture.py`` checks). The KMNIST competition is one schema like any other:
:data:`KMNIST`.

>>> import numpy as np
>>> schema = Schema(id_column="ImageId", target_columns=("Label",), classes=("3", "5", "7"))
>>> schema.header
['ImageId', 'Label']
>>> schema.encode(np.array([7, 3, 5]), "train.csv", "Label").tolist()
[2, 0, 1]
>>> schema.decode(np.array([2, 0])).tolist()
[7, 3]
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError

__all__ = ["KMNIST_ID_COLUMN", "KMNIST_TARGET_COLUMN", "ID_COLUMN", "USAGE_COLUMN", "LABEL_COLUMN",
           "GROUP_COLUMN", "USAGE_VALUES", "COMPETITION_FILE", "TARGETS", "ID_KINDS", "KMNIST", "Sample",
           "Schema", "as_ids", "clip_for_metric", "ids_equal", "infer_id_kind", "infer_schema", "kmnist_schema",
           "parse_ids", "read_competition_file", "read_sample", "schema_without_sample", "write_competition_file",
           "DEFAULT_ID_COLUMN"]

# The KMNIST competition's columns: the only place in kfold that spells them.
KMNIST_ID_COLUMN = "Id"
KMNIST_TARGET_COLUMN = "Category"
ID_COLUMN = KMNIST_ID_COLUMN      # kfold's own tables (folds.csv, probability CSVs of KMNIST-like tasks)
USAGE_COLUMN = "Usage"            # Kaggle's solution files: Public / Private / Ignored
LABEL_COLUMN = "label"            # the true class index in out-of-fold probability files and folds.csv
GROUP_COLUMN = "Language"         # MNIST-MIX solutions: a group per row
USAGE_VALUES = ("Public", "Private", "Ignored")

COMPETITION_FILE = "competition.json"  # what kfold records of a competition it wrote (schema, metric, layout)

TARGETS = ("label", "probs", "binary", "tags", "multilabel-probs")  # the last two: kfold.files.multilabel
ID_KINDS = ("int", "str")


@dataclass(frozen=True)
class Schema:
    """What a competition's submission looks like: Id column, target column(s), classes, metric.

    ``classes`` are the competition's own class values written as text, in class-index order; integer
    classes (``class_kind == "int"``) are written back as integers.
    """

    id_column: str = KMNIST_ID_COLUMN
    target_columns: tuple[str, ...] = (KMNIST_TARGET_COLUMN,)
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))
    target: str = "label"
    id_kind: str = "int"
    class_kind: str = "int"
    metric: str = "accuracy"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise UsageError(f"target {self.target!r}: must be one of {', '.join(TARGETS)}")
        if self.id_kind not in ID_KINDS:
            raise UsageError(f"id_kind {self.id_kind!r}: must be one of {', '.join(ID_KINDS)}")
        object.__setattr__(self, "target_columns", tuple(str(c) for c in self.target_columns))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if len(set(self.classes)) != len(self.classes):
            raise DataError(f"classes {list(self.classes)!r}: a class value repeats")
        names = [self.id_column, *self.target_columns]
        if len(set(names)) != len(names):
            raise DataError(f"columns {names!r}: a column name repeats")
        if self.target in ("probs", "multilabel-probs") and list(self.target_columns) != list(self.classes):
            raise DataError(f"probability columns {list(self.target_columns)!r} must be the classes {list(self.classes)!r}")
        if self.target == "binary" and len(self.classes) != 2:
            raise DataError(f"a binary target has 2 classes, got {list(self.classes)!r}")
        if self.class_kind == "int":
            for value in self.classes:
                if _int_text(value) is None:
                    raise DataError(f"class {value!r} is not an integer (class_kind 'int')")

    # -- columns -----------------------------------------------------------------------------------
    @property
    def header(self) -> list[str]:
        """The submission's header: Id column, then the target column(s)."""
        return [self.id_column, *self.target_columns]

    @property
    def label_column(self) -> str:
        """The one target column of a label or binary target."""
        if self.target in ("probs", "multilabel-probs"):
            raise UsageError("a probability target has one column per class, not one label column")
        return self.target_columns[0]

    @property
    def solution_header(self) -> list[str]:
        """A solution file's header: Id, the class label column, Usage (probability targets keep one label column)."""
        return [self.id_column, self.solution_label_column, USAGE_COLUMN]

    @property
    def solution_label_column(self) -> str:
        return self.target_columns[0] if self.target != "probs" else "label"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multilabel(self) -> bool:
        """Several labels per image (``tags``, ``multilabel-probs``): labels are (N, tags) 0/1 matrices."""
        return self.target in ("tags", "multilabel-probs")

    @property
    def writes_probabilities(self) -> bool:
        return self.target in ("probs", "binary")

    # -- class values ------------------------------------------------------------------------------
    def class_values(self) -> np.ndarray:
        """The classes as the submission writes them: int64 for integer classes, else str."""
        if self.class_kind == "int":
            return np.array([int(c) for c in self.classes], dtype=np.int64)
        return np.array(self.classes, dtype=str)

    def encode(self, values: Sequence, where: str, column: str, first_line: int | None = None) -> np.ndarray:
        """Class indices of the competition's class ``values``; a value not among the classes is an error.
        A multi-label target gives an (N, tags) 0/1 uint8 matrix (tag cells, or the 0/1 label columns); one-hot 0/1
        columns of a probability target (``values`` of shape (N, classes)) give each row's class, a row without
        exactly one 1 an error naming its line and columns."""
        if self.target == "tags":
            from kfold.files.multilabel import encode_tags

            return encode_tags(values, self.classes, where, column, first_line)
        if self.target == "multilabel-probs":
            from kfold.files.multilabel import zero_one_matrix

            return zero_one_matrix(values, where, self.classes, first_line)
        if np.ndim(values) == 2 and self.target == "probs":  # one-hot 0/1 label columns (Plant Pathology): one class per row, checked
            from kfold.files.multilabel import one_hot_classes, zero_one_matrix

            matrix = zero_one_matrix(values, where, self.classes, first_line)
            return one_hot_classes(matrix, where, self.classes, first_line)
        text = _as_text(values)
        index = pd.Index(list(self.classes)).get_indexer(text)
        bad = index < 0
        if bad.any():
            row = int(np.argmax(bad))
            at = f"row {row}" if first_line is None else f"line {row + first_line}"
            shown = ", ".join(self.classes[:12]) + (", ..." if len(self.classes) > 12 else "")
            raise DataError(f"{where}: {at}, column '{column}': {str(values[row]).strip()!r} is not one of the "
                            f"competition's classes ({shown})")
        return index.astype(np.int64)

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """The competition's class values of class ``indices``."""
        return self.class_values()[np.asarray(indices, dtype=np.int64)]

    # -- Ids ---------------------------------------------------------------------------------------
    def parse_ids(self, cells: pd.Series | Sequence, where: str, first_line: int | None = 2) -> np.ndarray:
        """The Id column's values: int64 for integer Ids, else the strings exactly as written."""
        return parse_ids(cells, where, self.id_column, self.id_kind, first_line)

    # -- files -------------------------------------------------------------------------------------
    def submission_frame(self, ids: np.ndarray, categories: np.ndarray | None = None,
                         probs: np.ndarray | None = None) -> pd.DataFrame:
        """The submission table: a class per row (label target) or the probabilities (probability targets)."""
        frame = pd.DataFrame({self.id_column: ids})
        if self.target == "label":
            frame[self.label_column] = self.decode(categories)
        elif self.target == "binary":
            frame[self.label_column] = np.asarray(probs, dtype=np.float64)[:, 1]
        else:
            for i, column in enumerate(self.target_columns):
                frame[column] = np.asarray(probs, dtype=np.float64)[:, i]
        return frame

    def to_dict(self) -> dict:
        out = asdict(self)
        out["target_columns"] = list(self.target_columns)
        out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = "schema") -> "Schema":
        if not isinstance(data, dict):
            raise DataError(f"{where}: schema must be a JSON object")
        known = {"id_column", "target_columns", "classes", "target", "id_kind", "class_kind", "metric", "extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"{where}: unknown schema field(s) {', '.join(unknown)}")
        try:
            for key in ("id_column", "target", "id_kind", "class_kind", "metric"):
                if key in data and not isinstance(data[key], str):
                    raise DataError(f"{where}: schema field {key!r} must be a string, got {data[key]!r}")
            for key in ("target_columns", "classes"):
                if key in data and (not isinstance(data[key], list) or not data[key]
                                    or not all(isinstance(v, (str, int)) for v in data[key])):
                    raise DataError(f"{where}: schema field {key!r} must be a non-empty list of strings")
            return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})
        except UsageError as exc:
            raise DataError(f"{where}: {exc}") from None

    def with_metric(self, metric: str | None) -> "Schema":
        return self if metric is None else replace(self, metric=metric)


def kmnist_schema(num_classes: int = 10) -> Schema:
    """The KMNIST (and MNIST-MIX) competitions' schema: ``Id,Category`` with classes ``0..C-1``."""
    return Schema(classes=tuple(str(i) for i in range(num_classes)))


def _int_text(value) -> int | None:
    from kfold.files.csvtext import exact_integer

    if isinstance(value, (int, np.integer)):
        return int(value)
    return exact_integer(str(value))


def _as_text(values: Sequence) -> list[str]:
    """Class values as the canonical text of :attr:`Schema.classes` (integers without ``.0`` or ``+``)."""
    out = []
    for value in values:
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            out.append(str(int(value)))
            continue
        number = _int_text(value) if not isinstance(value, (float, np.floating)) else None
        out.append(str(number) if number is not None else str(value).strip())
    return out


def parse_ids(cells, where: str, column: str, id_kind: str, first_line: int | None = 2) -> np.ndarray:
    """Ids of ``column``: int64 (``id_kind == 'int'``, exact, 64-bit range) or strings kept as written."""
    series = pd.Series(cells, dtype=object) if not isinstance(cells, pd.Series) else cells

    def at(row: int) -> str:
        return f"row {row}" if first_line is None else f"line {row + first_line}"

    if id_kind == "int":
        if series.dtype.kind in "iu":
            return series.to_numpy(dtype=np.int64)
        from kfold.files.csvtext import integer_column

        def bad(row: int):
            raise DataError(f"{where}: {at(row)}, column '{column}': '{str(series.iloc[row]).strip()}' is not "
                            "an integer Id")

        def out_of_range(row: int):
            raise DataError(f"{where}: {at(row)}, column '{column}': '{str(series.iloc[row]).strip()}' is outside "
                            "the signed 64-bit integer range")
        return integer_column(series.astype(str), bad, out_of_range)
    text = series.astype(str)
    blank = (text.str.strip() == "").to_numpy()
    if blank.any():
        raise DataError(f"{where}: {at(int(np.argmax(blank)))}, column '{column}': empty Id")
    return np.asarray(text.to_numpy(), dtype=str)


def infer_id_kind(cells: Sequence[str]) -> str:
    """``'int'`` when every Id is a plain integer written canonically (no leading zero, no sign, no ``.0``);
    otherwise ``'str'``: Ids such as ``00042`` or ``0a3f9c`` are kept exactly as the sample writes them."""
    from kfold.files.csvtext import exact_integer

    for cell in cells:
        text = str(cell)
        number = exact_integer(text)
        if number is None or str(number) != text or not -2**63 <= number < 2**63:
            return "str"
    return "int"


def ids_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same Ids in the same order (int or str arrays; an int and a str array are never equal)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype.kind == b.dtype.kind and np.array_equal(a, b)


def as_ids(values) -> np.ndarray:
    """An Id array: int64 when the values are integers, else str."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64)
    if array.dtype.kind == "U":
        return array
    if array.dtype.kind == "O" and all(isinstance(v, (int, np.integer)) for v in array.tolist()):
        return array.astype(np.int64)
    return array.astype(str)


# -- the sample submission -----------------------------------------------------------------------------
@dataclass
class Sample:
    """A ``sample_submission.csv``: its header, Ids (typed and in file order) and target cells."""

    path: Path
    columns: list[str]
    ids: np.ndarray
    id_kind: str
    frame: pd.DataFrame

    @property
    def id_column(self) -> str:
        return self.columns[0]

    @property
    def target_columns(self) -> list[str]:
        return self.columns[1:]


def read_sample(path: str | os.PathLike, id_column: str | None = None) -> Sample:
    """Read a sample submission strictly: a header of at least two distinct columns, the Id column first
    (or ``id_column``), no blank line or cell, no duplicate Id.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sample_submission.csv"
    >>> _ = p.write_text("id,has_cactus\\n00a1.jpg,0.5\\n00b2.jpg,0.5\\n")
    >>> s = read_sample(p)
    >>> s.id_column, s.id_kind, s.ids.tolist()
    ('id', 'str', ['00a1.jpg', '00b2.jpg'])
    """
    from kfold.files.csvtext import check_unique_ids, read_csv_frame

    path = Path(path)
    frame = read_csv_frame(path, "sample submission")
    columns = [str(c) for c in frame.columns]
    where = str(path)
    if len(columns) < 2:
        raise DataError(f"{where}: line 1: header '{','.join(columns)}' needs an Id column and at least one target column")
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise DataError(f"{where}: line 1: column {dup!r} appears twice")
    if any(not c.strip() for c in columns):
        raise DataError(f"{where}: line 1: an empty column name")
    if id_column is not None:
        if id_column not in columns:
            raise DataError(f"{where}: line 1: no column {id_column!r} (has: {', '.join(columns)})")
        columns = [id_column, *[c for c in columns if c != id_column]]
        frame = frame[columns]
    if frame.empty:
        raise DataError(f"{where}: no rows after the header")
    cells = frame[columns[0]]
    blank = (cells.str.strip() == "").to_numpy()
    if blank.any():
        raise DataError(f"{where}: line {int(np.argmax(blank)) + 2}, column '{columns[0]}': empty Id")
    id_kind = infer_id_kind(cells.tolist())
    ids = parse_ids(cells, where, columns[0], id_kind)
    check_unique_ids(ids, where)
    return Sample(path=path, columns=columns, ids=ids, id_kind=id_kind, frame=frame)


def _is_probability_column(cells: pd.Series) -> bool:
    values = pd.to_numeric(cells, errors="coerce")
    if values.isna().any():
        return False
    finite = np.isfinite(values.to_numpy(dtype=np.float64))
    return bool(finite.all() and ((values >= 0) & (values <= 1)).all() and not (values == values.round()).all())


def infer_schema(sample: Sample, train_values: Sequence | None, *, metric: str | None = None,
                 target: str | None = None, where_labels: str = "training labels") -> Schema:
    """The competition's schema from its sample submission and the training labels' values.

    * two columns and the sample's target cells are fractions in [0, 1] (``0.5``), or ``target='binary'``:
      a binary probability target (its classes are the two training label values);
    * more than two columns: one probability column per class, the columns naming the classes;
    * otherwise one label column, classes from the training labels (integers sorted numerically, names
      sorted as text).
    """
    from kfold.metrics import check_metric, default_metric

    where = str(sample.path)
    targets = sample.target_columns
    if target is not None and target not in TARGETS:
        raise UsageError(f"target {target!r}: must be one of {', '.join(TARGETS)}")
    multi = _multilabel_schema(sample, train_values, metric, target, where_labels)
    if multi is not None:
        return multi
    if train_values is not None and np.ndim(train_values) == 2:  # one-hot label columns: the classes are the columns
        train_values = list(targets)  # (Schema.encode checks that every row holds exactly one 1, naming the row)
    values = None if train_values is None else _as_text(list(train_values))
    if len(targets) > 1 or target == "probs":
        if len(targets) < 2:
            raise DataError(f"{where}: line 1: a probability target needs one column per class, got "
                            f"'{','.join(sample.columns)}'")
        kind = "probs"
        classes = tuple(targets)
        if values is not None:
            unknown = sorted(set(values) - set(classes))
            if unknown:
                raise DataError(f"{where_labels}: label {unknown[0]!r} is not one of the sample's class columns "
                                f"({', '.join(classes[:12])}{', ...' if len(classes) > 12 else ''})")
    else:
        if values is None:
            raise DataError(f"{where}: the classes of a label target come from the training labels, and none were given")
        distinct = sorted(set(values), key=_class_sort_key)
        kind = "binary" if target == "binary" or (target is None and _is_probability_column(sample.frame[targets[0]])) \
            else "label"
        if kind == "binary" and len(distinct) != 2:
            raise DataError(f"{where_labels}: a binary probability target needs 2 classes, the labels have "
                            f"{len(distinct)}")
        classes = tuple(distinct)
    if len(classes) < 2:
        raise DataError(f"{where_labels}: only one class ({classes[0]!r}); a classifier needs at least two")
    class_kind = "int" if all(_int_text(c) is not None and str(_int_text(c)) == c for c in classes) else "str"
    chosen = metric or default_metric(kind, len(classes))
    check_metric(chosen, kind, classes, where)
    return Schema(id_column=sample.id_column, target_columns=tuple(targets), classes=classes, target=kind,
                  id_kind=sample.id_kind, class_kind=class_kind, metric=chosen)


def _multilabel_schema(sample: Sample, train_values, metric: str | None, target: str | None,
                       where_labels: str) -> Schema | None:
    """The schema of a multi-label competition (``kfold.files.multilabel.detect`` decides), or None."""
    from kfold.files.multilabel import detect
    from kfold.metrics import default_metric, get_metric, metric_fit_problem

    targets = sample.target_columns
    if train_values is None:
        if target in ("tags", "multilabel-probs"):
            raise DataError(f"{sample.path}: a {target} target takes its tags from the training labels, and none were given")
        return None
    columns = np.ndim(train_values) == 2
    if target == "multilabel-probs" and not columns:
        raise DataError(f"{where_labels}: a multilabel-probs target trains on the sample's probability columns "
                        f"({', '.join(targets[:6])}) as 0/1 columns of the training labels, and they are not there")
    if target == "tags" and len(targets) != 1:
        raise DataError(f"{sample.path}: line 1: a tags target has one label column, got '{','.join(sample.columns)}'")
    if columns and len(targets) < 2:
        return None
    found = detect(train_values, None if columns else sample.frame[targets[0]].tolist(), one_column=not columns,
                   target=target, where=where_labels)
    if found is None or found[0] == "probs":
        return None
    kind, classes, why = found
    classes = tuple(targets) if kind == "multilabel-probs" else classes
    if len(classes) < 2:
        raise DataError(f"{where_labels}: only one tag ({classes[0]!r}); a multi-label classifier needs at least two")
    chosen = metric or default_metric(kind, len(classes))
    try:
        get_metric(chosen)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    problem = metric_fit_problem(chosen, kind, len(classes), classes)
    if problem:
        raise UsageError(f"{sample.path}: {problem}")
    return Schema(id_column=sample.id_column, target_columns=tuple(targets), classes=classes, target=kind,
                  id_kind=sample.id_kind, class_kind="str", metric=chosen, extra={"detected": why})


def clip_for_metric(probs: np.ndarray, metric: str) -> np.ndarray:
    """What a probability submission holds: clipped and renormalized for log loss, as they are otherwise."""
    from kfold.metrics import clip_probs

    return clip_probs(probs) if metric == "logloss" else np.asarray(probs, dtype=np.float64)


def _class_sort_key(value: str):
    number = _int_text(value)
    return (0, number, "") if number is not None and str(number) == value else (1, 0, value)


# -- competition.json ---------------------------------------------------------------------------------
def write_competition_file(directory: str | os.PathLike, schema: Schema, extra: dict | None = None,
                           transaction=None) -> Path:
    """Record a competition's schema (and layout, metric) in ``DIR/competition.json``."""
    from kfold.files.atomic import write_json

    path = Path(directory) / COMPETITION_FILE
    write_json(path, {"schema": schema.to_dict(), **(extra or {})}, transaction)
    return path


def read_competition_file(directory: str | os.PathLike) -> dict | None:
    """``DIR/competition.json`` as a dict with a :class:`Schema` under ``"schema"``, or None when absent."""
    path = Path(directory) / COMPETITION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "schema" not in data:
        raise DataError(f"{path}: expected a JSON object with a 'schema' field")
    return {**data, "schema": Schema.from_dict(data["schema"], str(path))}



# -- training data alone: no sample submission ----------------------------------------------------------
DEFAULT_ID_COLUMN = "id"  # Kaggle's most common Id column name (Aerial Cactus, Histopathologic Cancer, Dog Breeds)


def schema_without_sample(train_values: Sequence, where: str, *, id_column: str | None = None,
                          label_column: str | None = None, id_kind: str = "int", metric: str | None = None,
                          target: str | None = None, where_labels: str = "training labels") -> Schema:
    """The schema of labelled training data that comes without a sample submission (nor a test set).

    The Id column is ``id_column`` (default ``id``), the target one label column ``label_column`` (default
    ``label``), or with ``target='probs'`` one probability column per class; classes, target kind and metric
    are what :func:`infer_schema` finds for a sample of those columns and the training labels ``train_values``.
    ``where`` names the data in messages.

    >>> schema = schema_without_sample(["cat", "dog", "cat"], "data/pets")
    >>> schema.header, schema.classes, schema.target, schema.metric
    (['id', 'label'], ('cat', 'dog'), 'label', 'accuracy')
    >>> schema_without_sample([3, 1], "data/x", id_column="file", target="probs", metric="logloss").header
    ['file', '1', '3']
    """
    id_column = id_column or DEFAULT_ID_COLUMN
    if target == "probs":
        columns = [id_column, *sorted(set(_as_text(list(train_values))), key=_class_sort_key)]
    else:
        columns = [id_column, label_column or LABEL_COLUMN]
    if len(set(columns)) != len(columns):
        raise DataError(f"{where}: columns {columns!r}: the Id column is also a target column; name another with "
                        "the Id or label column option")
    frame = pd.DataFrame({column: pd.Series([], dtype=object) for column in columns})
    ids = np.empty(0, dtype=np.int64 if id_kind == "int" else str)
    sample = Sample(path=Path(where), columns=columns, ids=ids, id_kind=id_kind, frame=frame)
    return infer_schema(sample, train_values, metric=metric, target=target, where_labels=where_labels)

KMNIST = Schema()
