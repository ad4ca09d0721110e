"""Turn labelled data into a Kaggle-style competition directory that ``kfold run --data DIR`` scores.

Labelled data is any dataset whose test labels are known: MNIST-MIX (``y_test``), the official KMNIST
release (``t10k-labels`` / ``kmnist-test-labels``) or ``kmnist`` (downloaded). The directory gets

* KMNIST: the Kaggle ``.npy`` layout (``kmnist-{train,test}-imgs.npy``, ``kmnist-train-labels.npy``,
  ``kmnist_classmap.csv``): the test labels stay out of it, as on Kaggle;
* MNIST-MIX: ``MNIST_MIX_train_test.npz`` of the chosen languages (label = language * 10 + digit), which
  the MNIST-MIX loader reads as it reads the release (its ``y_test`` is part of that format; training never
  reads it);

plus ``sample_submission.csv`` (every Category 0) and ``solution.csv`` (``Id,Category,Usage``, a seeded
Public/Private split, and ``Language`` for MNIST-MIX). Everything is checked before the first file is
written; an existing file is never replaced. Nothing here imports torch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kfold.data.competition import CLASSMAP, SAMPLE_SUBMISSION, SOLUTION, write_sample_submission, write_solution
from kfold.data.kmnist import LAYOUTS
from kfold.data.mnist_mix import COMBINED, LANGUAGES
from kfold.data.task import Task
from kfold.errors import DataError, UsageError
from kfold.files.atomic import atomic_path, write_csv
from kfold.files.split import PUBLIC_FRACTION, SOLUTION_SEED

KAGGLE = LAYOUTS[0]  # kmnist-train-imgs.npy, kmnist-train-labels.npy, kmnist-test-imgs.npy


def output_files(task: Task) -> list[str]:
    data = [COMBINED] if task.name == "mnist-mix" else [KAGGLE.train_images, KAGGLE.train_labels, KAGGLE.test_images, CLASSMAP]
    return [*data, SAMPLE_SUBMISSION, SOLUTION]


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # through an open file: numpy would append its suffix to a name
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def _classmap(names: list[str]) -> pd.DataFrame:
    codepoints = [f"U+{ord(name):04X}" if len(name) == 1 else "" for name in names]
    return pd.DataFrame({"index": range(len(names)), "codepoint": codepoints, "char": names})


def make_competition(task: Task, out_dir: str | Path, *, public_fraction: float = PUBLIC_FRACTION,
                     seed: int = SOLUTION_SEED) -> list[Path]:
    """Write the competition directory for ``task`` (whose test labels must be known); return the files."""
    from kfold.files.split import random_usage  # checks the fraction

    if task.test_labels is None:
        raise DataError(f"{task.source or task.name}: no test labels, so no solution can be written "
                        "(make-competition needs labelled test data: MNIST-MIX y_test, the official KMNIST test labels)")
    if task.name == "mnist-mix" and task.extra.get("label_mode", "specific") != "specific":
        raise UsageError("make-competition writes MNIST-MIX with language-specific labels (--label-mode specific); "
                         "train with --label-mode agnostic on the written directory instead")
    random_usage(len(task.test_ids), seed, public_fraction)  # a bad --public-fraction fails before any file is written
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory")
    taken = [name for name in output_files(task) if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    if taken:
        raise UsageError(f"--out {out_dir}: already holds {', '.join(taken)}; choose a new directory")
    written = []
    if task.name == "mnist-mix":
        languages = np.array([LANGUAGES.index(name) for name in task.group_names], dtype=np.int64)
        combined = {"X_train": task.train_images, "y_train": languages[task.train_groups] * 10 + task.train_labels % 10,
                    "X_test": task.test_images, "y_test": languages[task.test_groups] * 10 + task.test_labels % 10}
        _write_npz(out_dir / COMBINED, **{k: np.asarray(v) for k, v in combined.items()})
        written.append(out_dir / COMBINED)
    else:
        for name, array in ((KAGGLE.train_images, task.train_images), (KAGGLE.train_labels, task.train_labels.astype(np.uint8)),
                            (KAGGLE.test_images, task.test_images)):
            _write_npy(out_dir / name, np.ascontiguousarray(array))
            written.append(out_dir / name)
        write_csv(out_dir / CLASSMAP, _classmap(task.class_names))
        written.append(out_dir / CLASSMAP)
    written.append(write_sample_submission(task, out_dir / SAMPLE_SUBMISSION))
    written.append(write_solution(task, out_dir / SOLUTION, seed=seed, public_fraction=public_fraction))
    return written
