"""Device selection, saved-model loading and batched probability prediction (with optional TTA)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from kfold.config import PRECISION_SETTINGS
from kfold.errors import DataError, UsageError
from kfold.nn.models import create_model

# what predict.py reads from the metadata that training writes into every model.safetensors header
WEIGHTS_META_KEYS = ("config", "num_classes", "model", "fold", "preset", "seed", "fingerprint", "normalization")
MAX_CHANNELS = 64  # image channels a weights header may claim (1 grayscale, 3 RGB)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise UsageError("device 'mps' requested but Apple MPS is not available")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool | None = None):
    """bf16 autocast; by default on CUDA only (``enabled=True`` also on CPU, e.g. for AVX512-BF16/AMX cores)."""
    enabled = device.type == "cuda" if enabled is None else enabled and device.type in ("cuda", "cpu")
    return torch.autocast(device_type=device.type if enabled else "cuda", dtype=torch.bfloat16, enabled=enabled)


def use_bf16(setting: str, device: torch.device) -> bool:
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def use_channels_last(setting: str, device: torch.device) -> bool:
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def to_unit_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 images as a Task holds them, (B, H, W) or (B, H, W, C), -> float (B, C, H, W) in [0, 1]
    (not yet standardized)."""
    if images_u8.dim() == 4:
        return images_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return images_u8.float().div_(255.0).unsqueeze(1)


Norm = float | list[float]  # 1 channel: one number (the scalar arithmetic kfold always used); else one a channel


def norm_operand(value: Norm, device: torch.device) -> float | torch.Tensor:
    """A normalization mean or std as the operand of ``(x - mean) / std`` on (B, C, H, W) batches: a
    Python float as it is, a per-channel list as a (1, C, 1, 1) float32 tensor on ``device``."""
    if isinstance(value, (list, tuple)):
        return torch.tensor([float(v) for v in value], dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return float(value)


def image_channels(images: np.ndarray | torch.Tensor) -> int:
    """C of uint8 images (N, H, W) (1) or (N, H, W, C)."""
    return 1 if images.ndim == 3 else int(images.shape[3])


@torch.inference_mode()
def predict_proba(
    model: torch.nn.Module,
    images: np.ndarray | torch.Tensor,
    mean: Norm,
    std: Norm,
    device: torch.device,
    batch_size: int = 1024,
    tta: int = 1,
    channels_last: bool = False,
    bf16: bool | None = None,
    multilabel: bool = False,
) -> np.ndarray:
    """Softmax probabilities (N, classes) float32 for uint8 images (N, H, W) or (N, H, W, C), averaged over
    ``tta`` views; ``mean``/``std`` are floats for 1 channel, lists of C floats otherwise. ``multilabel``: one
    independent sigmoid probability per tag instead (rows do not sum to 1)."""
    from kfold.nn.augment import tta_views

    model.eval()
    images = torch.as_tensor(images)
    channels = image_channels(images)
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, (list, tuple)) and len(value) != channels:
            raise UsageError(f"normalization {name} has {len(value)} values but the images have {channels} channel(s)")
    mean, std = norm_operand(mean, device), norm_operand(std, device)
    if device.type == "cuda" and images.device.type == "cpu":
        images = images.pin_memory()  # one pinned, asynchronous copy of the whole test set
    images = images.to(device, non_blocking=True)
    out = []
    for start in range(0, len(images), batch_size):
        x = to_unit_float(images[start:start + batch_size])
        views = tta_views(x, tta) if tta > 1 else [x]
        probs = 0
        for view in views:
            view = (view - mean) / std
            if channels_last:
                view = view.contiguous(memory_format=torch.channels_last)
            with autocast(device, bf16):
                logits = model(view)
            probs = probs + (torch.sigmoid(logits.float()) if multilabel else torch.softmax(logits.float(), dim=1))
        out.append((probs / len(views)).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def load_model(weights_path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from a kfold safetensors file (weights + metadata); no pickle involved.

    The metadata is checked (types and ranges) and the model is first built on the ``meta`` device:
    its size must match the tensors the file holds, so a header claiming a huge ``width`` or
    ``num_classes`` is refused before any memory is allocated."""
    weights_path = Path(weights_path)
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            header = handle.metadata() or {}
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except FileNotFoundError:
        raise DataError(f"{weights_path}: weights file not found") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{weights_path}: not a valid safetensors file ({exc})") from None
    if "kfold" not in header:
        raise DataError(f"{weights_path}: no kfold metadata in the safetensors header")
    try:
        meta = json.loads(header["kfold"])
        if not isinstance(meta, dict):
            raise TypeError("the kfold metadata is not a JSON object")
        missing = [key for key in WEIGHTS_META_KEYS if key not in meta]
        if missing:
            raise KeyError(", ".join(missing))
        check_weights_meta(meta)
        cfg = meta["config"]
        from kfold.nn.checks import meta_model

        skeleton, _ = meta_model(cfg["model"], meta["num_classes"], meta.get("image_size", 28), "metadata",
                                 in_chans=meta.get("channels", 1), dropout=cfg["dropout"], batch_norm=cfg["batch_norm"],
                                 model_kwargs=cfg["model_kwargs"])
    except (ValueError, KeyError, TypeError, UsageError) as exc:  # a damaged or hand-edited header
        raise DataError(f"{weights_path}: bad kfold metadata in the safetensors header ({type(exc).__name__}: {exc})") from None
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    if expected != shapes:  # checked before the weights are loaded or the model allocated
        differ = sorted(set(expected) ^ set(shapes)) or [k for k in expected if expected[k] != shapes[k]]
        raise DataError(f"{weights_path}: weights do not fit model {cfg['model']!r} (tensor {differ[0]}: the file has "
                        f"{shapes.get(differ[0], 'none')}, the model described by the header needs {expected.get(differ[0], 'none')})")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{weights_path}: not a valid safetensors file ({exc})") from None
    model = create_model(cfg["model"], meta["num_classes"], in_chans=meta.get("channels", 1),
                         image_size=meta.get("image_size", 28), dropout=cfg["dropout"], batch_norm=cfg["batch_norm"],
                         **cfg["model_kwargs"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"{weights_path}: weights do not fit model {cfg['model']!r} ({first})") from None
    return model.to(device).eval(), meta


def _finite(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_weights_meta(meta: dict) -> None:
    """Types and ranges of the metadata predict.py uses; raises ValueError/TypeError naming the field."""
    cfg = meta["config"]
    if not isinstance(cfg, dict) or not all(key in cfg for key in ("model", "dropout", "batch_norm", "model_kwargs")):
        raise TypeError("config must be an object with model, dropout, batch_norm and model_kwargs")
    if not isinstance(cfg["model"], str) or not isinstance(cfg["model_kwargs"], dict) or not isinstance(cfg["batch_norm"], bool):
        raise TypeError("config.model must be a string, config.model_kwargs an object, config.batch_norm true/false")
    tta = cfg.get("tta", 1)
    if isinstance(tta, bool) or not isinstance(tta, int) or not 1 <= tta <= 9:
        raise ValueError(f"config.tta must be an integer in 1..9, got {tta!r}")
    if cfg.get("channels_last", "auto") not in PRECISION_SETTINGS:
        raise ValueError(f"config.channels_last must be {', '.join(PRECISION_SETTINGS)}, got {cfg.get('channels_last')!r}")
    channels = meta.get("channels", 1)  # absent in files written before RGB support: grayscale
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"channels must be an integer in 1..{MAX_CHANNELS}, got {channels!r}"[:200])
    norm = meta["normalization"]
    if channels == 1:
        if not isinstance(norm, dict) or not _finite(norm.get("mean")) or not _finite(norm.get("std")) or not norm["std"] > 0:
            raise ValueError(f"normalization must be {{'mean': number, 'std': positive number}}, got {norm!r}"[:200])
    elif not (isinstance(norm, dict) and all(isinstance(norm.get(key), list) and len(norm[key]) == channels
                                             and all(_finite(v) for v in norm[key]) for key in ("mean", "std"))
              and all(v > 0 for v in norm["std"])):
        raise ValueError(f"normalization must be {{'mean': [{channels} numbers], 'std': [{channels} positive numbers]}} "
                         f"for {channels} channels, got {norm!r}"[:200])
    image_size = meta.get("image_size", 28)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 1 <= image_size <= 4096:
        raise ValueError(f"image_size must be an integer in 1..4096, got {image_size!r}")
    for key in ("fingerprint", "preset"):
        if not isinstance(meta[key], str):
            raise TypeError(f"{key} must be a string, got {meta[key]!r}"[:200])
