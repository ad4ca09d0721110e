"""Issue 22 item 3: image files decoded once (Pillow, a process pool) into a checked, atomic uint8 cache."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kfold.data import decode
from kfold.data.decode import cache_path, decode_images, decode_one
from kfold.errors import DataError, UsageError


def gray_images(n: int, size: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size), dtype=np.uint8)


def write_pngs(folder: Path, images: np.ndarray, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}{i:05d}.png"
        Image.fromarray(image).save(path, compress_level=1)
        paths.append(path)
    return paths


def hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*")] if root.exists() else []


@pytest.mark.parametrize("mode,suffix,exact", [
    ("L", ".png", True), ("L", ".bmp", True), ("L", ".tif", True), ("1", ".png", False), ("LA", ".png", True),
    ("I;16", ".png", False), ("I;16", ".tif", False), ("RGB", ".png", True), ("RGBA", ".png", True),
    ("P", ".png", True), ("RGB", ".jpg", False), ("L", ".jpg", False), ("CMYK", ".tif", False),
])
def test_every_mode_decodes_to_gray_or_rgb(mode, suffix, exact, tmp_path):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:10, 0:14]
    smooth = np.stack([yy * 20, xx * 15, 200 - yy * 10 - xx * 5], axis=2)  # JPEG keeps smooth images close
    base = np.clip(smooth + rng.integers(0, 8, size=(10, 14, 3)), 0, 255).astype(np.uint8)
    gray = np.asarray(Image.fromarray(base).convert("L"))
    path = tmp_path / f"x{suffix}"
    if mode == "I;16":
        Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # 16-bit: 0..65535
        expected = gray
    elif mode == "P":
        image = Image.fromarray(base).quantize(16)
        image.save(path)
        expected = np.asarray(image.convert("RGB"))
    else:
        image = Image.fromarray(base).convert(mode) if mode not in ("L", "LA", "1") else Image.fromarray(gray).convert(mode)
        image.save(path)
        expected = np.asarray(image.convert("RGB" if mode in ("RGB", "RGBA", "CMYK") else "L"))
    out = decode_one(path)
    is_gray = mode in ("L", "1", "LA", "I;16")
    assert out.dtype == np.uint8 and out.shape == ((10, 14) if is_gray else (10, 14, 3))
    if exact:
        assert np.array_equal(out, expected)
    else:
        assert np.abs(out.astype(int) - expected.astype(int)).mean() < 6
    assert decode_one(path, channels=3).shape == (10, 14, 3) and decode_one(path, channels=1).shape == (10, 14)
    assert decode_one(path, image_size=7).shape[:2] == (7, 7)


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    assert decode_one(tmp_path / "a.png").tolist() == [[0, 1, 128, 255]]


@pytest.mark.parametrize("workers", [1, 2])
def test_decode_equals_the_images_and_the_pool_equals_one_process(workers, tmp_path):
    images = gray_images(600)  # above the pool's minimum rows per worker
    paths = write_pngs(tmp_path / "imgs", images)
    out = decode_images(paths, cache_dir=tmp_path / "cache", progress=False, workers=workers)
    assert isinstance(out, np.memmap) and out.dtype == np.uint8 and np.array_equal(out, images)
    assert hidden_files(tmp_path / "cache") == []


def test_gray_then_colour_becomes_rgb_and_channels_force(tmp_path):
    images = gray_images(5)
    paths = write_pngs(tmp_path / "imgs", images)
    Image.fromarray(np.stack([images[3]] * 3, axis=2)).save(paths[3])  # one RGB file among gray ones
    out = decode_images(paths, cache_dir=tmp_path / "cache", progress=False)
    assert out.shape == (5, 12, 12, 3) and np.array_equal(out[..., 0], images)
    gray = decode_images(paths, cache_dir=tmp_path / "cache", progress=False, channels=1)
    assert gray.shape == (5, 12, 12) and np.array_equal(gray, images)
    resized = decode_images(paths, cache_dir=tmp_path / "cache", progress=False, channels=3, image_size=20)
    assert resized.shape == (5, 20, 20, 3)


def test_mixed_sizes_name_two_files(tmp_path):
    paths = write_pngs(tmp_path / "imgs", gray_images(4))
    Image.fromarray(np.zeros((9, 15), np.uint8)).save(paths[2])
    with pytest.raises(DataError) as info:
        decode_images(paths, cache_dir=tmp_path / "cache", progress=False)
    assert str(paths[0]) in str(info.value) and str(paths[2]) in str(info.value) and "15x9" in str(info.value)
    assert hidden_files(tmp_path / "cache") == [] and not list((tmp_path / "cache").rglob("*.npy"))
    assert decode_images(paths, cache_dir=tmp_path / "cache", progress=False, image_size=10).shape == (4, 10, 10)


@pytest.mark.parametrize("value", [0, -3, 5000, 2.5, True])
def test_bad_settings_are_usage_errors(value, tmp_path):
    paths = write_pngs(tmp_path / "imgs", gray_images(1))
    with pytest.raises(UsageError, match="image_size"):
        decode_images(paths, image_size=value, cache_dir=tmp_path / "cache")
    with pytest.raises(UsageError, match="channels"):
        decode_images(paths, channels=value if value != 0 else 2, cache_dir=tmp_path / "cache")


def test_the_second_load_opens_the_cache(tmp_path, monkeypatch):
    images = gray_images(40)
    paths = write_pngs(tmp_path / "imgs", images)
    first = decode_images(paths, cache_dir=tmp_path / "cache", progress=False)
    calls = []
    real = decode.decode_one
    monkeypatch.setattr(decode, "decode_one", lambda *a, **k: calls.append(a) or real(*a, **k))
    second = decode_images(paths, cache_dir=tmp_path / "cache", progress=False)
    assert calls == [] and np.array_equal(second, first)
    # another setting, or a changed file: another key, decoded again
    decode_images(paths, cache_dir=tmp_path / "cache", progress=False, workers=1, channels=3)
    assert calls
    key = cache_path(paths, "images", None, None, tmp_path / "cache")
    Image.fromarray(255 - images[0]).save(paths[0])
    os.utime(paths[0], ns=(1, 1))
    assert cache_path(paths, "images", None, None, tmp_path / "cache") != key


@pytest.mark.parametrize("damage", ["truncate", "garbage-header", "wrong-shape", "wrong-dtype", "empty"])
def test_a_damaged_cache_is_decoded_again(damage, tmp_path):
    images = gray_images(30)
    paths = write_pngs(tmp_path / "imgs", images)
    decode_images(paths, cache_dir=tmp_path / "cache", progress=False)
    target = cache_path(paths, "images", None, None, tmp_path / "cache")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[:-100])
    elif damage == "garbage-header":
        target.write_bytes(b"\x93NUMPY\x01\x00garbage" + data[20:])
    elif damage == "wrong-shape":
        np.save(target, np.zeros((29, 12, 12), np.uint8))
    elif damage == "wrong-dtype":
        np.save(target, np.zeros((30, 12, 12), np.int16))
    else:
        target.write_bytes(b"")
    again = decode_images(paths, cache_dir=tmp_path / "cache", progress=False)
    assert np.array_equal(again, images) and target.stat().st_size == len(data)


@pytest.mark.parametrize("content", ["text", "truncated", "empty"])
@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreadable_image_is_named_and_no_cache_is_left(content, workers, tmp_path):
    paths = write_pngs(tmp_path / "imgs", gray_images(520))
    victim = paths[517]
    data = victim.read_bytes()
    victim.write_bytes({"text": b"hello", "truncated": data[: len(data) // 2], "empty": b""}[content])
    with pytest.raises(DataError) as info:
        decode_images(paths, cache_dir=tmp_path / "cache", progress=False, workers=workers)
    assert str(info.value).startswith(f"{victim}: not a readable image") and "\n" not in str(info.value)
    assert not list((tmp_path / "cache").rglob("*.npy")) and hidden_files(tmp_path / "cache") == []


def test_decompression_bomb_is_one_error(tmp_path):
    from test_layouts import png_claiming

    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(12_000, 12_000))  # over Pillow's limit of ~89M pixels: its warning is an error here
    with pytest.raises(DataError, match="bomb.png: image too large, refused as a possible decompression bomb"):
        decode_one(path)


def test_progress_bar_while_decoding(tmp_path, capsys):
    paths = write_pngs(tmp_path / "imgs", gray_images(20))
    decode_images(paths, cache_dir=tmp_path / "cache", progress=True, split="train")
    assert "decoding train" in capsys.readouterr().err


# -- OpenCV's libpng for plain 8-bit PNGs: the same pixels as Pillow, Pillow's errors, a quiet stderr ------------
cv2 = pytest.importorskip("cv2")


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    import struct

    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_from_chunks(chunks) -> bytes:
    import struct
    import zlib

    return decode.PNG_SIGNATURE + b"".join(struct.pack(">I", len(body)) + kind + body
                                           + struct.pack(">I", zlib.crc32(kind + body)) for kind, body in chunks)


def _plain_kinds():
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, (10, 14), dtype=np.uint8)
    color = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (10, 14, 4), dtype=np.uint8)
    return {
        "L": (Image.fromarray(gray), {}),
        "L interlaced": (Image.fromarray(gray), {"interlace": 1}),
        "L with tRNS": (Image.fromarray(gray), {"transparency": 3}),
        "RGB": (Image.fromarray(color), {}),
        "RGB with tRNS": (Image.fromarray(color), {"transparency": (1, 2, 3)}),
        "RGB with a broken ICC profile": (Image.fromarray(color), {"icc_profile": b"not a profile"}),
        "RGBA": (Image.fromarray(rgba, "RGBA"), {}),
        "LA": (Image.fromarray(np.stack([gray, gray[::-1]], axis=2), "LA"), {}),
        "P, 256 colours": (Image.fromarray(color).quantize(256), {}),
        "P with tRNS": (Image.fromarray(color).quantize(256), {"transparency": 3}),
    }


@pytest.mark.parametrize("kind", list(_plain_kinds()))
def test_opencv_gives_pillows_pixels_for_every_plain_png(kind, tmp_path):
    image, options = _plain_kinds()[kind]
    path = str(tmp_path / "x.png")
    image.save(path, **options)
    assert decode._plain_png(path, cv2) is not None  # OpenCV takes it ...
    for image_size in (None, 7, 10):
        for channels in (None, 1, 3):  # ... and every setting gives Pillow's result
            fast, pillow = decode._decode(path, image_size, channels, cv2), decode._decode(path, image_size, channels)
            assert fast.shape == pillow.shape and np.array_equal(fast, pillow), (image_size, channels)


@pytest.mark.parametrize("kind", ["1-bit", "16-bit", "4-bit palette", "JPEG named .png", "bomb header"])
def test_other_pngs_are_left_to_pillow(kind, tmp_path):
    from test_layouts import png_claiming

    path = tmp_path / "x.png"
    gray = np.random.default_rng(8).integers(0, 256, (10, 14), dtype=np.uint8)
    if kind == "1-bit":
        Image.fromarray(gray).convert("1").save(path)
    elif kind == "16-bit":
        Image.fromarray(gray.astype(np.uint16) * 257).save(path)
    elif kind == "4-bit palette":
        Image.fromarray(np.stack([gray] * 3, axis=2)).quantize(16).save(path)
    elif kind == "JPEG named .png":
        Image.fromarray(gray).save(path, format="JPEG")
    else:
        path.write_bytes(png_claiming(12_000, 12_000))
    assert decode._plain_png(str(path), cv2) is None


def _hostile_png(kind: str, good: bytes) -> bytes:
    chunks = _png_chunks(good)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "no IEND":
        return good[:-12]
    if kind == "IDAT bits flipped (CRC recomputed)":
        return _png_from_chunks([(k, b[:10] + bytes(x ^ 0xFF for x in b[10:30]) + b[30:]) if k == b"IDAT" else (k, b)
                                 for k, b in chunks])
    if kind == "IDAT cut short (CRC recomputed)":
        return _png_from_chunks([(k, b[: len(b) // 3]) if k == b"IDAT" else (k, b) for k, b in chunks])
    if kind == "IHDR claims a colour type that does not exist":
        return _png_from_chunks([(k, b[:9] + b"\x05" + b[10:]) if k == b"IHDR" else (k, b) for k, b in chunks])
    if kind == "a CRC wrong":
        return good[:29] + bytes([good[29] ^ 1]) + good[30:]
    if kind == "signature only":
        return decode.PNG_SIGNATURE
    raise AssertionError(kind)


HOSTILE_PNGS = ["truncated", "no IEND", "IDAT bits flipped (CRC recomputed)", "IDAT cut short (CRC recomputed)",
                "IHDR claims a colour type that does not exist", "a CRC wrong", "signature only"]


def _outcome(paths, cache_dir, workers):
    try:
        return ("array", decode_images(paths, cache_dir=cache_dir, progress=False, workers=workers).tobytes())
    except DataError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("kind", HOSTILE_PNGS)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_broken_png_gets_pillows_outcome_and_libpng_prints_nothing(kind, workers, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(decode, "FAST_PNG_MIN_ROWS", 8)  # OpenCV's path for a small test (the pool forks: it inherits)
    paths = write_pngs(tmp_path / "imgs", gray_images(520))
    victim = paths[517]
    victim.write_bytes(_hostile_png(kind, victim.read_bytes()))
    with_opencv = _outcome(paths, tmp_path / "a", workers)
    assert capfd.readouterr().err == ""  # libpng's own messages do not reach the user's terminal
    monkeypatch.setattr(decode, "FAST_PNG_MIN_ROWS", 10**9)
    with_pillow = _outcome(paths, tmp_path / "b", workers)
    assert with_opencv == with_pillow  # the same error line, or (Pillow reads it) the same pixels
    if with_pillow[0] == "error":
        assert with_pillow[1].startswith(f"{victim}: ") and "\n" not in with_pillow[1]
        assert not list(tmp_path.rglob("*.npy")) and hidden_files(tmp_path / "a") == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_decode_through_opencv_equals_pillows_and_keeps_stderr_free_of_libpng(workers, tmp_path, monkeypatch, capfd):
    kinds = _plain_kinds()
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i in range(600):  # every plain kind, one of them with an ICC profile libpng warns about
        image, options = kinds[list(kinds)[i % len(kinds)]]
        paths.append(folder / f"{i:04d}.png")
        image.save(paths[-1], **options)
    monkeypatch.setattr(decode, "FAST_PNG_MIN_ROWS", 8)
    fast = decode_images(paths, cache_dir=tmp_path / "a", progress=False, workers=workers)
    assert capfd.readouterr().err == ""
    monkeypatch.setattr(decode, "FAST_PNG_MIN_ROWS", 10**9)
    pillow = decode_images(paths, cache_dir=tmp_path / "b", progress=False, workers=workers)
    assert fast.shape == pillow.shape == (600, 10, 14, 3) and np.array_equal(fast, pillow)
