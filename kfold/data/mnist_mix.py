"""MNIST-MIX: the combined 10-language file or its per-language component files, any subset of languages.

In the combined ``MNIST_MIX_train_test.npz`` a label is ``language * 10 + digit`` with languages in
the canonical order of ``LANGUAGES``; a component ``<Language>_train_test.npz`` holds digit labels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kfold.errors import DataError, UsageError
from kfold.data.task import Task

from kfold.data.arrays import check_count, check_images, check_labels, check_same_size, read_npz
from kfold.data.competition import SOLUTION, solution_matches

LANGUAGES = ("Arabic", "Bangla", "Devanagari", "English", "Farsi", "Kannada", "Swedish", "Telugu", "Tibetan", "Urdu")
LABEL_MODES = ("specific", "agnostic")
COMBINED = "MNIST_MIX_train_test.npz"
KEYS = ("X_train", "y_train", "X_test", "y_test")


def component_name(language: str) -> str:
    return f"{language}_train_test.npz"


def resolve_languages(languages: list[str] | None) -> list[str] | None:
    """Canonical names (case-insensitive match) in canonical order; None means all present."""
    if languages is None:
        return None
    canonical = {name.lower(): name for name in LANGUAGES}
    unknown = [name for name in languages if name.lower() not in canonical]
    if unknown:
        raise UsageError(f"unknown MNIST-MIX language(s) {', '.join(map(repr, unknown))}; valid: {', '.join(LANGUAGES)}")
    if not languages:
        raise UsageError(f"empty language list; valid: {', '.join(LANGUAGES)}")
    wanted = {canonical[name.lower()] for name in languages}
    return [name for name in LANGUAGES if name in wanted]


def is_mnist_mix(path: Path) -> bool:
    """A combined file, or a directory holding the combined file or any component file."""
    if path.is_file():
        return path.suffix == ".npz"
    return (path / COMBINED).is_file() or any((path / component_name(name)).is_file() for name in LANGUAGES)


def _read_split_file(path: Path, num_classes: int) -> dict[str, np.ndarray]:
    """X_train, y_train, X_test, y_test of one file, checked."""
    arrays = read_npz(path, KEYS)
    for split in ("train", "test"):
        where = f"{path} [X_{split}]"
        check_images(arrays[f"X_{split}"], where)
        arrays[f"y_{split}"] = check_labels(arrays[f"y_{split}"], f"{path} [y_{split}]", num_classes)
        check_count(arrays[f"X_{split}"], arrays[f"y_{split}"], where, f"{path} [y_{split}]")
    check_same_size(arrays["X_test"], arrays["X_train"], f"{path} [X_test]", f"{path} [X_train]")
    return arrays


def _from_combined(path: Path, wanted: list[str] | None) -> tuple[list[str], dict[str, tuple]]:
    arrays = _read_split_file(path, 10 * len(LANGUAGES))
    present = sorted(set(np.unique(arrays["y_train"] // 10)) | set(np.unique(arrays["y_test"] // 10)))
    present_names = [LANGUAGES[i] for i in present]
    languages = wanted or present_names
    absent = [name for name in languages if name not in present_names]
    if absent:
        raise DataError(f"{path}: no rows of language(s) {', '.join(absent)} (present: {', '.join(present_names)})")
    indices = [LANGUAGES.index(name) for name in languages]
    splits = {}
    for split in ("train", "test"):
        language = arrays[f"y_{split}"] // 10
        keep = np.isin(language, indices)
        splits[split] = (arrays[f"X_{split}"][keep], language[keep], arrays[f"y_{split}"][keep] % 10)
    return languages, splits


def _from_components(directory: Path, wanted: list[str] | None) -> tuple[list[str], dict[str, tuple]]:
    found = [name for name in LANGUAGES if (directory / component_name(name)).is_file()]
    languages = wanted or found
    absent = [name for name in languages if name not in found]
    if absent or not languages:
        raise DataError(f"{directory}: missing {', '.join(component_name(n) for n in absent) or 'MNIST-MIX files'} "
                        f"(found components: {', '.join(found) or 'none'}; no {COMBINED})")
    parts = {"train": [], "test": []}
    first = directory / component_name(languages[0])
    for name in languages:
        path = directory / component_name(name)
        arrays = _read_split_file(path, 10)
        if parts["train"]:
            check_same_size(arrays["X_train"], parts["train"][0][0], f"{path} [X_train]", f"{first} [X_train]")
        for split in ("train", "test"):
            digits = arrays[f"y_{split}"]
            parts[split].append((arrays[f"X_{split}"], np.full(len(digits), LANGUAGES.index(name)), digits))
    splits = {split: tuple(np.concatenate(column) for column in zip(*parts[split])) for split in parts}
    return languages, splits


def load_mnist_mix(path: str | Path, languages: list[str] | None = None, label_mode: str = "specific") -> Task:
    """Load MNIST-MIX from the combined npz (file or directory) or a directory of component files.

    ``specific``: 10 classes per present language, class = position of the language among the
    present ones * 10 + digit, names like "Arabic-3". ``agnostic``: the 10 digits "0".."9".
    Groups are the present languages in canonical order. Test Ids are 0..M-1 in row order.
    ``task.solution`` is set when a ``solution.csv`` beside the data matches this exact task.
    """
    if label_mode not in LABEL_MODES:
        raise UsageError(f"label_mode {label_mode!r}: must be one of {', '.join(LABEL_MODES)}")
    wanted = resolve_languages(languages)
    path = Path(path)
    if path.is_file():
        combined, directory = path, path.parent
    elif path.is_dir():
        combined, directory = path / COMBINED, path
    else:
        raise DataError(f"{path}: no such MNIST-MIX file or directory")
    if combined.is_file():
        present, splits = _from_combined(combined, wanted)
        layout, source = "mnist-mix-combined", combined
    else:
        present, splits = _from_components(directory, wanted)
        layout, source = "mnist-mix-components", directory

    position = np.full(len(LANGUAGES), -1, dtype=np.int64)
    position[[LANGUAGES.index(name) for name in present]] = np.arange(len(present))
    images, groups, labels = {}, {}, {}
    for split, (split_images, language, digits) in splits.items():
        images[split], groups[split] = split_images, position[language]
        labels[split] = groups[split] * 10 + digits if label_mode == "specific" else digits.astype(np.int64)
    class_names = ([f"{name}-{digit}" for name in present for digit in range(10)] if label_mode == "specific"
                   else [str(digit) for digit in range(10)])
    task = Task(
        name="mnist-mix",
        train_images=images["train"],
        train_labels=labels["train"],
        test_images=images["test"],
        test_ids=np.arange(len(images["test"]), dtype=np.int64),
        class_names=class_names,
        test_labels=labels["test"],
        train_groups=groups["train"],
        test_groups=groups["test"],
        group_names=present,
        source=f"MNIST-MIX ({', '.join(present)}; {label_mode}) from {source}",
        extra={"layout": layout, "languages": present, "label_mode": label_mode},
    )
    if solution_matches(directory / SOLUTION, task):
        task.solution = directory / SOLUTION
    return task
