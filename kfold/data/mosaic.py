"""Practice multi-label competitions from single-label images: mosaics of 2-4 real characters. Torch-free.

Each mosaic is a 2x2 grid of cells (56x56 for 28x28 characters); 2 to 4 cells hold an image drawn (seeded, without
repetition until every image was used) from the source split, the others stay blank; a split of N images gives N
mosaics (each image in about three). Its labels are the classes
present. ``make-competition --target tags`` writes them Planet-style (``image_name,tags`` with space-separated
tags), ``--target multilabel-probs`` CheXpert-style (one 0/1 column per class in ``train.csv``, one probability
column per class in the sample). Training mosaics come from the training images, test mosaics from the labelled
test images: no character is in both.

>>> import numpy as np
>>> images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 2, 2) + 1
>>> mosaics, tags = mosaic_split(images, np.array([0, 1, 2, 0, 1, 2]), 3, 3, seed=0)
>>> mosaics.shape, tags.shape, bool((tags.sum(axis=1) >= 1).all())
((3, 4, 4), (3, 3), True)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError

__all__ = ["GRID", "MULTILABEL_TARGETS", "mosaic_split", "multilabel_tables"]

GRID = 2                 # a 2x2 grid of cells
MIN_CELLS, MAX_CELLS = 2, 4
MULTILABEL_TARGETS = ("tags", "multilabel-probs")


def mosaic_split(images: np.ndarray, labels: np.ndarray, num_classes: int, count: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` mosaics of ``images`` (N, H, W[, C]) and their (count, num_classes) 0/1 tags; seeded."""
    images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
    if len(images) < MAX_CELLS:
        raise DataError(f"{len(images)} images: a mosaic needs at least {MAX_CELLS} to draw from")
    rng = np.random.default_rng(seed)
    h, w = images.shape[1:3]
    out = np.zeros((count, GRID * h, GRID * w, *images.shape[3:]), dtype=images.dtype)
    tags = np.zeros((count, num_classes), dtype=np.uint8)
    order, used = rng.permutation(len(images)), 0
    for m in range(count):
        filled = int(rng.integers(MIN_CELLS, MAX_CELLS + 1))
        cells = rng.permutation(GRID * GRID)[:filled]
        for cell in cells:
            if used == len(order):
                order, used = rng.permutation(len(images)), 0
            row = order[used]
            used += 1
            y, x = divmod(int(cell), GRID)
            out[m, y * h:(y + 1) * h, x * w:(x + 1) * w] = images[row]
            tags[m, labels[row]] = 1
    return out, tags


def multilabel_tables(train_tags: np.ndarray, test_tags: np.ndarray, values: list[str], target: str, id_column: str,
                      label_column: str, train_ids: np.ndarray, test_ids: np.ndarray, usage: np.ndarray) -> dict:
    """``train.csv``, the sample and the solution of a multi-label practice competition (as DataFrames), and the
    training labels as the schema reads them: tag cells (``tags``) or the 0/1 matrix (``multilabel-probs``)."""
    from kfold.files.multilabel import decode_tags
    from kfold.files.schema import LABEL_COLUMN, USAGE_COLUMN

    if target not in MULTILABEL_TARGETS:
        raise UsageError(f"target {target!r}: mosaics are written for {', '.join(MULTILABEL_TARGETS)}")
    if id_column == label_column:
        raise UsageError(f"id_column and label_column are both {id_column!r}")
    if target == "multilabel-probs":
        taken = {id_column, USAGE_COLUMN, LABEL_COLUMN} & set(values)
        if taken:
            raise UsageError(f"class value {sorted(taken)[0]!r} would also be a column name of the sample or solution; "
                             "rename the column or use the other class_values")
        n_test = len(test_ids)
        return {"columns": [id_column, *values],
                "sample": pd.DataFrame({id_column: test_ids, **{c: np.full(n_test, 0.5) for c in values}}),
                "train": pd.DataFrame({id_column: train_ids, **{c: train_tags[:, j] for j, c in enumerate(values)}}),
                "solution": pd.DataFrame({id_column: test_ids, **{c: test_tags[:, j] for j, c in enumerate(values)},
                                          USAGE_COLUMN: usage}),
                "train_values": train_tags}
    train = pd.DataFrame({id_column: train_ids, label_column: decode_tags(train_tags, values)})
    return {"columns": [id_column, label_column],
            "sample": pd.DataFrame({id_column: test_ids, label_column: " ".join(values[:2])}),
            "train": train,
            "solution": pd.DataFrame({id_column: test_ids, label_column: decode_tags(test_tags, values),
                                      USAGE_COLUMN: usage}),
            "train_values": train[label_column].to_numpy(dtype=object)}
