"""Temperature scaling (Guo et al., 2017) fitted on out-of-fold probabilities; numpy/scipy only.

A model trained with label smoothing is under-confident: its probabilities are right in order but
too flat, which costs log loss (never accuracy: dividing log-probabilities by one temperature keeps
every row's argmax). One temperature per model, fitted on its out-of-fold predictions (rows no fold
model trained on), is applied unchanged to its test predictions.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from kfold.errors import DataError
from kfold.files.probs import ProbFile

__all__ = ["apply_temperature", "calibrated", "fit_temperature", "LOG_EPS", "LOG_T_RANGE"]

LOG_EPS = 1e-12
LOG_T_RANGE = (-3.0, 3.0)  # temperatures between e^-3 and e^3


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities ``softmax(log(p) / T)`` in float32 (T > 1 flattens, T < 1 sharpens)."""
    logits = np.log(np.clip(probs.astype(np.float64), LOG_EPS, None)) / temperature
    return np.exp(log_softmax(logits, axis=1)).astype(np.float32)


def fit_temperature(oof: ProbFile) -> float:
    """The temperature minimising the log loss of out-of-fold probabilities ``oof`` against their labels."""
    if oof.labels is None:
        raise DataError(f"{oof.name()}: temperature scaling needs out-of-fold probabilities with true labels")
    log_p = np.log(np.clip(oof.probs.astype(np.float64), LOG_EPS, None))
    rows = np.arange(len(oof.labels))

    def loss(log_t: float) -> float:
        return float(-log_softmax(log_p / np.exp(log_t), axis=1)[rows, oof.labels].mean())

    return float(np.exp(minimize_scalar(loss, bounds=LOG_T_RANGE, method="bounded").x))


def calibrated(probs: ProbFile, temperature: float) -> ProbFile:
    """A copy of ``probs`` with the temperature applied and recorded in its metadata."""
    return dataclasses.replace(probs, probs=apply_temperature(probs.probs, temperature),
                               meta={**probs.meta, "temperature": temperature})
