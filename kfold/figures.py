"""Figures people look at: learning curves, confusion matrices, per-class accuracy, error galleries, agreement
heatmaps and leaderboard intervals (matplotlib, atomic writes, bounded pixel size whatever the number of inputs).

Class names outside ASCII (KMNIST's hiragana) are drawn with the Japanese font that ``matplotlib-fontja``
ships (IPAexGothic), as a fallback after matplotlib's default font, so they are glyphs, not boxes.

matplotlib's Agg backend is chosen here, once, for the whole package; every other figure gets pyplot from
``pyplot()``."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from matplotlib.ticker import MaxNLocator  # noqa: E402

from kfold.files.atomic import save_figure  # noqa: E402

DEFAULT_FONT = "DejaVu Sans"
JAPANESE_FONT = "IPAexGothic"  # the font of matplotlib-fontja


def japanese_font_path() -> str | None:
    """The TrueType file of the Japanese font, registered with matplotlib; None when matplotlib-fontja is not
    installed. The package is found, not imported: importing it would switch every figure's font."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "fonts" / "ipaexg.ttf"
    if not path.is_file():
        return None
    from matplotlib import font_manager

    if JAPANESE_FONT not in {entry.name for entry in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    return str(path)


def label_fonts(names) -> list[str]:
    """Font families for labels that may hold ``names``: the default font, then the Japanese one as fallback."""
    if all(str(name).isascii() for name in names) or japanese_font_path() is None:
        return [DEFAULT_FONT]
    return [DEFAULT_FONT, JAPANESE_FONT]


def can_draw(text: str, families: list[str]) -> bool:
    """Whether every character of ``text`` has a glyph in one of ``families`` (not a box)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    fonts = [FT2Font(font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False))
             for family in families]
    return all(any(font.get_char_index(ord(char)) != 0 for font in fonts) for char in text if not char.isspace())


def class_labels(class_names: list[str]) -> tuple[list[str], list[str]]:
    """Tick labels ``"i name"`` (``"i"`` alone when the name is the index or cannot be drawn) and their fonts."""
    fonts = label_fonts(class_names)
    labels = [str(i) if name == str(i) or not can_draw(name, fonts) else f"{i} {name}"
              for i, name in enumerate(class_names)]
    return labels, fonts


def integer_epochs(ax) -> None:
    """Whole-number epoch ticks (a 2-epoch run shows 1 and 2, not 1.25, 1.5, ...)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


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
        integer_epochs(ax)
    save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix heatmap with counts written in the cells when it is small."""
    n = len(class_names)
    size = min(4 + 0.45 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    rates = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    labels, fonts = class_labels(class_names) if n <= 20 else ([str(i) for i in range(n)], [DEFAULT_FONT])
    ax.set_xticks(range(n), labels, rotation=90 if n > 10 else 0, fontsize=8, fontfamily=fonts)
    ax.set_yticks(range(n), labels, fontsize=8, fontfamily=fonts)
    if n <= 20:
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                ax.text(col, row, int(count), ha="center", va="center", fontsize=7, color="white" if rates[row, col] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title or "confusion matrix", fontfamily=label_fonts([title]))
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class's rows")
    save_figure(fig, path)


def plot_per_class_accuracy(table: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Horizontal bars of each class's accuracy (``class``, ``name``, ``accuracy``, ``rows`` columns), axis from 0."""
    labels, fonts = class_labels(list(table["name"]))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * len(table)))
    ax.barh(range(len(table)), table["accuracy"], color="tab:blue")
    ax.set_yticks(range(len(table)), labels, fontsize=8, fontfamily=fonts)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    for row, value in enumerate(table["accuracy"]):
        ax.text(min(value, 0.98), row, f"{value:.3f} ", ha="right", va="center", fontsize=7, color="white")
    ax.set(xlabel="accuracy (out-of-fold)")
    ax.set_title(title or "per-class accuracy", fontfamily=label_fonts([title]))
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def plot_error_gallery(images: np.ndarray, true_names: list[str], predicted_names: list[str], confidences: np.ndarray,
                       path: str | Path, title: str = "", ids=None, columns: int = 8) -> None:
    """Misclassified images (uint8 (N, H, W) grayscale or (N, H, W, 3) RGB) in a grid, each captioned
    true -> predicted (confidence of the prediction)."""
    n = len(images)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.45 * columns, 1.75 * rows + 0.4), squeeze=False)
    fonts = label_fonts([*true_names, *predicted_names])
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= n:
            continue
        if images.ndim == 4 and images.shape[3] in (3, 4):  # RGB(A) in colour
            ax.imshow(images[index])
        else:  # grayscale (or the first channel), dark strokes on light
            ax.imshow(images[index] if images.ndim == 3 else images[index][..., 0], cmap="gray_r", vmin=0, vmax=255)
        head = f"#{ids[index]}\n" if ids is not None else ""
        ax.set_title(f"{head}{true_names[index]} → {predicted_names[index]}\n{confidences[index]:.2f}",
                     fontsize=7, fontfamily=fonts)
    fig.suptitle(title or "misclassified images: true → predicted (confidence)", fontsize=9, fontfamily=label_fonts([title]))
    save_figure(fig, path)


def plot_run_curves(histories: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> None:
    """Every fold's validation accuracy and loss per epoch, and the learning rate on the right axis."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_lr = ax_loss.twinx()
    for index, (name, history) in enumerate(histories.items()):
        color = f"C{index % 10}"
        ax_acc.plot(history["epoch"], history["val_accuracy"], "-o", ms=3, color=color, label=f"{name} val")
        ax_acc.plot(history["epoch"], history["train_accuracy"], ":", color=color, label=f"{name} train")
        ax_loss.plot(history["epoch"], history["val_loss"], "-o", ms=3, color=color, label=f"{name} val")
        if index == 0 and "lr" in history:
            ax_lr.plot(history["epoch"], history["lr"], "--", color="gray", label="learning rate")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy".strip())
    ax_loss.set(xlabel="epoch", ylabel="validation loss", title=f"{title} loss and learning rate".strip())
    ax_lr.set_ylabel("learning rate (end of epoch)", color="gray")
    ax_lr.set_ylim(bottom=0)
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        integer_epochs(ax)
    ax_acc.legend(fontsize=7, ncol=2)
    lines = ax_loss.get_legend_handles_labels(), ax_lr.get_legend_handles_labels()
    ax_loss.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=7, loc="upper center",
                   bbox_to_anchor=(0.5, -0.18), ncol=4)
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


def _stat(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def plot_cv_vs_public(frame: pd.DataFrame, stats: dict, path: str | Path, competition: str) -> bool:
    """Scatter of local CV against Kaggle's public score, one labelled point per submission (``frame``: the merged
    table of ``kfold submissions``; ``stats``: its Pearson/Spearman agreement); False when < 2 points."""
    both = frame.dropna(subset=["local_cv", "public_score"])
    if len(both) < 2:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ax.scatter(both["local_cv"], both["public_score"], s=36, color="tab:blue", zorder=3, label="submission")
    local = both.dropna(subset=["local_public"])
    if len(local):
        ax.scatter(local["local_cv"], local["local_public"], s=30, facecolors="none", edgecolors="tab:orange",
                   zorder=2, label="local leaderboard (Public rows)")
    for _, row in both.iterrows():
        label = str(row["message"] or row["file"])[:24]
        ax.annotate(label, (row["local_cv"], row["public_score"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7, fontfamily=label_fonts([label]))
    values = np.concatenate([both["local_cv"].to_numpy(float), both["public_score"].to_numpy(float),
                             local["local_public"].to_numpy(float)])
    low, high = values.min(), values.max()
    pad = max((high - low) * 0.08, 1e-3)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], ls="--", color="grey", lw=1, label="CV = public")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("local CV (out-of-fold accuracy)")
    ax.set_ylabel("Kaggle public score")
    ax.set_title(f"{competition}: local CV vs public leaderboard\nPearson r = {_stat(stats['pearson'])}, "
                 f"Spearman rho = {_stat(stats['spearman'])}, n = {stats['n']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    return True


def plot_scores_over_time(frame: pd.DataFrame, path: str | Path, competition: str) -> bool:
    """Kaggle's public score of every submission against its date, with the local CV beside it where known
    (``frame``: the merged table of ``kfold submissions``: date, public_score, local_cv). Submissions are drawn
    in date order; one without a readable date is left out. False when no submission has a score to draw."""
    dates = pd.to_datetime(frame["date"].astype(str), utc=True, errors="coerce", format="ISO8601")
    table = frame.assign(when=dates.dt.tz_localize(None)).dropna(subset=["when"]).sort_values("when", kind="stable")
    public = table.dropna(subset=["public_score"])
    cv = table.dropna(subset=["local_cv"])
    if public.empty and cv.empty:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    if len(public):
        ax.plot(public["when"], public["public_score"], "-o", ms=5, color="tab:blue", lw=1, zorder=3,
                label=f"public score ({len(public)} of {len(table)} submissions)")
    if len(cv):
        ax.scatter(cv["when"], cv["local_cv"], s=34, marker="D", facecolors="none", edgecolors="tab:orange", zorder=4,
                   label=f"local CV ({len(cv)} known)")
        pairs = cv.dropna(subset=["public_score"])
        for _, row in pairs.iterrows():  # a thin line from each submission's local CV to its public score
            ax.plot([row["when"], row["when"]], [row["local_cv"], row["public_score"]], color="grey", lw=0.8, zorder=2)
    if len(table) <= 25:
        for _, row in public.iterrows():
            label = str(row["message"] or row["file"])[:20]
            ax.annotate(label, (row["when"], row["public_score"]), textcoords="offset points", xytext=(3, 5),
                        fontsize=6, fontfamily=label_fonts([label]))
    ax.set_xlabel("submission date (UTC)")
    ax.set_ylabel("score")
    ax.set_title(f"{competition}: public score of every submission over time", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    save_figure(fig, path)
    return True


# ----------------------------------------------------------------------------- kfold tune's figures

def plot_optimization_history(table: pd.DataFrame, metric: str, direction: str, path: str | Path) -> None:
    """Every complete trial's metric by trial number, pruned trials' partial scores faint, and the best so far."""
    fig, ax = plt.subplots(figsize=(7, 4))
    done = table[table["state"] == "complete"].sort_values("number")
    pruned = table[(table["state"] == "pruned") & table["partial_metric"].notna()]
    ax.plot(done["number"], done[metric], "o", color="tab:blue", label="complete trial")
    if len(pruned):
        ax.plot(pruned["number"], pruned["partial_metric"], "x", color="tab:gray", alpha=0.6,
                label="pruned (its finished folds)")
    values = done[metric].astype(float)
    best = values.cummax() if direction == "maximize" else values.cummin()
    ax.step(done["number"], best, where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel=f"{metric} (out-of-fold)", title="optimization history")
    integer_epochs(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_param_importances(importances: dict[str, float], metric: str, path: str | Path) -> None:
    """Horizontal bars of each searched field's importance (Optuna's fANOVA), largest on top."""
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(names)))
    ax.barh(range(len(names)), [importances[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set(xlabel=f"importance for {metric} (fANOVA)", title="parameter importances")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def plot_metric_vs_params(table: pd.DataFrame, params: list[str], metric: str, path: str | Path,
                          log: tuple[str, ...] = ()) -> None:
    """The metric of the complete trials against each searched field, one panel per field (at most 4 columns);
    the fields in ``log`` on a log axis."""
    done = table[table["state"] == "complete"]
    cols = min(4, max(1, len(params)))
    rows = -(-len(params) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, params):
        values = done[name]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and len(values):
            ax.plot(numeric, done[metric], "o", ms=4)
            if name in log:
                ax.set_xscale("log")
        else:
            labels = values.map(str)
            order = sorted(labels.unique())
            ax.plot([order.index(v) for v in labels], done[metric], "o", ms=4)
            ax.set_xticks(range(len(order)), order, rotation=30, fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.axis("off")
    axes[0][0].set_ylabel(metric)
    fig.tight_layout()
    save_figure(fig, path)
