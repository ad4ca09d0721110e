"""Pixel CSVs (Digit Recognizer, Kannada-MNIST, Fashion-MNIST, Sign Language MNIST): one image per row. Torch-free.

A row holds a label and/or an Id column plus the pixel columns (``pixel0..``, ``pixel1..`` or any other
names: every column that is not the label or Id column is a pixel). The image side comes from the pixel
count: ``N*N`` -> N x N grayscale, ``3*N*N`` -> N x N RGB (the pixels of a row in (row, column, channel)
order, as ``image.reshape(-1)`` of an (N, N, 3) array writes them).

The pixels are parsed by pandas' C parser straight into uint8; a file it refuses (a value that is not an
integer 0..255, a blank cell) is read again as text, only to name the first bad cell's line and column.
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError, param

CHUNK_ROWS = 4096  # rows per chunk when a bad cell is looked for


def read_header(path: Path) -> list[str]:
    """The CSV header's fields (BOM and surrounding spaces stripped); duplicate or empty names are errors."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not header:
        raise DataError(f"{path}: empty file, expected a header line")
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        dup = next(name for name in header if header.count(name) > 1)
        raise DataError(f"{path}: line 1: column {dup!r} appears twice")
    if any(not name for name in header):
        raise DataError(f"{path}: line 1: an empty column name (column {header.index('') + 1})")
    return header


def image_geometry(n_pixels: int, where: str, columns: list[str]) -> tuple[int, int]:
    """(side, channels) of ``n_pixels`` values per row: N*N gray or 3*N*N RGB."""
    side = math.isqrt(n_pixels)
    if n_pixels > 0 and side * side == n_pixels:
        return side, 1
    rgb = math.isqrt(n_pixels // 3)
    if n_pixels > 0 and n_pixels % 3 == 0 and 3 * rgb * rgb == n_pixels:
        return rgb, 3
    shown = f"{columns[0]}..{columns[-1]}" if columns else "none"
    raise DataError(f"{where}: {n_pixels} pixel columns ({shown}) make no square image: neither N*N (grayscale) "
                    "nor 3*N*N (RGB); a column that is not a pixel may be among them (name the label and Id "
                    f"columns with {param('label_column')} / {param('id_column')})")


def read_pixel_csv(path: str | os.PathLike, text_columns: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """(pixels uint8 (N, P), {text column: its cells as str}, pixel column names) of a pixel CSV.

    ``text_columns`` (label, Id) are read as text exactly as written; every other column is a pixel."""
    path = Path(path)
    header = read_header(path)
    texts = [c for c in header if c in text_columns]
    pixels = [c for c in header if c not in text_columns]
    if not pixels:
        raise DataError(f"{path}: no pixel columns (header {','.join(header[:6])})")
    dtype = {c: str for c in texts}
    dtype.update({c: np.uint8 for c in pixels})
    try:
        with warnings.catch_warnings():  # 'inf' in a uint8 column: numpy warns before pandas refuses it
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pd.read_csv(path, dtype=dtype, na_filter=False, engine="c", encoding="utf-8-sig")
    except (ValueError, OverflowError, pd.errors.ParserError) as exc:
        _locate_bad_cell(path, pixels, texts, exc)
        raise AssertionError("unreachable")  # _locate_bad_cell always raises
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file, expected a header line") from None
    frame.columns = header
    if frame.empty:
        raise DataError(f"{path}: no rows after the header")
    values = frame[pixels].to_numpy(dtype=np.uint8)
    return values, {c: frame[c].to_numpy(dtype=str) for c in texts}, pixels


def _locate_bad_cell(path: Path, pixels: list[str], texts: list[str], original: BaseException) -> None:
    """Read ``path`` again as text to name the first cell that is not a pixel value 0..255; always raises."""
    try:
        reader = pd.read_csv(path, dtype=str, na_filter=False, keep_default_na=False, engine="c",
                             encoding="utf-8-sig", chunksize=CHUNK_ROWS)
        for chunk in reader:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            for column in pixels:
                cells = chunk[column]
                numbers = pd.to_numeric(cells.str.strip(), errors="coerce")
                bad = (numbers.isna() | (numbers < 0) | (numbers > 255) | (numbers != numbers.round())).to_numpy()
                if bad.any():
                    row = int(np.argmax(bad))
                    line = int(chunk.index[row]) + 2
                    raise DataError(f"{path}: line {line}, column '{column}': {cells.iloc[row]!r} is not a pixel "
                                    "value (an integer 0..255)")
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a readable CSV file ({' '.join(str(exc).split())})") from None
    raise DataError(f"{path}: not a readable pixel CSV ({' '.join(str(original).split())})")


def to_images(values: np.ndarray, side: int, channels: int, image_size: int | None, out_channels: int | None) -> np.ndarray:
    """Rows of pixels -> (N, side, side) or (N, side, side, 3), resized and converted as asked."""
    images = values.reshape(len(values), side, side, *((3,) if channels == 3 else ()))
    return convert_images(images, image_size, out_channels)


def convert_images(images: np.ndarray, image_size: int | None, channels: int | None) -> np.ndarray:
    """uint8 images (N, H, W) or (N, H, W, 3) with ``channels`` (1, 3 or None: as they are) at
    ``image_size`` x ``image_size`` (None: as they are); unchanged images are returned as they are."""
    if channels == 3 and images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    elif channels == 1 and images.ndim == 4:  # ITU-R 601-2 luma, as Pillow's convert("L")
        images = ((images[..., 0].astype(np.uint32) * 19595 + images[..., 1].astype(np.uint32) * 38470
                   + images[..., 2].astype(np.uint32) * 7471 + 0x8000) >> 16).astype(np.uint8)
    if image_size is not None and images.shape[1:3] != (image_size, image_size):
        images = resize_images(images, image_size)
    return images if images.flags.c_contiguous else np.ascontiguousarray(images)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Every image resized to size x size with Pillow's bilinear filter."""
    from PIL import Image

    if size < 1:
        raise UsageError(f"image_size {size}: must be at least 1")
    out = np.empty((len(images), size, size, *images.shape[3:]), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    return out
