"""Practice multi-label competitions from single-label images: mosaics of 2-4 real characters. Torch-free.

Each mosaic is a 2x2 grid of cells (56x56 for 28x28 characters); 2 to 4 cells hold an image drawn (seeded, without
repetition until every image was used) from the source split, the others stay blank. Its labels are the classes
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

from dataclasses import replace

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError

__all__ = ["GRID", "MULTILABEL_TARGETS", "mosaic_split", "multilabel_plan"]

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


def multilabel_plan(task, out_dir, options, seed: int, public_fraction: float):
    """The ``_Plan`` of a multi-label practice competition (``options.target`` in :data:`MULTILABEL_TARGETS`)."""
    from kfold.data.make_competition import (DEFAULT_ID_COLUMN, DEFAULT_LABEL_COLUMN, SAMPLE_SUBMISSION, _class_values,
                                             _Plan, _tinted, stems)
    from kfold.data.pixel_csv import resize_images
    from kfold.files.multilabel import decode_tags
    from kfold.files.schema import LABEL_COLUMN, USAGE_COLUMN, Sample, infer_id_kind, infer_schema
    from kfold.files.split import random_usage

    id_column = options.id_column or DEFAULT_ID_COLUMN
    label_column = options.label_column or DEFAULT_LABEL_COLUMN
    values = _class_values(task, options)
    if options.target == "multilabel-probs":
        taken = {id_column, USAGE_COLUMN, LABEL_COLUMN} & set(values)
        if taken:
            raise UsageError(f"class value {sorted(taken)[0]!r} would also be a column name of the sample or solution; "
                             f"rename the column or use the other {'class_values'}")
    if id_column == label_column:
        raise UsageError(f"id_column and label_column are both {id_column!r}")
    n_train, n_test = max(1, len(task.train_labels) // 3), max(1, len(task.test_labels) // 3)
    train_images, train_tags = mosaic_split(task.train_images, task.train_labels, task.num_classes, n_train, seed)
    test_images, test_tags = mosaic_split(task.test_images, task.test_labels, task.num_classes, n_test, seed + 1)
    if options.rgb:
        train_images, test_images = _tinted(train_images, seed, "train"), _tinted(test_images, seed, "test")
    if options.resize is not None:
        train_images, test_images = resize_images(train_images, options.resize), resize_images(test_images, options.resize)
    if options.string_ids:
        test_ids = np.array(stems(n_test, seed, "test"), dtype=str)
        train_stems = stems(n_train, seed, "train")
    else:
        test_ids, train_stems = np.arange(n_test, dtype=np.int64), [str(i) for i in range(n_train)]
    usage = random_usage(n_test, seed, public_fraction)
    train_ids = np.array(train_stems, dtype=str) if options.string_ids else np.arange(n_train, dtype=np.int64)
    if options.target == "tags":
        columns = [id_column, label_column]
        sample_frame = pd.DataFrame({id_column: test_ids, label_column: " ".join(values[:2])})
        train_frame = pd.DataFrame({id_column: train_ids, label_column: decode_tags(train_tags, values)})
        solution = pd.DataFrame({id_column: test_ids, label_column: decode_tags(test_tags, values), USAGE_COLUMN: usage})
        train_values = train_frame[label_column].to_numpy(dtype=object)
    else:
        columns = [id_column, *values]
        sample_frame = pd.DataFrame({id_column: test_ids, **{c: np.full(n_test, 0.5) for c in values}})
        train_frame = pd.DataFrame({id_column: train_ids, **{c: train_tags[:, j] for j, c in enumerate(values)}})
        solution = pd.DataFrame({id_column: test_ids, **{c: test_tags[:, j] for j, c in enumerate(values)},
                                 USAGE_COLUMN: usage})
        train_values = train_tags
    sample = Sample(path=out_dir / SAMPLE_SUBMISSION, columns=columns, ids=test_ids,
                    id_kind=infer_id_kind([str(i) for i in test_ids]), frame=sample_frame.astype(str))
    schema = infer_schema(sample, train_values, metric=options.metric, target=options.target,
                          where_labels="the mosaics' training tags")
    schema = replace(schema, extra={})  # the reason is found again (and said) whenever the folder is read
    return _Plan(schema, train_images, test_images, train_values, train_stems, test_ids, sample_frame, solution,
                 train_frame=train_frame)
