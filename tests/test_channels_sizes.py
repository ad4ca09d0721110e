"""Images of any square size N x N with 1 or C channels: training, prediction, models, augmentation, figures.

An RGB task (coloured shapes, ``tests/synthetic.py``) trains through the real training flow and predicts; the
8x8 digits of scikit-learn train through the ``train`` command, and a model that cannot take 8x8 is refused
before anything is written; every registered model either takes C x N x N or is refused by
``check_model_fits`` in one line; both augmentation backends keep shape, dtype and range for C = 3 at N = 32
and 64; and at 28x28 the augmentation geometry is the one kfold always had (KMNIST stays bit-identical).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import digits_task, rgb_shapes_task
from test_reliability import TRAIN, assert_one_line_error, run

from kfold.config import resolve_config
from kfold.errors import DataError, KfoldError, UsageError
from kfold.files.probs import read_probs
from kfold.flows.training import RunRequest, TaskSpec, train_run
from kfold.nn.augment import PRESET_POLICIES, TTA_VIEWS, AugPolicy, BatchAugment, image_transform, tta_views
from kfold.nn.checks import check_model_fits
from kfold.nn.models import create_model, list_models
from kfold.registry import REFERENCE_SIDE

torch.set_num_threads(1)


def files_under(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def with_images(task, train_images: np.ndarray, test_images: np.ndarray):
    """``task`` with other images (same labels, Ids and classes)."""
    return dataclasses.replace(task, train_images=train_images, test_images=test_images)


def gray(images: np.ndarray) -> np.ndarray:
    return images.mean(axis=3).round().astype(np.uint8)


# ---- an RGB task through the training flow and prediction ------------------------------------------------

@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """fold 0 of 2 of the `fast` preset (its model, resnet9 width 16), one epoch, on 120 RGB 32x32 images."""
    root = tmp_path_factory.mktemp("rgb")
    task = rgb_shapes_task(n_train=120, n_test=40, size=32, seed=0)
    cfg = resolve_config("fast", None, {"epochs": 1})
    request = RunRequest(cfg, TaskSpec("shapes-rgb"), preset="fast", k=2, seed=0, folds=[0], device="cpu", threads=1,
                         progress=False)
    summary = train_run(request, task, root / "run", echo=lambda _: None)
    return task, root, summary


def test_rgb_task_trains_with_per_channel_normalization_and_predicts(rgb_run, tmp_path):
    from kfold.files.folds import read_folds
    from kfold.nn.inference import load_model
    from kfold.nn.predict import predict_run

    task, root, summary = rgb_run
    assert task.channels == 3 and task.image_shape == (32, 32)
    meta = json.loads((root / "run" / "fold0" / "meta.json").read_text())
    assert meta["channels"] == 3 and meta["image_size"] == 32 and meta["model"] == "resnet9"
    train_rows = np.flatnonzero(read_folds(root / "run" / "folds.csv", task.train_labels) != 0)
    pixels = task.train_images[train_rows].reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(meta["normalization"]["mean"], pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(meta["normalization"]["std"], pixels.std(axis=0), rtol=1e-7)
    assert len(set(meta["normalization"]["mean"])) == 3  # red, green and blue differ in these images
    assert summary["folds"][0]["val_accuracy"] is not None

    model, weights_meta = load_model(root / "run" / "fold0" / "model.safetensors", torch.device("cpu"))
    assert model[0][0].in_channels == 3 and weights_meta["normalization"] == meta["normalization"]
    written = predict_run([root / "run"], task, tmp_path / "probs", tta=3, device="cpu", allow_incomplete=True,
                          echo=lambda _: None)
    probs = read_probs(tmp_path / "probs" / "run-fold0.npz")
    assert len(written) == 2 and probs.probs.shape == (40, 6) and list(probs.ids) == list(task.test_ids)
    np.testing.assert_allclose(probs.probs.sum(axis=1), 1.0, atol=1e-5)
    oof = read_probs(root / "run" / "fold0" / "oof.npz")
    assert oof.probs.shape == (60, 6)


@pytest.mark.parametrize("what, images, message", [
    ("grayscale", lambda t: (gray(t.train_images), gray(t.test_images)),
     "model takes 32x32 images with 3 channels but the test images are 32x32 images with 1 channel"),
    ("other-size", lambda t: (t.train_images.repeat(2, 1).repeat(2, 2), t.test_images.repeat(2, 1).repeat(2, 2)),
     "model takes 32x32 images with 3 channels but the test images are 64x64 images with 3 channels"),
    ("four-channels", lambda t: tuple(np.concatenate([a, a[..., :1]], axis=3) for a in (t.train_images, t.test_images)),
     "but the test images are 32x32 images with 4 channels"),
])
def test_weights_of_another_channel_count_or_size_are_refused(what, images, message, rgb_run, tmp_path):
    from kfold.nn.predict import predict_run

    task, root, _ = rgb_run
    before = files_under(root)
    with pytest.raises(DataError) as caught:
        predict_run([root / "run"], with_images(task, *images(task)), tmp_path / "probs", device="cpu",
                    allow_incomplete=True, echo=lambda _: None)
    assert "\n" not in str(caught.value) and message in str(caught.value)
    assert str(root / "run" / "fold0" / "model.safetensors") in str(caught.value)
    assert not (tmp_path / "probs").exists() and files_under(root) == before


def _edit_header(path: Path, edit) -> None:
    from safetensors.torch import load_file, safe_open, save_file

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["kfold"])
    tensors = load_file(path)
    edit(meta)
    save_file(tensors, str(path), metadata={"kfold": json.dumps(meta)})


BAD_RGB_HEADERS = [
    ("mean-scalar", lambda m: m["normalization"].update(mean=0.2), "normalization"),
    ("mean-two", lambda m: m["normalization"].update(mean=[0.2, 0.2]), "normalization"),
    ("mean-four", lambda m: m["normalization"].update(mean=[0.2] * 4), "normalization"),
    ("mean-nan", lambda m: m["normalization"].update(mean=[0.2, float("nan"), 0.2]), "normalization"),
    ("mean-string", lambda m: m["normalization"].update(mean=[0.2, "0.2", 0.2]), "normalization"),
    ("std-zero", lambda m: m["normalization"].update(std=[0.2, 0.0, 0.2]), "normalization"),
    ("std-negative", lambda m: m["normalization"].update(std=[-0.2, 0.2, 0.2]), "normalization"),
    ("std-inf", lambda m: m["normalization"].update(std=[0.2, float("inf"), 0.2]), "normalization"),
    ("std-missing", lambda m: m["normalization"].pop("std"), "normalization"),
    ("channels-zero", lambda m: m.update(channels=0), "channels must be an integer in 1..64"),
    ("channels-string", lambda m: m.update(channels="3"), "channels must be an integer"),
    ("channels-bool", lambda m: m.update(channels=True), "channels must be an integer"),
    ("channels-huge", lambda m: m.update(channels=10**6), "channels must be an integer"),
    ("channels-dropped", lambda m: m.pop("channels"), "normalization must be {'mean': number"),
    ("channels-other", lambda m: m.update(channels=4, normalization={"mean": [0.2] * 4, "std": [0.2] * 4}),
     "weights do not fit model 'resnet9'"),
    ("image-size-other", lambda m: m.update(image_size=64), "model takes 64x64 images with 3 channels"),
]


@pytest.mark.parametrize("edit, fragment", [c[1:] for c in BAD_RGB_HEADERS], ids=[c[0] for c in BAD_RGB_HEADERS])
def test_damaged_rgb_weights_headers_are_refused(edit, fragment, rgb_run, tmp_path):
    import shutil

    from kfold.nn.predict import predict_run

    task, root, _ = rgb_run
    run_dir = tmp_path / "run"
    shutil.copytree(root / "run", run_dir)
    weights = run_dir / "fold0" / "model.safetensors"
    _edit_header(weights, edit)
    before = files_under(tmp_path)
    with pytest.raises(DataError) as caught:
        predict_run([run_dir], task, tmp_path / "probs", device="cpu", allow_incomplete=True, echo=lambda _: None)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(weights)), str(caught.value)
    assert fragment in str(caught.value)
    assert files_under(tmp_path) == before and not (tmp_path / "probs").exists()


def test_rgb_shapes_are_learned_and_colour_matters(tmp_path):
    """Three epochs of `fast`'s model separate the six classes, also the pairs that differ only in colour."""
    from kfold.nn.engine import FoldTrainer

    task = rgb_shapes_task(n_train=360, n_test=6, size=32, seed=1)
    cfg = resolve_config("fast", None, {"epochs": 3, "batch_size": 32})
    rows = np.arange(360)
    fitted = FoldTrainer(cfg, task.train_images, task.train_labels, 6, rows[:240], rows[240:], torch.device("cpu"), seed=0,
                         work_dir=tmp_path, progress=False).fit()
    predicted, labels = fitted.val_probs.argmax(1), task.train_labels[240:]
    assert fitted.val_accuracy > 0.6  # chance: 1/6
    colour_only = (predicted % 3 == labels % 3)  # the shape is right: is the colour too?
    assert (predicted[colour_only] == labels[colour_only]).mean() > 0.7


@pytest.mark.parametrize("backend, extra", [("kornia", {}), ("albumentations", {"num_workers": 0}),
                                            ("kornia", {"mixup": 0.4, "cutmix": 1.0, "pseudo_label": 0.05,
                                                        "low_res": 16, "low_res_epochs": 1, "channels_last": "on",
                                                        "aug": "elastic", "tta": 4})])
def test_rgb_training_options(backend, extra, tmp_path):
    """Both augmentation backends, and mixup/cutmix, pseudo-labels, progressive resizing, channels_last and TTA,
    on C = 3 (two epochs so that the low-resolution epoch and pseudo-labels both happen)."""
    from kfold.nn.engine import FoldTrainer
    from kfold.nn.inference import predict_proba

    task = rgb_shapes_task(n_train=96, n_test=24, size=32, seed=2)
    cfg = resolve_config("fast", None, {"epochs": 2, "batch_size": 32, "aug_backend": backend, "aug": "heavy",
                                        "model": "vgg_bn", "model_kwargs": {"width": 8}, **extra})
    trainer = FoldTrainer(cfg, task.train_images, task.train_labels, 6, np.arange(64), np.arange(64, 96), torch.device("cpu"),
                          seed=0, work_dir=tmp_path, progress=False, unlabeled=task.test_images)
    shapes = []
    forward = trainer.forward
    trainer.forward = lambda x: shapes.append(tuple(x.shape)) or forward(x)
    result = trainer.fit()
    assert {s[1:] for s in shapes} == ({(3, 16, 16), (3, 32, 32)} if "low_res" in extra else {(3, 32, 32)})
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
    if "pseudo_label" in extra:
        assert result.history[-1]["pseudo_rows"] > 0
    probs = predict_proba(trainer.eval_model, task.test_images, trainer.mean, trainer.std, torch.device("cpu"),
                          tta=cfg.tta, channels_last=trainer.channels_last)
    assert probs.shape == (24, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_predict_proba_refuses_normalization_of_another_channel_count():
    from kfold.nn.inference import predict_proba

    model = create_model("ff-2x100", 6, in_chans=3, image_size=8)
    images = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(UsageError, match="normalization mean has 2 values but the images have 3 channel"):
        predict_proba(model, images, [0.1, 0.2], [0.3, 0.3, 0.3], torch.device("cpu"))


# ---- 8x8 grayscale digits through the train command -------------------------------------------------------

def write_digits(directory: Path) -> Path:
    """scikit-learn's digits in the arrays layout (kmnist-*.npy: any size, 10 classes)."""
    task = digits_task(n_test=300)
    directory.mkdir(parents=True)
    np.save(directory / "kmnist-train-imgs.npy", task.train_images)
    np.save(directory / "kmnist-train-labels.npy", task.train_labels.astype(np.uint8))
    np.save(directory / "kmnist-test-imgs.npy", task.test_images)
    return directory


def test_8x8_digits_train_with_a_model_that_fits(tmp_path):
    data = write_digits(tmp_path / "digits")
    argv = ["--data", data, "--out", tmp_path / "run", *TRAIN, "--model", "resnet8", "--folds", "0", "--threads", 1]
    assert run("train", argv) == 0
    meta = json.loads((tmp_path / "run" / "fold0" / "meta.json").read_text())
    assert meta["image_size"] == 8 and meta["channels"] == 1 and isinstance(meta["normalization"]["mean"], float)
    assert meta["val_accuracy"] > 0.3  # chance: 0.1; one epoch of ~750 images
    assert run("predict", [tmp_path / "run", "--data", data, "--out", tmp_path / "probs", "--device", "cpu",
                           "--allow-incomplete"]) == 0
    assert read_probs(tmp_path / "probs" / "run-fold0.npz").probs.shape == (300, 10)


@pytest.mark.parametrize("model, fragment", [("lenet5", "model 'lenet5' needs image_size >= 12, got 8"),
                                             ("speednet", "model 'speednet'")])
def test_8x8_digits_refuse_a_model_that_cannot_take_them(model, fragment, tmp_path, capsys):
    data = write_digits(tmp_path / "digits")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": model, "model_kwargs": {"widths": [8, 8, 8, 8]} if model == "speednet" else {}}))
    before = files_under(tmp_path)
    capsys.readouterr()
    assert run("train", ["--data", data, "--out", tmp_path / "run", *TRAIN, "--config", config]) == 2
    assert_one_line_error(capsys.readouterr().err, fragment)
    assert files_under(tmp_path) == before and not (tmp_path / "run").exists()


# ---- every model x channels x size: builds and runs, or is refused in one line -------------------------------

SHAPES = [(1, 28), (3, 32), (1, 64), (1, 8)]


@pytest.mark.parametrize("channels, side", SHAPES, ids=[f"{c}ch{s}" for c, s in SHAPES])
@pytest.mark.parametrize("name", list_models())
def test_every_model_takes_the_shape_or_is_refused_in_one_line(name, channels, side):
    cfg = resolve_config(None, None, {"model": name, "model_kwargs": {}})
    try:
        assert check_model_fits(cfg, 7, (side, side), "--data x", channels=channels) == side
    except KfoldError as exc:
        message = str(exc)
        assert "\n" not in message and f"model {name!r}" in message and len(message) < 300, message
        assert side == 8, f"{name} refused {channels}x{side}x{side}: {message}"  # only 8x8 is too small for some
        return
    torch.manual_seed(0)
    model = create_model(name, 7, in_chans=channels, image_size=side).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, channels, side, side))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


def test_check_model_fits_refuses_a_low_res_the_model_cannot_take():
    cfg = resolve_config(None, None, {"model": "lenet5", "model_kwargs": {}, "epochs": 2, "low_res": 8, "low_res_epochs": 1})
    with pytest.raises(DataError, match=r"--data x: model 'lenet5' cannot take 3x32x32 images downscaled to low_res=8 \("):
        check_model_fits(cfg, 7, (32, 32), "--data x", channels=3)


# ---- augmentation with C channels at any N -----------------------------------------------------------------

def rgb_batch(n: int, side: int, seed: int = 0) -> torch.Tensor:
    images = rgb_shapes_task(n_train=n, n_test=1, size=side, seed=seed).train_images
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("policy", list(PRESET_POLICIES))
def test_both_backends_keep_shape_dtype_and_range_for_rgb(policy, side):
    x = rgb_batch(6, side)
    torch.manual_seed(0)
    out = BatchAugment(PRESET_POLICIES[policy])(x)
    assert out.shape == (6, 3, side, side) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    transform = image_transform(PRESET_POLICIES[policy], seed=0, image_size=side)
    for image in (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        result = transform(image)
        assert result.shape == (side, side, 3) and result.dtype == np.float32
        assert 0.0 <= result.min() and result.max() <= 1.0
    if policy != "none":
        assert not torch.equal(out, x)


@pytest.mark.parametrize("backend", ["kornia", "albumentations"])
def test_geometry_moves_all_channels_together(backend):
    """A purely geometric policy warps every channel the same way: channels that were proportional stay so."""
    side = 32
    base = rgb_batch(4, side)[:, :1]
    x = torch.cat([base, 0.5 * base, 0.25 * base], 1)
    policy = PRESET_POLICIES["light"]
    if backend == "kornia":
        torch.manual_seed(3)
        out = BatchAugment(policy)(x)
    else:
        transform = image_transform(policy, seed=3, image_size=side)
        images = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = torch.from_numpy(np.stack([transform(im) for im in images])).permute(0, 3, 1, 2)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    assert not torch.allclose(out[:, 0], x[:, 0], atol=0.05)
    tolerance = 1e-6 if backend == "kornia" else 3 / 255  # uint8 rounding of the albumentations input
    torch.testing.assert_close(out[:, 1], 0.5 * out[:, 0], atol=tolerance, rtol=0)
    torch.testing.assert_close(out[:, 2], 0.25 * out[:, 0], atol=tolerance, rtol=0)


def test_albumentations_transform_refuses_another_size_with_an_elastic_policy():
    transform = image_transform(PRESET_POLICIES["elastic"], seed=0, image_size=32)
    with pytest.raises(ValueError, match="scaled for 32x32 images, got 64x64"):
        transform(np.zeros((64, 64, 3), np.uint8))


# ---- the geometry scales with N and is exactly today's at 28 ------------------------------------------------

def _elastic_as_before(policy: AugPolicy, b: int, h: int, w: int) -> torch.Tensor:
    """kfold's elastic field before images of other sizes (policy values used as pixels, whatever the size)."""
    from kornia.filters import gaussian_blur2d

    noise = torch.rand(b, 2, h, w) * 2 - 1
    chosen = torch.rand(b) < policy.elastic_p
    size = min(2 * math.ceil(3 * policy.elastic_sigma) + 1, 2 * (min(h, w) // 2) - 1)
    field = gaussian_blur2d(noise, size, (policy.elastic_sigma, policy.elastic_sigma)) * policy.elastic_alpha
    return (field * torch.tensor([2 / (w - 1), 2 / (h - 1)]).view(1, 2, 1, 1) * chosen.view(b, 1, 1, 1)).permute(0, 2, 3, 1)


def test_geometry_at_28_is_todays():
    from kfold.nn.augment import _elastic_displacement, _warp

    policy = PRESET_POLICIES["elastic"]
    assert REFERENCE_SIDE == 28 and policy.elastic_pixels(28) == (policy.elastic_alpha, policy.elastic_sigma) == (34.0, 4.0)
    torch.manual_seed(5)
    new = _elastic_displacement(policy, 8, 28, 28, torch.device("cpu"))
    torch.manual_seed(5)
    assert torch.equal(new, _elastic_as_before(policy, 8, 28, 28))
    x = torch.rand(3, 1, 28, 28)
    for view, params in zip(tta_views(x, len(TTA_VIEWS))[1:], TTA_VIEWS[1:]):  # 1-pixel shifts, as always
        angle, dx, dy, zoom = (torch.full((3,), v) for v in params)
        assert torch.equal(view, _warp(x, angle, dx, dy, zoom, torch.zeros(3)))
    transform = image_transform(policy, seed=0, image_size=28)
    elastic = [t for t in transform._compose.transforms if type(t).__name__ == "ElasticTransform"][0]
    assert (elastic.alpha, elastic.sigma) == (34.0, 4.0)


@pytest.mark.parametrize("side", [8, 32, 56, 64, 128])
def test_geometry_scales_with_the_side(side):
    from kfold.nn.augment import _elastic_displacement, _tta_shift

    policy = PRESET_POLICIES["elastic"]
    alpha, sigma = policy.elastic_pixels(side)
    assert alpha == pytest.approx(34.0 * (side / 28) ** 2) and sigma == pytest.approx(4.0 * side / 28)

    def relative_displacement(n: int) -> float:
        """Standard deviation of the elastic displacement as a fraction of the side (32 images, all distorted)."""
        torch.manual_seed(1)
        field = _elastic_displacement(dataclasses.replace(policy, elastic_p=1.0), 32, n, n, torch.device("cpu"))
        return float((field * (n - 1) / 2).std()) / n  # normalized -> pixels -> fraction of the side

    ratio = relative_displacement(side) / relative_displacement(28)
    assert 0.8 < ratio < 1.25, ratio  # the same distortion relative to the image at every size
    assert _tta_shift(1.0, side) == max(1, round(side / 28)) and _tta_shift(-1.0, side) == -max(1, round(side / 28))
    transform = image_transform(policy, seed=0, image_size=side)
    elastic = [t for t in transform._compose.transforms if type(t).__name__ == "ElasticTransform"][0]
    assert (elastic.alpha, elastic.sigma) == pytest.approx((alpha, sigma))


# ---- figures: RGB in colour, grayscale as before ------------------------------------------------------------

@pytest.mark.parametrize("rgb", [True, False])
def test_error_gallery_draws_rgb_in_colour_and_grayscale_in_gray(rgb, tmp_path):
    from PIL import Image

    from kfold.figures import plot_error_gallery

    task = rgb_shapes_task(n_train=6, n_test=1, size=32)
    images = task.train_images if rgb else gray(task.train_images)
    names = [task.class_names[k] for k in task.train_labels]
    plot_error_gallery(images, names, names[::-1], np.full(6, 0.5), tmp_path / "gallery.png", ids=np.arange(6), columns=3)
    pixels = np.asarray(Image.open(tmp_path / "gallery.png").convert("RGB")).astype(int)
    colourful = (np.abs(pixels[..., 0] - pixels[..., 2]) > 60).sum()
    assert (colourful > 500) if rgb else (colourful == 0)
