"""Figures of the MNIST-MIX experiments (matplotlib Agg, written atomically)."""
from __future__ import annotations

from pathlib import Path

from kfold.figures import pyplot

plt = pyplot()  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kfold.files.atomic import save_figure  # noqa: E402


def accuracy_heatmap(matrix: pd.DataFrame, path: str | Path, title: str, xlabel: str, ylabel: str) -> None:
    """Accuracies in [0, 1] as a heatmap with the value written in every cell."""
    values = matrix.to_numpy(dtype=float)
    rows, cols = values.shape
    fig, ax = plt.subplots(figsize=(2.5 + 0.75 * cols, 1.5 + 0.5 * rows))
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), [str(c) for c in matrix.columns], rotation=45 if cols > 4 else 0, ha="right" if cols > 4 else "center")
    ax.set_yticks(range(rows), [str(r) for r in matrix.index])
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8, color="black" if value > 0.6 else "white")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(image, ax=ax, label="accuracy")
    save_figure(fig, path)


def accuracy_curves(series: dict[str, pd.DataFrame], x: str, columns: list[str], path: str | Path, title: str,
                    xlabel: str) -> None:
    """One line per column (language; ``overall`` thick and black), one line style per series (schedule)."""
    styles = ["-o", "--s", ":^", "-.v"]
    colors = plt.get_cmap("tab10" if len(columns) <= 10 else "tab20")
    steps = sorted(set().union(*(set(part[x]) for part in series.values())))
    if len(steps) == 1:  # one epoch / round: a line of one point says nothing; bars of the values
        _single_step_bars(series, steps[0], columns, path, title, xlabel)
        return
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for (name, part), style in zip(series.items(), styles):
        for index, column in enumerate(columns):
            emphasis = dict(color="black", lw=2.5, zorder=3) if column == "overall" else dict(color=colors(index % colors.N), lw=1, alpha=0.8)
            label = f"{column} ({name})" if len(series) > 1 else column
            ax.plot(part[x], part[column], style, ms=3, label=label, **emphasis)
    ax.set(title=title, xlabel=xlabel, ylabel="test accuracy", ylim=(0, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=max(1, len(series)), loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path)


def _single_step_bars(series: dict[str, pd.DataFrame], step, columns: list[str], path: str | Path, title: str,
                      xlabel: str) -> None:
    """Horizontal bars (axis from 0) of every column's value at the one step there is, one group per series."""
    labels, values = [], []
    for name, part in series.items():
        row = part.iloc[-1]
        for column in columns:
            labels.append(f"{column} ({name})" if len(series) > 1 else column)
            values.append(float(row[column]))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.32 * len(values)))
    ax.barh(range(len(values)), values, color=["black" if label.startswith("overall") else "tab:blue" for label in labels])
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    for row, value in enumerate(values):
        ax.text(value, row, f" {value:.3f}", va="center", fontsize=7)
    ax.set(xlim=(0, 1.08), xlabel="test accuracy", title=f"{title} ({xlabel} {step})")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)
