"""Torch-free registry of every name a recipe can use: models with their options, augmentation policies.

As timm keeps its model-name registry apart from the model factory, kfold can check a config (model name,
model options, augmentation preset or policy) before anything is written and without importing torch.
Every model is declared once, here (``declare_model``: name, summary, options, ``"module:function"`` of its
builder); ``kfold.nn.models.create_model`` imports the builder when it builds the model, and a test checks that
each builder takes exactly the declared options.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from kfold.errors import UsageError

__all__ = ["aug_names", "AugPolicy", "check_aug", "check_model", "declare_model", "ERASE_RATIO", "MAX_WIDTH",
           "model_names", "MODELS", "ModelSpec", "PRESET_POLICIES"]

MAX_WIDTH = 1024  # a wider model is a typo (or a damaged file), not a recipe: refused before any allocation


@dataclass(frozen=True)
class ModelSpec:
    """A model name, what it is, its own options with their defaults (beyond dropout/batch_norm), and where
    its builder lives: ``"module:function"`` (imported only when the model is built) or the function itself.
    ``fixed`` are builder arguments the name pins (``ff-2x100`` is ``ff`` with ``hidden=[100, 100]``)."""

    name: str
    summary: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    min_image_size: int = 8
    builder: str | Callable[..., Any] | None = None
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {}


def declare_model(name: str, summary: str, builder: str | Callable[..., Any] | None = None,
                  options: dict[str, Any] | None = None, *, fixed: dict[str, Any] | None = None,
                  min_image_size: int = 8) -> ModelSpec:
    """Add a model to the registry, torch-free: the one place a model's name is spelled.

    ``kfold.nn.models.create_model`` imports ``builder`` when the model is built; a builder given later
    (``kfold.nn.models.register_model`` on a declared name without one) completes the declaration.

    >>> declare_model("resnet9", "again", "kfold.nn.models:resnet9")
    Traceback (most recent call last):
    ...
    ValueError: model 'resnet9' is registered twice
    """
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    MODELS[name] = ModelSpec(name, summary, dict(options or {}), min_image_size, builder, dict(fixed or {}))
    return MODELS[name]


_NN = "kfold.nn.models:"
declare_model("lenet5", "LeNet-5, ~62k parameters (KMNIST report)", _NN + "lenet5", min_image_size=12)
declare_model("alexnet5", "AlexNet reduced for 28x28x1, ~0.86M parameters (KMNIST report)", _NN + "alexnet5",
              min_image_size=4)
declare_model("alexnet7", "alexnet5 with two more convolutions, ~1.94M parameters (KMNIST report)", _NN + "alexnet7",
              min_image_size=4)
declare_model("ff", "feed-forward net with sigmoid activations (MNIST-MIX report)", _NN + "ff", {"hidden": [250, 250]})
declare_model("resnet9", "ResNet-9 of the DAWNBench/airbench family, width 32: ~1.6M parameters", _NN + "resnet9",
              {"width": 32, "pool_first": False, "prep": 0})
declare_model("preact_resnet18", "pre-activation ResNet-18 scaled down, width 16: ~0.7M parameters",
              _NN + "preact_resnet18", {"width": 16})
declare_model("vgg_bn", "small VGG with batch norm, width 32: ~0.29M parameters", _NN + "vgg_bn", {"width": 32})
declare_model("speednet", "small airbench-style net for 28x28x1 (issue 17's speedrun screening)", _NN + "speednet",
              {"widths": [24, 48, 96], "stem": 0, "convs": 2, "bn_scale": True, "bn_momentum": 0.1, "act": "relu"})
for _w in (100, 250, 500):
    declare_model(f"ff-2x{_w}", f"ff with two hidden layers of {_w} units", _NN + "ff", fixed={"hidden": [_w, _w]})
for _d in (8, 14, 20, 26, 32):
    declare_model(f"resnet{_d}", f"CIFAR ResNet-{_d} ({(_d - 2) // 6} basic blocks per stage)", _NN + "cifar_resnet",
                  fixed={"depth": _d})


def model_names() -> list[str]:
    return sorted(MODELS)


def _positive_int(name: str, key: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_WIDTH:
        raise UsageError(f"model {name!r}: {key} must be an integer in {low}..{MAX_WIDTH}, got {value!r}")
    return value


def check_model(name: Any, options: Any = None) -> ModelSpec:
    """Raise ``UsageError`` for an unknown model name or a bad option; return the model's spec."""
    if not isinstance(name, str) or name not in MODELS:
        raise UsageError(f"unknown model {name!r}; available: {', '.join(model_names())}")
    spec = MODELS[name]
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise UsageError(f"model {name!r}: model_kwargs must be a mapping, got {options!r}")
    for key, value in options.items():
        if key not in spec.options:
            known = ", ".join(spec.options) if spec.options else "none"
            raise UsageError(f"model {name!r} has no option {key!r}; options: {known}")
        default = spec.options[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise UsageError(f"model {name!r}: {key} must be true or false, got {value!r}")
        elif isinstance(default, int):
            _positive_int(name, key, value, low=min(1, default))
        elif isinstance(default, (list, tuple)):
            if not isinstance(value, (list, tuple)) or not value or len(value) > 16:
                raise UsageError(f"model {name!r}: {key} must be a non-empty list of at most 16 layer widths, got {value!r}")
            for width in value:
                _positive_int(name, key, width)
    return spec


# ----------------------------------------------------------------------------- augmentation policies

ERASE_RATIO = (0.3, 3.3)  # aspect-ratio range of the erased rectangle (torchvision / albumentations default)
# Policies are written for 28x28 images (KMNIST, where they were tuned). Their geometry is relative to the side
# (shift: a fraction of it; erase_scale: of the area) but for the elastic field, given in pixels at this side and
# scaled with the image (``AugPolicy.elastic_pixels``), so a policy distorts a 64x64 image as it does a 28x28 one.
# Test-time views' 1-pixel shifts scale likewise (to whole pixels, at least one).
REFERENCE_SIDE = 28

# Upper bound of each scalar field (all must be >= 0).
_SCALAR_LIMITS = {"rotate": 180.0, "shift": 0.5, "shear": 45.0, "brightness": 1.0, "contrast": 1.0,
                  "erase_p": 1.0, "elastic_p": 1.0, "elastic_alpha": 200.0, "elastic_sigma": 10.0}


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"augmentation policy key {key!r} must be a number, got {value!r}")
    return float(value)


def _range(key: str, value: Any, high: float | None) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise UsageError(f"augmentation policy key {key!r} must be a pair [low, high], got {value!r}")
    low, up = (_number(key, v) for v in value)
    if not 0 < low <= up or (high is not None and up > high):
        bound = f" <= {high:g}" if high is not None else ""
        raise UsageError(f"augmentation policy key {key!r} needs 0 < low <= high{bound}, got {value!r}")
    return low, up


@dataclass(frozen=True)
class AugPolicy:
    """What to randomise; zero (or scale (1, 1)) switches a component off. Validated on creation."""

    rotate: float = 0.0                      # max |degrees|, uniform in [-rotate, rotate]
    shift: float = 0.0                       # max translation as a fraction of the side, per axis
    scale: tuple[float, float] = (1.0, 1.0)  # zoom range, same factor for both axes
    shear: float = 0.0                       # max |degrees| of x-shear
    brightness: float = 0.0                  # additive delta uniform in [-b, b] (images in [0, 1])
    contrast: float = 0.0                    # factor uniform in [1-c, 1+c] around the image mean
    erase_p: float = 0.0                     # probability of random erasing per image
    erase_scale: tuple[float, float] = (0.02, 0.15)  # erased area fraction
    elastic_p: float = 0.0                   # probability of an elastic distortion per image (Simard et al. 2003)
    elastic_alpha: float = 34.0              # displacement scale in pixels (at 28x28) of the smoothed noise field
    elastic_sigma: float = 4.0               # Gaussian smoothing of that field in pixels (at 28x28; > 0)

    def __post_init__(self) -> None:
        for key, high in _SCALAR_LIMITS.items():
            value = _number(key, getattr(self, key))
            if not 0.0 <= value <= high:
                raise UsageError(f"augmentation policy key {key!r} must be in [0, {high:g}], got {value!r}")
            object.__setattr__(self, key, value)
        if self.elastic_sigma <= 0:
            raise UsageError(f"augmentation policy key 'elastic_sigma' must be positive, got {self.elastic_sigma!r}")
        object.__setattr__(self, "scale", _range("scale", self.scale, None))
        object.__setattr__(self, "erase_scale", _range("erase_scale", self.erase_scale, 1.0))

    def is_identity(self) -> bool:
        return not self.has_geometry() and not (self.brightness or self.contrast or self.erase_p)

    def has_geometry(self) -> bool:
        return bool(self.rotate or self.shift or self.shear or self.scale != (1.0, 1.0) or self.elastic_p)

    def elastic_pixels(self, side: int) -> tuple[float, float]:
        """(alpha, sigma) of the elastic field for images of ``side`` pixels, so that it bends an N x N image as
        it bends the same image at 28x28 (exactly the policy's values at 28).

        With ``f = side / 28``, sigma scales by ``f`` (the field's smoothness relative to the image) and alpha by
        ``f ** 2``: per-pixel uniform noise smoothed by a Gaussian of sigma pixels has a standard deviation
        proportional to ``1 / sigma``, so the displacement in pixels is proportional to ``alpha / sigma`` and
        must grow by ``f`` to stay the same fraction of the side."""
        if side == REFERENCE_SIDE:
            return self.elastic_alpha, self.elastic_sigma
        factor = side / REFERENCE_SIDE
        return self.elastic_alpha * factor * factor, self.elastic_sigma * factor

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugPolicy:
        """From a config mapping (lists allowed for pairs); unknown keys raise ``UsageError``."""
        if not isinstance(d, dict):
            raise UsageError(f"augmentation policy must be a mapping, got {d!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in known:
                raise UsageError(f"unknown augmentation policy key {key!r}; known: {', '.join(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-friendly mapping (pairs as lists); ``from_dict`` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


PRESET_POLICIES: dict[str, AugPolicy] = {
    "none": AugPolicy(),
    "light": AugPolicy(rotate=8.0, shift=0.06, scale=(0.95, 1.05)),
    "heavy": AugPolicy(rotate=12.0, shift=0.1, scale=(0.9, 1.1), shear=8.0, brightness=0.2,
                       contrast=0.2, erase_p=0.3, erase_scale=(0.02, 0.15)),
    # `heavy` without random erasing: the `speedrun` preset's (erasing cost its 16 epochs 2-15 OOF rows a seed)
    "heavy-noerase": AugPolicy(rotate=12.0, shift=0.1, scale=(0.9, 1.1), shear=8.0, brightness=0.2, contrast=0.2),
    "elastic": AugPolicy(rotate=12.0, shift=0.1, scale=(0.9, 1.1), shear=8.0, brightness=0.2,
                         contrast=0.2, erase_p=0.3, erase_scale=(0.02, 0.15), elastic_p=0.5),
}




def aug_names() -> list[str]:
    return list(PRESET_POLICIES)


def check_aug(aug: Any) -> AugPolicy:
    """The policy of a preset name or a policy mapping; ``UsageError`` otherwise."""
    if isinstance(aug, str):
        if aug not in PRESET_POLICIES:
            raise UsageError(f"unknown augmentation {aug!r}; available: {', '.join(aug_names())} (or a policy mapping)")
        return PRESET_POLICIES[aug]
    return AugPolicy.from_dict(aug)
