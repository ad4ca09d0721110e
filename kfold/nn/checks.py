"""Checks that run before a command writes anything: does the configured model fit the task's images?

The model is built on PyTorch's ``meta`` device (shapes only, no memory), so a huge ``width`` or
``num_classes`` is refused without allocating it, and a forward pass of a dummy batch finds an image
size the network cannot take (too small for its pooling, or not square) as one line.
"""
from __future__ import annotations

import torch

from kfold.errors import DataError, UsageError

MAX_PARAMETERS = 500_000_000  # far above every registered model at its default size (resnet9 width 32: 1.6M)


def meta_model(name: str, num_classes: int, image_size: int, where: str, *, in_chans: int,
               **kwargs) -> tuple[torch.nn.Module, int]:
    """(model on the meta device for ``in_chans`` x ``image_size`` x ``image_size`` images, its number of
    parameters); a model too large to build is a UsageError."""
    from kfold.nn.models import create_model

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 2 <= num_classes <= 1_000_000:
        raise UsageError(f"{where}: num_classes must be an integer in 2..1000000, got {num_classes!r}")
    for key, value in kwargs.get("model_kwargs", {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and value > 1_000_000:
            raise UsageError(f"{where}: model option {key}={value} is too large (at most 1000000)")
    model_kwargs = dict(kwargs.pop("model_kwargs", {}))
    try:
        with torch.device("meta"):
            model = create_model(name, num_classes, image_size=image_size, in_chans=in_chans, **kwargs, **model_kwargs)
    except (RuntimeError, ValueError, OverflowError, MemoryError) as exc:
        raise UsageError(f"{where}: cannot build model {name!r} ({_first_line(exc)})") from None
    count = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    if count > MAX_PARAMETERS:
        raise UsageError(f"{where}: model {name!r} would have {count:,} parameters (more than {MAX_PARAMETERS:,}); "
                         "choose a smaller width")
    return model, count


def check_model_fits(cfg, num_classes: int, image_shape: tuple[int, int], where: str, *, channels: int) -> int:
    """Refuse (before the run directory is written) a model that cannot take ``channels`` x H x W images of
    ``image_shape`` (H, W), nor, with progressive resizing, their ``cfg.low_res`` x ``cfg.low_res`` version.

    Returns the image size the model is built for."""
    height, width = (int(v) for v in image_shape)
    if height != width:
        raise DataError(f"{where}: images are {height}x{width}; the models need square images")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise DataError(f"{where}: images have {channels!r} channels; the models need at least 1")
    model, _ = meta_model(cfg.model, num_classes, height, f"model {cfg.model!r}", in_chans=channels, dropout=cfg.dropout,
                          batch_norm=cfg.batch_norm, model_kwargs=cfg.model_kwargs)
    model.eval()
    sides = [height] + ([cfg.low_res] if cfg.low_res and cfg.low_res_epochs and cfg.low_res < height else [])
    shown = f"{height}x{width}" if channels == 1 else f"{channels}x{height}x{width}"
    for side in sides:
        what = f"{shown} images" if side == height else f"{shown} images downscaled to low_res={side}"
        try:
            with torch.no_grad():
                logits = model(torch.empty(2, channels, side, side, device="meta"))
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"{where}: model {cfg.model!r} cannot take {what} ({_first_line(exc)})") from None
        if tuple(logits.shape) != (2, num_classes):
            raise DataError(f"{where}: model {cfg.model!r} gives outputs of shape {tuple(logits.shape)[1:]} "
                            f"for {what}, expected ({num_classes},)")
    return height


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
