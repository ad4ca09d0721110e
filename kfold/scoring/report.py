"""Agreement report of an ensemble: who agrees with whom, ties, and accuracies when labels are known.

Writes ``agreement.csv`` (pairwise fraction of identical predicted classes, inputs and ensemble),
``inputs.csv`` (per input: weight, agreement with the ensemble, disagreeing rows, accuracy, its cluster and
position in the heatmap, the input it is identical to), ``report.md`` (tables in Markdown plus a summary;
the full matrix only up to ``MARKDOWN_MATRIX_MAX`` inputs, else the closest pairs) and, when asked for
(``plot``), ``agreement.png`` (heatmap of bounded size, inputs ordered by average-linkage clustering of their disagreement so that
families of models show as blocks; the clustering is numpy, checked against scipy's in the tests); with a group per row (the ``Language`` of an MNIST-MIX solution) also
``groups.csv``: accuracy per group of every input and of the ensemble.

Labels may cover only some rows (``scored``: a solution's ``Ignored`` rows are scored nowhere, as on the
leaderboard). Inputs whose predictions are identical on every row are listed together, and marked
byte-identical when their files are. Cost: linear in inputs x rows, except the agreement matrix itself
(inputs^2 x rows / BLAS) and the clustering (inputs^3, vectorised). matplotlib is imported only to draw. Nothing here
imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.files.atomic import write_csv, write_text
from kfold.scoring.ensemble import Ensemble

__all__ = ["accuracy_by_group", "agreement_counts", "agreement_matrix", "average_linkage", "cluster_order",
           "display_names", "ENSEMBLE", "identical_groups", "MARKDOWN_MATRIX_MAX", "markdown_table", "summarize",
           "write_agreement_report"]

ENSEMBLE = "ensemble"
MARKDOWN_MATRIX_MAX = 21  # predictors (inputs + ensemble) up to which report.md shows the whole matrix


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f", index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (pandas' to_markdown needs the optional tabulate package)."""
    if index:
        frame = frame.rename_axis("").reset_index()

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else format(value, floatfmt)
        return str(value).replace("|", "\\|")
    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    # by position: the same file given twice gives two columns of one name
    rule = "|" + "|".join("---:" if frame.iloc[:, i].dtype.kind in "iuf" else "---" for i in range(frame.shape[1])) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def display_names(paths: list[str]) -> list[str]:
    """File names when they are unique, full paths otherwise."""
    names = [Path(p).name for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def agreement_counts(predictions: np.ndarray) -> np.ndarray:
    """(M, N) predicted classes -> (M, M) int64 number of rows where two predictors agree.

    Rows where all predictors agree count for every pair at once; on the others, one comparison pass per
    predictor over compact integers (measured faster here than one-hot matrix products with BLAS)."""
    n_pred, n_rows = predictions.shape
    if n_pred == 0 or n_rows == 0:
        return np.zeros((n_pred, n_pred), dtype=np.int64)
    unanimous = (predictions == predictions[0]).all(axis=0)
    rest = predictions[:, ~unanimous]
    top = int(rest.max()) if rest.size else 0
    compact = rest.astype(np.int8 if top < 128 else np.int16 if top < 32768 else np.int64)
    counts = np.empty((n_pred, n_pred), dtype=np.int64)
    for i in range(n_pred):
        counts[i] = np.count_nonzero(compact == compact[i], axis=1)
    return counts + int(unanimous.sum())


def agreement_matrix(predictions: np.ndarray, names: list[str]) -> pd.DataFrame:
    """(M, N) predicted classes -> (M, M) fraction of rows where two predictors agree."""
    n_rows = max(predictions.shape[1], 1)
    return pd.DataFrame(agreement_counts(predictions) / n_rows, index=names, columns=names)


def average_linkage(distance: np.ndarray) -> list[tuple[int, int, float, int]]:
    """Average-linkage (UPGMA) merges of a symmetric (n, n) distance matrix, as scipy's ``linkage`` rows.

    Each merge is (cluster a, cluster b, distance, size) with a < b; clusters 0..n-1 are the items, n+i
    the i-th merge. numpy only (n^3 / vectorised: 200 items in milliseconds, where importing
    scipy.cluster costs about a second); the tests check it against ``scipy.cluster.hierarchy.linkage``."""
    n = len(distance)
    work = np.array(distance, dtype=np.float64)
    np.fill_diagonal(work, np.inf)
    ids = list(range(n))
    sizes = np.ones(n)
    active = np.ones(n, dtype=bool)
    merges = []
    for step in range(n - 1):
        flat = int(np.argmin(work))
        i, j = divmod(flat, n)
        i, j = min(i, j), max(i, j)
        height = float(work[i, j])
        merged = (sizes[i] * work[i] + sizes[j] * work[j]) / (sizes[i] + sizes[j])
        a, b = sorted((ids[i], ids[j]))
        merges.append((a, b, height, int(sizes[i] + sizes[j])))
        work[i], work[:, i] = merged, merged
        work[i, i] = np.inf
        work[j], work[:, j] = np.inf, np.inf
        sizes[i] += sizes[j]
        active[j] = False
        ids[i] = n + step
    return merges


def cluster_order(matrix: np.ndarray, max_clusters: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Leaf order of an average-linkage clustering of ``1 - matrix`` and a cluster number (1.., in that order) per item.

    The clusters are those left after undoing the last ``max_clusters - 1`` merges (default: about the square
    root of the number of items, at most 8: families, not individuals)."""
    n = len(matrix)
    if max_clusters is None:
        max_clusters = min(8, int(np.ceil(np.sqrt(n))))
    if n < 3:
        return np.arange(n), np.ones(n, dtype=np.int64)
    distance = np.clip(1.0 - np.asarray(matrix, dtype=np.float64), 0.0, None)
    distance = (distance + distance.T) / 2.0
    merges = average_linkage(distance)
    children = {n + k: (a, b) for k, (a, b, _, _) in enumerate(merges)}
    order, stack = [], [2 * n - 2]
    while stack:  # left child first, as scipy's leaves_list
        node = stack.pop()
        if node < n:
            order.append(node)
        else:
            stack.extend(reversed(children[node]))
    parent = list(range(2 * n - 1))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k, (a, b, _, _) in enumerate(merges[: n - min(max_clusters, n)]):
        parent[root(a)] = n + k
        parent[root(b)] = n + k
    roots = [root(i) for i in range(n)]
    order = np.array(order)
    renumber = {r: i + 1 for i, r in enumerate(dict.fromkeys(roots[i] for i in order))}
    return order, np.array([renumber[r] for r in roots], dtype=np.int64)


def identical_groups(counts: np.ndarray, n_rows: int) -> list[list[int]]:
    """Groups (>= 2) of predictors that agree on every row, in input order."""
    same = counts == n_rows
    groups, seen = [], set()
    for i in range(len(counts)):
        if i in seen:
            continue
        members = [int(j) for j in np.flatnonzero(same[i]) if j >= i]
        if len(members) > 1:
            groups.append(members)
            seen.update(members)
    return groups


def _digest(path: str) -> str | None:
    import hashlib

    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def summarize(ensemble: Ensemble, labels: np.ndarray | None = None, scored: np.ndarray | None = None,
              counts: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Agreement matrix, per-input table and summary numbers of ``ensemble``.

    ``labels`` (aligned to ``ensemble.ids``) default to the ensemble's own, from out-of-fold inputs;
    ``scored`` (bool per row) limits the accuracies to those rows (a solution's Public and Private rows)."""
    labels = ensemble.labels if labels is None else labels
    names = display_names(ensemble.names)
    preds = ensemble.input_predictions
    everything = np.vstack([preds, ensemble.categories])
    if counts is None:
        counts = agreement_counts(everything)
    n_rows = max(len(ensemble.ids), 1)
    matrix = pd.DataFrame(counts / n_rows, index=[*names, ENSEMBLE], columns=[*names, ENSEMBLE])
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
        rows = np.ones(len(labels), dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
        truth = labels[rows]
        hits = preds[:, rows] == truth
        inputs["accuracy"] = hits.mean(axis=1) if rows.any() else np.nan
        if scored is not None:
            summary["scored_rows"] = int(rows.sum())
        summary["ensemble_accuracy"] = float((ensemble.categories[rows] == truth).mean()) if rows.any() else np.nan
        summary["best_input_accuracy"] = float(inputs["accuracy"].max())
        summary["oracle_accuracy"] = float(hits.any(axis=0).mean()) if rows.any() else np.nan
    return matrix, inputs, summary


def accuracy_by_group(ensemble: Ensemble, labels: np.ndarray, groups: np.ndarray,
                      scored: np.ndarray | None = None) -> pd.DataFrame:
    """Rows per group and the accuracy of every input and of the ensemble on them (groups in order of appearance)."""
    names = [*display_names(ensemble.names), ENSEMBLE]
    predictions = np.vstack([ensemble.input_predictions, ensemble.categories])
    keep = np.ones(len(groups), dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    records = []
    for group in dict.fromkeys(groups[keep]):
        rows = keep & (groups == group)
        hits = (predictions[:, rows] == labels[rows]).mean(axis=1)
        records.append({"group": group, "rows": int(rows.sum()), **dict(zip(names, hits.tolist()))})
    return pd.DataFrame(records)


def _closest_pairs(matrix: pd.DataFrame, n_inputs: int, top: int) -> pd.DataFrame:
    values = matrix.to_numpy()[:n_inputs, :n_inputs]
    i, j = np.triu_indices(n_inputs, k=1)
    agree = values[i, j]
    pick = np.argsort(-agree, kind="stable")[:top]
    names = list(matrix.index)
    return pd.DataFrame({"input": [names[a] for a in i[pick]], "other": [names[b] for b in j[pick]],
                         "agreement": agree[pick]})


def write_agreement_report(ensemble: Ensemble, out_dir: str | os.PathLike, labels: np.ndarray | None = None,
                           groups: np.ndarray | None = None, scored: np.ndarray | None = None, transaction=None,
                           plot: bool = True) -> str:
    """Write the report files into ``out_dir``; return the Markdown text (for the console).

    ``groups`` (aligned to ``ensemble.ids``) needs labels: the solution's or the inputs' own; ``scored``
    (bool per row): the rows labels count on (a solution's ``Ignored`` rows are not scored). ``plot``: also draw
    ``agreement.png``; without it matplotlib is not even imported (its import and the drawing were most of the
    report's time: ``ensemble.py --report`` draws only with ``--plot``)."""
    out_dir = Path(out_dir)
    everything = np.vstack([ensemble.input_predictions, ensemble.categories])
    counts = agreement_counts(everything)
    matrix, inputs, summary = summarize(ensemble, labels, scored, counts=counts)
    labels = ensemble.labels if labels is None else labels
    n_inputs = len(inputs)
    order, clusters = cluster_order(matrix.to_numpy()[:n_inputs, :n_inputs])
    position = np.empty(n_inputs, dtype=np.int64)
    position[order] = np.arange(1, n_inputs + 1)
    inputs["cluster"] = clusters
    inputs["heatmap_position"] = position
    identical = identical_groups(counts[:n_inputs, :n_inputs], len(ensemble.ids))
    inputs["identical_to"] = ""
    identical_lines = []
    for members in identical:
        for j in members[1:]:
            inputs.loc[j, "identical_to"] = inputs["input"].iat[members[0]]
        digests = {_digest(ensemble.names[j]) for j in members}
        byte_same = len(digests) == 1 and None not in digests
        identical_lines.append(f"- {', '.join(inputs['input'].iat[j] for j in members)}"
                               + (" (byte-identical files)" if byte_same else " (same predicted class on every row)"))
    summary["identical_input_groups"] = len(identical)
    lines = [f"# Ensemble report ({summary['method']}, {summary['inputs']} inputs, {summary['rows']} rows)", ""]
    lines += [f"- {key.replace('_', ' ')}: {value:.4f}" if isinstance(value, float) else f"- {key.replace('_', ' ')}: {value}"
              for key, value in summary.items() if key not in ("method", "inputs", "rows")]
    text = "\n".join(lines) + "\n\n## Inputs\n\n" + markdown_table(inputs)
    if identical_lines:
        text += "\n## Identical inputs\n\nThese inputs predict the same class on every row (one vote counted " \
                "several times):\n\n" + "\n".join(identical_lines) + "\n"
    if n_inputs + 1 <= MARKDOWN_MATRIX_MAX:
        text += "\n## Pairwise agreement\n\n" + markdown_table(matrix, index=True)
    else:
        drawn = (" and agreement.png (inputs in clustered order, `heatmap_position` above)" if plot
                 else " (`heatmap_position` above: the clustered order)")
        text += (f"\n## Pairwise agreement\n\n{n_inputs} inputs: the full matrix is in agreement.csv{drawn}. "
                 f"The closest pairs:\n\n"
                 + markdown_table(_closest_pairs(matrix, n_inputs, 15)))
    if groups is not None and labels is not None:
        by_group = accuracy_by_group(ensemble, labels, groups, scored)
        text += "\n## Accuracy by group\n\n" + markdown_table(by_group)
        write_csv(out_dir / "groups.csv", by_group, transaction)
    write_csv(out_dir / "agreement.csv", matrix, transaction, index=True, index_label="")
    write_csv(out_dir / "inputs.csv", inputs, transaction)
    write_text(out_dir / "report.md", text, transaction)
    if not plot:
        return text
    from kfold.figures import agreement_heatmap

    shown = np.append(order, n_inputs)  # the ensemble last
    agreement_heatmap(matrix.to_numpy()[np.ix_(shown, shown)], [matrix.index[i] for i in shown],
                      out_dir / "agreement.png", boundaries=np.append(clusters[order], 0),
                      identical=[[int(position[j]) - 1 for j in members] for members in identical],
                      title=f"Pairwise agreement: {summary['inputs']} inputs and their {summary['method']} ensemble")
    return text
