"""Multi-label targets: detection, tag vocabularies and encoding. Torch-free; the schema module calls it.

Two shapes of competition give each image several labels:

* ``tags`` -- one column of space-separated tags (Planet's ``image_name,tags``: ``clear primary road``);
* ``multilabel-probs`` -- one probability column per label, trained on the same columns as 0/1 (CheXpert, RANZCR):
  rows may hold no 1 or several, and a submission's rows do not sum to 1.

Both encode the training labels as an (N, tags) uint8 matrix whose column ``j`` is the schema's ``classes[j]``.
:func:`detect` tells them apart from the single-label targets and says why, in words ``kfold inspect`` prints.

>>> import numpy as np
>>> kind, tags, why = detect(["clear primary", "haze", "clear", "clear road"], None, one_column=True)
>>> kind, tags, why
('tags', ('clear', 'haze', 'primary', 'road'), "the training cell 'clear primary' combines tags that also stand alone ('clear'); 2 of 4 rows hold several tags")
>>> detect(["Common Chickweed", "Maize", "Common wheat"], None, one_column=True) is None
True
>>> encode_tags(["clear primary", "haze"], tags, "train.csv", "tags").tolist()
[[1, 0, 1, 0], [0, 1, 0, 0]]
>>> detect(np.array([[1, 0], [0, 1]]), None, one_column=False)[0]
'probs'
>>> detect(np.array([[1, 1], [0, 0]]), None, one_column=False)[0]
'multilabel-probs'
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kfold.errors import DataError, UsageError

__all__ = ["SEPARATOR", "check_tag", "decode_tags", "detect", "encode_tags", "one_hot_classes", "split_tags",
           "zero_one_matrix"]

SEPARATOR = " "  # tags in one cell are separated by one space, as Kaggle's multi-label samples write them
_BAD_CHARACTERS = ',;|"'


def split_tags(cell) -> list[str]:
    """The tags of one cell (split at whitespace); an empty cell has none."""
    return str(cell).split()


def check_tag(tag: str, where: str) -> None:
    """A tag is one word without a comma, semicolon, bar or quote (they would split or quote the CSV cell)."""
    bad = [c for c in _BAD_CHARACTERS if c in tag]
    if bad:
        raise DataError(f"{where}: tag {tag!r} holds {bad[0]!r}; tags are separated by one space, as in "
                        "'clear primary road'")


def _at(row: int, first_line: int | None) -> str:
    return f"row {row}" if first_line is None else f"line {row + first_line}"


def zero_one_matrix(values, where: str, columns: Sequence[str], first_line: int | None = 2) -> np.ndarray:
    """(N, C) uint8 of 0/1 label columns; any other value (blank, 0.5, NaN, 2) is an error naming line and column."""
    import pandas as pd

    frame = pd.DataFrame(np.asarray(values, dtype=object), columns=list(columns))
    out = np.zeros(frame.shape, dtype=np.uint8)
    for j, column in enumerate(frame.columns):
        numbers = pd.to_numeric(frame[column].astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isin(numbers, (0.0, 1.0))
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{where}: {_at(row, first_line)}, column '{column}': {str(frame[column].iloc[row]).strip()!r} "
                            "is not 0 or 1 (a multi-label training column marks each label with 0 or 1)")
        out[:, j] = numbers.astype(np.uint8)
    return out


def one_hot_classes(matrix, where: str, columns: Sequence[str], first_line: int | None = 2) -> np.ndarray:
    """(N,) int64 class indices of one-hot 0/1 label columns (the multi-class probability target's training labels,
    as Plant Pathology ships them): every row must hold exactly one 1, else an error naming its line and columns.

    >>> one_hot_classes(np.array([[0, 1, 0], [1, 0, 0]]), "train.csv", ["a", "b", "c"]).tolist()
    [1, 0]
    >>> one_hot_classes(np.array([[0, 1, 1]]), "train.csv", ["a", "b", "c"])
    Traceback (most recent call last):
    ...
    kfold.errors.DataError: train.csv: line 2, columns 'b', 'c': 2 ones in one row, but a probability target (one class per image) needs exactly one 1 per row
    """
    matrix = np.asarray(matrix)
    sums = matrix.sum(axis=1)
    bad = sums != 1
    if bad.any():
        row = int(np.argmax(bad))
        named = [str(columns[j]) for j in np.flatnonzero(matrix[row])] or [str(c) for c in columns]
        shown = ", ".join(f"'{c}'" for c in named[:6]) + (", ..." if len(named) > 6 else "")
        what = "no 1" if sums[row] == 0 else f"{int(sums[row])} ones"
        raise DataError(f"{where}: {_at(row, first_line)}, column{'s' if len(named) > 1 else ''} {shown}: {what} in one "
                        "row, but a probability target (one class per image) needs exactly one 1 per row")
    return matrix.argmax(axis=1).astype(np.int64)


def detect(values, sample_cells: Sequence[str] | None, *, one_column: bool, target: str | None = None,
           where: str = "training labels") -> tuple[str, tuple[str, ...], str] | None:
    """Which target the training labels make: ``(kind, classes, why)``, or ``None`` for a single-label column.

    ``values``: the label column's cells (``one_column``), or an (N, C) array of the sample's target columns as
    the training CSV holds them (the column names are then the classes, given by the caller). A label column is
    ``tags`` when ``target == 'tags'``, a row holds no tag or several, or the sample's label cells hold several;
    label columns are ``multilabel-probs`` unless every row holds exactly one 1 (one-hot: the multi-class
    probability target ``probs``) or ``target`` says so.
    """
    if one_column:
        cells = [str(v).strip() for v in values]
        if target is not None and target != "tags":
            return None
        why = _tags_evidence(cells, sample_cells)
        if target == "tags":
            why = f"target 'tags' given (--target, or competition.json){'; ' + why if why else ''}"
        if why is None:
            return None
        tags: set[str] = set()
        for row, cell in enumerate(cells):
            parts = split_tags(cell)
            if not parts:
                raise DataError(f"{where}: row {row}: no tag ({cell!r}); every training image needs at least one tag")
            if len(set(parts)) != len(parts):
                dup = next(p for p in parts if parts.count(p) > 1)
                raise DataError(f"{where}: row {row}: tag {dup!r} appears twice in {cell.strip()!r}")
            for part in parts:
                check_tag(part, f"{where}: row {row}")
            tags.update(parts)
        return "tags", tuple(sorted(tags)), why
    matrix = np.asarray(values)
    sums = matrix.sum(axis=1)
    if target == "probs" or (target is None and len(sums) and (sums == 1).all()):
        return "probs", (), ("every training row holds exactly one 1 (one-hot): one class per image, probabilities "
                             "summing to 1")
    if target not in (None, "multilabel-probs"):
        raise UsageError(f"target {target!r}: the training labels are the sample's probability columns; use "
                         "'probs' or 'multilabel-probs'")
    if not len(sums) or (sums == 1).all():
        return "multilabel-probs", (), "target 'multilabel-probs' given (--target, or competition.json)"
    row = int(np.argmax(sums != 1))
    return "multilabel-probs", (), (f"training row {row} holds {int(sums[row])} ones; {int((sums > 1).sum())} rows hold "
                                    f"several and {int((sums == 0).sum())} none: independent labels, one probability each")


def _tags_evidence(cells: list[str], sample_cells: Sequence[str] | None) -> str | None:
    """Why a label column holds tags, or None. A class name with a space (``Common Chickweed``) is not a tag
    list: a column holds tags when its cells combine their words (a word is also a whole cell elsewhere, or there
    are more distinct cells than distinct words), or the sample's cells hold several known words not seen as one cell."""
    distinct = set(cells)
    words = {word for cell in distinct for word in split_tags(cell)}
    several = sorted(cell for cell in distinct if len(split_tags(cell)) > 1)
    if not several and not sample_cells:
        return None
    alone = [cell for cell in several if any(word in distinct for word in split_tags(cell))]
    if alone:
        word = next(w for w in split_tags(alone[0]) if w in distinct)
        return (f"the training cell {alone[0]!r} combines tags that also stand alone ({word!r}); "
                f"{sum(len(split_tags(c)) > 1 for c in cells)} of {len(cells)} rows hold several tags")
    if several and len(distinct) > len(words):
        return (f"{len(distinct)} distinct label cells are combinations of {len(words)} space-separated tags "
                f"(such as {several[0]!r})")
    for cell in sample_cells or ():
        parts = split_tags(str(cell))
        if len(parts) > 1 and str(cell).strip() not in distinct and all(p in words for p in parts):
            return f"the sample submission's label cells hold several space-separated tags ({str(cell).strip()!r})"
    return None


def encode_tags(values, classes: Sequence[str], where: str, column: str, first_line: int | None = None) -> np.ndarray:
    """(N, C) uint8: 1 where row ``i`` holds tag ``classes[j]``; a tag outside ``classes`` or repeated is an error."""
    index = {tag: j for j, tag in enumerate(classes)}
    out = np.zeros((len(values), len(classes)), dtype=np.uint8)
    for row, cell in enumerate(values):
        parts = split_tags(cell)
        if not parts:
            raise DataError(f"{where}: {_at(row, first_line)}, column '{column}': no tag; every row needs at least one")
        for part in parts:
            j = index.get(part)
            if j is None:
                shown = ", ".join(list(classes)[:12]) + (", ..." if len(classes) > 12 else "")
                raise DataError(f"{where}: {_at(row, first_line)}, column '{column}': tag {part!r} is not one of the "
                                f"competition's tags ({shown})")
            if out[row, j]:
                raise DataError(f"{where}: {_at(row, first_line)}, column '{column}': tag {part!r} appears twice")
            out[row, j] = 1
    return out


def decode_tags(matrix: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """The cell of every row of a 0/1 matrix: its tags joined by one space, in the vocabulary's order."""
    names = np.asarray(list(classes), dtype=object)
    return np.array([SEPARATOR.join(names[np.flatnonzero(row)]) for row in np.asarray(matrix)], dtype=object)
