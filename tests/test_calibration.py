"""Temperature scaling on out-of-fold probabilities."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import log_loss

from kfold.scoring.calibration import apply_temperature, calibrated, fit_temperature
from kfold.errors import DataError
from kfold.files.probs import ProbFile


def oof_with_temperature(true_t: float, n: int = 4000, seed: int = 0) -> ProbFile:
    """Rows whose labels are drawn from softmax(z); the file holds softmax(z / true_t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, size=(n, 10))
    labels = np.array([rng.choice(10, p=p) for p in softmax(z, axis=1)])
    return ProbFile(ids=np.arange(n), probs=softmax(z / true_t, axis=1).astype(np.float32),
                    classes=[str(c) for c in range(10)], meta={"kind": "oof"}, labels=labels)


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_fitted_temperature_undoes_a_known_distortion(true_t):
    oof = oof_with_temperature(true_t)
    t = fit_temperature(oof)
    assert t == pytest.approx(1 / true_t, rel=0.1)
    fixed = calibrated(oof, t)
    assert log_loss(oof.labels, fixed.probs, labels=range(10)) < log_loss(oof.labels, oof.probs, labels=range(10))
    assert np.array_equal(fixed.probs.argmax(1), oof.probs.argmax(1))  # accuracy never changes
    assert fixed.meta["temperature"] == t and "temperature" not in oof.meta


def test_apply_temperature_is_a_distribution_and_t1_is_identity():
    p = softmax(np.random.default_rng(1).normal(size=(50, 10)), axis=1)
    assert np.allclose(apply_temperature(p, 1.0), p, atol=1e-6)
    q = apply_temperature(p, 3.0)
    assert np.allclose(q.sum(1), 1.0, atol=1e-5) and q.max(1).mean() < p.max(1).mean()


def test_test_probabilities_without_labels_are_refused():
    oof = oof_with_temperature(1.0, n=20)
    with pytest.raises(DataError, match="needs out-of-fold probabilities with true labels"):
        fit_temperature(ProbFile(ids=oof.ids, probs=oof.probs, classes=oof.classes, meta={}))
