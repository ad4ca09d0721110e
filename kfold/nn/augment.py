"""Augmentation policy with two backends, and deterministic test-time-augmentation views.

``BatchAugment`` (default) augments a whole float batch on its own device with per-sample random
parameters: one affine matrix per sample (kornia's ``get_affine_matrix2d`` convention, written in closed
form and tested against kornia) applied by a single ``grid_sample``, then
contrast/brightness as broadcast tensor ops and random erasing as a vectorised mask. All random
numbers come from torch's global CPU generator (drawn on the CPU, then moved to the batch's device),
so a torch seed fixes the output on every device and a checkpointed CPU RNG state resumes it exactly.

``image_transform`` is the per-image albumentations backend for DataLoader workers.

Semantics shared by both backends, in this order: affine (rotate, isotropic scale, x-shear about the
image centre, then a translation drawn per axis and truncated to whole pixels as albumentations does, so
both backends draw the same shifts; bilinear, zero fill) -> contrast ``(x - mean) * f + mean``
with ``f ~ U[1-c, 1+c]`` and the per-image mean -> brightness ``x + d`` with ``d ~ U[-b, b]`` -> clip to
[0, 1] -> random erasing (Zhong et al. 2017: area fraction ~ U[erase_scale], aspect ratio log-uniform in
[0.3, 3.3], filled with 0) with probability ``erase_p``. An elastic distortion (Simard et al. 2003: uniform
noise in [-1, 1] per pixel and axis, Gaussian-smoothed with ``elastic_sigma``, times ``elastic_alpha`` pixels)
with probability ``elastic_p`` joins the affine warp (the batch backend adds it to the same sampling grid;
albumentations applies its ``ElasticTransform`` after ``Affine``). Differences of the albumentations backend:
clipping happens after contrast and again after brightness,
and an erasing rectangle that does not fit is dropped (the batch backend shrinks it to the image).
The kornia.augmentation modules were measured at ~5 ms per 256-image batch on 2 CPU threads against
~1 ms for this composition, and their contrast scales around 0 rather than around the image mean.
Building the matrices with kornia.geometry took ~100 small tensor ops per batch, most of a small
model's augmentation time on CPU; the closed form needs about 20.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from kfold.errors import UsageError
from kfold.registry import (ERASE_RATIO, PRESET_POLICIES, REFERENCE_SIDE,  # noqa: F401  (torch-free names and policies)
                            AugPolicy)

# ----------------------------------------------------------------------------- batch backend

def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float image batch (B, C, H, W), got {x.dtype} {tuple(x.shape)}")


@functools.lru_cache(maxsize=8)
def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(3, H*W) homogeneous normalized output coordinates (align_corners=True convention); read-only, cached."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=device, dtype=dtype),
                            torch.linspace(-1, 1, w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(h * w, device=device, dtype=dtype)])


def _sampling_matrix(angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, zoom: torch.Tensor, shear: torch.Tensor,
                     h: int, w: int) -> torch.Tensor:
    """(B, 2, 3) map from output to input coordinates, both normalized for ``align_corners=True``.

    The forward map is kornia's ``get_affine_matrix2d(t, centre, zoom, angle, sx=shear)``:
    ``dst = c + t + A (src - c)`` with ``A = zoom * R(angle) @ [[1, -tan(shear)], [0, 1]]``; this is its
    inverse, ``src = c + A^-1 (dst - c - t)``, in closed form.
    """
    theta, k = torch.deg2rad(angle), torch.tan(torch.deg2rad(shear))
    cos, sin = torch.cos(theta) / zoom, torch.sin(theta) / zoom
    a00, a01, a10, a11 = cos - k * sin, sin + k * cos, -sin, cos  # A^-1 in pixels
    cx, cy = (w - 1) / 2, (h - 1) / 2
    row0 = torch.stack([a00, a01 * (cy / cx), -(a00 * tx + a01 * ty) / cx], 1)
    row1 = torch.stack([a10 * (cx / cy), a11, -(a10 * tx + a11 * ty) / cy], 1)
    return torch.stack([row0, row1], 1)


def _warp(x: torch.Tensor, angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, zoom: torch.Tensor,
          shear: torch.Tensor, displacement: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample affine about the image centre (degrees, pixels, zoom factor, x-shear degrees), one warp.

    ``displacement`` (B, H, W, 2), in normalized coordinates, is added to the sampling grid (elastic).

    Same result as kornia's ``warp_affine(align_corners=True)``, but the sampling grid is one small
    matmul against a fixed base grid: ``F.affine_grid``'s batched matmul was half the augmentation
    time of a lenet5 step on CPU.
    """
    b, _, h, w = x.shape
    grid = (_sampling_matrix(angle, tx, ty, zoom, shear, h, w) @ _base_grid(h, w, x.device, x.dtype)).transpose(1, 2)
    grid = grid.reshape(b, h, w, 2)
    if displacement is not None:
        grid = grid + displacement
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _elastic_displacement(policy: AugPolicy, b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(B, H, W, 2) normalized displacements: uniform noise in [-1, 1] smoothed by a Gaussian of
    ``elastic_sigma`` pixels, times ``elastic_alpha`` pixels (both given for 28x28 and scaled with the side),
    zero for images not chosen (``elastic_p``)."""
    noise = (torch.rand(b, 2, h, w) * 2 - 1).to(device)
    chosen = (torch.rand(b) < policy.elastic_p).to(device)
    alpha, sigma = policy.elastic_pixels(min(h, w))
    size = min(2 * math.ceil(3 * sigma) + 1, 2 * (min(h, w) // 2) - 1)  # odd, reflect-paddable
    field = gaussian_blur2d(noise, size, (sigma, sigma)) * alpha
    pixels_to_normalized = torch.tensor([2 / (w - 1), 2 / (h - 1)], device=device).view(1, 2, 1, 1)
    return (field * pixels_to_normalized * chosen.view(b, 1, 1, 1)).permute(0, 2, 3, 1)


def _erase_mask(u: torch.Tensor, policy: AugPolicy, h: int, w: int) -> torch.Tensor:
    """(B, 1, H, W) mask of one rectangle per selected image from uniforms ``u`` (B, 5)."""
    low, high = policy.erase_scale
    area = (low + (high - low) * u[:, 0]) * (h * w)
    log_lo, log_hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
    eh = torch.sqrt(area * ratio).round().clamp(1, h)
    ew = torch.sqrt(area / ratio).round().clamp(1, w)
    top = (u[:, 2] * (h - eh + 1)).floor()
    left = (u[:, 3] * (w - ew + 1)).floor()
    chosen = u[:, 4] < policy.erase_p
    rows = torch.arange(h, device=u.device, dtype=u.dtype)
    cols = torch.arange(w, device=u.device, dtype=u.dtype)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + eh).view(-1, 1)) & chosen.view(-1, 1)  # (B, H)
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + ew).view(-1, 1))  # (B, W)
    return (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1)  # one full-size AND


class BatchAugment(torch.nn.Module):
    """Random augmentation of a float batch (B, C, H, W) in [0, 1]; returns the same shape, device and
    dtype, clipped to [0, 1]. Like dropout it acts only in training mode; the identity policy (or eval
    mode) returns the input object itself."""

    _DRAWS = 12  # uniforms per sample: 5 affine, 2 photometric, 5 erasing

    def __init__(self, policy: AugPolicy):
        super().__init__()
        self.policy = policy

    def extra_repr(self) -> str:
        return repr(self.policy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.policy.is_identity():
            return x
        _check_batch(x)
        p = self.policy
        b, _, h, w = x.shape
        u = torch.rand(b, self._DRAWS).to(x.device)

        def sym(i: int, limit: float) -> torch.Tensor:  # uniform in [-limit, limit]
            return (2 * u[:, i] - 1) * limit

        out = x.float()
        if p.has_geometry():
            low, high = p.scale
            elastic = _elastic_displacement(p, b, h, w, x.device) if p.elastic_p else None
            out = _warp(out, sym(0, p.rotate), sym(1, p.shift * w).trunc(), sym(2, p.shift * h).trunc(),
                        low + (high - low) * u[:, 3], sym(4, p.shear), elastic)
        if p.contrast:
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = (out - mean) * (1 + sym(5, p.contrast)).view(b, 1, 1, 1) + mean
        if p.brightness:
            out = out + sym(6, p.brightness).view(b, 1, 1, 1)
        out = out.clamp(0.0, 1.0)
        if p.erase_p:
            out = out.masked_fill(_erase_mask(u[:, 7:12], p, h, w), 0.0)
        return out.to(x.dtype)


# (degrees, dx pixels, dy pixels, zoom) of each test-time view at 28x28 (shifts scale with the side, ``_tta_shift``);
# view 0 is the identity.
TTA_VIEWS = ((0.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 1.0), (0.0, -1.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0),
             (0.0, 0.0, -1.0, 1.0), (6.0, 0.0, 0.0, 1.0), (-6.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1.06),
             (0.0, 0.0, 0.0, 0.94))


def _tta_shift(pixels: float, side: int) -> float:
    """A view's shift at 28x28 for an image side of ``side``: scaled and rounded to whole pixels, at least one."""
    if side == REFERENCE_SIDE or not pixels:
        return pixels
    return math.copysign(max(1, round(abs(pixels) * side / REFERENCE_SIDE)), pixels)


def tta_views(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """The first ``n`` deterministic views of ``TTA_VIEWS`` (1-pixel shifts at 28x28, scaled with the side to whole
    pixels; +-6 degrees, +-6% zoom) of a (B, C, H, W) batch."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(TTA_VIEWS):
        raise UsageError(f"number of test-time views must be an integer in 1..{len(TTA_VIEWS)}, got {n!r}")
    _check_batch(x)
    h, w = x.shape[-2:]
    views = [x]
    for angle, dx, dy, zoom in TTA_VIEWS[1:n]:
        params = (angle, _tta_shift(dx, w), _tta_shift(dy, h), zoom)
        angle, dx, dy, zoom = (torch.full((x.shape[0],), v, device=x.device) for v in params)
        views.append(_warp(x.float(), angle, dx, dy, zoom, torch.zeros_like(angle)).to(x.dtype))
    return views


# ----------------------------------------------------------------------------- albumentations backend


def import_albumentations():
    """albumentations, without its update check: on import it asks PyPI for a newer release (a network request
    from every training process, which an offline cluster node waits on and a user did not ask for). A user who
    wants the check sets ``NO_ALBUMENTATIONS_UPDATE=0``."""
    import os

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations

class AlbumentationsTransform:
    """Picklable per-image transform: uint8 (H, W) or (H, W, C) -> float32 of the same shape in [0, 1].

    ``image_size`` is the side of the images it will see: the elastic field's pixels scale with it
    (``AugPolicy.elastic_pixels``); an image of another size is refused when the policy has an elastic part.

    albumentations draws from its own generator, seeded with ``seed``. Forked DataLoader workers would
    all inherit (and each epoch re-inherit) the same generator state, so inside a worker it is re-seeded
    from the worker's torch seed, which differs per worker and per epoch and follows the torch seed.
    """

    def __init__(self, policy: AugPolicy, seed: int, image_size: int = REFERENCE_SIDE):
        A = import_albumentations()  # slow import (~1 s): only where the per-image backend is used
        import cv2

        ops: list[Any] = [A.ToFloat(max_value=255)]
        if policy.has_geometry():
            ops.append(A.Affine(rotate=(-policy.rotate, policy.rotate),
                                translate_percent=(-policy.shift, policy.shift),
                                scale=policy.scale, keep_ratio=True,
                                shear={"x": (-policy.shear, policy.shear), "y": (0.0, 0.0)},
                                interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0))
        if policy.elastic_p:
            alpha, sigma = policy.elastic_pixels(image_size)
            ops.append(A.ElasticTransform(alpha=alpha, sigma=sigma, noise_distribution="uniform",
                                          interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT, fill=0,
                                          p=policy.elastic_p))
        if policy.contrast:  # torchvision-style contrast: blend with the image mean
            ops.append(A.ColorJitter(brightness=0.0, contrast=policy.contrast, saturation=0.0, hue=0.0, p=1.0))
        if policy.brightness:  # brightness_by_max: additive delta times the max value 1.0
            ops.append(A.RandomBrightnessContrast(brightness_limit=policy.brightness, contrast_limit=0.0,
                                                  brightness_by_max=True, p=1.0))
        if policy.erase_p:
            ops.append(A.Erasing(scale=policy.erase_scale, ratio=ERASE_RATIO, fill=0, p=policy.erase_p))
        self.policy, self.image_size = policy, image_size
        self._compose = A.Compose(ops, seed=seed)
        self._worker_seed: int | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 (H, W) or (H, W, C) image, got {image.dtype} {image.shape}")
        if self.policy.elastic_p and min(image.shape[:2]) != self.image_size:
            raise ValueError(f"this transform's elastic field is scaled for {self.image_size}x{self.image_size} images, "
                             f"got {image.shape[0]}x{image.shape[1]}")
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._compose.set_random_seed(info.seed % 2**32)
        return self._compose(image=image)["image"]


def image_transform(policy: AugPolicy, seed: int | None = None,
                    image_size: int = REFERENCE_SIDE) -> Callable[[np.ndarray], np.ndarray]:
    """albumentations backend for images of ``image_size`` pixels a side; without ``seed`` one is drawn from torch's
    global generator."""
    return AlbumentationsTransform(policy, int(torch.randint(2**31, ())) if seed is None else seed, image_size)
