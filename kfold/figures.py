"""Figures people look at: learning curves and confusion matrices (matplotlib, Agg, atomic writes).

The only module that selects matplotlib's backend; every other figure gets pyplot from ``pyplot()``."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kfold.files.atomic import save_figure  # noqa: E402


def pyplot():
    """matplotlib.pyplot with the Agg backend: the one place kfold chooses a backend (no display needed)."""
    return plt


def plot_learning_curve(history: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Loss and accuracy per epoch, train vs validation."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-o"), ("val", "-s")):
        ax_loss.plot(history["epoch"], history[f"{split}_loss"], style, ms=3, label=split)
        ax_acc.plot(history["epoch"], history[f"{split}_accuracy"], style, ms=3, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{title} loss".strip())
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy".strip())
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix heatmap with counts written in the cells when it is small."""
    n = len(class_names)
    size = min(4 + 0.45 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    rates = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    # Names outside ASCII (hiragana) have no glyphs in matplotlib's default font: show the index.
    labels = [str(i) if n > 20 or name == str(i) or not name.isascii() else f"{i} {name}" for i, name in enumerate(class_names)]
    ax.set_xticks(range(n), labels, rotation=90 if n > 10 else 0, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    if n <= 20:
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                ax.text(col, row, int(count), ha="center", va="center", fontsize=7, color="white" if rates[row, col] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, path)
