"""Multi-label scoring: out-of-fold thresholds, tags from probabilities, ensembles, agreement, per-tag tables.
Torch-free.

A tag target's submission holds tags, not probabilities: each tag is predicted where its probability reaches a
threshold. :func:`search_thresholds` chooses one global threshold and then one per tag on the out-of-fold
probabilities, to maximize the competition's metric (the global one with the top-1 fallback; then coordinate
ascent over the tags on a grid of 99 values, vectorized over the grid). :func:`apply_thresholds` gives every row at least one tag: a
row whose probabilities all stay below their thresholds gets its most probable tag (top-1 fallback), since the
F-scores of an empty row are 0.

>>> import numpy as np
>>> labels = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
>>> probs = np.array([[0.8, 0.1, 0.4], [0.2, 0.6, 0.1], [0.7, 0.3, 0.2], [0.1, 0.2, 0.35]])
>>> found = search_thresholds(labels, probs, "f1-samples")
>>> found["global"], round(found["score_global"], 4), round(found["score"], 4) >= round(found["score_global"], 4)
(0.21, 1.0, True)
>>> apply_thresholds(np.array([[0.2, 0.1, 0.3]]), [0.5, 0.5, 0.5]).tolist()  # nothing reaches: the top tag
[[0, 0, 1]]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from kfold.errors import DataError, UsageError

__all__ = ["GRID", "agreement_tables", "apply_thresholds", "fast_score", "oof_summary", "per_tag_table",
           "search_thresholds", "thresholds_of", "vote_tags"]

GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)  # the candidate thresholds
THRESHOLD_METRICS = ("f1-samples", "f2-samples", "micro-f1")


def apply_thresholds(probs: np.ndarray, thresholds, fallback: bool = True) -> np.ndarray:
    """(N, C) int64 0/1: tag ``j`` where ``probs[:, j] >= thresholds[j]`` (one number: every tag); with ``fallback``, a
    row without any tag gets its most probable one (the lowest index among equals): ``kfold.metrics.tags_from_probs``,
    the one rule that the metrics table applies too."""
    from kfold.metrics import tags_from_probs

    return tags_from_probs(probs, thresholds, fallback)


def _counts(labels: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = (labels * predicted).sum(axis=-1)
    return tp, predicted.sum(axis=-1) - tp, labels.sum(axis=-1) - tp


def _f(tp, fp, fn, beta2: float):
    """F-beta from counts (arrays); 0 where nothing is true and nothing predicted (scikit-learn's zero_division=0)."""
    numerator = (1 + beta2) * tp
    denominator = numerator + beta2 * fn + fp
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator > 0)


def _beta2(metric: str) -> float:
    return 4.0 if metric == "f2-samples" else 1.0


def fast_score(metric: str, labels: np.ndarray, predicted: np.ndarray) -> float:
    """``f1-samples``, ``f2-samples`` or ``micro-f1`` of 0/1 predictions, in numpy (equal to scikit-learn's)."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    tp, fp, fn = _counts(labels, predicted)
    if metric == "micro-f1":
        return float(_f(tp.sum(), fp.sum(), fn.sum(), 1.0))
    return float(_f(tp, fp, fn, _beta2(metric)).mean())


def search_thresholds(labels: np.ndarray, probs: np.ndarray, metric: str, passes: int = 2) -> dict:
    """One global threshold, then one per tag, maximizing ``metric`` on out-of-fold ``probs`` against ``labels``.

    Parameters
    ----------
    labels : (N, C) array of 0/1
        The true tags of the out-of-fold rows.
    probs : (N, C) array of float
        Their out-of-fold probabilities.
    metric : str
        ``f1-samples``, ``f2-samples`` or ``micro-f1``.
    passes : int, default 2
        Rounds of coordinate ascent over the tags.

    Returns
    -------
    dict
        ``global`` (the best single threshold), ``per_tag`` (list of C), their out-of-fold scores
        ``score_global`` / ``score_per_tag`` (both with the top-1 fallback), ``used`` (``per-tag`` when it scores
        higher, else ``global``) and ``score`` (the used one's).

    Raises
    ------
    UsageError
        A metric that does not score tags.

    Examples
    --------
    >>> found = search_thresholds(np.array([[1, 0], [0, 1]]), np.array([[0.9, 0.3], [0.2, 0.25]]), "micro-f1")
    >>> found["used"], found["score"]
    ('global', 1.0)
    """
    if metric not in THRESHOLD_METRICS:
        raise UsageError(f"metric {metric!r}: thresholds are chosen for {', '.join(THRESHOLD_METRICS)}")
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    beta2, micro = _beta2(metric), metric == "micro-f1"
    n_rows, n_tags = labels.shape
    size = len(GRID)
    # bins[i, j]: how many grid values probs[i, j] reaches; tag j is predicted at grid index g exactly when g < bins
    bins = np.searchsorted(GRID, probs, side="right")
    positives = labels.sum(axis=1)

    # the global threshold (every tag at once), with the top-1 fallback. Row i predicts its c most probable tags on
    # a run of grid indices, so its score is a step function of g: one difference array over the grid holds them all
    order = np.argsort(-probs, axis=1, kind="stable")          # the lowest index first among equal probabilities
    ranked_bins = np.take_along_axis(bins, order, axis=1)     # descending
    ranked = np.take_along_axis(labels, order, axis=1)
    tp_top = np.cumsum(ranked, axis=1)                         # true tags among the c most probable, c = 1..T
    count = np.arange(1, n_tags + 1)
    low = np.concatenate([ranked_bins[:, 1:], np.zeros((n_rows, 1), dtype=ranked_bins.dtype)], axis=1)

    def stepped(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """(G,) sums over the rows of ``values[:, c - 1]`` where c tags are predicted, ``fallback`` where none."""
        diff = (np.bincount(low.ravel(), values.ravel(), size + 1) - np.bincount(ranked_bins.ravel(), values.ravel(), size + 1)
                + np.bincount(ranked_bins[:, 0], fallback, size + 1))
        return np.cumsum(diff)[:size]

    if micro:
        tp_g = stepped(tp_top.astype(np.float64), tp_top[:, 0].astype(np.float64))
        predicted_g = stepped(np.broadcast_to(count, tp_top.shape).astype(np.float64), np.ones(n_rows))
        scores = _f(tp_g, predicted_g - tp_g, positives.sum() - tp_g, 1.0)
    else:
        f_top = _f(tp_top, count - tp_top, positives[:, None] - tp_top, beta2)
        scores = stepped(f_top, f_top[:, 0]) / n_rows
    best_global = float(GRID[int(np.argmax(scores))])
    # per tag, the others fixed (coordinate ascent): row i's score is one value with tag j and another without it
    per_tag = np.full(n_tags, best_global)
    for _ in range(passes):
        chosen = probs >= per_tag
        tp_all = (chosen & (labels == 1)).sum(axis=1)
        fp_all = chosen.sum(axis=1) - tp_all
        for j in range(n_tags):
            y = labels[:, j]
            tp0 = tp_all - (chosen[:, j] & (y == 1))
            fp0 = fp_all - (chosen[:, j] & (y == 0))
            if micro:
                base_tp, base_fp = tp0.sum(), fp0.sum()
                hits = np.bincount(bins[:, j], y, minlength=size + 1)[::-1].cumsum()[::-1][1:]
                misses = np.bincount(bins[:, j], 1 - y, minlength=size + 1)[::-1].cumsum()[::-1][1:]
                tp_g = base_tp + hits
                values = _f(tp_g, base_fp + misses, positives.sum() - tp_g, 1.0)
            else:
                without = _f(tp0, fp0, positives - tp0, beta2)
                with_tag = _f(tp0 + y, fp0 + (1 - y), positives - tp0 - y, beta2)
                gain = np.bincount(bins[:, j], with_tag - without, minlength=size + 1)[::-1].cumsum()[::-1][1:]
                values = without.sum() + gain
            per_tag[j] = GRID[int(np.argmax(values))]
            newly = probs[:, j] >= per_tag[j]
            tp_all = tp0 + (newly & (y == 1))
            fp_all = fp0 + (newly & (y == 0))
            chosen[:, j] = newly
    score_global = fast_score(metric, labels, apply_thresholds(probs, best_global))
    score_per_tag = fast_score(metric, labels, apply_thresholds(probs, per_tag))
    used = "per-tag" if score_per_tag > score_global else "global"
    return {"metric": metric, "global": best_global, "per_tag": [float(t) for t in per_tag],
            "score_global": score_global, "score_per_tag": score_per_tag, "used": used,
            "score": max(score_global, score_per_tag)}


def thresholds_of(found: dict | None, num_tags: int) -> np.ndarray:
    """The thresholds a run recorded (``summary.json``'s ``thresholds``): the per-tag ones or the global one as C values;
    0.5 for every tag when none were recorded."""
    if not found:
        return np.full(num_tags, 0.5)
    values = found["per_tag"] if found.get("used") == "per-tag" else [found["global"]] * num_tags
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (num_tags,) or not np.isfinite(values).all() or (values <= 0).any() or (values >= 1).any():
        raise DataError(f"recorded thresholds {found!r}: need {num_tags} values in (0, 1)")
    return values


def vote_tags(predictions: Sequence[np.ndarray], seed: int) -> tuple[np.ndarray, int]:
    """Per-tag majority vote of several models' 0/1 tags; an even split is broken by a seeded coin per (row, tag).
    Returns the tags and the number of tied (row, tag) cells."""
    stack = np.stack([np.asarray(p, dtype=np.int64) for p in predictions])
    yes = stack.sum(axis=0)
    n = len(stack)
    tags = (2 * yes > n).astype(np.int64)
    tied = 2 * yes == n
    coins = np.random.default_rng(seed).integers(0, 2, size=tags.shape)
    tags[tied] = coins[tied]
    return tags, int(tied.sum())


def agreement_tables(predictions: Sequence[np.ndarray], final: np.ndarray, names: Sequence[str], tags: Sequence[str]
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per tag: how often the models agree with the ensemble's tags (and how many rows every model agrees on);
    per model: its share of (row, tag) cells equal to the ensemble's, and of rows whose tag sets are equal."""
    stack = np.stack([np.asarray(p, dtype=np.int64) for p in predictions])
    final = np.asarray(final, dtype=np.int64)
    same = stack == final[None]
    per_tag = pd.DataFrame({"tag": list(tags), "predicted_rows": final.sum(axis=0),
                            "agreement": same.mean(axis=(0, 1)),
                            "unanimous_rows": (stack == stack[:1]).all(axis=0).sum(axis=0)})
    per_model = pd.DataFrame({"input": list(names), "cell_agreement": same.mean(axis=(1, 2)),
                              "row_agreement": same.all(axis=2).mean(axis=1)})
    return per_tag, per_model


def per_tag_table(labels: np.ndarray, probs: np.ndarray, tags: Sequence[str], thresholds=0.5) -> pd.DataFrame:
    """Precision, recall, F1 and support of each tag (with the top-1 fallback), scikit-learn's definitions."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.asarray(labels, dtype=np.int64)
    predicted = apply_thresholds(probs, thresholds)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, average=None, zero_division=0)
    return pd.DataFrame({"tag": list(tags), "precision": precision, "recall": recall, "f1": f1, "support": support,
                         "predicted": predicted.sum(axis=0)})


def oof_summary(labels: np.ndarray, probs: np.ndarray, schema) -> dict:
    """The out-of-fold part of a multi-label run's ``summary.json``: the share of right (image, tag) decisions at 0.5
    (``oof_accuracy``), the mean binary cross-entropy (``oof_logloss``), the chosen thresholds (tag targets) and the
    competition's metric with them (``oof_score``)."""
    from kfold.metrics import score

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    clipped = np.clip(probs, 1e-15, 1 - 1e-15)
    out = {"oof_rows": int(len(labels)), "oof_accuracy": float(((probs >= 0.5) == labels).mean()),
           "oof_logloss": float(-(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)).mean()),
           "metric": schema.metric, "multilabel": True}
    if schema.target == "tags":
        found = search_thresholds(labels, probs, schema.metric)
        out["thresholds"] = found
        out["oof_score"] = float(found["score"])
    else:  # probability columns: mean-auc on the probabilities, a tag metric at 0.5 with the top-1 fallback (as the
        out["oof_score"] = float(score(schema.metric, labels, probs, schema.num_classes))  # leaderboard scores them)
    return out
