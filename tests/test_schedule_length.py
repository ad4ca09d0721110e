"""Issue 18 item 3: a short run (``--epochs`` at or below a preset's warm-up) still ends at the schedule's end."""
from __future__ import annotations

import math

import numpy as np
import pytest

from kfold.config import resolve_config
from kfold.nn.engine import MAX_WARMUP_SHARE, lr_factor


def last_step_factor(cfg, steps_per_epoch: int) -> float:
    """The factor FoldTrainer applies on the last step of the last epoch (the row's ``lr`` in metrics.csv)."""
    return lr_factor(cfg, cfg.epochs - 1 + (steps_per_epoch - 0.5) / steps_per_epoch)


@pytest.mark.parametrize("preset", ["fast", "best"])
@pytest.mark.parametrize("epochs", range(1, 31))
def test_last_epoch_reaches_the_schedules_end(preset, epochs):
    cfg = resolve_config(preset, None, {"epochs": epochs})
    assert cfg.schedule == "onecycle"
    assert lr_factor(cfg, epochs) == 0.0  # one-cycle ends at a learning rate of zero
    # the warm-up is over before the last epoch's second half, and the rate only falls from there to the end
    warmup = min(cfg.warmup_epochs, MAX_WARMUP_SHARE * epochs)
    assert warmup <= MAX_WARMUP_SHARE * epochs
    ts = np.linspace(max(warmup, epochs - 1), epochs, 50)
    assert np.all(np.diff([lr_factor(cfg, t) for t in ts]) <= 1e-12)
    # kmnist-comp at k=2 (27 steps) and k=5 (44 steps): the last step's rate is under 1% of the peak
    for steps in (27, 44):
        assert last_step_factor(cfg, steps) < 0.01, (preset, epochs, steps)
    # the peak is still reached: the rate rises to 1 at the end of the warm-up
    assert lr_factor(cfg, warmup) == pytest.approx(1.0)


@pytest.mark.parametrize("preset, epochs", [("fast", 20), ("best", 30)])
def test_full_length_runs_keep_the_presets_warmup(preset, epochs):
    cfg = resolve_config(preset, None, {})
    assert cfg.epochs == epochs
    assert lr_factor(cfg, cfg.warmup_epochs) == pytest.approx(1.0)
    assert lr_factor(cfg, cfg.warmup_epochs - 1) < 1.0


def test_a_real_two_epoch_fast_run_ends_near_zero(tmp_path):
    """FoldTrainer itself: metrics' lr of the last epoch is the end of the schedule, not the peak."""
    torch = pytest.importorskip("torch")
    from kfold.nn.engine import FoldTrainer
    from synthetic import balanced_labels, pattern_images

    rng = np.random.default_rng(0)
    labels = balanced_labels(200, 10, rng)
    images = pattern_images(labels, rng)
    cfg = resolve_config("fast", None, {"epochs": 2, "batch_size": 16, "aug": "none", "model_kwargs": {"width": 4}})
    result = FoldTrainer(cfg, images, labels, 10, np.arange(160), np.arange(160, 200), torch.device("cpu"), seed=0,
                         work_dir=tmp_path, progress=False).fit()
    lrs = [row["lr"] for row in result.history]
    assert lrs[-1] < 0.01 * cfg.lr and lrs[-1] < lrs[0]
    assert not math.isnan(result.history[-1]["val_accuracy"])
