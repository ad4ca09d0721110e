"""Tiny deterministic fake datasets written in the exact real file formats, for everyone's tests.

Images carry a learnable class pattern: the digit/class ``k = label % 10`` puts a blob at one of
10 positions on a circle and a bar at angle ``18 * k`` degrees; the group ``g = label // 10``
(MNIST-MIX language) adds a short mark in slot ``g`` of a band along the bottom edge. Plus noise,
jitter and random contrast, so a small model trained for a few seconds clearly beats chance.
Every function returns the directory it wrote into.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.data import LANGUAGES

KMNIST_CLASSMAP = pd.DataFrame({
    "index": range(10),
    "codepoint": ["U+304A", "U+304D", "U+3059", "U+3064", "U+306A", "U+306F", "U+307E", "U+3084", "U+308C", "U+3092"],
    "char": list("おきすつなはまやれを"),
})


def balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % n_classes)


def pattern_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """uint8 images (N, size, size) whose content depends on ``labels`` (see module docstring)."""
    labels = np.asarray(labels)
    n = len(labels)
    k, g = (labels % 10)[:, None, None], (labels // 10)[:, None, None]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    center = (size - 1) / 2
    jitter = rng.normal(0.0, 1.0, size=(2, n, 1, 1))
    angle = 2 * np.pi * k / 10
    cx, cy = center + 0.3 * size * np.cos(angle) + jitter[0], center + 0.3 * size * np.sin(angle) + jitter[1]
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.8 ** 2))
    theta = np.pi * k / 10
    across = (xx - center - jitter[0]) * np.sin(theta) - (yy - center - jitter[1]) * np.cos(theta)
    along = (xx - center) * np.cos(theta) + (yy - center) * np.sin(theta)
    bar = np.exp(-across ** 2 / (2 * 0.8 ** 2)) * (np.abs(along) < 0.22 * size)
    slot = 1 + g * (size - 4) / 10
    mark = ((yy >= size - 4) & (yy <= size - 2) & (xx >= slot) & (xx <= slot + 1.5)).astype(np.float32)
    contrast = rng.uniform(0.7, 1.0, size=(n, 1, 1))
    noise = rng.uniform(0, 70, size=(n, size, size))
    images = 230 * contrast * np.maximum(np.maximum(blob, bar), mark) + noise
    return np.clip(images, 0, 255).astype(np.uint8)


def _split(n_train: int, n_test: int, n_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    train_labels = balanced_labels(n_train, n_classes, rng)
    test_labels = balanced_labels(n_test, n_classes, rng)
    return pattern_images(train_labels, rng), train_labels, pattern_images(test_labels, rng), test_labels


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """An idx file of unsigned bytes (gzip-compressed when ``path`` ends in .gz)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)
    return path


def _directory(directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_kmnist_comp(directory: str | Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """Kaggle layout: kmnist-{train,test}-imgs.npy, kmnist-train-labels.npy (uint8),
    sample_submission.csv (Id,Category), solution.csv (Id,Category,Usage; 30% Public), kmnist_classmap.csv."""
    directory = _directory(directory)
    train_images, train_labels, test_images, test_labels = _split(n_train, n_test, 10, seed)
    np.save(directory / "kmnist-train-imgs.npy", train_images)
    np.save(directory / "kmnist-train-labels.npy", train_labels.astype(np.uint8))
    np.save(directory / "kmnist-test-imgs.npy", test_images)
    ids = np.arange(n_test)
    pd.DataFrame({"Id": ids, "Category": 0}).to_csv(directory / "sample_submission.csv", index=False)
    usage = np.where(np.random.default_rng(seed + 1).permutation(n_test) < round(0.3 * n_test), "Public", "Private")
    pd.DataFrame({"Id": ids, "Category": test_labels, "Usage": usage}).to_csv(directory / "solution.csv", index=False)
    KMNIST_CLASSMAP.to_csv(directory / "kmnist_classmap.csv", index=False)
    return directory


def write_kmnist_idx(directory: str | Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """Official idx layout: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz and kmnist_classmap.csv."""
    directory = _directory(directory)
    train_images, train_labels, test_images, test_labels = _split(n_train, n_test, 10, seed)
    write_idx(directory / "train-images-idx3-ubyte.gz", train_images)
    write_idx(directory / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", test_images)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", test_labels)
    KMNIST_CLASSMAP.to_csv(directory / "kmnist_classmap.csv", index=False)
    return directory


def write_kmnist_npz(directory: str | Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """Official .npz layout: kmnist-{train,test}-{imgs,labels}.npz (key arr_0) and kmnist_classmap.csv."""
    directory = _directory(directory)
    train_images, train_labels, test_images, test_labels = _split(n_train, n_test, 10, seed)
    for name, array in (("train-imgs", train_images), ("train-labels", train_labels.astype(np.uint8)),
                        ("test-imgs", test_images), ("test-labels", test_labels.astype(np.uint8))):
        np.savez_compressed(directory / f"kmnist-{name}.npz", array)
    KMNIST_CLASSMAP.to_csv(directory / "kmnist_classmap.csv", index=False)
    return directory


def _language_split(language: str, n_train: int, n_test: int, seed: int):
    """One language's images with the pattern of class language*10+digit, digit labels int32."""
    index = LANGUAGES.index(language)
    rng = np.random.default_rng([seed, index])
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        digits = balanced_labels(n, 10, rng)
        arrays[f"X_{split}"] = pattern_images(index * 10 + digits, rng)
        arrays[f"y_{split}"] = digits.astype(np.int32)
    return arrays


def write_mnist_mix_components(directory: str | Path, languages=LANGUAGES, n_train_per_lang: int = 50,
                               n_test_per_lang: int = 20, seed: int = 0) -> Path:
    """One <Language>_train_test.npz per language (X_train, y_train, X_test, y_test; digit labels)."""
    directory = _directory(directory)
    for language in languages:
        np.savez_compressed(directory / f"{language}_train_test.npz",
                            **_language_split(language, n_train_per_lang, n_test_per_lang, seed))
    return directory


def write_mnist_mix_combined(directory: str | Path, languages=LANGUAGES, n_train_per_lang: int = 50,
                             n_test_per_lang: int = 20, seed: int = 0) -> Path:
    """MNIST_MIX_train_test.npz with label = language_index*10 + digit, languages interleaved by a shuffle."""
    directory = _directory(directory)
    parts = [_language_split(language, n_train_per_lang, n_test_per_lang, seed) for language in languages]
    rng = np.random.default_rng(seed)
    arrays = {}
    for split in ("train", "test"):
        images = np.concatenate([part[f"X_{split}"] for part in parts])
        labels = np.concatenate([LANGUAGES.index(language) * 10 + part[f"y_{split}"]
                                 for language, part in zip(languages, parts)]).astype(np.int32)
        order = rng.permutation(len(labels))
        arrays[f"X_{split}"], arrays[f"y_{split}"] = images[order], labels[order]
    np.savez_compressed(directory / "MNIST_MIX_train_test.npz", **arrays)
    return directory


# ----------------------------------------------------------------------------- in-memory Tasks of other shapes

SHAPE_NAMES = ("disc", "square", "ring")
COLOUR_NAMES = ("red", "blue")


def shape_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 RGB images (N, size, size, 3): class ``k`` draws shape ``k % 3`` (disc, square, ring) in colour
    ``k // 3`` (reddish, bluish) at a jittered place and size on a noisy background, so that telling classes
    ``k`` and ``k + 3`` apart needs the colour."""
    labels = np.asarray(labels)
    n = len(labels)
    shape, colour = (labels % 3)[:, None, None], (labels // 3)[:, None, None]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = rng.uniform(0.35 * size, 0.65 * size, size=(2, n, 1, 1))
    radius = rng.uniform(0.18 * size, 0.28 * size, size=(n, 1, 1))
    dx, dy = xx - centre[0], yy - centre[1]
    distance = np.sqrt(dx ** 2 + dy ** 2)
    disc = distance <= radius
    square = np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * radius
    ring = (distance <= radius) & (distance >= 0.55 * radius)
    mask = np.where(shape == 0, disc, np.where(shape == 1, square, ring)).astype(np.float32)
    palette = np.array([[220, 60, 40], [40, 80, 220]], dtype=np.float32)  # (colour, RGB)
    tint = palette[colour[:, 0, 0]] * rng.uniform(0.75, 1.0, size=(n, 1))  # (N, 3)
    noise = rng.uniform(0, 60, size=(n, size, size, 3))
    images = mask[..., None] * tint[:, None, None, :] + noise
    return np.clip(images, 0, 255).astype(np.uint8)


def rgb_shapes_task(n_train: int = 120, n_test: int = 40, size: int = 32, seed: int = 0):
    """A 6-class RGB Task of ``shape_images`` (test labels known)."""
    from kfold.data.task import Task

    rng = np.random.default_rng(seed)
    train_labels, test_labels = balanced_labels(n_train, 6, rng), balanced_labels(n_test, 6, rng)
    return Task(name="shapes-rgb", train_images=shape_images(train_labels, rng, size), train_labels=train_labels.astype(np.int64),
                test_images=shape_images(test_labels, rng, size), test_ids=np.arange(n_test),
                class_names=[f"{c}-{s}" for c in COLOUR_NAMES for s in SHAPE_NAMES], test_labels=test_labels.astype(np.int64),
                source="tests/synthetic.py")


def digits_task(n_test: int = 300, seed: int = 0):
    """scikit-learn's 8x8 grayscale digits (1,797 images, values 0..16 scaled to uint8) as a Task: the last
    ``n_test`` rows of a seeded shuffle are the test set."""
    from sklearn.datasets import load_digits

    from kfold.data.task import Task

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    images = np.round(digits.images[order] * (255 / 16)).astype(np.uint8)
    labels = digits.target[order].astype(np.int64)
    return Task(name="digits-8x8", train_images=images[:-n_test], train_labels=labels[:-n_test],
                test_images=images[-n_test:], test_ids=np.arange(n_test), class_names=[str(d) for d in range(10)],
                test_labels=labels[-n_test:], source="sklearn.datasets.load_digits")


SQUARE_CLASSES = ["a", "b", "c", "d"]


def square_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class c: a bright 8x8 square at one of four places of a noisy 28x28 image (learnable in an epoch)."""
    out = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for image, label in zip(out, labels):
        row, col = 4 + 12 * (label // 2), 4 + 12 * (label % 2)
        image[row:row + 8, col:col + 8] = 255
    return out


def squares_task(n_train: int, n_test: int, seed: int = 0):
    """A 4-class Task of ``square_images`` (classes ``SQUARE_CLASSES``, test labels known)."""
    from kfold.data.task import Task

    rng = np.random.default_rng(seed)
    train, test = np.arange(n_train) % 4, rng.permutation(np.arange(n_test) % 4)
    return Task(name="squares", train_images=square_images(train, rng), train_labels=train.astype(np.int64),
                test_images=square_images(test, rng), test_ids=np.arange(n_test), class_names=list(SQUARE_CLASSES),
                test_labels=test.astype(np.int64))
