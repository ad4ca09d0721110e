"""Accuracy per group (MNIST-MIX language, Kaggle Usage, ...) and the competition metrics of :mod:`kfold.metrics`
(re-exported: the table lives on the bottom floor, where the competition schema can read it). Torch-free."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["accuracy_by_group", "clip_probs", "default_metric", "get_metric", "Metric", "metric_fit_problem",
           "METRICS", "score"]

from kfold.metrics import (METRICS, Metric, clip_probs, default_metric, get_metric, metric_fit_problem,  # noqa: F401
                           score)


def accuracy_by_group(correct: np.ndarray, groups: np.ndarray, names: Sequence[str] | None = None) -> dict[str, float]:
    """Mean of ``correct`` (bool per row, or a (K, N) stack) within each group that has rows.

    ``groups`` holds group codes (``names[code]`` is the group's name) or names themselves (``names`` None;
    then groups come in order of first appearance).

    >>> accuracy_by_group(np.array([1, 0, 1, 1], bool), np.array([0, 0, 1, 1]), ["Arabic", "Bangla"])
    {'Arabic': 0.5, 'Bangla': 1.0}
    """
    correct = np.asarray(correct, dtype=np.float64)
    groups = np.asarray(groups)
    keys = list(range(len(names))) if names is not None else list(dict.fromkeys(groups.tolist()))
    out = {}
    for key in keys:
        rows = groups == key
        if rows.any():
            value = correct[..., rows].mean(axis=-1)
            out[names[key] if names is not None else key] = float(value) if np.ndim(value) == 0 else value
    return out
