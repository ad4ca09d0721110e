"""KMNIST directory layouts: Kaggle ``.npy`` competition files, official ``.npz`` and official idx ``.gz``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kfold.data.task import Task, no_test

from kfold.data.arrays import check_count, check_images, check_labels, check_same_size, read_idx, read_npy, read_npz
from kfold.data.competition import CLASSMAP, SAMPLE_SUBMISSION, SOLUTION, read_classmap, read_sample_ids

KMNIST_NUM_CLASSES = 10
# where the columns of training data alone (no test images, no sample) come from
ALONE_SCHEMA = f"no {SAMPLE_SUBMISSION}: the arrays layout's own (KMNIST's)"


@dataclass(frozen=True)
class Layout:
    """File names of one KMNIST layout and how to read one of its arrays (path, ndim) -> array."""

    key: str
    description: str
    train_images: str
    train_labels: str
    test_images: str
    test_labels: str  # optional: present in the official releases, absent in a Kaggle competition
    read: Callable[[Path, int], np.ndarray]

    @property
    def required(self) -> tuple[str, str, str]:
        return (self.train_images, self.train_labels, self.test_images)


LAYOUTS = (
    Layout("kaggle-npy", "Kaggle competition .npy", "kmnist-train-imgs.npy", "kmnist-train-labels.npy",
           "kmnist-test-imgs.npy", "kmnist-test-labels.npy", lambda path, ndim: read_npy(path)),
    Layout("official-npz", "official KMNIST .npz", "kmnist-train-imgs.npz", "kmnist-train-labels.npz",
           "kmnist-test-imgs.npz", "kmnist-test-labels.npz", lambda path, ndim: read_npz(path, ("arr_0",))["arr_0"]),
    Layout("official-idx", "official KMNIST idx", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", read_idx),
)


def load_kmnist_dir(directory: str | Path, layout: Layout, *, name: str | None = None) -> Task:
    """Load a KMNIST-style directory in ``layout``.

    Class names come from ``kmnist_classmap.csv`` when present (else "0".."9"); test Ids from
    ``sample_submission.csv`` when present (else 0..M-1). Without the test images file (training images and labels
    alone, which :func:`kfold.data.load.load_task` accepts only without a sample submission) the task has no test
    rows. ``solution.csv`` is only referenced,
    never read: its labels are the host's secret.
    """
    directory = Path(directory)
    paths = {field: directory / getattr(layout, field)
             for field in ("train_images", "train_labels", "test_images", "test_labels")}
    classmap = directory / CLASSMAP
    class_names = read_classmap(classmap) if classmap.is_file() else [str(i) for i in range(KMNIST_NUM_CLASSES)]

    train_images = check_images(layout.read(paths["train_images"], 3), paths["train_images"])
    train_labels = check_labels(layout.read(paths["train_labels"], 1), paths["train_labels"], len(class_names))
    check_count(train_images, train_labels, paths["train_images"], paths["train_labels"])
    sample = directory / SAMPLE_SUBMISSION
    test_labels = None
    if not paths["test_images"].is_file():  # training data alone
        test_images, test_ids = no_test(train_images)
    else:
        test_images = check_images(layout.read(paths["test_images"], 3), paths["test_images"])
        check_same_size(test_images, train_images, paths["test_images"], paths["train_images"])
        test_ids = (read_sample_ids(sample, len(test_images), paths["test_images"]) if sample.is_file()
                    else np.arange(len(test_images), dtype=np.int64))
    if len(test_images) and paths["test_labels"].is_file():
        test_labels = check_labels(layout.read(paths["test_labels"], 1), paths["test_labels"], len(class_names))
        check_count(test_images, test_labels, paths["test_images"], paths["test_labels"])

    solution = directory / SOLUTION
    return Task(
        name=name or directory.name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_ids=test_ids,
        class_names=class_names,
        test_labels=test_labels,
        sample_submission=sample if sample.is_file() and len(test_images) else None,
        solution=solution if solution.is_file() and len(test_images) else None,
        source=f"{layout.description} layout in {directory}" + ("" if len(test_images) else ", training data alone"),
        extra={"layout": layout.key, **({} if len(test_images) else {"schema_from": ALONE_SCHEMA})},
    )
