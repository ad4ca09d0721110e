"""Check ``.npy`` / ``.npz`` headers against the bytes actually present, before numpy allocates anything.

numpy allocates the array a header claims before it reads the data: a 1 KB file whose header claims
2**31 images asks for terabytes. ``check_arrays(path)`` reads only the headers and refuses an array
whose claimed size exceeds what its file (or its member of the archive) can hold, and names a
truncated array as truncated. Nothing here imports torch.
"""
from __future__ import annotations

import tokenize
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from kfold.errors import DataError

__all__ = ["check_arrays", "MAX_DEFLATE_RATIO"]

MAX_DEFLATE_RATIO = 1100  # deflate cannot expand data by more than ~1032:1


def _header(fh, where: str, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length in bytes) of the .npy stream ``fh`` positioned at its start."""
    try:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fh, max_header_size=100_000)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = npy_format.read_array_header_2_0(fh, max_header_size=100_000)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError, tokenize.TokenError, RecursionError, MemoryError,
            KeyError, IndexError, AttributeError) as exc:  # a header Python cannot tokenize or parse: damaged
        raise DataError(f"{where}: {what} ({' '.join(str(exc).split())[:200]})") from None
    return tuple(int(d) for d in shape), dtype, fh.tell()


def _claimed(shape: tuple[int, ...], dtype: np.dtype) -> int | None:
    """Bytes of data the header promises (None for object arrays, whose size is not fixed)."""
    if dtype.hasobject:
        return None
    count = 1
    for dim in shape:
        count *= dim
    return count * dtype.itemsize


def _check(where: str, what: str, shape, dtype, available: int, limit: int | None = None) -> None:
    claimed = _claimed(shape, dtype)
    if claimed is None:
        return  # refused later by allow_pickle=False, with its own message
    if claimed > available:
        raise DataError(f"{where}: {what} (truncated or damaged: the header promises shape {shape} of {dtype}, "
                        f"{claimed:,} bytes, but only {max(available, 0):,} bytes of data are present)")
    if limit is not None and claimed > limit:
        raise DataError(f"{where}: {what} (damaged: the header promises {claimed:,} bytes, more than "
                        f"{limit // MAX_DEFLATE_RATIO:,} compressed bytes can hold)")


def check_arrays(path: str | Path) -> None:
    """Refuse (DataError) a .npy file or an .npz member whose header claims more data than is stored."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    what = f"truncated or damaged array '{info.filename[:-4]}'"
                    with archive.open(info) as member:
                        shape, dtype, header_bytes = _header(member, str(path), what)
                    stored = info.file_size - header_bytes
                    limit = None
                    if info.compress_type != zipfile.ZIP_STORED:
                        limit = max(info.compress_size, 1) * MAX_DEFLATE_RATIO
                    _check(str(path), what, shape, dtype, stored, limit)
            return
        with open(path, "rb") as fh:
            shape, dtype, header_bytes = _header(fh, str(path), "not a readable .npy file")
        _check(str(path), "not a readable .npy file", shape, dtype, size - header_bytes)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    except (EOFError, zipfile.LargeZipFile) as exc:
        raise DataError(f"{path}: truncated or damaged archive ({exc})") from None
