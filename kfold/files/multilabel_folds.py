"""Stratified folds of multi-label data: iterative stratification (the ``iterative-stratification`` package,
Sechidis et al. 2011), each fold holding every tag in proportion. Torch-free.

>>> import numpy as np
>>> labels = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 1]])
>>> folds = assign_multilabel_folds(labels, 2, seed=0)
>>> sorted(np.bincount(folds).tolist()), [labels[folds == f].sum(axis=0).tolist() for f in range(2)]
([3, 3], [[2, 2], [2, 2]])
"""
from __future__ import annotations

import numpy as np

from kfold.errors import UsageError

__all__ = ["assign_multilabel_folds"]


def assign_multilabel_folds(labels: np.ndarray, k: int, seed: int, names=None) -> np.ndarray:
    """Fold index (0..k-1) of every row of an (N, tags) 0/1 matrix, by iterative stratification seeded with ``seed``.

    Parameters
    ----------
    labels : (N, C) array of 0/1
        The tags of every training row.
    k : int
        Number of folds; every tag must be on at least ``k`` images.
    seed : int
        The same labels, ``k`` and seed give the same folds.
    names : sequence of str, optional
        The tags' names, for the error message.

    Returns
    -------
    numpy.ndarray of int64
        The fold of every row.

    Raises
    ------
    UsageError
        A tag on fewer than ``k`` images (a fold would never see it), or ``k`` larger than the rows.

    Examples
    --------
    >>> assign_multilabel_folds(np.array([[1, 0], [0, 1], [0, 1]]), 2, seed=0, names=["cloudy", "clear"])
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: k=2 is larger than the 1 training image of tag 'cloudy': a fold would never see it
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    labels = np.asarray(labels)
    counts = labels.sum(axis=0)
    if len(labels) < k or (counts < k).any():
        rare = int(np.argmin(counts))
        n = int(counts[rare])
        tag = repr(str(names[rare])) if names is not None else str(rare)
        if len(labels) < k:
            raise UsageError(f"k={k} is larger than the {len(labels)} training images")
        raise UsageError(f"k={k} is larger than the {n} training image{'s' if n != 1 else ''} of tag {tag}: "
                         "a fold would never see it")
    folds = np.empty(len(labels), dtype=np.int64)
    # iterstrat shuffles with RandomState(seed): the same seed gives the same folds
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, val_rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[val_rows] = fold
    return folds
