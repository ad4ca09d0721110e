"""The CSV files around a competition: class map, sample submission and the host's solution file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kfold.files.atomic import write_csv
from kfold.errors import DataError, UsageError
from kfold.data.task import Task
from kfold.files.split import PUBLIC_FRACTION, SOLUTION_SEED
from kfold.files.schema import GROUP_COLUMN, ID_COLUMN, LABEL_COLUMN, kmnist_schema

CLASSMAP = "kmnist_classmap.csv"
SAMPLE_SUBMISSION = "sample_submission.csv"
SOLUTION = "solution.csv"
RESERVED_CLASS_NAMES = (ID_COLUMN, LABEL_COLUMN)  # columns of probability CSVs next to the class columns


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({' '.join(str(exc).split())})") from None


def _require_columns(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(map(str, frame.columns))})")


def read_classmap(path: str | Path) -> list[str]:
    """Class names from ``kmnist_classmap.csv`` (``index,codepoint,char``): the ``char`` column, by index."""
    path = Path(path)
    frame = _read_csv(path, dtype=str, keep_default_na=False)
    _require_columns(frame, path, ("index", "char"))
    for row, (index, char) in enumerate(zip(frame["index"], frame["char"])):
        if index.strip() != str(row):
            raise DataError(f"{path}: line {row + 2}: index {index!r}, expected {row} (indices must be 0..K-1 in order)")
        if not char.strip():
            raise DataError(f"{path}: line {row + 2}: empty char for class {row}")
    if frame.empty:
        raise DataError(f"{path}: no classes")
    names = [char.strip() for char in frame["char"]]
    for row, name in enumerate(names):
        if name in RESERVED_CLASS_NAMES:
            raise DataError(f"{path}: line {row + 2}: class name {name!r} is also a column of kfold's CSV files "
                            f"({', '.join(RESERVED_CLASS_NAMES)}); rename it")
        if names.index(name) != row:
            raise DataError(f"{path}: line {row + 2}: class name {name!r} repeats line {names.index(name) + 2}")
    return names


def read_sample_ids(path: str | Path, n_test: int, test_images_path: str | Path) -> np.ndarray:
    """Test Ids from a sample submission, in file order (row i <-> test image i).

    The sample is checked once, here, with the rules of ``kfold validate`` (header ``Id,Category``,
    integer Ids within 64 bits, no blank line, no duplicate), so a sample that training accepts is
    never refused later by predict or validate."""
    from kfold.files.submission import read_submission

    path = Path(path)
    sample = read_submission(path)
    if len(sample.ids) != n_test:
        raise DataError(f"{path}: {len(sample.ids)} rows but {test_images_path} has {n_test} test images")
    return sample.ids


def write_solution(task: Task, path: str | Path, *, seed: int = SOLUTION_SEED, public_fraction: float = PUBLIC_FRACTION) -> Path:
    """Write the host's ``Id,Category,Usage`` file for a task whose test labels are known.

    Tasks with groups (MNIST-MIX languages) get a last ``Language`` column, which the leaderboard
    turns into per-language accuracy."""
    from kfold.files.split import make_solution

    if task.test_labels is None:
        raise UsageError(f"task {task.name!r} has no test labels, so no solution file can be written")
    path = Path(path)
    solution = make_solution(task.test_ids, task.test_labels, seed=seed, public_fraction=public_fraction,
                             schema=None if task.schema == kmnist_schema(task.num_classes) else task.schema)
    if task.test_groups is not None and task.group_names is not None:
        solution[GROUP_COLUMN] = np.asarray(task.group_names)[task.test_groups]
    write_csv(path, solution)
    return path


def write_sample_submission(task: Task, path: str | Path) -> Path:
    """Write the competition's sample submission as Kaggle distributes it: every row the first class (label
    target), uniform probabilities (one column per class) or 0.5 (binary target)."""
    path = Path(path)
    schema = task.schema
    n = len(task.test_ids)
    categories = np.zeros(n, dtype=np.int64)
    probs = np.full((n, schema.num_classes), 1.0 / schema.num_classes)
    write_csv(path, schema.submission_frame(task.test_ids, categories, probs))
    return path


def solution_matches(path: str | Path, task: Task) -> bool:
    """True when the solution file at ``path`` holds exactly this task's test Ids and labels."""
    path = Path(path)
    if task.test_labels is None or not path.is_file():
        return False
    id_column, label_column, _ = task.schema.solution_header
    frame = _read_csv(path, dtype=str, keep_default_na=False)
    if id_column not in frame.columns or label_column not in frame.columns or len(frame) != len(task.test_ids):
        return False
    return (np.array_equal(frame[id_column].to_numpy(dtype=str), np.asarray(task.test_ids).astype(str))
            and np.array_equal(frame[label_column].to_numpy(dtype=str), task.schema.decode(task.test_labels).astype(str)))
