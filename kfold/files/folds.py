"""Stratified k-fold assignment, written once per run as ``folds.csv`` and reused by every later step."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from kfold.files.schema import ID_COLUMN, LABEL_COLUMN

from kfold.files.atomic import write_csv
from kfold.errors import DataError, UsageError, param

__all__ = ["assign_folds", "check_k", "load_or_create_folds", "read_folds", "write_folds"]


def check_k(k) -> None:
    """The one check of a fold count (commands check it when parsing with the same bound)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 10_000:
        raise UsageError(f"{param('k')}={k!r}: k-fold needs an integer k in 2..10000")


def assign_folds(labels: np.ndarray, k: int, seed: int, class_names=None) -> np.ndarray:
    """Fold index (0..k-1) for every row: stratified by label, shuffled with ``seed``.

    Parameters
    ----------
    labels : array of int
        The class of every training row.
    k : int
        Number of folds, 2..10000 and at most the count of the rarest class.
    seed : int
        Seed of the shuffle: the same labels, ``k`` and seed give the same folds.
    class_names : sequence of str, optional
        The classes as the competition spells them (folder names, label values, probability columns), in class
        index order: a class too small for ``k`` is named by them (else by its index). An (N, tags) 0/1 matrix of multi-label
        rows is split by iterative stratification (``kfold.files.multilabel_folds``).

    Returns
    -------
    numpy.ndarray of int64
        The fold of every row; each fold holds every class in proportion (scikit-learn's ``StratifiedKFold``).

    Raises
    ------
    UsageError
        ``k`` outside 2..10000 or larger than a class.

    Examples
    --------
    >>> import numpy as np
    >>> folds = assign_folds(np.array([0, 0, 1, 1, 0, 1]), 3, seed=0)
    >>> sorted(folds.tolist()), np.bincount(folds[[0, 1, 4]]).tolist()
    ([0, 0, 1, 1, 2, 2], [1, 1, 1])
    >>> assign_folds(np.array([0, 0, 1]), 2, seed=0)
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: k=2 is larger than the 1 training image of class 1
    >>> assign_folds(np.array([0, 0, 1]), 2, seed=0, class_names=["Charlock", "Cleavers"])
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: k=2 is larger than the 1 training image of class 'Cleavers'
    """
    labels = np.asarray(labels)
    check_k(k)
    if labels.ndim == 2:
        from kfold.files.multilabel_folds import assign_multilabel_folds

        return assign_multilabel_folds(labels, k, seed, class_names)
    counts = np.bincount(labels)
    smallest = counts[counts > 0].min() if labels.size else 0
    if k > smallest:
        rarest = int(np.flatnonzero(counts == smallest)[0])
        name = str(class_names[rarest]) if class_names is not None and rarest < len(class_names) else str(rarest)
        name = name if name.lstrip("-").isdigit() else repr(name)  # integer classes as written, names quoted
        raise UsageError(f"k={k} is larger than the {smallest} training image{'s' if smallest != 1 else ''} of class "
                         f"{name}")
    from sklearn.model_selection import StratifiedKFold  # here: a fold's process (a Ray worker) reads folds.csv only

    folds = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, val_rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[val_rows] = fold
    return folds


def _label_cells(labels: np.ndarray) -> np.ndarray:
    """folds.csv's label column: the class, or a multi-label row's tag indices joined by spaces (``0 3 7``)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    return np.array([" ".join(map(str, np.flatnonzero(row))) for row in labels], dtype=object)


def write_folds(path: str | Path, labels: np.ndarray, folds: np.ndarray) -> None:
    frame = pd.DataFrame({ID_COLUMN: np.arange(len(labels)), LABEL_COLUMN: _label_cells(labels), "fold": folds})
    write_csv(path, frame)


def read_folds(path: str | Path, labels: np.ndarray | None = None) -> np.ndarray:
    """Read ``folds.csv``; if ``labels`` are given, check the file matches the data it claims to split."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={LABEL_COLUMN: str} if labels is not None and np.ndim(labels) == 2 else None,
                            keep_default_na=not (labels is not None and np.ndim(labels) == 2))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a folds CSV ({exc})") from None
    missing = {ID_COLUMN, LABEL_COLUMN, "fold"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    if not np.array_equal(frame[ID_COLUMN].to_numpy(), np.arange(len(frame))):
        raise DataError(f"{path}: {ID_COLUMN} column must be 0..N-1 in order")
    if labels is not None:
        if len(frame) != len(labels):
            raise DataError(f"{path}: {len(frame)} rows but the training data has {len(labels)} images")
        expected = _label_cells(labels)
        bad = np.flatnonzero(frame[LABEL_COLUMN].to_numpy() != expected)
        if bad.size:
            raise DataError(f"{path}: row Id {int(bad[0])} has label {frame[LABEL_COLUMN].iat[bad[0]]} but the data says {expected[bad[0]]}")
    return frame["fold"].to_numpy(dtype=np.int64)


def load_or_create_folds(path: str | Path, labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Reuse an existing ``folds.csv`` (checking it matches ``k``), or create it."""
    path = Path(path)
    if path.exists():
        folds = read_folds(path, labels)
        if folds.max() + 1 != k:
            raise UsageError(f"{path} has {folds.max() + 1} folds but {param('k')}={k} was given; use a new {param('out')} directory")
        return folds
    folds = assign_folds(labels, k, seed)
    write_folds(path, labels, folds)
    return folds
