"""Image files in folders: the listing of a folder, Ids matched to file names, labels CSVs, class subfolders.

Torch-free; decoding is :mod:`kfold.data.decode`'s. A folder's entries are listed once (``os.scandir``);
a symbolic link whose target lies outside the folder is refused (a competition folder never needs one, and
reading through it would read files elsewhere); hidden files (``.DS_Store``) are skipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.data.decode import IMAGE_SUFFIXES
from kfold.errors import DataError

MISSING_LABELS = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>"})


def _inside(root_real: str, path: str) -> bool:
    target = os.path.realpath(path)
    return os.path.commonpath([root_real, target]) == root_real


def _entries(folder: Path, root_real: str) -> list[os.DirEntry]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    for entry in entries:
        if entry.is_symlink() and not _inside(root_real, entry.path):
            raise DataError(f"{entry.path}: a symbolic link to {os.path.realpath(entry.path)}, outside {folder}; "
                            "refusing to read through it")
    return [e for e in entries if not e.name.startswith(".")]


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def list_images(folder: str | os.PathLike) -> list[str]:
    """The image files directly in ``folder`` (paths as strings), sorted by name."""
    folder = Path(folder)
    entries = _entries(folder, os.path.realpath(folder))
    return [e.path for e in entries if is_image_name(e.name) and e.is_file()]


def list_class_folders(folder: str | os.PathLike) -> list[tuple[str, list[str]]]:
    """``folder/<class>/*`` as (class name, image files) per class folder, sorted by name; empty classes are errors."""
    folder = Path(folder)
    root_real = os.path.realpath(folder)
    classes = []
    for entry in _entries(folder, root_real):
        if not entry.is_dir():
            continue
        files = [e.path for e in _entries(Path(entry.path), root_real) if is_image_name(e.name) and e.is_file()]
        if not files:
            raise DataError(f"{entry.path}: a class folder without images ({', '.join(s for s in IMAGE_SUFFIXES)})")
        classes.append((entry.name, files))
    return classes


def has_subfolders(folder: Path) -> bool:
    try:
        return any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(folder))
    except OSError:
        return False


@dataclass
class FileIndex:
    """File name -> path and stem -> path of one folder, to find the file of an Id (``0a3f9c`` or ``0a3f9c.png``)."""

    folder: Path
    by_name: dict[str, str]
    by_stem: dict[str, list[str]]

    @classmethod
    def of(cls, folder: Path, files: list[str]) -> "FileIndex":
        by_name: dict[str, str] = {}
        by_stem: dict[str, list[str]] = {}
        for path in files:
            name = os.path.basename(path)
            by_name[name] = path
            by_stem.setdefault(os.path.splitext(name)[0], []).append(path)
        return cls(folder, by_name, by_stem)

    def find(self, ids, where: str, column: str, first_line: int | None = 2) -> list[str]:
        """The file of each Id, in order; an Id without a file (or with two) is one error naming it."""
        out = []
        for row, value in enumerate(ids):
            key = str(value)
            path = self.by_name.get(key)
            if path is None:
                candidates = self.by_stem.get(key, [])
                if len(candidates) > 1:
                    raise DataError(f"{where}: {_at(row, first_line)}, column '{column}': Id {key!r} matches "
                                    f"{len(candidates)} files in {self.folder} ({', '.join(os.path.basename(p) for p in candidates[:3])})")
                path = candidates[0] if candidates else None
            if path is None:
                raise DataError(f"{where}: {_at(row, first_line)}, column '{column}': Id {key!r} has no image in "
                                f"{self.folder} (looked for {key} with or without one of {', '.join(IMAGE_SUFFIXES)})")
            out.append(path)
        return out


def _at(row: int, first_line: int | None) -> str:
    return f"row {row}" if first_line is None else f"line {row + first_line}"


def read_text_csv(path: Path, what: str) -> pd.DataFrame:
    """A CSV as strings, exactly as written (no NA guessing), with one-line errors."""
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                            skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({_one_line(exc)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        dup = next(c for c in frame.columns if list(frame.columns).count(c) > 1)
        raise DataError(f"{path}: line 1: column {dup!r} appears twice")
    if frame.empty:
        raise DataError(f"{path}: no rows after the header")
    return frame


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_labels_present(values: pd.Series, where: str, column: str, first_line: int = 2) -> np.ndarray:
    """Label cells as text; a blank or NaN-like cell is one error naming its line."""
    text = values.astype(str).str.strip()
    missing = text.isin(MISSING_LABELS).to_numpy()
    if missing.any():
        row = int(np.argmax(missing))
        raise DataError(f"{where}: line {row + first_line}, column '{column}': missing label "
                        f"({values.iloc[row]!r}); every training row needs a class")
    return text.to_numpy(dtype=object)


def check_unique(values, where: str, column: str, what: str = "Id value", first_line: int = 2) -> None:
    dup = pd.Index(values).duplicated()
    if dup.any():
        row = int(np.argmax(dup))
        raise DataError(f"{where}: line {row + first_line}, column '{column}': duplicate {what} {shown(values[row])}")


def shown(value) -> str:
    """An Id as a message shows it: 77, '0a3f9c' (numpy scalars as plain Python values)."""
    value = value.item() if hasattr(value, "item") else value
    return repr(value)
