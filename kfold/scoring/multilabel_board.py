"""The local leaderboard of a multi-label competition: f1/f2-samples, micro-f1 or mean-auc on the Public and
Private rows, 95% bootstrap intervals and paired comparisons with the best Public submission. Torch-free.

Every metric is computed from per-row quantities, so the bootstrap is a matrix product and not a loop over
scikit-learn calls: the F-scores of the rows (``*-samples``), the rows' true/false positives and false negatives
(``micro-f1``), and for ``mean-auc`` a weighted Mann-Whitney count over each column's sorted probabilities (a
resample weighs each row by how often it was drawn). As on the single-label board, ONE resampling of the rows per
split is shared by every submission, so the differences are paired; the p-value is the paired bootstrap's.
Probability files are scored as they would be submitted: tags at the thresholds their run chose (top-1 fallback)
for a tag metric, the probabilities for ``mean-auc``.

>>> import numpy as np
>>> truth = np.array([[1, 0], [0, 1], [1, 1], [0, 1]])
>>> round(float(weighted_mean_auc(truth, np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6], [0.3, 0.1]]), np.ones((1, 4)))[0]), 4)
0.8333
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError, param
from kfold.scoring.bootstrap import SPLITS, paired_tests, percentile_interval

__all__ = ["multilabel_solution", "score_multilabel", "weighted_mean_auc"]

def multilabel_solution(path: str | os.PathLike, schema, public_fraction: float, seed: int, metric: str | None
                        ) -> dict:
    """The fields of a ``kfold.scoring.leaderboard.Solution`` of a multi-label solution file: ``categories`` is the
    (N, tags) 0/1 truth; a file without ``Usage`` gets the seeded split."""
    from kfold.files.multilabel_submission import read_multilabel_solution
    from kfold.files.split import random_usage
    from kfold.metrics import get_metric, metric_fit_problem

    path = Path(path)
    ids, truth, usage = read_multilabel_solution(path, schema)
    metric = metric or schema.metric
    try:
        get_metric(metric)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    problem = metric_fit_problem(metric, schema.target, schema.num_classes, schema.classes)
    if problem:
        raise UsageError(f"{path}: {problem}")
    generated = usage is None
    if generated:
        usage = random_usage(len(ids), seed, public_fraction)
    for split in ("Public", "Private"):
        if not (usage == split).any():
            raise DataError(f"{path}: no {split} rows")
    return dict(ids=ids, categories=truth, usage=usage, path=path, split_generated=generated,
                num_classes=schema.num_classes, classes_source=f"the competition's {schema.num_classes} tags",
                schema=schema, metric=metric)


def _values(source, solution) -> tuple[str, np.ndarray]:
    """A submission's name and what the metric reads, in solution row order: 0/1 tags or probabilities."""
    from kfold.files.multilabel_submission import read_multilabel_submission
    from kfold.files.probs import is_multilabel, is_prob_csv, read_probs
    from kfold.files.submission import align_ids
    from kfold.scoring.multilabel import apply_thresholds, thresholds_of

    schema, path = solution.schema, Path(source)
    if path.suffix.lower() == ".npz" or is_prob_csv(path):
        item = read_probs(path)
        if not is_multilabel(item.meta) or item.classes != list(schema.classes):
            raise DataError(f"{path}: not a probability file of this competition's tags")
        values = item.probs.astype(np.float64)
        if schema.target == "tags" or solution.metric != "mean-auc":
            values = apply_thresholds(values, thresholds_of(item.meta.get("thresholds"), schema.num_classes))
        ids, first_line = item.ids, None
    else:
        ids, values = read_multilabel_submission(path, schema)
        first_line = 2
        if solution.metric != "mean-auc" and schema.target != "tags":  # probability columns scored by a tag metric
            values = apply_thresholds(values, thresholds_of(None, schema.num_classes))
    rows = align_ids(ids, solution.ids, str(path), f"the solution {solution.path}", first_line=first_line)
    return str(path), values[rows]


def _draws(n_rows: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) weights: how often each row was drawn in each of B resamples."""
    draws = rng.integers(0, n_rows, size=(n_bootstrap, n_rows))
    return np.stack([np.bincount(d, minlength=n_rows) for d in draws]).astype(np.float64)


def weighted_mean_auc(truth: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean column-wise ROC AUC under each row of ``weights`` (B, N); a column without both classes is left out."""
    truth, probs = np.asarray(truth), np.asarray(probs, dtype=np.float64)
    out = np.zeros((len(weights), truth.shape[1]))
    for j in range(truth.shape[1]):
        order = np.argsort(probs[:, j], kind="stable")
        scores, y = probs[order, j], truth[order, j]
        w = weights[:, order]
        starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
        pos = np.add.reduceat(w * y, starts, axis=1)
        neg = np.add.reduceat(w * (1 - y), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        total = pos.sum(axis=1) * neg.sum(axis=1)
        pairs = (pos * (below + 0.5 * neg)).sum(axis=1)
        out[:, j] = np.divide(pairs, total, out=np.full(len(weights), np.nan), where=total > 0)
    with np.errstate(all="ignore"):
        valid = ~np.isnan(out)
        return np.where(valid.any(axis=1), np.nansum(out, axis=1) / np.maximum(valid.sum(axis=1), 1), np.nan)


def _metric_under(metric: str, truth: np.ndarray, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The metric of ``values`` against ``truth`` under each row of ``weights`` (B, N)."""
    from kfold.scoring.multilabel import _beta2, _counts, _f

    if metric == "mean-auc":
        return weighted_mean_auc(truth, values, weights)
    tp, fp, fn = _counts(np.asarray(truth, dtype=np.int64), np.asarray(values, dtype=np.int64))
    if metric == "micro-f1":
        return _f(weights @ tp, weights @ fp, weights @ fn, 1.0)
    return (weights @ _f(tp, fp, fn, _beta2(metric))) / weights.sum(axis=1)


def score_multilabel(submissions: Sequence, solution, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The unranked score table of multi-label ``submissions`` (the single-label board's columns), see the module."""
    if n_bootstrap < 1:
        raise UsageError(f"{param('bootstrap')} must be at least 1, got {n_bootstrap}")
    scored = [_values(source, solution) for source in submissions]
    metric, truth = solution.metric, solution.categories
    masks = {"public": solution.public, "private": solution.private}
    masks["overall"] = masks["public"] | masks["private"]
    rng = np.random.default_rng(seed)
    rows = {split: np.flatnonzero(masks[split]) for split in SPLITS}
    weights = {split: _draws(len(rows[split]), n_bootstrap, rng) for split in ("public", "private")}
    # the Overall resample is the Public and the Private one together (stratified), on the Overall rows
    overall = np.zeros((n_bootstrap, len(truth)))
    overall[:, rows["public"]] = weights["public"]
    overall[:, rows["private"]] = weights["private"]
    weights["overall"] = overall[:, rows["overall"]]
    records: dict = {"submission": [name for name, _ in scored], "logloss_from": [None] * len(scored)}
    boots = {}
    for split in SPLITS:
        index = rows[split]
        ones = np.ones((1, len(index)))
        records[split] = np.array([_metric_under(metric, truth[index], v[index], ones)[0] for _, v in scored])
        boots[split] = np.stack([_metric_under(metric, truth[index], v[index], weights[split]) for _, v in scored], axis=1)
        records[f"{split}_low"], records[f"{split}_high"] = percentile_interval(boots[split])
        records[f"{split}_logloss"] = np.full(len(scored), np.nan)
        records[f"n_{split}"] = np.full(len(scored), len(index))
    best = int(np.nanargmax(records["public"]))
    paired_tests(records, boots, best)
    table = pd.DataFrame(records)
    table["best_public"] = np.arange(len(scored)) == best
    table.attrs["metric"] = metric
    return table
