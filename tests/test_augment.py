"""Augmentation: policy validation, both backends do what the policy says, TTA views."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from kfold.nn.augment import (PRESET_POLICIES, TTA_VIEWS, AugPolicy, BatchAugment, image_transform,
                           tta_views)
from kfold.errors import UsageError

torch.set_num_threads(1)
SIDE = 28


def blob(n: int = 1, sigma: float = 2.0) -> torch.Tensor:
    """(n, 1, 28, 28) Gaussian blob centred at (13.5, 13.5), peak 1."""
    r = torch.arange(SIDE, dtype=torch.float32) - (SIDE - 1) / 2
    img = torch.exp(-(r.view(-1, 1) ** 2 + r.view(1, -1) ** 2) / (2 * sigma**2))
    return img.expand(n, 1, SIDE, SIDE).clone()


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(B, 2) centre of mass (x, y) in pixels of a (B, 1, H, W) or (B, H, W) batch."""
    x = x.reshape(-1, SIDE, SIDE).double()
    r = torch.arange(SIDE, dtype=torch.float64)
    mass = x.sum((1, 2))
    return torch.stack([(x * r.view(1, 1, -1)).sum((1, 2)) / mass, (x * r.view(1, -1, 1)).sum((1, 2)) / mass], 1)


def batch_backend(policy: AugPolicy, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return BatchAugment(policy)(x)


def image_backend(policy: AugPolicy, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The albumentations backend applied image by image to the uint8 version of ``x``."""
    transform = image_transform(policy, seed=seed)
    images = (x[:, 0] * 255).round().to(torch.uint8).numpy()
    return torch.from_numpy(np.stack([transform(img) for img in images]))[:, None]


BACKENDS = [batch_backend, image_backend]


# ----------------------------------------------------------------------------- policy

def test_presets():
    assert PRESET_POLICIES["none"].is_identity() and AugPolicy().is_identity()
    assert not PRESET_POLICIES["light"].is_identity() and not PRESET_POLICIES["heavy"].is_identity()
    heavy = PRESET_POLICIES["heavy"]
    assert heavy.rotate > PRESET_POLICIES["light"].rotate and heavy.erase_p > 0
    # heavy-noerase is heavy, field for field, but for the erasing
    assert PRESET_POLICIES["heavy-noerase"] == dataclasses.replace(heavy, erase_p=0.0)


@pytest.mark.parametrize("field, value", [("rotate", 1.0), ("shift", 0.01), ("scale", (1.0, 1.1)),
                                          ("shear", 2.0), ("brightness", 0.1), ("contrast", 0.1),
                                          ("erase_p", 0.1), ("elastic_p", 0.1)])
def test_each_component_breaks_the_identity(field, value):
    assert not AugPolicy(**{field: value}).is_identity()


def test_dict_round_trip_with_lists():
    policy = AugPolicy.from_dict({"rotate": 10, "scale": [0.9, 1.1], "erase_p": 0.5})
    assert policy.scale == (0.9, 1.1) and isinstance(policy.rotate, float)
    assert policy.to_dict()["scale"] == [0.9, 1.1]
    assert AugPolicy.from_dict(policy.to_dict()) == policy == AugPolicy(rotate=10.0, scale=(0.9, 1.1), erase_p=0.5)
    assert hash(policy) == hash(AugPolicy.from_dict(policy.to_dict()))


@pytest.mark.parametrize("d, needle", [
    ({"rotation": 10}, "'rotation'"),
    ({"rotate": "a lot"}, "'rotate'.*number"),
    ({"shift": True}, "'shift'.*number"),
    ({"shear": -3}, "'shear'"),
    ({"brightness": 1.5}, "'brightness'"),
    ({"contrast": float("nan")}, "'contrast'"),
    ({"erase_p": 2}, "'erase_p'"),
    ({"scale": 1.1}, "'scale'.*pair"),
    ({"scale": [1.1, 0.9]}, "'scale'.*low <= high"),
    ({"scale": [0, 1]}, "'scale'"),
    ({"erase_scale": [0.1, 1.5]}, "'erase_scale'"),
    ({"erase_scale": [0.1, "x"]}, "'erase_scale'.*number"),
    ({"elastic_p": 1.5}, "'elastic_p'"),
    ({"elastic_sigma": 0}, "'elastic_sigma'.*positive"),
    ({"elastic_alpha": -1}, "'elastic_alpha'"),
])
def test_validation_names_the_key(d, needle):
    with pytest.raises(UsageError, match=needle):
        AugPolicy.from_dict(d)


def test_from_dict_needs_a_mapping():
    with pytest.raises(UsageError, match="mapping"):
        AugPolicy.from_dict(["rotate", 3])


# ----------------------------------------------------------------------------- both backends

def test_identity_policy_returns_the_input_itself():
    x = torch.rand(4, 1, SIDE, SIDE)
    assert BatchAugment(AugPolicy())(x) is x
    aug = BatchAugment(PRESET_POLICIES["heavy"]).eval()
    assert aug(x) is x  # like dropout: off in eval mode
    images = (torch.rand(3, SIDE, SIDE) * 255).to(torch.uint8).numpy()
    out = image_backend(AugPolicy(), torch.from_numpy(images)[:, None].float() / 255)
    np.testing.assert_array_equal(out[:, 0].numpy(), images.astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("backend", BACKENDS)
def test_shift_moves_the_centre_of_mass_within_the_limit(backend):
    shift = 0.1
    out = backend(AugPolicy(shift=shift), blob(256))
    moved = centre_of_mass(out) - (SIDE - 1) / 2
    limit = shift * SIDE
    assert moved.abs().max() <= limit + 0.05
    assert (moved.abs().max(0).values > 0.7 * limit).all()  # both axes reach far
    assert moved.mean(0).abs().max() < 0.4  # symmetric
    assert abs(float(np.corrcoef(moved[:, 0], moved[:, 1])[0, 1])) < 0.25  # independent axes
    torch.testing.assert_close(out.sum((1, 2, 3)), blob(256).sum((1, 2, 3)), rtol=0.01, atol=0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_draw_the_same_whole_pixel_shifts(backend):
    """A shift drawn uniformly in [-L, L] pixels and truncated to whole pixels, in both backends."""
    moved = centre_of_mass(backend(AugPolicy(shift=0.1), blob(512))) - (SIDE - 1) / 2
    assert torch.allclose(moved, moved.round(), atol=0.02)
    limit = 0.1 * SIDE
    expected = np.trunc(np.random.default_rng(0).uniform(-limit, limit, 200_000)).std()
    std = moved.std(0)
    assert ((std > 0.85 * expected) & (std < 1.15 * expected)).all()
    assert len(set(moved[:, 0].round().tolist())) >= 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_differ_per_sample(backend):
    out = backend(PRESET_POLICIES["heavy"], blob(8))
    flat = out.flatten(1)
    distinct = torch.cdist(flat, flat) + torch.eye(8) > 1e-3
    assert distinct.all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_stay_in_unit_range(backend):
    x = torch.rand(64, 1, SIDE, SIDE)
    for policy in (PRESET_POLICIES["heavy"], AugPolicy(brightness=0.5, contrast=1.0, scale=(1.2, 1.5))):
        out = backend(policy, x)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert out.min() == 0.0 and out.max() == 1.0  # clipping happened at both ends


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_preserves_mass_and_keeps_the_centre(backend):
    x = torch.zeros(32, 1, SIDE, SIDE)
    x[:, :, 8:20, 12:16] = 1.0  # an upright bar
    out = backend(AugPolicy(rotate=30), x)
    torch.testing.assert_close(out.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.03, atol=0.0)
    torch.testing.assert_close(centre_of_mass(out), centre_of_mass(x), rtol=0.0, atol=0.1)
    assert (out - x).abs().flatten(1).max(1).values.gt(0.5).float().mean() > 0.8


@pytest.mark.parametrize("backend", BACKENDS)
def test_scale_changes_the_spread(backend):
    out = backend(AugPolicy(scale=(1.2, 1.2)), blob(4))
    # the mass of a zoomed blob grows with the area factor 1.44
    torch.testing.assert_close(out.sum((1, 2, 3)), 1.44 * blob(4).sum((1, 2, 3)), rtol=0.03, atol=0.0)


def second_moments(x: torch.Tensor) -> torch.Tensor:
    """(B, 3): variance along x, variance along y, covariance of each image's mass."""
    x = x.reshape(-1, SIDE, SIDE).double()
    r = torch.arange(SIDE, dtype=torch.float64)
    mass = x.sum((1, 2))
    cx, cy = centre_of_mass(x).unbind(1)
    dx, dy = r.view(1, 1, -1) - cx.view(-1, 1, 1), r.view(1, -1, 1) - cy.view(-1, 1, 1)
    return torch.stack([(x * dx**2).sum((1, 2)), (x * dy**2).sum((1, 2)), (x * dx * dy).sum((1, 2))], 1) / mass[:, None]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zoom_is_isotropic_and_random(backend):
    moments = second_moments(backend(AugPolicy(scale=(0.8, 1.25)), blob(32)))
    torch.testing.assert_close(moments[:, 0], moments[:, 1], rtol=0.03, atol=0.0)
    assert moments[:, 0].max() / moments[:, 0].min() > 1.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_shear_slants_along_x_only(backend):
    base = second_moments(blob(1))[0]
    moments = second_moments(backend(AugPolicy(shear=20), blob(32)))
    torch.testing.assert_close(moments[:, 1], base[1].expand(32), rtol=0.02, atol=0.0)  # rows untouched
    assert (moments[:, 0] >= base[0] * 0.98).all()
    slant = moments[:, 2] / base[1]  # covariance / var_y = tan(shear)
    assert slant.abs().max() <= math.tan(math.radians(20)) + 0.02
    assert slant.min() < -0.15 and slant.max() > 0.15


@pytest.mark.parametrize("backend", BACKENDS)
def test_erasing_zeroes_one_rectangle(backend):
    policy = AugPolicy(erase_p=1.0, erase_scale=(0.05, 0.1))
    out = backend(policy, torch.ones(64, 1, SIDE, SIDE))[:, 0]
    for img in out:
        rows, cols = torch.nonzero(img == 0, as_tuple=True)
        assert len(rows) > 0
        box = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (box == 0).all(), "the erased pixels form one rectangle"
        assert ((img == 0) | (img == 1)).all()
    fraction = (out == 0).float().mean((1, 2))
    assert fraction.min() >= 0.03 and fraction.max() <= 0.13  # 0.05..0.1 up to rounding of the sides


@pytest.mark.parametrize("backend", BACKENDS)
def test_erasing_probability(backend):
    out = backend(AugPolicy(erase_p=0.5), torch.ones(200, 1, SIDE, SIDE))
    erased = (out == 0).flatten(1).any(1).float().mean()
    assert 0.35 < erased < 0.65


@pytest.mark.parametrize("backend", BACKENDS)
def test_contrast_keeps_the_mean_and_scales_the_spread(backend):
    torch.manual_seed(3)
    x = 0.4 + 0.2 * torch.rand(64, 1, SIDE, SIDE)  # no clipping for factors in [0.5, 1.5]
    out = backend(AugPolicy(contrast=0.5), x)
    torch.testing.assert_close(out.mean((1, 2, 3)), x.mean((1, 2, 3)), rtol=0.0, atol=0.005)
    ratio = out.std((1, 2, 3)) / x.std((1, 2, 3))
    assert ratio.min() >= 0.5 - 0.02 and ratio.max() <= 1.5 + 0.02 and ratio.max() - ratio.min() > 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_brightness_adds_one_delta_per_image(backend):
    torch.manual_seed(4)
    x = 0.3 + 0.4 * torch.rand(64, 1, SIDE, SIDE)
    delta = backend(AugPolicy(brightness=0.2), x) - x
    per_image = delta.mean((1, 2, 3))
    assert (delta - per_image.view(-1, 1, 1, 1)).abs().max() < 0.005  # up to uint8 rounding
    assert per_image.abs().max() <= 0.2 + 0.005 and per_image.min() < -0.1 and per_image.max() > 0.1


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_output(backend):
    x = torch.rand(16, 1, SIDE, SIDE)
    policy = PRESET_POLICIES["heavy"]
    assert torch.equal(backend(policy, x, seed=5), backend(policy, x, seed=5))
    assert not torch.equal(backend(policy, x, seed=5), backend(policy, x, seed=6))


def test_batch_backend_keeps_the_dtype_and_follows_the_global_rng():
    x = torch.rand(8, 1, SIDE, SIDE)
    aug = BatchAugment(PRESET_POLICIES["heavy"])
    torch.manual_seed(0)
    first, second = aug(x), aug(x)
    assert not torch.equal(first, second)  # the global generator moved on
    torch.manual_seed(0)
    assert torch.equal(aug(x), first)
    low = aug(x.to(torch.bfloat16))
    assert low.dtype == torch.bfloat16 and low.shape == x.shape
    with pytest.raises(ValueError, match="float image batch"):
        aug(x[:, 0])


def test_image_transform_seed_comes_from_torch_without_one():
    img = (blob(1)[0, 0] * 255).to(torch.uint8).numpy()
    policy = PRESET_POLICIES["heavy"]
    outs = []
    for _ in range(2):
        torch.manual_seed(9)
        transform = image_transform(policy)
        outs.append(np.stack([transform(img) for _ in range(4)]))
    np.testing.assert_array_equal(outs[0], outs[1])
    with pytest.raises(ValueError, match="uint8"):
        transform(img.astype(np.float32))


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.transform = transform
        self.img = (blob(1)[0, 0] * 255).to(torch.uint8).numpy()

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> np.ndarray:
        return self.transform(self.img)


def test_image_transform_differs_between_workers_and_epochs():
    loader = torch.utils.data.DataLoader(_Repeat(image_transform(PRESET_POLICIES["heavy"], seed=1)),
                                         batch_size=1, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    epoch1, epoch2 = (torch.cat(list(loader)) for _ in range(2))
    assert not torch.equal(epoch1[0], epoch1[1])  # worker 0 and worker 1, first image each
    assert not torch.equal(epoch1, epoch2)
    loader.generator.manual_seed(0)
    assert torch.equal(torch.cat(list(loader)), epoch1)


# ----------------------------------------------------------------------------- TTA

def test_tta_views_are_deterministic_small_transforms():
    x = blob(3)
    views = tta_views(x, len(TTA_VIEWS))
    assert len(views) == len(TTA_VIEWS) and views[0] is x
    again = tta_views(x, len(TTA_VIEWS))
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    base = centre_of_mass(x)
    for view, (angle, dx, dy, zoom) in zip(views, TTA_VIEWS):
        assert view.shape == x.shape
        torch.testing.assert_close(centre_of_mass(view) - base, torch.tensor([[dx, dy]] * 3, dtype=torch.float64),
                                   rtol=0.0, atol=1e-3)
        torch.testing.assert_close(view.sum((1, 2, 3)), zoom**2 * x.sum((1, 2, 3)), rtol=0.02, atol=0.0)
    assert all(not torch.equal(v, x) for v in views[1:])
    assert len(tta_views(x, 3)) == 3


@pytest.mark.parametrize("n", [0, len(TTA_VIEWS) + 1, 2.0])
def test_tta_view_count_is_checked(n):
    with pytest.raises(UsageError, match="test-time views"):
        tta_views(blob(1), n)


@pytest.mark.parametrize("h, w", [(28, 28), (28, 20)])
def test_closed_form_warp_equals_kornia(h, w):
    """The closed-form sampling matrix reproduces kornia's affine matrix + warp_affine, square or not."""
    from kornia.geometry.transform import get_affine_matrix2d, warp_affine

    from kfold.nn.augment import _warp

    g = torch.Generator().manual_seed(5)
    b = 32
    x = torch.rand(b, 1, h, w, generator=g)
    angle = torch.rand(b, generator=g) * 40 - 20
    tx, ty = (torch.randint(-3, 4, (b,), generator=g).float() for _ in range(2))
    zoom = 0.9 + 0.2 * torch.rand(b, generator=g)
    shear = torch.rand(b, generator=g) * 20 - 10
    center = torch.tensor([(w - 1) / 2, (h - 1) / 2]).expand(b, 2)
    matrix = get_affine_matrix2d(torch.stack([tx, ty], 1), center, torch.stack([zoom, zoom], 1), angle, sx=torch.deg2rad(shear))
    expected = warp_affine(x, matrix[:, :2], (h, w), align_corners=True)
    assert torch.allclose(_warp(x, angle, tx, ty, zoom, shear), expected, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_elastic_distortion_bends_strokes_locally_and_keeps_the_glyph_in_place(backend):
    x = torch.zeros(32, 1, SIDE, SIDE)
    x[:, :, 6:22, 12:16] = 1.0  # an upright bar
    out = backend(AugPolicy(elastic_p=1.0), x)
    changed = (out - x).abs().flatten(1).max(1).values > 0.3
    assert changed.all()  # every image distorted (p = 1)
    shift = centre_of_mass(out) - centre_of_mass(x)  # the smooth field moves a glyph by its std, ~2 px
    assert shift.abs().max() < 5.0 and shift.mean(0).abs().max() < 1.0
    mass_change = (out.sum((1, 2, 3)) / x.sum((1, 2, 3)) - 1).abs()
    assert mass_change.median() < 0.25  # stretched or squeezed strokes, not lost ones
    outs = backend(AugPolicy(elastic_p=1.0), blob(8, sigma=4.0)).flatten(1)
    assert (torch.cdist(outs, outs) + torch.eye(8) > 1e-3).all()  # a different field per image


@pytest.mark.parametrize("backend", BACKENDS)
def test_elastic_probability(backend):
    x = blob(200, sigma=4.0)
    distorted = ((backend(AugPolicy(elastic_p=0.3), x) - x).abs().flatten(1).max(1).values > 0.01).float().mean()
    assert 0.2 < distorted < 0.4


def test_policies_without_elastic_draw_no_extra_random_numbers():
    """Adding the elastic option kept the random stream (and so the results) of the existing policies."""
    x = torch.rand(16, 1, SIDE, SIDE)
    torch.manual_seed(0)
    BatchAugment(PRESET_POLICIES["heavy"])(x)
    after_heavy = torch.rand(4)
    torch.manual_seed(0)
    BatchAugment(dataclasses.replace(PRESET_POLICIES["heavy"], elastic_alpha=10.0, elastic_sigma=2.0))(x)
    assert torch.equal(torch.rand(4), after_heavy)
    torch.manual_seed(0)
    BatchAugment(PRESET_POLICIES["elastic"])(x)
    assert not torch.equal(torch.rand(4), after_heavy)
