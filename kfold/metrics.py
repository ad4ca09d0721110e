"""Competition metrics: one declarative table (scikit-learn's implementations). Torch-free, on the bottom floor.

Every score kfold reports for a competition (fold tables, out-of-fold score, the local leaderboard, the
agreement report, the submission log, ``kfold tune``'s objective) goes through :func:`score`, so a metric
is added in one place: :data:`METRICS`.

>>> import numpy as np
>>> labels = np.array([0, 1, 1, 0])
>>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
>>> round(score("accuracy", labels, probs), 4), round(score("logloss", labels, probs), 4)
(0.75, 0.4004)
>>> METRICS["logloss"].greater_is_better, METRICS["auc"].needs
(False, 'probs')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

LOGLOSS_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] and renormalized, as Kaggle's log loss does

TARGETS = ("label", "probs", "binary", "tags", "multilabel-probs")  # one label column; one probability column per
# class; one for a binary target; space-separated tags in one column; one independent probability column per tag
MULTILABEL_TARGETS = ("tags", "multilabel-probs")  # labels are (N, C) 0/1 matrices, scores (N, C) per-tag probabilities


@dataclass(frozen=True)
class Metric:
    """A competition metric: its name, direction, what it scores and scikit-learn's implementation.

    ``needs`` is ``"labels"`` when the metric scores hard predictions (a label submission can be scored)
    or ``"probs"`` when it needs probabilities (only a probability submission can be scored); the multi-label
    metrics take (N, tags) 0/1 labels and need ``"tags"`` (integer 0/1 predictions, or probabilities taken at 0.5
    with the top-1 fallback: :func:`tags_from_probs`) or ``"tag-probs"`` (per-tag probabilities).
    """

    name: str
    greater_is_better: bool
    needs: str
    description: str
    function: Callable[[np.ndarray, np.ndarray, int], float]

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return a > b if self.greater_is_better else a < b

    @property
    def direction(self) -> str:
        """Optuna's word for the direction: ``maximize`` or ``minimize``."""
        return "maximize" if self.greater_is_better else "minimize"


def clip_probs(probs: np.ndarray) -> np.ndarray:
    """Probabilities clipped to ``[eps, 1 - eps]`` and renormalized per row (what a log-loss submission holds)."""
    clipped = np.clip(np.asarray(probs, dtype=np.float64), LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    return clipped / clipped.sum(axis=1, keepdims=True)


def _accuracy(labels, scores, num_classes):
    return float(np.mean(_hard(scores) == labels))


def _macro_f1(labels, scores, num_classes):
    from sklearn.metrics import f1_score

    return float(f1_score(labels, _hard(scores), average="macro", labels=np.arange(num_classes), zero_division=0))


def _qwk(labels, scores, num_classes):
    from sklearn.metrics import cohen_kappa_score

    predictions = _hard(scores)
    if np.array_equal(predictions, labels):
        return 1.0  # sklearn gives nan when both raters use one class only
    value = cohen_kappa_score(labels, predictions, weights="quadratic", labels=np.arange(num_classes))
    return float(0.0 if np.isnan(value) else value)


def _logloss(labels, scores, num_classes):
    from sklearn.metrics import log_loss

    return float(log_loss(labels, clip_probs(_probs(scores)), labels=np.arange(num_classes)))


def _auc(labels, scores, num_classes):
    from sklearn.metrics import roc_auc_score

    probs = _probs(scores)
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")  # undefined on rows of one class (a tiny Public share, say)
    if num_classes == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, clip_probs(probs), multi_class="ovr", average="macro",
                               labels=np.arange(num_classes)))


TAG_THRESHOLD = 0.5  # a tag's threshold where none was chosen on out-of-fold rows


def tags_from_probs(probs: np.ndarray, thresholds=TAG_THRESHOLD, fallback: bool = True) -> np.ndarray:
    """(N, C) int64 0/1 tags of per-tag probabilities: THE rule of every path that scores or writes tags from
    probabilities (out-of-fold scores, ``kfold tune``, the fold tables, submissions, the leaderboard, error analysis).

    Tag ``j`` where ``probs[:, j] >= thresholds[j]`` (one number: every tag; 0.5 where no thresholds were chosen);
    with ``fallback``, a row without any tag gets its most probable one (the lowest index among equals), since the
    F-scores of an empty row are 0 and every image holds at least one tag.

    >>> tags_from_probs(np.array([[0.7, 0.6, 0.1], [0.4, 0.1, 0.2]])).tolist()
    [[1, 1, 0], [1, 0, 0]]
    >>> tags_from_probs(np.array([[0.4, 0.1, 0.2]]), fallback=False).tolist()
    [[0, 0, 0]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    tags = (probs >= np.asarray(thresholds, dtype=np.float64)).astype(np.int64)
    if fallback:
        empty = tags.sum(axis=1) == 0
        tags[np.flatnonzero(empty), probs[empty].argmax(axis=1)] = 1
    return tags


def _tags_hard(scores: np.ndarray) -> np.ndarray:
    """0/1 tag predictions: integer (or boolean) scores are decided tags, as they are; probabilities give tags by
    :func:`tags_from_probs` at 0.5 with the top-1 fallback (chosen thresholds are applied before)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("a multi-label metric needs an (N, tags) array")
    if scores.dtype.kind in "biu":
        return scores.astype(np.int64)
    return tags_from_probs(scores)


def _f_samples(beta: float):
    def function(labels, scores, num_classes):
        from sklearn.metrics import fbeta_score

        return float(fbeta_score(np.asarray(labels).reshape(len(labels), -1), _tags_hard(scores), beta=beta,
                                 average="samples", zero_division=0))
    return function


def _micro_f1(labels, scores, num_classes):
    from sklearn.metrics import f1_score

    return float(f1_score(np.asarray(labels).reshape(len(labels), -1), _tags_hard(scores), average="micro",
                          zero_division=0))


def _mean_auc(labels, scores, num_classes):
    """Mean over the tag columns of the ROC AUC; a column whose rows hold one value only is left out (undefined)."""
    from sklearn.metrics import roc_auc_score

    labels, probs = np.asarray(labels).reshape(len(labels), -1), _probs(scores)
    values = [roc_auc_score(labels[:, j], probs[:, j]) for j in range(labels.shape[1])
              if 0 < labels[:, j].sum() < len(labels)]
    return float(np.mean(values)) if values else float("nan")


def _hard(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    return scores if scores.ndim == 1 else scores.argmax(axis=1)


def _probs(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("this metric needs class probabilities, not hard predictions")
    return scores


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", True, "labels", "share of rows whose predicted class is the true class", _accuracy),
    Metric("macro-f1", True, "labels", "F1 score averaged over the classes with equal weight", _macro_f1),
    Metric("qwk", True, "labels", "quadratic weighted Cohen's kappa on the integer classes (ordinal targets)", _qwk),
    Metric("logloss", False, "probs", "multi-class log loss of the probabilities (clipped at 1e-15, renormalized)",
           _logloss),
    Metric("auc", True, "probs", "area under the ROC curve (binary; one-vs-rest macro for several classes)", _auc),
    Metric("f1-samples", True, "tags", "multi-label: F1 of each image's tag set, averaged over the images", _f_samples(1.0)),
    Metric("f2-samples", True, "tags", "multi-label: F2 of each image's tag set, averaged over the images (Planet)",
           _f_samples(2.0)),
    Metric("micro-f1", True, "tags", "multi-label: F1 of all (image, tag) decisions pooled", _micro_f1),
    Metric("mean-auc", True, "tag-probs", "multi-label: ROC AUC of each tag column, averaged over the columns", _mean_auc),
)}


def get_metric(name: str | Metric) -> Metric:
    """The :class:`Metric` called ``name``; ``ValueError`` naming the known ones for any other name."""
    if isinstance(name, Metric):
        return name
    if name not in METRICS:
        raise ValueError(f"metric {name!r}: not one of {', '.join(METRICS)}")
    return METRICS[name]


def default_metric(target: str, num_classes: int) -> str:
    """Accuracy for a label target; AUC for a binary probability target; log loss for class probabilities."""
    if target == "label":
        return "accuracy"
    if target in MULTILABEL_TARGETS:
        return "f1-samples" if target == "tags" else "mean-auc"
    return "auc" if target == "binary" else "logloss"


def metric_fit_problem(name: str, target: str, num_classes: int, class_values: Sequence | None = None) -> str | None:
    """Why metric ``name`` cannot score a competition of this target, or ``None`` when it can."""
    metric = get_metric(name)
    multilabel = metric.needs in ("tags", "tag-probs")
    if multilabel != (target in MULTILABEL_TARGETS):
        fitting = [m for m, v in METRICS.items() if (v.needs in ("tags", "tag-probs")) != multilabel
                   and (target != "tags" or v.needs != "tag-probs")
                   and (target != "label" or v.needs == "labels")]
        what = "several tags per image" if multilabel else "one class per image"
        return f"metric {name!r} scores {what}, but this target is {target!r}; use one of {', '.join(fitting)}"
    if target == "tags" and metric.needs == "tag-probs":
        return (f"metric {name!r} scores probabilities, but the submission holds tags; use one of "
                f"{', '.join(m for m, v in METRICS.items() if v.needs == 'tags')}")
    if target == "label" and metric.needs == "probs":
        return (f"metric {name!r} scores probabilities, but the submission holds one class label per row; "
                f"use one of {', '.join(m for m, v in METRICS.items() if v.needs == 'labels')}")
    if name == "qwk" and class_values is not None:
        try:
            [int(str(value)) for value in class_values]
        except ValueError:
            return "metric 'qwk' needs integer (ordinal) classes, but the classes are names"
    if name == "auc" and num_classes < 2:
        return "metric 'auc' needs at least two classes"
    return None


def score(name: str | Metric, labels: np.ndarray, scores: np.ndarray, num_classes: int | None = None) -> float:
    """Metric ``name`` of ``scores`` against integer class ``labels``.

    ``scores`` is an (N, C) array of class probabilities or an (N,) array of predicted classes (label
    metrics only). ``num_classes`` defaults to the number of probability columns.
    """
    metric = get_metric(name)
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores)
    if num_classes is None:
        num_classes = scores.shape[1] if scores.ndim == 2 else int(max(labels.max(initial=0), scores.max(initial=0))) + 1
    if len(labels) == 0:
        return float("nan")
    return metric.function(labels, scores, int(num_classes))


def check_metric(name: str, target: str, classes: Sequence, where: str | None = None) -> Metric:
    """The one check of a metric against a competition's target and classes, used by every command that scores
    (``inspect``, ``run``, ``train``, ``tune``, ``make-competition``): an unknown name or a metric that cannot score
    this target (``qwk`` on class names, a probability metric on a label target) is a ``UsageError``.

    >>> check_metric("qwk", "label", ["0", "1", "2"]).name
    'qwk'
    >>> check_metric("qwk", "label", ["cat", "dog"])
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: metric 'qwk' needs integer (ordinal) classes, but the classes are names
    """
    from kfold.errors import UsageError, param

    if name not in METRICS:
        raise UsageError(f"{param('metric')}={name!r}: not one of {', '.join(METRICS)}")
    problem = metric_fit_problem(name, target, len(classes), list(classes))
    if problem:
        raise UsageError(f"{where}: {problem}" if where else problem)
    return METRICS[name]


# The range of every metric's score (a value outside it is a damaged file, never a score).
SCORE_RANGES = {"accuracy": (0.0, 1.0), "macro-f1": (0.0, 1.0), "qwk": (-1.0, 1.0), "logloss": (0.0, float("inf")),
                "auc": (0.0, 1.0), "f1-samples": (0.0, 1.0), "f2-samples": (0.0, 1.0), "micro-f1": (0.0, 1.0),
                "mean-auc": (0.0, 1.0)}


def score_range(name: str) -> tuple[float, float]:
    """The interval a score of metric ``name`` lies in (``(-inf, inf)`` for a metric without one here).

    >>> score_range("auc"), score_range("logloss")
    ((0.0, 1.0), (0.0, inf))
    """
    return SCORE_RANGES.get(name, (float("-inf"), float("inf")))
