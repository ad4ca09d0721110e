"""Pseudo-labelling and the epoch-based learning-rate schedule (kfold.nn.engine)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kfold.config import TrainConfig, resolve_config
from kfold.nn.engine import FoldTrainer, lr_factor
from synthetic import balanced_labels, pattern_images

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    labels = balanced_labels(240, 10, rng)
    test_labels = balanced_labels(80, 10, rng)
    return pattern_images(labels, rng), labels, pattern_images(test_labels, rng), test_labels


def tiny_config(**overrides) -> TrainConfig:
    values = dict(model="lenet5", epochs=4, batch_size=32, lr=0.05, schedule="constant", aug="light",
                  pseudo_label=0.5, pseudo_start=0.5)
    return resolve_config(None, None, {**values, **overrides})


def trainer(cfg, data, tmp_path, labels=None) -> FoldTrainer:
    images, true_labels, test_images, _ = data
    return FoldTrainer(cfg, images, true_labels if labels is None else labels, 10, np.arange(160), np.arange(160, 240), CPU,
                       seed=0, work_dir=tmp_path, progress=False, unlabeled=test_images)


def test_pool_is_test_images_plus_validation_images(data, tmp_path):
    t = trainer(tiny_config(), data, tmp_path)
    assert len(t.pseudo_pool) == 80 + 80
    assert set(t.pseudo_pool) == set(range(160, 240)) | set(range(240, 320))
    assert len(trainer(tiny_config(pseudo_label=0.0), data, tmp_path).pseudo_pool) == 0


def test_pseudo_labels_join_from_the_start_epoch_and_are_mostly_right(data, tmp_path):
    result = trainer(tiny_config(epochs=6, pseudo_start=0.5), data, tmp_path).fit()
    first, later = result.history[:3], result.history[3:]
    assert all("pseudo_rows" not in row for row in first)
    assert all(row["pseudo_rows"] > 0 for row in later)
    assert later[-1]["pseudo_val_accuracy"] > 0.8  # synthetic classes are easy: confident labels are right


def test_training_never_reads_validation_labels(data, tmp_path):
    """Scrambling the validation labels changes the reported validation score, never the trained weights."""
    images, labels, _, _ = data
    scrambled = labels.copy()
    scrambled[160:] = (labels[160:] + 1 + np.arange(80) % 9) % 10
    a = trainer(tiny_config(), data, tmp_path / "a").fit()
    b = trainer(tiny_config(), data, tmp_path / "b", labels=scrambled).fit()
    last_a, last_b = a.history[-1], b.history[-1]
    assert last_a["train_loss"] == last_b["train_loss"]
    assert last_a["pseudo_rows"] == last_b["pseudo_rows"]
    assert last_a["val_accuracy"] != last_b["val_accuracy"]


def test_resume_with_pseudo_labels_is_bit_identical(data, tmp_path):
    cfg = tiny_config(epochs=4, pseudo_start=0.25)
    whole = trainer(cfg, data, tmp_path / "whole").fit()

    interrupted = trainer(cfg, data, tmp_path / "part")
    run_epoch = interrupted.train_epoch

    def killed_in_epoch_three():
        if interrupted.state["epoch"] == 2:
            raise KeyboardInterrupt
        return run_epoch()

    interrupted.train_epoch = killed_in_epoch_three
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    resumed = trainer(cfg, data, tmp_path / "part").fit(resume=True)
    assert [row.get("pseudo_rows") for row in resumed.history] == [row.get("pseudo_rows") for row in whole.history]
    assert resumed.history[-1]["pseudo_rows"] > 0
    for key, value in whole.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_lr_factor_is_a_function_of_epochs_only(schedule):
    cfg = TrainConfig(epochs=10, schedule=schedule, warmup_epochs=0 if schedule == "onecycle" else 1.0, step_epochs=4)
    ts = np.linspace(0.01, 9.99, 200)
    factors = np.array([lr_factor(cfg, t) for t in ts])
    assert np.all((factors > 0) & (factors <= 1.0 + 1e-12))
    if schedule in ("cosine", "onecycle"):
        peak = 1.0 if schedule == "cosine" else 3.0  # onecycle warms up over 30% of the epochs
        assert lr_factor(cfg, peak) == pytest.approx(1.0)
        assert np.all(np.diff(factors[ts > peak]) <= 1e-12) and factors[-1] < 1e-3
    if schedule == "onecycle":
        assert lr_factor(cfg, 0.0) == pytest.approx(0.04)
    if schedule == "step":
        assert lr_factor(cfg, 5.0) == pytest.approx(0.1) and lr_factor(cfg, 8.5) == pytest.approx(0.01)
    if schedule != "onecycle":
        assert lr_factor(cfg, 0.5) == pytest.approx(0.5)  # linear warm-up over the first epoch


def test_bad_pseudo_values_are_named():
    from kfold.errors import UsageError

    with pytest.raises(UsageError, match="pseudo_label=1.5"):
        tiny_config(pseudo_label=1.5)
    with pytest.raises(UsageError, match="pseudo_start=-0.1"):
        tiny_config(pseudo_start=-0.1)
