"""Ensembles of probability files and submissions: mean, geometric mean, majority vote; weight fitting.

Inputs are probability files (``kfold.files.probs``; also other tools' ``Id,<classes>`` CSVs and ``.npy``
arrays, see ``kfold.files.readers``) and/or hard-label submission CSVs. All inputs must cover the same Ids
(any row order; the result follows the first input), the same classes (a file whose class headers are
just ``0..C-1`` lines up by position; named classes in another order are reordered), the same kind
(test or out-of-fold) and, where recorded, the same data (``fingerprint`` and ``task`` in the metadata).

Decisions:

* Hard-label submissions are only allowed with ``vote``. Treating them as one-hot rows for
  ``mean`` would silently turn a mean into a vote, and for ``geomean`` a single zero wipes out a
  class, so ``mean``/``geomean`` with a hard-label input is a UsageError.
* Vote ties are broken uniformly at random among the tied classes with a seeded
  ``numpy.random.Generator`` (reproducible for a fixed seed), its draws assigned to the tied rows in
  sorted-Id order so that neither the row order of a file nor the order of the inputs changes the
  result; or with ``tiebreak='prob'`` by the summed (weighted) probability of the tied classes when
  every input has probabilities.
* ``rank``: the mean over inputs of each class column's rank among all rows (ties share their mean
  rank, scaled to 0..1); the class with the highest mean rank wins. It ignores how each model is
  calibrated, only how it orders the rows. No probability file is written for it (the scores are not
  probabilities).
* Weights scale each input's probabilities (mean/geomean) or its vote (vote).

Inputs are streamed: each file is read (large ``.npz`` files memory-mapped), checked, folded into the
running sum in row chunks and released, so memory stays at one input plus the result. Everything is
vectorised over rows. Nothing here imports torch (nor scipy or sklearn: start-up time counts when a
command is run over and over).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np

from kfold.errors import DataError, UsageError, check_list, param
from kfold.files.schema import KMNIST
from kfold.files.probs import CHUNK_ROWS, ProbFile, is_prob_csv, read_probs
from kfold.files.readers import csv_header, is_positional, is_submission_header, read_foreign_csv, read_npy, read_submission_fast
from kfold.files.submission import Submission, align_ids, check_categories

__all__ = ["align_inputs", "average_ranks", "check_same_data", "check_seed", "combine", "Ensemble", "FIT_METRICS",
           "fit_weights", "geomean_probs", "input_name", "load_input", "LOG_EPS", "logsumexp", "MAX_SEED",
           "mean_probs", "METHODS", "TIEBREAKS", "vote", "weighted_sum", "WeightFit"]

METHODS = ("mean", "geomean", "vote", "rank")
TIEBREAKS = ("random", "prob")
FIT_METRICS = ("accuracy", "logloss")
LOG_EPS = 1e-12  # probabilities are clipped here before taking logs (geomean, log loss)
MAX_SEED = 2**32 - 1

Input = Union[ProbFile, Submission]


def check_seed(seed: int, name: str = "seed") -> int:
    """Seeds are 0..2**32-1 (what every kfold command records and numpy takes); anything else is a UsageError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise UsageError(f"{param(name)} must be an integer in 0..{MAX_SEED}, got {seed}")
    return int(seed)


def logsumexp(values: np.ndarray, axis: int = 1, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(values))) along ``axis``, stable (scipy.special.logsumexp without importing scipy)."""
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def load_input(path: str | os.PathLike, num_classes: int | None = None, ids: np.ndarray | None = None,
               log_probs: bool = False, schema=None) -> Input:
    """A probability file or a submission CSV, by suffix and first line.

    ``.npz`` and ``.csv`` starting with ``#kfold-probs``: kfold probability files; ``.csv`` with header
    ``Id,Category``: a submission; any other ``.csv``: another tool's probabilities (``Id,<classes>``);
    ``.npy``: a (rows, classes) array whose Ids are ``ids`` (``--ids`` / the sample). ``num_classes``,
    when given, must match a probability file's classes and bounds a submission's Categories.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz", ".npy"):
        raise UsageError(f"{path}: inputs must be .csv submissions or .csv/.npz/.npy probability files")
    if suffix == ".npy":
        probs = read_npy(path, ids, log_probs)
    elif suffix == ".csv" and not is_prob_csv(path):
        header = csv_header(path)
        if schema is not None and schema.header != KMNIST.header:
            stripped = [h.strip() for h in header]
            if stripped == schema.header:
                return _competition_submission(path, schema)
            if stripped and (stripped[0] == schema.id_column or set(stripped) & set(schema.header)):
                from kfold.files.submission import header_problem  # the competition's columns, broken: say how

                raise DataError(f"{path}: line 1: {header_problem(stripped, schema.header)}")
        if is_submission_header(header) or len(header) < 3 or [h.strip() for h in header[:2]] == KMNIST.header:
            return read_submission_fast(path, num_classes=num_classes)
        probs = read_foreign_csv(path, ids, log_probs)
    else:
        probs = read_probs(path, log_probs)
    if num_classes is not None and probs.num_classes != num_classes:
        raise DataError(f"{path}: {probs.num_classes} classes, expected {num_classes}")
    return probs


def _competition_submission(path: Path, schema) -> Input:
    """A submission in the competition's own schema: a Submission (label target) or, for probability targets,
    a ProbFile of the submitted probabilities (the class names are the competition's classes)."""
    from kfold.files.submission import read_submission

    submission = read_submission(path, schema=schema)
    if submission.probs is None:
        return submission
    return ProbFile(ids=submission.ids, probs=submission.probs.astype(np.float32), classes=list(schema.classes),
                    meta={"kind": "test", "schema": schema.to_dict()}, path=path)


def input_name(item: Input) -> str:
    return str(item.path) if item.path is not None else item.name()


@dataclass
class Ensemble:
    """The combined prediction, every input's predictions aligned to it, and bookkeeping for reports."""

    ids: np.ndarray
    categories: np.ndarray
    probs: np.ndarray | None          # (N, C) for mean/geomean; None for vote and rank
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
    weights = np.asarray(check_list("weights", weights), dtype=np.float64).ravel()
    if weights.shape != (n_inputs,):
        raise UsageError(f"{weights.size} weights given for {n_inputs} inputs")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise UsageError(f"weights must be finite, non-negative and not all zero, got {weights.tolist()}")
    return weights


def _data_key(item: ProbFile) -> tuple | None:
    """(task, fingerprint) recorded in a probability file's metadata, or None when it records neither."""
    key = (item.meta.get("task"), item.meta.get("fingerprint"))
    return None if key == (None, None) else key


def check_same_data(items: Iterable[tuple[str, ProbFile]]) -> None:
    """Refuse probability files predicted on different data: their task or data fingerprint differ."""
    first = None
    for name, item in items:
        key = _data_key(item)
        if key is None:
            continue
        if first is None:
            first = (name, key)
        elif key != first[1]:
            raise DataError(f"{name}: predicted on other data (task {key[0]}, fingerprint {key[1]}) than {first[0]} "
                            f"(task {first[1][0]}, fingerprint {first[1][1]}); refusing to mix them")


class _Stream:
    """Reads inputs one at a time, checks each against the first, and aligns its rows and classes.

    ``add`` returns the input's probabilities in the reference row and class order (a view when nothing
    moves), or None for a submission; its predicted classes go into ``predictions[k]``."""

    def __init__(self, n_inputs: int, num_classes: int | None, ids: np.ndarray | None, log_probs: bool):
        self.n_inputs, self.num_classes, self.read_ids, self.log_probs = n_inputs, num_classes, ids, log_probs
        self.ids: np.ndarray | None = None
        self.names: list[str] = []
        self.predictions: np.ndarray | None = None
        self.classes: list[str] | None = None
        self.class_source: tuple[str, bool] | None = None  # (name, positional) of the file that set the classes
        self.kind: str | None = None
        self.kind_source: str | None = None
        self.data_source: tuple[str, tuple] | None = None
        self.labels: np.ndarray | None = None
        self.hard: list[tuple[int, str, Submission]] = []
        self.schema: dict | None = None  # the competition's schema recorded in the first probability file with one

    def load(self, source) -> Input:
        if isinstance(source, (ProbFile, Submission)):
            return source
        return load_input(source, ids=self.read_ids, log_probs=self.log_probs)

    def _class_order(self, item: ProbFile, name: str) -> np.ndarray | None:
        """Column order that maps ``item``'s classes onto the reference classes (None: already in order)."""
        if self.classes is None:
            if self.num_classes is not None and self.num_classes != item.num_classes:
                raise UsageError(f"{param('num_classes')}={self.num_classes!r}: {name} has {item.num_classes} classes")
            self.classes, self.class_source = list(item.classes), (name, is_positional(item))
            return None
        ref_name, ref_positional = self.class_source
        if item.classes == self.classes:
            return None
        n = len(self.classes)
        if item.num_classes == n and (is_positional(item) or ref_positional):
            if ref_positional and not is_positional(item):  # named classes replace the positional ones
                self.classes, self.class_source = list(item.classes), (name, False)
            return None
        if item.num_classes == n and sorted(item.classes) == sorted(self.classes):
            return np.array([item.classes.index(c) for c in self.classes])
        diff = next((i for i, (a, b) in enumerate(zip(item.classes, self.classes)) if a != b), min(item.num_classes, n))
        raise DataError(f"{name}: classes differ from {ref_name} at column {diff} "
                        f"({item.num_classes} classes: {','.join(item.classes[:12])}"
                        f"{'...' if item.num_classes > 12 else ''})")

    def add(self, k: int, item: Input, name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Check ``item`` and return (its probabilities, the row order that aligns them; None: same order)."""
        self.names.append(name)
        if self.schema is None and isinstance(item, ProbFile) and isinstance(item.meta.get("schema"), dict):
            self.schema = item.meta["schema"]
        if self.ids is None:
            self.ids = item.ids
            self.predictions = np.empty((self.n_inputs, len(item.ids)), dtype=np.int64)
        same_rows = item.ids is self.ids or np.array_equal(item.ids, self.ids)
        order = None
        if not same_rows:
            order = align_ids(item.ids, self.ids, name, f"the first input {self.names[0]}",
                              first_line=None if isinstance(item, ProbFile) else 2)
        if isinstance(item, Submission):
            self.predictions[k] = item.categories if order is None else item.categories[order]
            self.hard.append((k, name, item))
            return None, None
        columns = self._class_order(item, name)
        kind = item.kind
        if self.kind is None:
            self.kind, self.kind_source = kind, name
        elif kind != self.kind:
            oof, test = (name, self.kind_source) if kind == "oof" else (self.kind_source, name)
            raise DataError(f"{oof} holds out-of-fold predictions but {test} holds test predictions")
        key = _data_key(item)
        if key is not None:
            if self.data_source is None:
                self.data_source = (name, key)
            elif key != self.data_source[1]:
                first, first_key = self.data_source
                raise DataError(f"{name}: predicted on other data (task {key[0]}, fingerprint {key[1]}) than {first} "
                                f"(task {first_key[0]}, fingerprint {first_key[1]}); refusing to mix them")
        if item.labels is not None:
            item_labels = item.labels if order is None else item.labels[order]
            if self.labels is None:
                self.labels = item_labels
            elif not np.array_equal(self.labels, item_labels):
                row = int(np.argmax(self.labels != item_labels))
                raise DataError(f"{name}: true label {item_labels[row]} of Id {self.ids[row]} differs from the "
                                f"earlier inputs' label {self.labels[row]}")
        probs = item.probs if columns is None else item.probs[:, columns]
        return probs, order

    def finish(self) -> tuple[list[str], list[str]]:
        """The classes (inferred from the submissions when no input has probabilities) and the hard inputs' names."""
        if self.classes is None:
            top = max(int(item.categories.max()) for _, _, item in self.hard) + 1
            self.classes = [str(c) for c in range(self.num_classes or top)]
        for _, name, item in self.hard:
            check_categories(item.ids, item.categories, len(self.classes), name)
        return self.classes, [name for _, name, _ in self.hard]


def _chunks(n_rows: int):
    for start in range(0, n_rows, CHUNK_ROWS):
        yield slice(start, min(start + CHUNK_ROWS, n_rows))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Per column, each row's rank among all rows (1 = smallest; ties share their mean rank), float64."""
    ranks = np.empty(values.shape, dtype=np.float64)
    for column in range(values.shape[1]):
        _, inverse, counts = np.unique(values[:, column], return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        ranks[:, column] = (ends - (counts - 1) / 2.0)[inverse.ravel()]
    return ranks


def _fold_in(total: np.ndarray | None, probs: np.ndarray, order: np.ndarray | None, weight: float, how: str,
             predictions: np.ndarray | None) -> np.ndarray:
    """Add ``weight * f(probs)`` (f by ``how``: mean / geomean / vote-prob sums) into ``total`` row chunk by
    row chunk, and write each row's argmax into ``predictions`` (unless None); ``order`` aligns the rows.

    Sums of probabilities are float32 (the result is stored as float32; the relative error of K terms is at
    most K * 2**-24, and it halves the memory traffic of large files); log-probabilities and ranks float64."""
    n_rows, n_classes = (len(order) if order is not None else probs.shape[0]), probs.shape[1]
    if total is None and how is not None:
        total = np.zeros((n_rows, n_classes), dtype=np.float32 if how == "mean" else np.float64)
    if how == "rank":  # ranks need whole columns
        aligned = probs if order is None else probs[order]
        if predictions is not None:
            predictions[:] = aligned.argmax(axis=1)
        if weight:
            total += weight * (average_ranks(aligned) / n_rows)
        return total
    for rows in _chunks(n_rows):
        chunk = probs[rows] if order is None else probs[order[rows]]
        if predictions is not None:
            predictions[rows] = chunk.argmax(axis=1)
        if how is None or not weight:
            continue
        if how == "geomean":
            chunk = np.log(np.clip(chunk.astype(np.float64), LOG_EPS, None))
        if weight == 1.0:
            np.add(total[rows], chunk, out=total[rows], casting="unsafe")
        else:
            total[rows] += (weight * chunk).astype(total.dtype, copy=False)
    return total


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


def _softmax_rows(log_mean: np.ndarray) -> np.ndarray:
    return np.exp(log_mean - logsumexp(log_mean, axis=1, keepdims=True)).astype(np.float32)


def geomean_probs(probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted geometric mean of K (N, C) probability arrays, renormalised per row.

    That is a softmax of the weighted mean log-probability; probabilities are clipped at LOG_EPS first.
    """
    log_mean = weighted_sum((np.log(np.clip(p, LOG_EPS, None)) for p in probs), weights) / weights.sum()
    return _softmax_rows(log_mean)


def vote(predictions: np.ndarray, num_classes: int, weights: np.ndarray, rng: np.random.Generator,
         tiebreak_scores: np.ndarray | None = None, ids: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Weighted majority vote over (K, N) class predictions; returns (categories, number of tied rows).

    Tied classes are chosen uniformly at random with ``rng``, or by the highest
    ``tiebreak_scores`` (N, C) when given (remaining exact ties go to the lowest class index).
    The random draws go to the tied rows in the order of their ``ids`` (row order when not given), so
    the result depends on neither the row order of the inputs nor their order.
    """
    n_inputs, n_rows = predictions.shape
    cells = (np.arange(n_rows) * num_classes + predictions).ravel()  # flat (row, class) index per vote
    counts = np.bincount(cells, weights=np.repeat(weights, n_rows), minlength=n_rows * num_classes)
    counts = counts.reshape(n_rows, num_classes)
    top = counts.max(axis=1, keepdims=True)
    is_top = np.isclose(counts, top, rtol=1e-9, atol=1e-12)
    tied = is_top.sum(axis=1) > 1
    if tiebreak_scores is not None:
        keys = tiebreak_scores
    else:
        keys = np.zeros(counts.shape)
        tied_rows = np.flatnonzero(tied)
        if ids is not None:  # canonical order: the tied rows sorted by Id
            tied_rows = tied_rows[np.argsort(np.asarray(ids)[tied_rows], kind="stable")]
        keys[tied_rows] = rng.random((len(tied_rows), num_classes))
    return np.where(is_top, keys, -np.inf).argmax(axis=1).astype(np.int64), int(tied.sum())


def combine(prob_inputs: Sequence[Input | str | os.PathLike], method: str = "mean", weights=None, seed: int = 0,
            tiebreak: str = "random", num_classes: int | None = None, ids: np.ndarray | None = None,
            log_probs: bool = False, input_predictions: bool = True) -> Ensemble:
    """Combine inputs (paths or loaded files) by ``method`` in mean | geomean | vote | rank.

    ``ids``: the row Ids of ``.npy`` inputs (and of CSVs without an Id column); ``log_probs``: files hold
    natural-log probabilities; ``input_predictions=False`` skips each input's argmax (needed only by the
    vote and by reports; ``Ensemble.input_predictions`` is then None)."""
    prob_inputs = check_list("prob_inputs", prob_inputs)
    if method not in METHODS:
        raise UsageError(f"unknown ensemble method '{method}', choose from {', '.join(METHODS)}")
    if tiebreak not in TIEBREAKS:
        raise UsageError(f"unknown tiebreak '{tiebreak}', choose from {', '.join(TIEBREAKS)}")
    check_seed(seed)
    if not prob_inputs:
        raise UsageError("no ensemble inputs given")
    weights = _check_weights(weights, len(prob_inputs))
    stream = _Stream(len(prob_inputs), num_classes, ids, log_probs)
    how = {"mean": "mean", "geomean": "geomean", "rank": "rank"}.get(method, "mean" if tiebreak == "prob" else None)
    total = None
    for k, source in enumerate(prob_inputs):
        item = stream.load(source)
        name = input_name(item)
        probs, order = stream.add(k, item, name)
        if probs is None:
            if method != "vote" or tiebreak == "prob":
                need = f"{param('method')}={method!r}" if method != "vote" else f"{param('tiebreak')}='prob'"
                fix = f"{param('method')}='vote'" if method != "vote" else f"the default {param('tiebreak')}='random'"
                raise UsageError(f"{name} is a hard-label submission; {need} needs probability files for every input "
                                 f"(use {fix})")
            continue
        if total is not None and total.shape[1] != probs.shape[1]:
            raise DataError(f"{name}: {probs.shape[1]} classes, the earlier inputs have {total.shape[1]}")
        keep = input_predictions or method == "vote"
        total = _fold_in(total, probs, order, float(weights[k]), how, stream.predictions[k] if keep else None)
        del item, probs  # release (unmap) before the next input is read
    classes, _ = stream.finish()
    tied_rows = 0
    probs = None
    if method == "mean":
        probs = (total / np.float32(weights.sum())).astype(np.float32)
        categories = probs.argmax(axis=1).astype(np.int64)
    elif method == "geomean":
        probs = _softmax_rows(total / weights.sum())
        categories = probs.argmax(axis=1).astype(np.int64)
    elif method == "rank":
        categories = total.argmax(axis=1).astype(np.int64)
    else:
        categories, tied_rows = vote(stream.predictions, len(classes), weights, np.random.default_rng(seed),
                                     tiebreak_scores=total, ids=stream.ids)
    kind = stream.kind or "test"
    meta = {"kind": kind, "method": method, "inputs": stream.names, "weights": weights.tolist(),
            "seed": seed, "tiebreak": tiebreak}
    if stream.data_source is not None:
        meta["task"], meta["fingerprint"] = stream.data_source[1]
    if stream.schema is not None:
        meta["schema"] = stream.schema
    return Ensemble(ids=stream.ids, categories=categories, probs=probs, classes=classes, method=method,
                    weights=weights, names=stream.names,
                    input_predictions=stream.predictions if (input_predictions or method == "vote") else None,
                    tied_rows=tied_rows, labels=stream.labels, kind=kind, meta=meta)


def align_inputs(inputs: Sequence[Input | str | os.PathLike], num_classes: int | None = None) -> _Aligned:
    """Load every input (kept in memory) aligned to the first one; the same checks as ``combine``."""
    inputs = check_list("inputs", inputs)
    if not inputs:
        raise UsageError("no ensemble inputs given")
    stream = _Stream(len(inputs), num_classes, None, False)
    kept: list[np.ndarray] = []
    for k, source in enumerate(inputs):
        item = stream.load(source)
        probs, order = stream.add(k, item, input_name(item))
        if probs is not None:
            aligned = np.asarray(probs if order is None else probs[order])
            stream.predictions[k] = aligned.argmax(axis=1)
            kept.append(aligned)
    classes, hard = stream.finish()
    return _Aligned(ids=stream.ids, probs=kept if not hard else None, predictions=stream.predictions,
                    classes=classes, names=stream.names, labels=stream.labels, kind=stream.kind or "test",
                    hard_inputs=hard)


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
        raise UsageError(f"{param('fit_rounds')} must be at least 1, got {rounds}")
    aligned = align_inputs(check_list("oof_inputs", oof_inputs))
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
