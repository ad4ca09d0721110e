"""Image files -> one uint8 array, decoded once into a memory-mapped ``.npy`` cache. Torch-free.

Pillow decodes PNG, JPEG, TIFF, BMP (and anything else it reads) in modes ``1``, ``L``, ``LA``, ``P``,
``RGB``, ``RGBA``, ``CMYK``, ``I``, ``I;16``: grayscale images stay one channel (16-bit values are scaled
to 0..255), everything else becomes RGB, unless ``channels`` says 1 or 3. ``image_size=N`` resizes every
image to N x N (Pillow's bilinear filter, which averages over the source pixels when it shrinks); without
it every image must share the first one's size, and the first that does not is named with it.

The result is cached under ``<cache>/decoded/<split>-<key>.npy`` (``$KFOLD_CACHE`` or ``~/.cache/kfold``),
the key being a hash of the files' resolved paths, sizes and modification times and of the decode settings:
the second load of the same files opens the cache (a memory map) instead of decoding. A cache file is
written through :mod:`kfold.files.atomic` (a damaged or half-written one never appears under its name)
and checked before use: a wrong header, shape or size is decoded again, never trusted.

Decoding runs in a process pool over the cores: the workers write their chunks of rows straight into the
memory-mapped temporary file, so memory stays near the size of the array itself.

For many files (``FAST_PNG_MIN_ROWS`` or more) a plain 8-bit PNG (gray, RGB, RGBA, gray + alpha, palette) is
decoded by OpenCV's libpng (``cv2.imdecode``, installed with albumentations) instead of Pillow: PNG is lossless,
so the pixels are the same, and a small image costs a third of Pillow's per-file Python work. Everything else
(other formats, 1/2/4/16-bit PNG, an image over Pillow's decompression-bomb limit, a file libpng refuses) goes
to Pillow, which also words every error; libpng's own warnings on standard error are silenced while a chunk
decodes. Mode conversion and resizing are Pillow's in both cases, so the result does not depend on the path.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import warnings
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Sequence

import numpy as np

from kfold.errors import DataError, UsageError, param

CACHE_FOLDER = "decoded"
CACHE_VERSION = "decode-v1"  # part of every key: a change of the decoder invalidates old caches
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
MIN_ROWS_PER_WORKER = 256  # below this a pool costs more than it saves
MAX_SIZE = 4096            # image_size beyond this is surely a typo (a 4096x4096 RGB image is 48 MB)
FAST_PNG_MIN_ROWS = 2048   # from here importing OpenCV (about 0.25 s) pays for itself in plain PNGs
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_FAST_COLOR_TYPES = (0, 2, 3, 4, 6)  # gray, RGB, palette, gray + alpha, RGBA (8 bits per sample)


def check_decode_settings(image_size: int | None, channels: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
                                   or not 1 <= image_size <= MAX_SIZE):
        raise UsageError(f"image_size {image_size!r}: must be an integer in 1..{MAX_SIZE}")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise UsageError(f"channels {channels!r}: must be 1 or 3")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def decode_one(path: str | os.PathLike, image_size: int | None = None, channels: int | None = None) -> np.ndarray:
    """One image as uint8 (H, W) or (H, W, 3); ``channels`` None keeps grayscale as (H, W).

    Raises :class:`DataError` naming the file for an unreadable, truncated or oversized (decompression bomb)
    image."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _decode(path, image_size, channels)


def _decode(path, image_size: int | None, channels: int | None, cv2=None) -> np.ndarray:
    """``decode_one`` without setting the warnings filter: the caller has made Pillow's
    ``DecompressionBombWarning`` an error (once per chunk, not once per image). With ``cv2`` (the module), a
    plain 8-bit PNG is decoded by OpenCV (see the module docstring)."""
    from PIL import Image

    if cv2 is not None and path[-4:].lower() == ".png":
        pixels = _plain_png(path, cv2)
        if pixels is not None:
            if (image_size is None or pixels.shape[:2] == (image_size, image_size)) and (
                    channels is None or channels == (1 if pixels.ndim == 2 else 3)):
                return pixels
            with Image.fromarray(np.ascontiguousarray(pixels)) as img:
                return _converted(img, image_size, channels)
    try:
        with Image.open(path) as img:
            return _converted(img, image_size, channels)  # decodes the file (one load, not two)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: image too large, refused as a possible decompression bomb ({_one_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 -- Pillow raises OSError, SyntaxError, ValueError, struct.error ...
        raise DataError(f"{path}: not a readable image ({_one_line(exc)})") from None


def _converted(img, image_size: int | None, channels: int | None) -> np.ndarray:
    """``img`` in the asked mode (:func:`_to_mode`) and size (Pillow's bilinear filter) as a uint8 array."""
    from PIL import Image

    image = _to_mode(img, channels)
    if image_size is not None and image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _plain_png(path: str, cv2) -> np.ndarray | None:
    """The pixels of a plain 8-bit PNG as (H, W) gray or (H, W, 3) RGB, decoded by OpenCV exactly as Pillow
    would give them (alpha dropped, a palette expanded, gray + alpha as gray), or None when the file is not such
    a PNG or libpng refuses it (then Pillow decodes it, or names the error)."""
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, color = data[24], data[25]
    if depth != 8 or color not in PNG_FAST_COLOR_TYPES:
        return None
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        return None  # Pillow refuses it as a possible decompression bomb
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape[:2] != (height, width):
        return None
    if color == 0:
        return pixels if pixels.ndim == 2 else None
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        return None
    if color == 4:
        return pixels[:, :, 0]  # libpng expands gray + alpha to BGRA with B = G = R = the gray
    return pixels[:, :, 2::-1]  # BGR(A) -> RGB


def _worth_opencv(paths: Sequence[str]) -> bool:
    """Whether these paths hold enough PNGs for OpenCV's import to pay for itself (and OpenCV imports)."""
    if len(paths) < FAST_PNG_MIN_ROWS or sum(p[-4:].lower() == ".png" for p in paths) < FAST_PNG_MIN_ROWS:
        return False
    return _opencv() is not None


def _opencv():
    """The ``cv2`` module, or None without it."""
    try:
        import cv2
    except ImportError:  # albumentations installs it; without it Pillow decodes everything
        return None
    return cv2


class _QuietNativeStderr:
    """Standard error's file descriptor pointed at /dev/null while a chunk decodes: libpng prints its warnings
    and errors there itself (a refused file is then decoded, and its error worded, by Pillow)."""

    def __enter__(self):
        self.saved = None
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
        return False


def _to_mode(img, channels: int | None):
    """An ``L`` or ``RGB`` image of ``img`` (16-bit gray scaled to 8 bits)."""
    from PIL import Image

    mode = img.mode
    if (mode == "L" and channels != 3) or (mode == "RGB" and channels != 1):
        return img  # already what is asked: no copy
    if mode in ("I", "F") or mode.startswith("I;16"):
        values = np.asarray(img)
        if mode == "F":
            values = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        else:
            values = ((np.clip(values.astype(np.int64), 0, 65535) + 128) // 257).astype(np.uint8)
        gray = Image.fromarray(values, mode="L")
    elif mode in GRAY_MODES:
        gray = img.convert("L")
    else:
        color = img.convert("RGB")
        return color.convert("L") if channels == 1 else color
    return gray.convert("RGB") if channels == 3 else gray


# -- the cache -------------------------------------------------------------------------------------
def cache_key(paths: Sequence[str | os.PathLike], image_size: int | None, channels: int | None) -> str:
    """A hash of the files (resolved path, size, mtime, in order) and the decode settings."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{image_size}|{channels}|{len(paths)}".encode())
    folders: dict[str, str] = {}  # resolved once per folder, not once per file
    for path in paths:
        parent, name = os.path.split(os.fspath(path))
        real = folders.get(parent)
        if real is None:
            real = folders[parent] = os.path.realpath(parent or ".")
        st = os.stat(path)
        digest.update(f"\n{real}/{name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def cache_path(paths: Sequence[str | os.PathLike], split: str, image_size: int | None, channels: int | None,
               cache_dir: str | os.PathLike | None = None) -> Path:
    from kfold.data.download import cache_root

    return cache_root(cache_dir) / CACHE_FOLDER / f"{split}-{cache_key(paths, image_size, channels)}.npy"


def open_cached(path: Path, n_rows: int, image_size: int | None = None, channels: int | None = None) -> np.ndarray | None:
    """The cached array at ``path`` (copy-on-write memory map), or None when it is absent or does not look
    exactly like ``n_rows`` uint8 images (then it is decoded again)."""
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as fh:
            version = npy_format.read_magic(fh)
            if version != (1, 0):
                return None
            shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
            offset = fh.tell()
        size = os.path.getsize(path)
    except (OSError, ValueError, EOFError, SyntaxError):
        return None
    if (dtype != np.uint8 or fortran or len(shape) not in (3, 4) or shape[0] != n_rows or 0 in shape
            or (len(shape) == 4 and shape[3] != 3)):
        return None
    if image_size is not None and tuple(shape[1:3]) != (image_size, image_size):
        return None
    if channels is not None and (1 if len(shape) == 3 else 3) != channels:
        return None
    if size != offset + math.prod(shape):
        return None
    try:
        return np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None


def decode_images(paths: Sequence[str | os.PathLike], *, split: str = "images", image_size: int | None = None,
                  channels: int | None = None, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  workers: int | None = None) -> np.ndarray:
    """``paths`` decoded into one uint8 array (N, H, W) or (N, H, W, 3), cached (see the module docstring)."""
    check_decode_settings(image_size, channels)
    paths = [os.fspath(p) for p in paths]  # plain strings: pathlib costs more than the cached load itself
    if not paths:
        raise DataError(f"{split}: no images to decode")
    target = cache_path(paths, split, image_size, channels, cache_dir)
    cached = open_cached(target, len(paths), image_size, channels)
    if cached is not None:
        return cached
    first = decode_one(paths[0], image_size, channels)
    out_channels = channels or (1 if first.ndim == 2 else 3)
    try:
        _decode_into(target, paths, first.shape[:2], out_channels, image_size, auto=channels is None,
                     progress=progress, workers=workers, split=split)
    except _NeedsColor:  # the first image was gray, a later one is not: everything becomes RGB
        _decode_into(target, paths, first.shape[:2], 3, image_size, auto=False, progress=progress,
                     workers=workers, split=split)
    array = open_cached(target, len(paths), image_size)
    if array is None:
        raise DataError(f"{target}: the decoded cache cannot be read back")
    return array


class _NeedsColor(Exception):
    pass


def _workers(n_rows: int, workers: int | None) -> int:
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:
            workers = os.cpu_count() or 1
    return max(1, min(workers, n_rows // MIN_ROWS_PER_WORKER))


def _decode_into(target: Path, paths: list[str], size: tuple[int, int], channels: int, image_size: int | None, *,
                 auto: bool, progress: bool, workers: int | None, split: str) -> None:
    from numpy.lib.format import open_memmap
    from tqdm import tqdm

    from kfold.files.atomic import Transaction, atomic_path

    shape = (len(paths), *size) + ((3,) if channels == 3 else ())
    n_workers = _workers(len(paths), workers)
    use_cv2 = _worth_opencv(paths)  # imported here, before the pool forks
    chunk = max(16, min(1024, math.ceil(len(paths) / (n_workers * 8))))
    jobs = [(start, paths[start:start + chunk]) for start in range(0, len(paths), chunk)]
    with Transaction() as transaction, atomic_path(target, transaction=transaction) as tmp:
        out = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        del out  # header and size are on disk; the workers open the file themselves
        bar = tqdm(total=len(paths), desc=f"decoding {split}", unit="img", disable=not progress, leave=False)
        try:
            if n_workers == 1:
                for start, names in jobs:
                    _raise(_decode_chunk(str(tmp), start, names, size, channels, image_size, auto, use_cv2),
                           paths, size)
                    bar.update(len(names))
            else:
                _run_pool(jobs, str(tmp), size, channels, image_size, auto, use_cv2, n_workers, bar, paths)
        finally:
            bar.close()


def _run_pool(jobs, tmp, size, channels, image_size, auto, use_cv2, n_workers, bar, paths) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
        pending = {pool.submit(_decode_chunk, tmp, start, names, size, channels, image_size, auto, use_cv2): len(names)
                   for start, names in jobs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    _raise(future.result(), paths, size)
                    bar.update(pending.pop(future))
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _raise(result, paths: list[str], size: tuple[int, int]) -> None:
    """Turn a worker's report into the one error line (or nothing when the chunk was fine)."""
    if result is None:
        return
    kind, row, detail = result
    if kind == "error":
        raise DataError(detail)
    if kind == "color":
        raise _NeedsColor()
    height, width = size
    raise DataError(f"images differ in size: {paths[0]} is {width}x{height} but {paths[row]} is "
                    f"{detail[1]}x{detail[0]}; give an image size ({param('image_size')}=N) to resize them all")


def _decode_chunk(tmp: str, start: int, names: list[str], size, channels: int, image_size: int | None, auto: bool,
                  use_cv2: bool = False):
    """Decode ``names`` into rows ``start..`` of the memory-mapped ``tmp``; None, or (kind, row, detail)."""
    from contextlib import nullcontext

    from PIL import Image

    cv2 = _opencv() if use_cv2 else None
    out = np.load(tmp, mmap_mode="r+")
    block = np.empty((len(names),) + out.shape[1:], dtype=np.uint8)  # the chunk in memory, then one copy
    try:
        with warnings.catch_warnings(), (_QuietNativeStderr() if cv2 is not None else nullcontext()):
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            for offset, name in enumerate(names):
                row = start + offset
                try:
                    image = _decode(name, image_size, None if auto and channels == 1 else channels, cv2)
                except DataError as exc:
                    return ("error", row, str(exc))
                if image.ndim == 3 and channels == 1:  # auto: a color image among gray ones
                    return ("color", row, None)
                if image.shape[:2] != tuple(size):
                    return ("size", row, image.shape[:2])
                block[offset] = image
        out[start:start + len(names)] = block
        out.flush()
    finally:
        del out
    return None
