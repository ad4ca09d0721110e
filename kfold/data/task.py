"""The Task: everything a competition gives a competitor, in memory, independent of file format.

Loaders in ``kfold.data`` build Tasks; training, prediction and the MNIST-MIX experiments
consume them. Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kfold.files.schema import Schema, kmnist_schema


@dataclass
class Task:
    """A classification competition on small grayscale images.

    Images are uint8 arrays of shape (N, H, W); labels are int64 class indices 0..C-1.
    The submission ``Category`` of class ``i`` is ``i``; ``class_names[i]`` is for display
    and for probability-file column names.

    Labelled training data alone (no test set) has no test rows: ``test_images`` of shape (0, H, W[, C]) and
    empty ``test_ids`` (:func:`no_test`); ``has_test`` is False.

    ``test_labels`` is set only when the loader knows them (official KMNIST, MNIST-MIX);
    training code never reads it. Scoring goes through a solution file and the leaderboard.

    ``train_groups``/``test_groups`` give a group index per row (the language in MNIST-MIX),
    ``group_names`` their names; ``None`` for single-group tasks.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_ids: np.ndarray
    class_names: list[str]
    test_labels: np.ndarray | None = None
    train_groups: np.ndarray | None = None
    test_groups: np.ndarray | None = None
    group_names: list[str] | None = None
    sample_submission: Path | None = None
    solution: Path | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)
    schema: Schema | None = None  # the competition's columns, Id type, classes and metric; KMNIST's when None
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.schema is None:
            self.schema = kmnist_schema(len(self.class_names))

    def schema_meta(self) -> dict:
        """The competition's schema for the metadata of test probability files and ``config.json``: nothing for
        a KMNIST-shaped competition (``Id,Category``, classes 0..C-1, accuracy), whose files stay as they were."""
        return {} if self.schema == kmnist_schema(self.num_classes) else {"schema": self.schema.to_dict()}

    @property
    def has_test(self) -> bool:
        """False for labelled training data alone (no test images, no sample submission): its folds train and
        score out of fold, and there is nothing to predict or submit."""
        return len(self.test_ids) > 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.train_images.shape[1:3])

    @property
    def channels(self) -> int:
        """1 for grayscale images (N, H, W), else C of (N, H, W, C)."""
        return 1 if self.train_images.ndim == 3 else int(self.train_images.shape[3])

    def group_rows(self, split: str = "train") -> dict[str, np.ndarray]:
        """Row indices per group name for ``split`` ('train' or 'test'); one group 'all' if ungrouped."""
        groups = self.train_groups if split == "train" else self.test_groups
        n_rows = len(self.train_images) if split == "train" else len(self.test_images)
        if groups is None or self.group_names is None:
            return {"all": np.arange(n_rows)}
        return {name: np.flatnonzero(groups == index) for index, name in enumerate(self.group_names)}

    def fingerprint(self) -> str:
        """Short content hash of train images, train labels and test images (stored in metadata).

        Computed once per Task: the arrays are treated as read-only after loading."""
        if self._fingerprint is not None:
            return self._fingerprint
        digest = hashlib.sha256()
        for array in (self.train_images, self.train_labels, self.test_images, self.test_ids):
            contiguous = np.ascontiguousarray(array)
            digest.update(str((contiguous.dtype.str, contiguous.shape)).encode())
            digest.update(contiguous.tobytes())
        self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint


def no_test(train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(test images, test Ids) of training data alone: no rows, the training images' size and channels."""
    return np.empty((0, *train_images.shape[1:]), dtype=train_images.dtype), np.empty(0, dtype=np.int64)
