"""Model registry: every network is created by name (timm style) with ``create_model``.

All models take ``(B, in_chans, N, N)`` float images (already normalized; 1 channel for grayscale, 3 for
RGB; any N that their pooling allows, ``kfold.nn.checks.check_model_fits`` tells on the meta device) and
return logits ``(B, num_classes)``; the sizes in the docstrings below are those of 28x28 KMNIST. Shared
options: ``dropout`` (``None`` = the model's default rate) and ``batch_norm`` (``False`` puts ``nn.Identity``
where the batch norms were and gives the convolutions a bias). Model-specific options (``hidden``, ``width``)
are keyword arguments of the builders.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Callable

import torch
from torch import nn

from kfold.errors import UsageError
from kfold import registry
from kfold.registry import check_model

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}  # builders registered by users (kfold's own: kfold.registry)
_COMMON = ("num_classes", "in_chans", "image_size", "dropout", "batch_norm")


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a user's builder ``fn(num_classes, in_chans, image_size, dropout, batch_norm, **opts)``
    (timm's ``register_model``): it declares the name with the builder's options in the torch-free
    ``kfold.registry``, or completes a name declared there without a builder."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        declared = registry.MODELS.get(name)
        if name in _REGISTRY or (declared is not None and declared.builder is not None):
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        if declared is None:  # its name and options become known torch-free too
            options = {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.name not in _COMMON}
            registry.declare_model(name, (fn.__doc__ or name).strip().splitlines()[0], fn, options)
        return fn

    return decorator


def list_models() -> list[str]:
    return registry.model_names()


def _builder(name: str) -> Callable[..., nn.Module]:
    """The builder of a declared model: a user's registered function, or ``module:function`` imported."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    target = registry.MODELS[name].builder
    if callable(target):
        return target
    module, _, attr = (target or "").partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise UsageError(f"model {name!r} is listed in kfold.registry but has no builder ({target!r})") from None


def builder_options(name: str) -> dict:
    """A builder's own options and defaults, less those the name pins (what kfold.registry must list for it)."""
    fixed = registry.MODELS[name].fixed
    return {p.name: p.default for p in inspect.signature(_builder(name)).parameters.values()
            if p.name not in _COMMON and p.name not in fixed}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def create_model(name: str, num_classes: int, *, in_chans: int = 1, image_size: int = 28,
                 dropout: float | None = None, batch_norm: bool = True, **kwargs) -> nn.Module:
    """Build a registered model; unknown names and options raise ``UsageError``."""
    spec = check_model(name, kwargs)  # the torch-free registry knows every name and option
    builder = _builder(name)
    for key, value, low in (("num_classes", num_classes, 2), ("in_chans", in_chans, 1),
                            ("image_size", image_size, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"model {name!r}: {key} must be an integer >= {low}, got {value!r}")
    if dropout is not None and not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise UsageError(f"model {name!r}: dropout must be in [0, 1), got {dropout!r}")
    return builder(num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                   dropout=dropout, batch_norm=bool(batch_norm), **spec.fixed, **kwargs)


# ----------------------------------------------------------------------------- building blocks

def _bn(channels: int, batch_norm: bool, dims: int = 2) -> nn.Module:
    if not batch_norm:
        return nn.Identity()
    return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


def _positive_int(name: str, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"model {name!r}: {key} must be a positive integer, got {value!r}")
    return value


def conv_bn_act(cin: int, cout: int, kernel: int = 3, *, stride: int = 1, padding: int | None = None,
                batch_norm: bool = True, act: bool = True, bn_after_act: bool = False) -> nn.Sequential:
    """Conv -> BN -> ReLU (or Conv -> ReLU -> BN with ``bn_after_act``); the conv has a bias only without BN."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2 if padding is None else padding,
                     bias=not batch_norm)
    layers = [conv, _bn(cout, batch_norm)]
    if act:
        layers.insert(1 if bn_after_act else 2, nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 conv-BN, ReLU, projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1, batch_norm: bool = True):
        super().__init__()
        self.body = nn.Sequential(conv_bn_act(cin, cout, stride=stride, batch_norm=batch_norm),
                                  conv_bn_act(cout, cout, batch_norm=batch_norm, act=False))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         conv_bn_act(cin, cout, 1, stride=stride, batch_norm=batch_norm, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "Identity mappings"): BN-ReLU-conv twice."""

    def __init__(self, cin: int, cout: int, stride: int = 1, batch_norm: bool = True):
        super().__init__()
        self.pre = nn.Sequential(_bn(cin, batch_norm), nn.ReLU())
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not batch_norm)
        self.rest = nn.Sequential(_bn(cout, batch_norm), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=not batch_norm))
        self.shortcut = (None if stride == 1 and cin == cout else
                         nn.Conv2d(cin, cout, 1, stride, bias=not batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pre(x)
        shortcut = x if self.shortcut is None else self.shortcut(out)
        return self.rest(self.conv1(out)) + shortcut


def _stage(block: type[nn.Module], cin: int, cout: int, blocks: int, stride: int,
           batch_norm: bool) -> nn.Sequential:
    return nn.Sequential(*(block(cin if i == 0 else cout, cout, stride if i == 0 else 1, batch_norm)
                           for i in range(blocks)))


def _head(features: int, num_classes: int, dropout: float, pool: nn.Module) -> nn.Sequential:
    """Global pooling -> flatten -> dropout -> linear classifier."""
    return nn.Sequential(pool, nn.Flatten(), _dropout(dropout), nn.Linear(features, num_classes))


# ----------------------------------------------------------------------------- KMNIST report

def lenet5(num_classes, in_chans, image_size, dropout, batch_norm) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) for 28x28, ~62k parameters (ReLU and max pooling, optional BN).

    C1 conv5x5 6 (pad 2) -> pool2 | C3 conv5x5 16 -> pool2 | F5 400->120 | F6 120->84 | out 84->classes.
    Default dropout 0 (applied before the output layer when set).
    """
    side = ((image_size // 2) - 4) // 2
    if side < 1:
        raise UsageError(f"model 'lenet5' needs image_size >= 12, got {image_size}")
    return nn.Sequential(
        conv_bn_act(in_chans, 6, 5, padding=2, batch_norm=batch_norm), nn.MaxPool2d(2),
        conv_bn_act(6, 16, 5, padding=0, batch_norm=batch_norm), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), nn.ReLU(inplace=True),
        nn.Linear(120, 84), nn.ReLU(inplace=True),
        _dropout(dropout or 0.0), nn.Linear(84, num_classes))


def _alexnet(convs: list[tuple[int, int, bool]], fc: tuple[int, int], num_classes, in_chans,
             image_size, dropout, batch_norm) -> nn.Sequential:
    """Reduced AlexNet: conv -> ReLU -> BN (BN after the activation), max pools where flagged,
    three linear layers with dropout on the inputs of the last two (default rate 0.5)."""
    layers: list[nn.Module] = []
    cin, side = in_chans, image_size
    for cout, kernel, pool in convs:
        layers.append(conv_bn_act(cin, cout, kernel, batch_norm=batch_norm, bn_after_act=True))
        if pool:
            layers.append(nn.MaxPool2d(2))
            side //= 2
        cin = cout
    p = 0.5 if dropout is None else dropout
    return nn.Sequential(
        *layers, nn.Flatten(),
        nn.Linear(cin * side * side, fc[0]), nn.ReLU(inplace=True), _dropout(p),
        nn.Linear(fc[0], fc[1]), nn.ReLU(inplace=True), _dropout(p),
        nn.Linear(fc[1], num_classes))


_ALEXNET5_CONVS = [(32, 5, True), (64, 3, True), (96, 3, False), (96, 3, False), (64, 3, False)]


def alexnet5(num_classes, in_chans, image_size, dropout, batch_norm) -> nn.Module:
    """AlexNet reduced for 28x28x1, ~0.86M parameters.

    C1 conv5x5 32 -> pool2 (14x14) | C2 conv3x3 64 -> pool2 (7x7) | C3 conv3x3 96 | C4 conv3x3 96 |
    C5 conv3x3 64 | FC 3136->192 | FC 192->192 | FC 192->classes. Each conv: conv -> ReLU -> BN;
    dropout (default 0.5) before the last two linear layers. No pool after C5: 7x7 is small already.
    """
    return _alexnet(_ALEXNET5_CONVS, (192, 192), num_classes, in_chans, image_size, dropout, batch_norm)


def alexnet7(num_classes, in_chans, image_size, dropout, batch_norm) -> nn.Module:
    """alexnet5 with two more conv layers between C1 and C2 and a 512-unit first FC, ~1.94M parameters.

    C1 conv5x5 32 -> pool2 | C1a conv3x3 32 | C1b conv3x3 32 | C2 conv3x3 64 -> pool2 | C3 96 | C4 96 |
    C5 64 | FC 3136->512 | FC 512->192 | FC 192->classes.
    """
    convs = _ALEXNET5_CONVS[:1] + [(32, 3, False), (32, 3, False)] + _ALEXNET5_CONVS[1:]
    return _alexnet(convs, (512, 192), num_classes, in_chans, image_size, dropout, batch_norm)


# ----------------------------------------------------------------------------- MNIST-MIX report

def ff(num_classes, in_chans, image_size, dropout, batch_norm, hidden=(250, 250)) -> nn.Module:
    """Feed-forward net with sigmoid activations: flatten -> [Linear -> BN -> Sigmoid -> Dropout] * len(hidden)."""
    if not isinstance(hidden, (list, tuple)) or not hidden:
        raise UsageError(f"model 'ff': hidden must be a non-empty list of layer widths, got {hidden!r}")
    widths = [_positive_int("ff", "hidden", h) for h in hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    cin = in_chans * image_size * image_size
    for width in widths:
        layers += [nn.Linear(cin, width), _bn(width, batch_norm, dims=1), nn.Sigmoid(),
                   _dropout(dropout or 0.0)]
        cin = width
    layers.append(nn.Linear(cin, num_classes))
    return nn.Sequential(*layers)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016, sec. 4.2) on 28x28: conv3x3 16, three stages of n basic
    blocks with 16/32/64 channels (strides 1/2/2: 28->14->7), global average pool, linear.
    Shortcuts use 1x1 projections (option B) where the shape changes."""

    def __init__(self, n: int, num_classes: int, in_chans: int, dropout: float, batch_norm: bool):
        super().__init__()
        self.stem = conv_bn_act(in_chans, 16, batch_norm=batch_norm)
        self.stages = nn.Sequential(_stage(BasicBlock, 16, 16, n, 1, batch_norm),
                                    _stage(BasicBlock, 16, 32, n, 2, batch_norm),
                                    _stage(BasicBlock, 32, 64, n, 2, batch_norm))
        self.head = _head(64, num_classes, dropout, nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def cifar_resnet(num_classes, in_chans, image_size, dropout, batch_norm, depth=20) -> nn.Module:
    """CIFAR ResNet-``depth`` (``(depth - 2) // 6`` basic blocks per stage), see ``CifarResNet``; the registry's
    ``resnet8`` ... ``resnet32`` pin ``depth``."""
    return CifarResNet((depth - 2) // 6, num_classes, in_chans, dropout or 0.0, batch_norm)


# ----------------------------------------------------------------------------- modern models

class _Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def resnet9(num_classes, in_chans, image_size, dropout, batch_norm, width=32, pool_first=False, prep=0) -> nn.Module:
    """ResNet-9 of David Page's DAWNBench entry (as in airbench), base width ``width`` (Page: 64).

    prep conv 1w (28x28) | conv 2w -> pool (14) + residual(2 convs) | conv 4w -> pool (7) |
    conv 8w -> pool (3) + residual(2 convs) | global max pool | linear | logits x 0.125.
    width=32: ~1.6M parameters. ``pool_first=True`` pools each downsampling conv's output before its BN and
    ReLU (airbench's order: both then run on a quarter of the pixels); ``prep`` > 0 sets the prep conv's
    channels (default: ``width``).
    """
    w = _positive_int("resnet9", "width", width)  # the options' types and ranges: kfold.registry.check_model
    p = prep or w

    def down(cin: int, cout: int) -> list[nn.Module]:
        if pool_first:  # conv -> pool -> BN -> ReLU
            layers = list(conv_bn_act(cin, cout, batch_norm=batch_norm))
            return [layers[0], nn.MaxPool2d(2), *layers[1:]]
        return [conv_bn_act(cin, cout, batch_norm=batch_norm), nn.MaxPool2d(2)]

    return nn.Sequential(
        conv_bn_act(in_chans, p, batch_norm=batch_norm),
        *down(p, 2 * w), BasicBlock(2 * w, 2 * w, batch_norm=batch_norm),
        *down(2 * w, 4 * w),
        *down(4 * w, 8 * w), BasicBlock(8 * w, 8 * w, batch_norm=batch_norm),
        _head(8 * w, num_classes, dropout or 0.0, nn.AdaptiveMaxPool2d(1)), _Scale(0.125))


def preact_resnet18(num_classes, in_chans, image_size, dropout, batch_norm, width=16) -> nn.Module:
    """Pre-activation ResNet-18 scaled down: conv3x3 w, four stages of two ``PreActBlock`` with
    w/2w/4w/8w channels (strides 1/2/2/2: 28->14->7->4), BN-ReLU, global average pool, linear.
    width=16: ~0.7M parameters (the CIFAR original uses width=64)."""
    w = _positive_int("preact_resnet18", "width", width)
    return nn.Sequential(
        nn.Conv2d(in_chans, w, 3, 1, 1, bias=not batch_norm),
        _stage(PreActBlock, w, w, 2, 1, batch_norm), _stage(PreActBlock, w, 2 * w, 2, 2, batch_norm),
        _stage(PreActBlock, 2 * w, 4 * w, 2, 2, batch_norm),
        _stage(PreActBlock, 4 * w, 8 * w, 2, 2, batch_norm),
        _bn(8 * w, batch_norm), nn.ReLU(inplace=True),
        _head(8 * w, num_classes, dropout or 0.0, nn.AdaptiveAvgPool2d(1)))


def vgg_bn(num_classes, in_chans, image_size, dropout, batch_norm, width=32) -> nn.Module:
    """Small VGG with BN: [conv 1w, conv 1w, pool] [conv 2w, conv 2w, pool] [conv 4w, conv 4w, pool]
    (28->14->7->3), global average pool, dropout (default 0.3), linear. width=32: ~0.29M parameters."""
    w = _positive_int("vgg_bn", "width", width)
    layers: list[nn.Module] = []
    cin = in_chans
    for cout in (w, 2 * w, 4 * w):
        layers += [conv_bn_act(cin, cout, batch_norm=batch_norm),
                   conv_bn_act(cout, cout, batch_norm=batch_norm), nn.MaxPool2d(2)]
        cin = cout
    p = 0.3 if dropout is None else dropout
    return nn.Sequential(*layers, _head(cin, num_classes, p, nn.AdaptiveAvgPool2d(1)))


# ----------------------------------------------------------------------------- speedrun (issue 17)

class ShiftOnlyBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose scale is frozen at 1 (a buffer) and whose shift is learned, as in airbench."""

    def __init__(self, channels: int, momentum: float = 0.1):
        super().__init__(channels, momentum=momentum)
        del self.weight
        self.register_buffer("weight", torch.ones(channels))


def speednet(num_classes, in_chans, image_size, dropout, batch_norm, widths=(24, 48, 96), stem=0, convs=2,
             bn_scale=True, bn_momentum=0.1, act="relu") -> nn.Module:
    """A small airbench-style net for 28x28x1 (issue 17's speedrun recipe).

    [stem conv3x3 ``stem`` channels, when > 0] then one block per entry of ``widths``: conv3x3 -> max pool 2
    -> BN -> act, then ``convs - 1`` x (conv3x3 -> BN -> act) at the pooled size (28 -> 14 -> 7 -> 3); global
    max pool, dropout (default 0), linear, logits x 0.125. ``bn_scale=False`` freezes every BN scale at 1
    (only the shift is learned); ``bn_momentum`` is BatchNorm's running-statistics momentum.
    """
    if not isinstance(widths, (list, tuple)) or not widths:
        raise UsageError(f"model 'speednet': widths must be a non-empty list of channel counts, got {widths!r}")
    widths = [_positive_int("speednet", "widths", w) for w in widths]
    convs = _positive_int("speednet", "convs", convs)
    if isinstance(stem, bool) or not isinstance(stem, int) or stem < 0:
        raise UsageError(f"model 'speednet': stem must be an integer >= 0, got {stem!r}")
    if not (isinstance(bn_momentum, (int, float)) and 0 < bn_momentum <= 1):
        raise UsageError(f"model 'speednet': bn_momentum must be in (0, 1], got {bn_momentum!r}")
    acts = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
    if act not in acts:
        raise UsageError(f"model 'speednet': act must be one of {', '.join(acts)}, got {act!r}")
    if image_size >> len(widths) < 1:
        raise UsageError(f"model 'speednet': image_size {image_size} is too small for {len(widths)} poolings")

    def norm(c: int) -> nn.Module:
        if not batch_norm:
            return nn.Identity()
        return nn.BatchNorm2d(c, momentum=bn_momentum) if bn_scale else ShiftOnlyBatchNorm(c, bn_momentum)

    def conv(cin: int, cout: int) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, 3, 1, 1, bias=not batch_norm)

    layers: list[nn.Module] = []
    cin = in_chans
    if stem:
        layers += [conv(cin, stem), norm(stem), acts[act]()]
        cin = stem
    for width in widths:
        layers += [conv(cin, width), nn.MaxPool2d(2), norm(width), acts[act]()]
        for _ in range(convs - 1):
            layers += [conv(width, width), norm(width), acts[act]()]
        cin = width
    return nn.Sequential(*layers, _head(cin, num_classes, dropout or 0.0, nn.AdaptiveMaxPool2d(1)), _Scale(0.125))
