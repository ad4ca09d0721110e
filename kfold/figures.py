"""Figures people look at: learning curves, confusion matrices, agreement heatmaps, leaderboard intervals.

matplotlib's Agg backend is chosen here, once, for the whole package; every figure is written atomically
and has a bounded pixel size whatever the number of inputs."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kfold.files.atomic import save_figure  # noqa: E402


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


MAX_INCHES = 11.0  # longest side of the figures below (at DPI_BOUNDED: at most ~1,300 pixels)
DPI_BOUNDED = 110
MAX_NAMED_TICKS = 40


def _sparse_ticks(n: int) -> tuple[list[int], list[str]]:
    """Every position when few, else every 10th (or 20th, 50th ...) as 1-based numbers."""
    step = next(s for s in (1, 5, 10, 20, 50, 100, 200, 500, 1000) if n / s <= 25)
    positions = list(range(0, n, step))
    return positions, [str(p + 1) for p in positions]


def agreement_heatmap(matrix: np.ndarray, names: list[str], path: str | Path, boundaries=None,
                      identical=None, title: str = "Pairwise agreement") -> None:
    """Heatmap of an (M, M) agreement matrix in the given (clustered) order, at most ~1,300 pixels a side.

    Up to MAX_NAMED_TICKS rows are labelled by name (and cells by value up to 15); beyond that by position
    (1-based, matching ``heatmap_position`` in inputs.csv). ``boundaries``: a cluster number per row; a
    line separates consecutive clusters. ``identical``: groups of row positions predicting the same classes
    (outlined in red)."""
    n = len(matrix)
    side = min(2.5 + 0.32 * n, MAX_INCHES - 1.5)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    vmin = float(min(np.nanmin(matrix), 0.9)) if n else 0.9
    image = ax.imshow(matrix, cmap="viridis", vmin=vmin, vmax=1.0, interpolation="nearest")
    if n <= MAX_NAMED_TICKS:
        size = 8 if n <= 20 else 6
        ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=size)
        ax.set_yticks(range(n), names, fontsize=size)
    else:
        positions, labels = _sparse_ticks(n)
        ax.set_xticks(positions, labels, fontsize=7)
        ax.set_yticks(positions, labels, fontsize=7)
        ax.set_xlabel("position (clustered order; names: heatmap_position in inputs.csv)")
    if n <= 15:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7,
                    color="white" if value < (vmin + 1.0) / 2 else "black")
    if boundaries is not None:
        boundaries = np.asarray(boundaries)
        for edge in np.flatnonzero(boundaries[1:] != boundaries[:-1]) + 0.5:
            ax.axhline(edge, color="white", lw=0.8)
            ax.axvline(edge, color="white", lw=0.8)
    for group in identical or []:  # one outline around a contiguous block, else around each diagonal cell
        group = sorted(group)
        blocks = [(group[0], group[-1])] if group[-1] - group[0] == len(group) - 1 else [(p, p) for p in group]
        for first, last in blocks:
            ax.add_patch(plt.Rectangle((first - 0.5, first - 0.5), last - first + 1, last - first + 1, fill=False,
                                       edgecolor="red", lw=1.5, zorder=5))
    fig.colorbar(image, ax=ax, label="fraction of identical predicted classes", fraction=0.046)
    ax.set_title(f"{title} ({n} predictors, clustered; red: identical inputs)" if identical else f"{title} ({n} predictors)")
    _save_bounded(fig, path, named=n <= MAX_NAMED_TICKS)


def _save_bounded(fig, path, named: bool) -> None:
    """Names of any length need a tight bounding box (a second drawing pass); numbered ticks fit fixed margins."""
    if named:
        save_figure(fig, path, dpi=DPI_BOUNDED)
    else:
        fig.subplots_adjust(left=0.1, right=0.92, bottom=0.09, top=0.93, wspace=0.15)
        save_figure(fig, path, dpi=DPI_BOUNDED, bbox_inches=None)


def plot_paired_differences(table: pd.DataFrame, names: list[str], path: str | Path) -> None:
    """Each submission's accuracy minus the best Public one's, with 95% intervals, on Public and Private.

    Rows in leaderboard order; significant differences (McNemar) in red. At most ~1,300 pixels high."""
    n = len(table)
    height = min(1.8 + 0.22 * n, MAX_INCHES)
    fig, axes = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    y = np.arange(n)
    for ax, split in zip(axes, ("public", "private")):
        diff = table[f"{split}_diff"].to_numpy(dtype=float)
        low = table[f"{split}_diff_low"].to_numpy(dtype=float)
        high = table[f"{split}_diff_high"].to_numpy(dtype=float)
        significant = table[f"{split}_significant"].to_numpy(dtype=bool)
        for mask, color in ((~significant, "tab:blue"), (significant, "tab:red")):
            ax.errorbar(diff[mask], y[mask], xerr=[diff[mask] - low[mask], high[mask] - diff[mask]], fmt="o",
                        ms=2.5 if n > 60 else 4, lw=0.8, color=color,
                        label="significant (McNemar p < 0.05)" if color == "tab:red" else "not significant")
        ax.axvline(0.0, color="black", lw=0.8)
        ax.locator_params(axis="x", nbins=6)
        ax.set_xlabel(f"{split} accuracy minus #1's")
        ax.set_title(f"{split.capitalize()} vs the best Public submission")
        ax.grid(axis="x", alpha=0.3)
    if n <= MAX_NAMED_TICKS:
        axes[0].set_yticks(y, [f"{r} {name}" for r, name in zip(table["public_rank"], names)], fontsize=7 if n > 20 else 8)
    else:
        positions, labels = _sparse_ticks(n)
        axes[0].set_yticks(positions, labels, fontsize=7)
        axes[0].set_ylabel("row of leaderboard.md")
    axes[0].invert_yaxis()
    axes[1].legend(loc="lower left", fontsize=7)
    _save_bounded(fig, path, named=n <= MAX_NAMED_TICKS)
