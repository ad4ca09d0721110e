"""Ensembles of probability files and submissions: mean, geometric mean, majority vote; weight fitting.

Inputs are probability files (``kfold.files.probs``) and/or hard-label submission CSVs. All inputs must
cover the same Ids (any row order; the result follows the first input) and, for probability
files, the same classes in the same order.

Decisions:

* Hard-label submissions are only allowed with ``vote``. Treating them as one-hot rows for
  ``mean`` would silently turn a mean into a vote, and for ``geomean`` a single zero wipes out a
  class, so ``mean``/``geomean`` with a hard-label input is a UsageError.
* Vote ties are broken uniformly at random among the tied classes with a seeded
  ``numpy.random.Generator`` (reproducible for a fixed seed), or with ``tiebreak='prob'`` by the
  summed (weighted) probability of the tied classes when every input has probabilities.
* Weights scale each input's probabilities (mean/geomean) or its vote (vote).

Everything is vectorised over rows. Nothing here imports torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
from scipy.special import logsumexp

from kfold.errors import DataError, UsageError
from kfold.files.probs import ProbFile, is_prob_csv, read_probs
from kfold.files.submission import Submission, align_ids, check_categories, read_submission

METHODS = ("mean", "geomean", "vote")
TIEBREAKS = ("random", "prob")
FIT_METRICS = ("accuracy", "logloss")
LOG_EPS = 1e-12  # probabilities are clipped here before taking logs (geomean, log loss)

Input = Union[ProbFile, Submission]


def load_input(path: str | os.PathLike, num_classes: int | None = None) -> Input:
    """A probability file (.npz, or .csv starting with ``#kfold-probs``) or a submission CSV.

    ``num_classes``, when given, must match a probability file's classes and bounds a submission's Categories.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise UsageError(f"{path}: inputs must be .csv submissions or .csv/.npz probability files")
    if suffix == ".csv" and not is_prob_csv(path):
        return read_submission(path, num_classes=num_classes)
    probs = read_probs(path)
    if num_classes is not None and probs.num_classes != num_classes:
        raise DataError(f"{path}: {probs.num_classes} classes, expected {num_classes}")
    return probs


def input_name(item: Input) -> str:
    return str(item.path) if item.path is not None else item.name()


@dataclass
class Ensemble:
    """The combined prediction, every input's predictions aligned to it, and bookkeeping for reports."""

    ids: np.ndarray
    categories: np.ndarray
    probs: np.ndarray | None          # (N, C) for mean/geomean; None for vote
    classes: list[str]
    method: str
    weights: np.ndarray
    names: list[str]
    input_predictions: np.ndarray     # (K, N) each input's predicted class, in ``ids`` order
    tied_rows: int = 0                # vote rows whose top count was shared by several classes
    labels: np.ndarray | None = None  # true labels when all inputs are out-of-fold files
    kind: str = "test"
    meta: dict = field(default_factory=dict)


@dataclass
class _Aligned:
    ids: np.ndarray
    probs: list[np.ndarray] | None    # K arrays (N, C) when every input has probabilities
    predictions: np.ndarray           # (K, N) int64
    classes: list[str]
    names: list[str]
    labels: np.ndarray | None
    kind: str
    hard_inputs: list[str]            # names of the hard-label (submission) inputs


def _check_weights(weights, n_inputs: int) -> np.ndarray:
    if weights is None:
        return np.ones(n_inputs)
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.shape != (n_inputs,):
        raise UsageError(f"{weights.size} weights given for {n_inputs} inputs")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise UsageError(f"weights must be finite, non-negative and not all zero, got {weights.tolist()}")
    return weights


def align_inputs(inputs: Sequence[Input | str | os.PathLike], num_classes: int | None = None) -> _Aligned:
    """Load inputs and align their rows to the first one; check Ids, classes, kinds and labels."""
    items = [item if isinstance(item, (ProbFile, Submission)) else load_input(item) for item in inputs]
    if not items:
        raise UsageError("no ensemble inputs given")
    names = [input_name(item) for item in items]
    first = items[0]
    ids = first.ids
    prob_items = [item for item in items if isinstance(item, ProbFile)]
    reference = prob_items[0] if prob_items else None
    if reference is not None:
        classes = reference.classes
        if num_classes is not None and num_classes != len(classes):
            raise UsageError(f"--num-classes {num_classes} but {input_name(reference)} has {len(classes)} classes")
    else:
        top = max(int(item.categories.max()) for item in items) + 1
        classes = [str(c) for c in range(num_classes or top)]
    n_classes = len(classes)

    kinds = {item.kind for item in prob_items}
    if len(kinds) > 1:
        oof = next(item for item in prob_items if item.kind == "oof")
        test = next(item for item in prob_items if item.kind == "test")
        raise DataError(f"{input_name(oof)} holds out-of-fold predictions but {input_name(test)} holds test predictions")
    kind = kinds.pop() if kinds else "test"

    predictions = np.empty((len(items), len(ids)), dtype=np.int64)
    probs = [] if len(prob_items) == len(items) else None
    labels = None
    for k, (item, name) in enumerate(zip(items, names)):
        order = align_ids(item.ids, ids, name, f"the first input {names[0]}",
                          first_line=None if isinstance(item, ProbFile) else 2)
        if isinstance(item, ProbFile):
            if item.classes != classes:
                diff = next((i for i, (a, b) in enumerate(zip(item.classes, classes)) if a != b), min(len(item.classes), n_classes))
                raise DataError(f"{name}: classes differ from {input_name(reference)} at column {diff} "
                                f"({len(item.classes)} classes: {','.join(item.classes[:12])}"
                                f"{'...' if len(item.classes) > 12 else ''})")
            # no copy when the rows are already in order (the usual case: files from one test set)
            aligned = item.probs if np.array_equal(order, np.arange(len(ids))) else item.probs[order]
            predictions[k] = aligned.argmax(axis=1)
            if probs is not None:
                probs.append(aligned)
            if item.labels is not None:
                item_labels = item.labels[order]
                if labels is None:
                    labels = item_labels
                elif not np.array_equal(labels, item_labels):
                    row = int(np.argmax(labels != item_labels))
                    raise DataError(f"{name}: true label {item_labels[row]} of Id {ids[row]} differs from the "
                                    f"earlier inputs' label {labels[row]}")
        else:
            check_categories(item.ids, item.categories, n_classes, name)
            predictions[k] = item.categories[order]
    hard_inputs = [name for item, name in zip(items, names) if isinstance(item, Submission)]
    return _Aligned(ids=ids, probs=probs, predictions=predictions, classes=classes, names=names,
                    labels=labels, kind=kind, hard_inputs=hard_inputs)


def weighted_sum(arrays: Iterable[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Sum of ``weights[k] * arrays[k]`` in float64, accumulated one array at a time (never stacked)."""
    total = None
    for weight, array in zip(weights, arrays):
        if total is None:
            total = np.zeros(array.shape)
        if weight:
            total += weight * array
    return total


def mean_probs(probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted arithmetic mean of K (N, C) probability arrays."""
    return (weighted_sum(probs, weights) / weights.sum()).astype(np.float32)


def geomean_probs(probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted geometric mean of K (N, C) probability arrays, renormalised per row.

    That is a softmax of the weighted mean log-probability; probabilities are clipped at LOG_EPS first.
    """
    log_mean = weighted_sum((np.log(np.clip(p, LOG_EPS, None)) for p in probs), weights) / weights.sum()
    return np.exp(log_mean - logsumexp(log_mean, axis=1, keepdims=True)).astype(np.float32)


def vote(predictions: np.ndarray, num_classes: int, weights: np.ndarray, rng: np.random.Generator,
         tiebreak_scores: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Weighted majority vote over (K, N) class predictions; returns (categories, number of tied rows).

    Tied classes are chosen uniformly at random with ``rng``, or by the highest
    ``tiebreak_scores`` (N, C) when given (remaining exact ties go to the lowest class index).
    """
    n_inputs, n_rows = predictions.shape
    cells = (np.arange(n_rows) * num_classes + predictions).ravel()  # flat (row, class) index per vote
    counts = np.bincount(cells, weights=np.repeat(weights, n_rows), minlength=n_rows * num_classes)
    counts = counts.reshape(n_rows, num_classes)
    top = counts.max(axis=1, keepdims=True)
    is_top = np.isclose(counts, top, rtol=1e-9, atol=1e-12)
    tied = is_top.sum(axis=1) > 1
    keys = rng.random(counts.shape) if tiebreak_scores is None else tiebreak_scores
    return np.where(is_top, keys, -np.inf).argmax(axis=1).astype(np.int64), int(tied.sum())


def combine(prob_inputs: Sequence[Input | str | os.PathLike], method: str = "mean", weights=None, seed: int = 0,
            tiebreak: str = "random", num_classes: int | None = None) -> Ensemble:
    """Combine inputs (paths or loaded files) by ``method`` in mean | geomean | vote."""
    if method not in METHODS:
        raise UsageError(f"unknown ensemble method '{method}', choose from {', '.join(METHODS)}")
    if tiebreak not in TIEBREAKS:
        raise UsageError(f"unknown tiebreak '{tiebreak}', choose from {', '.join(TIEBREAKS)}")
    aligned = align_inputs(prob_inputs, num_classes=num_classes)
    weights = _check_weights(weights, len(aligned.names))
    if aligned.hard_inputs and (method != "vote" or tiebreak == "prob"):
        hard = aligned.hard_inputs[0]
        need = f"method '{method}'" if method != "vote" else "--tiebreak prob"
        fix = "use --method vote" if method != "vote" else "use the default --tiebreak random"
        raise UsageError(f"{hard} is a hard-label submission; {need} needs probability files for every input "
                         f"({fix})")
    tied_rows = 0
    if method == "mean":
        probs = mean_probs(aligned.probs, weights)
        categories = probs.argmax(axis=1).astype(np.int64)
    elif method == "geomean":
        probs = geomean_probs(aligned.probs, weights)
        categories = probs.argmax(axis=1).astype(np.int64)
    else:
        probs = None
        scores = weighted_sum(aligned.probs, weights) if tiebreak == "prob" else None
        categories, tied_rows = vote(aligned.predictions, len(aligned.classes), weights,
                                     np.random.default_rng(seed), tiebreak_scores=scores)
    meta = {"kind": aligned.kind, "method": method, "inputs": aligned.names, "weights": weights.tolist(),
            "seed": seed, "tiebreak": tiebreak}
    return Ensemble(ids=aligned.ids, categories=categories, probs=probs, classes=aligned.classes, method=method,
                    weights=weights, names=aligned.names, input_predictions=aligned.predictions,
                    tied_rows=tied_rows, labels=aligned.labels, kind=aligned.kind, meta=meta)


@dataclass
class WeightFit:
    """Result of greedy forward selection: weights (sum 1) and the path that led to them."""

    weights: np.ndarray
    counts: np.ndarray               # times each input was added
    metric: str
    score: float                     # OOF score of the weighted ensemble (accuracy, or log loss)
    single_scores: np.ndarray        # OOF score of each input alone
    history: list[tuple[int, float]]  # (input added, ensemble score after adding it) per round
    names: list[str]


def _ensemble_loss(log_space: bool, metric: str, total: np.ndarray, labels: np.ndarray) -> float:
    """Loss (lower is better) of an ensemble given the running sum of probabilities or log-probabilities."""
    rows = np.arange(len(labels))
    if metric == "accuracy":
        return -float(np.mean(total.argmax(axis=1) == labels))
    if log_space:
        return float(np.mean(logsumexp(total, axis=1) - total[rows, labels]))
    return float(np.mean(np.log(total.sum(axis=1)) - np.log(np.clip(total[rows, labels], LOG_EPS, None))))


def fit_weights(oof_inputs: Sequence[Input | str | os.PathLike], metric: str = "accuracy", method: str = "mean",
                rounds: int = 25) -> WeightFit:
    """Greedy forward selection with replacement (Caruana et al., 2004) on out-of-fold predictions.

    Each round adds the input that most improves the OOF ``metric`` (accuracy or log loss) of the
    ``method`` ensemble of everything added so far (ties: the first input). The weights are the
    pick counts of the best round. Scores are computed with numpy here because the loop evaluates
    every input in every round; they equal sklearn's accuracy_score / log_loss (checked in tests).
    """
    if metric not in FIT_METRICS:
        raise UsageError(f"unknown fit metric '{metric}', choose from {', '.join(FIT_METRICS)}")
    if method not in ("mean", "geomean"):
        raise UsageError(f"weights can be fitted for mean or geomean ensembles, not '{method}'")
    if rounds < 1:
        raise UsageError(f"--fit-rounds must be at least 1, got {rounds}")
    aligned = align_inputs(oof_inputs)
    if aligned.hard_inputs:
        raise UsageError(f"{aligned.hard_inputs[0]} is a submission; weight fitting needs out-of-fold probability files")
    if aligned.labels is None:
        raise DataError(f"{aligned.names[0]}: weight fitting needs out-of-fold probability files with true labels "
                        f"(kind 'oof'), this one has none")
    log_space = method == "geomean"
    parts = [np.log(np.clip(p, LOG_EPS, None)) if log_space else p.astype(np.float64) for p in aligned.probs]
    n_inputs = len(parts)
    # Loss of a k-member ensemble from the running sum: geomean divides log-sums by k before the
    # softmax, the mean divides sums by k (argmax and normalised log loss do not care for the mean).
    def loss(total: np.ndarray, members: int) -> float:
        return _ensemble_loss(log_space, metric, total / members if log_space else total, aligned.labels)

    single = np.array([loss(part, 1) for part in parts])
    total = np.zeros_like(parts[0])
    counts = np.zeros(n_inputs, dtype=np.int64)
    history, best = [], (np.inf, None)
    for step in range(1, rounds + 1):
        losses = [loss(total + part, step) for part in parts]
        pick = int(np.argmin(losses))
        total += parts[pick]
        counts[pick] += 1
        history.append((pick, losses[pick]))
        if losses[pick] < best[0] - 1e-12:
            best = (losses[pick], counts.copy())
    best_loss, best_counts = best
    sign = -1.0 if metric == "accuracy" else 1.0
    return WeightFit(weights=best_counts / best_counts.sum(), counts=best_counts, metric=metric,
                     score=sign * best_loss, single_scores=sign * single,
                     history=[(pick, sign * value) for pick, value in history], names=aligned.names)
