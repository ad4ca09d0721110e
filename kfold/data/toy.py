"""A toy competition in the Kaggle KMNIST layout, small enough to train in seconds (the docstring examples').

>>> import tempfile
>>> from kfold.data import load_task
>>> task = load_task(make_toy_competition(tempfile.mkdtemp()), progress=False)
>>> task.train_images.shape, task.num_classes
((40, 28, 28), 10)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kfold.files.schema import KMNIST

__all__ = ["make_toy_competition"]


def make_toy_competition(directory: str | Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """Write ``kmnist-{train,test}-imgs.npy``, ``kmnist-train-labels.npy``, ``sample_submission.csv`` and
    ``solution.csv`` (the host's answers, 30% Public) of ten classes into ``directory``; return it.

    Class ``c`` is a bright 6x6 square at one of ten places on a 28x28 image with noise: a small model
    learns it in an epoch or two.
    """

    from kfold.files.atomic import atomic_path, together, write_csv
    from kfold.files.split import make_solution

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def images(labels: np.ndarray) -> np.ndarray:
        out = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
        for image, label in zip(out, labels):
            row, col = 2 + 12 * (label // 5), 2 + 5 * (label % 5)
            image[row:row + 6, col:col + 6] = 255
        return out

    train_labels, test_labels = np.arange(n_train) % 10, rng.permutation(np.arange(n_test) % 10)
    arrays = {"kmnist-train-imgs.npy": images(train_labels), "kmnist-train-labels.npy": train_labels.astype(np.uint8),
              "kmnist-test-imgs.npy": images(test_labels)}
    ids = np.arange(n_test)
    with together() as transaction:  # the competition appears whole or not at all
        for name, array in arrays.items():
            with atomic_path(directory / name, transaction=transaction) as temp:
                with open(temp, "wb") as handle:
                    np.save(handle, array)
        write_csv(directory / "sample_submission.csv", KMNIST.submission_frame(ids, np.zeros(len(ids), dtype=np.int64)), transaction)
        write_csv(directory / "solution.csv", make_solution(ids, test_labels, seed=seed), transaction)
    return directory
