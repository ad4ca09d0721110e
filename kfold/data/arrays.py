"""Readers for idx (gzip or raw), ``.npy`` and ``.npz`` arrays, and the checks every layout shares.

Every failure is a one-line DataError that names the file and the problem.
"""
from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

import numpy as np

from kfold.errors import DataError
from kfold.files.npyguard import check_arrays

_IDX_UBYTE = 0x08  # the only idx element type the KMNIST/MNIST releases use


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an idx file of unsigned bytes with ``ndim`` dimensions (``.gz`` is decompressed)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = bytearray(fh.read())  # bytearray: the returned array is writable
        else:
            raw = bytearray(path.read_bytes())
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a valid gzip file ({_one_line(exc)})") from None
    expected_magic = (_IDX_UBYTE << 8) | ndim
    header_size = 4 + 4 * ndim
    if len(raw) < 4:
        raise DataError(f"{path}: truncated idx file: {len(raw)} bytes, shorter than the 4-byte magic number")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{path}: wrong magic number 0x{magic:08X}, expected 0x{expected_magic:08X} "
                        f"(idx file of unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''})")
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated idx header: {len(raw)} bytes, expected {header_size}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(raw) - header_size
    if found < expected:
        raise DataError(f"{path}: truncated idx file: header promises shape {shape} = {expected} bytes of data, found {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} unexpected bytes after the {expected} bytes of data of shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_npy(path: str | Path) -> np.ndarray:
    path = Path(path)
    check_arrays(path)  # a header claiming more data than the file holds: refused before numpy allocates
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npy file ({_one_line(exc)})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise DataError(f"{path}: is an .npz archive, expected a single .npy array")
    return array


def read_npz(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read ``keys`` from an ``.npz`` archive; a missing key names the keys the archive has."""
    path = Path(path)
    check_arrays(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if isinstance(archive, np.ndarray):
                raise DataError(f"{path}: is a single .npy array, expected an .npz archive with key(s) {', '.join(keys)}")
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(f"{path}: missing key(s) {', '.join(repr(k) for k in missing)} "
                                f"(the archive has: {', '.join(archive.files) or 'nothing'})")
            return {key: archive[key] for key in keys}
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({_one_line(exc)})") from None


def check_images(images: np.ndarray, where: str | Path) -> np.ndarray:
    """Images must be a non-empty uint8 array of shape (N, H, W)."""
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images have dtype {images.dtype}, expected uint8")
    if images.ndim != 3 or 0 in images.shape:
        raise DataError(f"{where}: images have shape {images.shape}, expected (N, H, W) with N, H, W > 0")
    return images


def check_labels(labels: np.ndarray, where: str | Path, num_classes: int) -> np.ndarray:
    """Labels must be 1-D integers in 0..num_classes-1; returned as int64."""
    if labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels have dtype {labels.dtype}, expected integers")
    if labels.ndim != 1:
        raise DataError(f"{where}: labels have shape {labels.shape}, expected (N,)")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DataError(f"{where}: label {labels[bad[0]]} at row {bad[0]} is outside 0..{num_classes - 1} "
                        f"({bad.size} row{'s' if bad.size > 1 else ''} out of range)")
    return labels.astype(np.int64)


def check_count(images: np.ndarray, labels: np.ndarray, images_where: str | Path, labels_where: str | Path) -> None:
    if len(images) != len(labels):
        raise DataError(f"{labels_where}: {len(labels)} labels but {images_where} has {len(images)} images")


def check_same_size(images: np.ndarray, reference: np.ndarray, where: str | Path, reference_where: str | Path) -> None:
    """Train and test (and every MNIST-MIX component) must share one image size."""
    if images.shape[1:] != reference.shape[1:]:
        raise DataError(f"{where}: images are {images.shape[1]}x{images.shape[2]} but "
                        f"{reference_where} has {reference.shape[1]}x{reference.shape[2]}")
