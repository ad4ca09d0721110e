"""Agreement report of an ensemble: who agrees with whom, ties, and accuracies when labels are known.

Writes ``agreement.csv`` (pairwise fraction of identical predicted classes, inputs and ensemble),
``inputs.csv`` (per input: weight, agreement with the ensemble, disagreeing rows, accuracy),
``report.md`` (both tables in Markdown plus a summary) and ``agreement.png`` (heatmap); with a group per
row (the ``Language`` of an MNIST-MIX solution) also ``groups.csv``: accuracy per group of every input
and of the ensemble.
matplotlib is imported only to draw the heatmap (Agg backend). Nothing here imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from kfold.files.atomic import save_figure, write_csv, write_text
from kfold.scoring.ensemble import Ensemble

ENSEMBLE = "ensemble"


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f", index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (pandas' to_markdown needs the optional tabulate package)."""
    if index:
        frame = frame.rename_axis("").reset_index()

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else format(value, floatfmt)
        return str(value).replace("|", "\\|")
    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if frame[c].dtype.kind in "iuf" else "---" for c in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def display_names(paths: list[str]) -> list[str]:
    """File names when they are unique, full paths otherwise."""
    names = [Path(p).name for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def agreement_matrix(predictions: np.ndarray, names: list[str]) -> pd.DataFrame:
    """(M, N) predicted classes -> (M, M) fraction of rows where two predictors agree."""
    matrix = np.stack([(predictions == row).mean(axis=1) for row in predictions])
    return pd.DataFrame(matrix, index=names, columns=names)


def summarize(ensemble: Ensemble, labels: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Agreement matrix, per-input table and summary numbers of ``ensemble``.

    ``labels`` (aligned to ``ensemble.ids``) default to the ensemble's own, from out-of-fold inputs.
    """
    labels = ensemble.labels if labels is None else labels
    names = display_names(ensemble.names)
    preds = ensemble.input_predictions
    matrix = agreement_matrix(np.vstack([preds, ensemble.categories]), [*names, ENSEMBLE])
    disagree = preds != ensemble.categories
    inputs = pd.DataFrame({
        "input": names,
        "weight": ensemble.weights / ensemble.weights.sum(),
        "agreement_with_ensemble": 1.0 - disagree.mean(axis=1),
        "rows_disagreeing": disagree.sum(axis=1),
    })
    unanimous = (preds == preds[0]).all(axis=0)
    summary = {
        "method": ensemble.method,
        "inputs": len(names),
        "rows": len(ensemble.ids),
        "rows_where_inputs_disagree": int((~unanimous).sum()),
        "tied_rows": ensemble.tied_rows,
    }
    if labels is not None:
        inputs["accuracy"] = [accuracy_score(labels, p) for p in preds]
        summary["ensemble_accuracy"] = accuracy_score(labels, ensemble.categories)
        summary["best_input_accuracy"] = float(inputs["accuracy"].max())
        summary["oracle_accuracy"] = float((preds == labels).any(axis=0).mean())
    return matrix, inputs, summary


def accuracy_by_group(ensemble: Ensemble, labels: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Rows per group and the accuracy of every input and of the ensemble on them (groups in order of appearance)."""
    names = [*display_names(ensemble.names), ENSEMBLE]
    predictions = np.vstack([ensemble.input_predictions, ensemble.categories])
    records = []
    for group in dict.fromkeys(groups):
        rows = groups == group
        records.append({"group": group, "rows": int(rows.sum()),
                        **{name: float((pred[rows] == labels[rows]).mean()) for name, pred in zip(names, predictions)}})
    return pd.DataFrame(records)


def heatmap(matrix: pd.DataFrame, path: str | os.PathLike, transaction=None, title: str = "Pairwise agreement") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 2.0 + 0.45 * len(matrix)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    vmin = min(matrix.to_numpy().min(), 0.9)
    image = ax.imshow(matrix.to_numpy(), cmap="viridis", vmin=vmin, vmax=1.0)
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(matrix)), matrix.index, fontsize=8)
    if len(matrix) <= 15:
        for (i, j), value in np.ndenumerate(matrix.to_numpy()):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7, color="white" if value < (vmin + 1.0) / 2 else "black")
    fig.colorbar(image, ax=ax, label="fraction of identical predicted classes")
    ax.set_title(title)
    save_figure(fig, path, transaction)


def write_report(ensemble: Ensemble, out_dir: str | os.PathLike, labels: np.ndarray | None = None,
                 groups: np.ndarray | None = None, transaction=None) -> str:
    """Write the report files into ``out_dir``; return the Markdown text (for the console).

    ``groups`` (aligned to ``ensemble.ids``) needs labels: the solution's or the inputs' own."""
    out_dir = Path(out_dir)
    matrix, inputs, summary = summarize(ensemble, labels)
    labels = ensemble.labels if labels is None else labels
    lines = [f"# Ensemble report ({summary['method']}, {summary['inputs']} inputs, {summary['rows']} rows)", ""]
    lines += [f"- {key.replace('_', ' ')}: {value:.4f}" if isinstance(value, float) else f"- {key.replace('_', ' ')}: {value}"
              for key, value in summary.items() if key not in ("method", "inputs", "rows")]
    text = "\n".join(lines) + "\n\n## Inputs\n\n" + markdown_table(inputs) + \
        "\n## Pairwise agreement\n\n" + markdown_table(matrix, index=True)
    if groups is not None and labels is not None:
        by_group = accuracy_by_group(ensemble, labels, groups)
        text += "\n## Accuracy by group\n\n" + markdown_table(by_group)
        write_csv(out_dir / "groups.csv", by_group, transaction)
    write_csv(out_dir / "agreement.csv", matrix, transaction, index=True, index_label="")
    write_csv(out_dir / "inputs.csv", inputs, transaction)
    write_text(out_dir / "report.md", text, transaction)
    heatmap(matrix, out_dir / "agreement.png", transaction, title=f"Pairwise agreement: {summary['inputs']} inputs and their "
            f"{summary['method']} ensemble")
    return text
