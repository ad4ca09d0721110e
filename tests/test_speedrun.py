"""The `speedrun` preset (issue 17): its model, its config and one real training epoch, in seconds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from kfold.config import PRESETS, resolve_config
from kfold.errors import UsageError
from kfold.nn import precision
from kfold.nn.inference import autocast, use_bf16
from kfold.nn.models import ShiftOnlyBatchNorm, count_parameters, create_model

torch.set_num_threads(1)
NO_PROBE = {"bf16": "off", "channels_last": "off"}  # float32, contiguous: no timed precision probe


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):  # the precision probe's answers go to the test's folder, not ~/.cache/kfold
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))


def speedrun_model(**overrides) -> nn.Module:
    cfg = resolve_config("speedrun")
    return create_model(cfg.model, 10, **{**cfg.model_kwargs, **overrides})


def test_speedrun_preset_resolves_and_does_less_work_than_fast():
    cfg, fast = resolve_config("speedrun"), resolve_config("fast")
    assert cfg.keep == "last" and cfg.schedule == "onecycle" and cfg.val_every == 0
    assert 0 < cfg.warmup_epochs < cfg.epochs / 4  # a short run still spends most of it annealing
    assert cfg.epochs < fast.epochs and (cfg.channels_last, cfg.bf16) == ("probe", "probe")  # CUDA, or the CPU if faster
    assert count_parameters(speedrun_model()) <= count_parameters(create_model(fast.model, 10, **fast.model_kwargs))


def _macs_and_norm_pixels(model: nn.Module) -> tuple[int, int]:
    """Multiply-accumulates of the convolutions and BN-normalized values of one 28x28 image's forward pass."""
    totals = [0, 0]

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            totals[0] += output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        else:
            totals[1] += output.numel()

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            m.register_forward_hook(count)
    model.eval()(torch.rand(1, 1, 28, 28))
    return totals[0], totals[1]


def test_resnet9_speed_options():
    """pool_first pools before BN + ReLU (a quarter of the pixels normalized there), prep narrows the prep conv;
    the defaults build the very same network as before (same parameter names, shapes and initial values)."""
    torch.manual_seed(0)
    plain = create_model("resnet9", 10, width=16)
    torch.manual_seed(0)
    explicit = create_model("resnet9", 10, width=16, pool_first=False, prep=0)
    assert list(plain.state_dict()) == list(explicit.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), explicit.state_dict().values()))
    fast_macs, fast_norm = _macs_and_norm_pixels(plain)
    pooled_macs, pooled_norm = _macs_and_norm_pixels(create_model("resnet9", 10, width=16, pool_first=True))
    assert pooled_macs == fast_macs and pooled_norm < 0.6 * fast_norm
    sr_macs, _ = _macs_and_norm_pixels(speedrun_model())
    assert sr_macs < 0.9 * fast_macs
    prep = speedrun_model().eval()
    assert prep[0][0].out_channels == 8 and prep(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    # a model of the preset survives a save/load round trip (what predict.py does)
    again = speedrun_model()
    again.load_state_dict(prep.state_dict(), strict=True)


@pytest.mark.parametrize("kwargs, needle", [
    ({"pool_first": 1}, "pool_first must be true or false"),
    ({"pool_first": "yes"}, "pool_first must be true or false"),
    ({"prep": -1}, "prep must be an integer in 0..1024, got -1"),
    ({"prep": 8.0}, "prep must be an integer in 0..1024, got 8.0"),
    ({"prep": True}, "prep must be an integer in 0..1024, got True"),
    ({"prep": 10**6}, "prep must be an integer in 0..1024"),
    ({"prepp": 8}, "prepp"),
])
def test_resnet9_speed_options_are_checked(kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        create_model("resnet9", 10, width=16, **kwargs)
    with pytest.raises(UsageError, match=needle):  # the same message from the config, before any file is written
        resolve_config("speedrun", overrides={"model_kwargs": {"width": 16, **kwargs}})


@pytest.mark.parametrize("overrides, message", [
    ({"bf16": "always"}, "bf16='always' must be auto, probe, on or off"),
    ({"channels_last": "yes"}, "channels_last='yes' must be auto, probe, on or off"),
    ({"epochs": 0}, "epochs=0"),
    ({"bf16": True}, "'bf16' expects str"),
])
def test_speedrun_config_is_validated_like_the_others(overrides, message):
    with pytest.raises(UsageError, match=message):
        resolve_config("speedrun", overrides=overrides)


@pytest.mark.parametrize("kwargs, needle", [
    ({"widths": []}, "widths"),
    ({"widths": [16, 0]}, "widths"),
    ({"convs": 0}, "convs"),
    ({"stem": -1}, "stem"),
    ({"bn_momentum": 0.0}, "bn_momentum"),
    ({"act": "tanh"}, "act"),
    ({"widths": [8, 8, 8, 8, 8]}, "too small"),
])
def test_speednet_options_are_checked(kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        create_model("speednet", 10, **kwargs)


def test_speednet_shape_and_options():
    model = create_model("speednet", 10, widths=[8, 16, 32], convs=2, stem=4)
    assert len([m for m in model.modules() if isinstance(m, nn.Conv2d)]) == 1 + 3 * 2
    assert len([m for m in model.modules() if isinstance(m, nn.MaxPool2d)]) == 3
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    frozen = create_model("speednet", 10, widths=[8, 16], bn_scale=False, bn_momentum=0.3)
    norms = [m for m in frozen.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(isinstance(m, ShiftOnlyBatchNorm) and m.momentum == 0.3 for m in norms)
    assert all(not isinstance(m.weight, nn.Parameter) and torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    # the frozen scale is saved and restored with the weights, the shift is learned
    again = create_model("speednet", 10, widths=[8, 16], bn_scale=False)
    again.load_state_dict(frozen.state_dict(), strict=True)
    assert count_parameters(frozen) == count_parameters(create_model("speednet", 10, widths=[8, 16])) - 2 * (8 + 16)


def test_bf16_autocast_on_cpu_only_when_asked():
    cpu = torch.device("cpu")
    assert not use_bf16("auto", cpu) and use_bf16("on", cpu) and not use_bf16("off", cpu)
    model, x = speedrun_model().eval(), torch.rand(4, 1, 28, 28)
    with autocast(cpu):
        assert model(x).dtype == torch.float32
    with autocast(cpu, True):
        assert model(x).dtype == torch.bfloat16


def test_speedrun_trains_one_epoch_on_real_images(kmnist_comp, tmp_path):
    from kfold.nn.engine import FoldTrainer

    images = np.load(kmnist_comp / "kmnist-train-imgs.npy")[:400]
    labels = np.load(kmnist_comp / "kmnist-train-labels.npy")[:400].astype(np.int64)
    # batches of 32, not the preset's 128: the timed probe steps every variant on one batch, and a bf16 step of 128
    # images takes seconds on a CPU without native bf16 (AVX2 only); 300 rows are still 9 steps of training
    cfg = resolve_config("speedrun", overrides={"epochs": 1, "batch_size": 32})
    trainer = FoldTrainer(cfg, images, labels, 10, np.arange(300), np.arange(300, 400), torch.device("cpu"), seed=0,
                          work_dir=tmp_path, progress=False)
    # 'probe' on the CPU: the timed probe's choice, recorded with the fold (tests/test_waits_bf16.py forces each branch)
    timed = {"float32", "float32+channels_last"} | (set() if precision.emulated_bf16() else {"bf16", "bf16+channels_last"})
    assert trainer.precision.decided_by == "probe" and set(trainer.precision.seconds) == timed  # bf16 where native
    assert (trainer.bf16, trainer.channels_last) == (trainer.precision.bf16, trainer.precision.channels_last)
    result = trainer.fit()
    assert result.best_epoch == 1 and len(result.history) == 1
    assert result.val_probs.shape == (100, 10) and np.isfinite(result.val_probs).all()
    assert np.allclose(result.val_probs.sum(1), 1, atol=1e-3)
    assert 0.0 <= result.val_accuracy <= 1.0 and np.isfinite(result.history[0]["train_loss"])
    json.dumps(cfg.to_dict())  # the config saved with the run is plain JSON


def test_val_every_zero_scores_only_the_last_epoch(tmp_path):
    from kfold.nn.engine import FoldTrainer

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (96, 28, 28), dtype=np.uint8), np.arange(96) % 10
    # the precision is fixed (float32, contiguous) here: which epochs are scored does not depend on it, and the timed
    # probe (bf16 steps take seconds on a CPU without native bf16) is run by the test above and test_preset_shapes.py
    cfg = resolve_config("speedrun", overrides={"epochs": 3, "val_every": 0, "batch_size": 32, **NO_PROBE})
    result = FoldTrainer(cfg, images, labels, 10, np.arange(64), np.arange(64, 96), torch.device("cpu"), seed=0,
                         work_dir=tmp_path, progress=False).fit()
    scored = [not np.isnan(row["val_accuracy"]) for row in result.history]
    assert scored == [False, False, True] and result.best_epoch == 3 and result.val_probs.shape == (32, 10)
    every2 = resolve_config("speedrun", overrides={"epochs": 3, "val_every": 2, "batch_size": 32, **NO_PROBE})
    history = FoldTrainer(every2, images, labels, 10, np.arange(64), np.arange(64, 96), torch.device("cpu"), seed=0,
                          work_dir=tmp_path, progress=False).fit().history
    assert [not np.isnan(row["val_accuracy"]) for row in history] == [False, True, True]


@pytest.mark.parametrize("overrides, message", [
    ({"val_every": -1}, "val_every=-1 must be non-negative"),
    ({"val_every": 0, "keep": "best"}, "val_every=0 other than 1 needs keep='last'"),
])
def test_val_every_is_validated(overrides, message):
    with pytest.raises(UsageError, match=message):
        resolve_config("speedrun", overrides=overrides)


@pytest.mark.parametrize("overrides, message", [
    ({"low_res": 7, "low_res_epochs": 1}, "low_res=7 must be 0 \\(off\\) or at least 8"),
    ({"low_res": -20, "low_res_epochs": 1}, "low_res=-20"),
    ({"low_res": 20, "low_res_epochs": -1}, "low_res_epochs=-1 must be non-negative"),
    ({"low_res": 20, "low_res_epochs": 3, "epochs": 3}, "low_res_epochs=3 must be less than epochs=3"),
    ({"low_res": 20, "low_res_epochs": 9, "epochs": 3}, "low_res_epochs=9 must be less than epochs=3"),
    ({"low_res": 10**9, "low_res_epochs": 1}, "low_res=1000000000 must be at most"),
    ({"low_res": 20.5, "low_res_epochs": 1}, "'low_res' expects int"),
    ({"low_res": True, "low_res_epochs": 1}, "'low_res' expects int"),
])
def test_low_res_is_validated(overrides, message):
    with pytest.raises(UsageError, match=message):
        resolve_config("speedrun", overrides=overrides)


def test_low_res_epochs_train_on_downscaled_images_then_full_size(tmp_path):
    """Progressive resizing: the first low_res_epochs epochs see low_res x low_res inputs; later epochs and every
    validation pass see the full 28 x 28."""
    from kfold.nn.engine import FoldTrainer

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (96, 28, 28), dtype=np.uint8), np.arange(96) % 10
    cfg = resolve_config("speedrun", overrides={"epochs": 3, "low_res": 20, "low_res_epochs": 2, "batch_size": 32,
                                                **NO_PROBE})  # the input sizes do not depend on the precision
    trainer = FoldTrainer(cfg, images, labels, 10, np.arange(64), np.arange(64, 96), torch.device("cpu"), seed=0,
                          work_dir=tmp_path, progress=False)
    seen: list[tuple[bool, int]] = []
    trainer.model.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, inputs[0].shape[-1])))
    result = trainer.fit()
    training = [side for is_training, side in seen if is_training]
    assert training == [20] * 4 + [28] * 2  # 2 steps per epoch: epochs 1-2 at 20 pixels, epoch 3 at 28
    assert {side for is_training, side in seen if not is_training} == {28}
    assert result.val_probs.shape == (32, 10) and np.isfinite(result.val_probs).all()
    # off in every other preset
    assert all(resolve_config(name).low_res == 0 for name in PRESETS if name != "speedrun")
