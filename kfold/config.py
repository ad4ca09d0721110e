"""Training configuration: one dataclass, named presets, and validated overrides.

Resolution order: dataclass defaults < preset < ``--config FILE`` < explicit CLI flags.
The resolved config is saved with every run. Nothing here imports torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfold.errors import UsageError
from kfold.registry import check_aug, check_model

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
AUG_BACKENDS = ("kornia", "albumentations")
KEEP_EPOCHS = ("best", "last")
# bf16 autocast and channels_last: auto = CUDA only (the default: float32 and contiguous on every CPU), probe = CUDA,
# and on the CPU what a short timed probe finds faster on this machine (kfold.nn.precision), on, off
PRECISION_SETTINGS = ("auto", "probe", "on", "off")


@dataclass
class TrainConfig:
    model: str = "lenet5"
    model_kwargs: dict = field(default_factory=dict)
    dropout: float | None = None
    batch_norm: bool = True
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_epochs: int = 10  # 'step' schedule: multiply lr by step_gamma every step_epochs
    step_gamma: float = 0.1
    label_smoothing: float = 0.0
    aug: str | dict = "heavy"  # a name from kfold.nn.augment.PRESET_POLICIES or an AugPolicy dict
    aug_backend: str = "kornia"
    mixup: float = 0.0  # Beta(alpha, alpha) for mixup; 0 disables
    cutmix: float = 0.0  # Beta(alpha, alpha) for cutmix; 0 disables
    mix_prob: float = 0.5  # probability that a batch is mixed when mixup/cutmix are on
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0 disables
    # Pseudo-labelling: from epoch pseudo_start * epochs on, unlabeled images (the test set, and a fold's own
    # validation images without their labels) whose predicted class has probability >= pseudo_label join the
    # training rows with that class, re-predicted every epoch; 0 disables.
    pseudo_label: float = 0.0
    pseudo_start: float = 0.3
    early_stopping: int = 0  # patience in epochs; 0 disables
    # Which epoch's weights a fold keeps: "best" (highest validation accuracy; the out-of-fold score is then
    # picked on the same rows it reports, so it is optimistic) or "last" (unbiased; right for schedules that
    # anneal to zero, where the last epoch is the one meant to be used).
    keep: str = "best"
    eval_batch_size: int = 1024
    val_every: int = 1  # score the validation rows every N epochs and always at the last; 0: only at the last (keep='last')
    num_workers: int = 2  # DataLoader workers of the albumentations backend
    channels_last: str = "auto"  # auto (CUDA only) | probe (CUDA; the CPU if faster there, timed) | on | off
    bf16: str = "auto"  # bf16 autocast of training and evaluation: auto (CUDA only) | probe (CUDA; the CPU if faster there) | on | off
    compile: bool = False
    # Progressive resizing: the first ``low_res_epochs`` epochs train on images downscaled (after augmentation) to
    # ``low_res`` x ``low_res`` pixels, the rest (and every validation and prediction) at full size; 0 = off.
    low_res: int = 0
    low_res_epochs: int = 0
    tta: int = 1  # default number of test-time views used by predict.py

    def validate(self) -> "TrainConfig":
        """Raise UsageError naming the first nonsensical value."""
        checks = [
            (self.epochs >= 1, "epochs", "must be at least 1"),
            (self.batch_size >= 1, "batch_size", "must be at least 1"),
            (self.eval_batch_size >= 1, "eval_batch_size", "must be at least 1"),
            (self.lr > 0, "lr", "must be positive"),
            (self.momentum >= 0, "momentum", "must be non-negative"),
            (self.weight_decay >= 0, "weight_decay", "must be non-negative"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}"),
            (self.aug_backend in AUG_BACKENDS, "aug_backend", f"must be one of {', '.join(AUG_BACKENDS)}"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)"),
            (self.dropout is None or 0 <= self.dropout < 1, "dropout", "must be in [0, 1)"),
            (0 <= self.ema < 1, "ema", "must be in [0, 1)"),
            (self.mixup >= 0 and self.cutmix >= 0, "mixup/cutmix", "must be non-negative"),
            (0 <= self.mix_prob <= 1, "mix_prob", "must be in [0, 1]"),
            (0 <= self.pseudo_label < 1, "pseudo_label", "must be in [0, 1) (0 disables)"),
            (0 <= self.pseudo_start < 1, "pseudo_start", "must be in [0, 1)"),
            (self.warmup_epochs >= 0, "warmup_epochs", "must be non-negative"),
            (self.step_epochs >= 1, "step_epochs", "must be at least 1"),
            (self.early_stopping >= 0, "early_stopping", "must be non-negative"),
            (self.keep in KEEP_EPOCHS, "keep", f"must be one of {', '.join(KEEP_EPOCHS)}"),
            (not (self.keep == "last" and self.early_stopping), "early_stopping",
             "cannot be combined with keep='last' (early stopping keeps the best epoch)"),
            (self.num_workers >= 0, "num_workers", "must be non-negative"),
            (self.val_every >= 0, "val_every", "must be non-negative (0: only the last epoch)"),
            (self.val_every == 1 or self.keep == "last", "val_every", "other than 1 needs keep='last' (keep='best' compares every epoch)"),
            (self.tta >= 1, "tta", "must be at least 1"),
            (self.channels_last in PRECISION_SETTINGS, "channels_last", "must be auto, probe, on or off"),
            (self.bf16 in PRECISION_SETTINGS, "bf16", "must be auto, probe, on or off"),
            (self.low_res == 0 or self.low_res >= 8, "low_res", "must be 0 (off) or at least 8 pixels"),
            (self.low_res_epochs >= 0, "low_res_epochs", "must be non-negative"),
            (self.low_res_epochs < self.epochs or not self.low_res, "low_res_epochs",
             f"must be less than epochs={self.epochs} (the last epochs train at full size)"),
        ]
        checks = _finite_and_bounded(self) + checks + [
            (0 < self.step_gamma <= 1, "step_gamma", "must be in (0, 1]"),
            (self.lr <= MAX_LR, "lr", f"must be at most {MAX_LR:g}"),
            (self.momentum < 1, "momentum", "must be less than 1"),
            (self.weight_decay <= 1, "weight_decay", "must be at most 1"),
            (self.warmup_epochs <= MAX_EPOCHS, "warmup_epochs", f"must be at most {MAX_EPOCHS}"),
            (self.mixup <= 100 and self.cutmix <= 100, "mixup/cutmix", "must be at most 100"),
            (self.tta <= MAX_TTA, "tta", f"must be at most {MAX_TTA} (the number of test-time views)"),
        ]
        for ok, key, why in checks:
            if not ok:
                value = getattr(self, key, None) if "/" not in key else (self.mixup, self.cutmix)
                raise UsageError(f"config value {key}={value!r} {why}")
        check_model(self.model, self.model_kwargs)  # names and options known torch-free: a typo fails before any file
        check_aug(self.aug)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MAX_LR = 10.0
MAX_EPOCHS = 100_000
MAX_TTA = 9  # len(kfold.nn.augment.TTA_VIEWS)
INT_LIMITS = {"epochs": MAX_EPOCHS, "batch_size": 1 << 24, "eval_batch_size": 1 << 24, "step_epochs": MAX_EPOCHS,
              "early_stopping": MAX_EPOCHS, "num_workers": 1024, "tta": MAX_TTA,
              "low_res": 4096, "low_res_epochs": MAX_EPOCHS}


def _finite_and_bounded(cfg: "TrainConfig") -> list[tuple[bool, str, str]]:
    """Every float field a finite number, every int field within a sane upper bound (issue 14, item 18)."""
    checks = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float):
            checks.append((math.isfinite(value), f.name, "must be a finite number"))
        elif isinstance(value, int) and not isinstance(value, bool) and f.name in INT_LIMITS:
            checks.append((value <= INT_LIMITS[f.name], f.name, f"must be at most {INT_LIMITS[f.name]}"))
    return checks


PRESETS: dict[str, dict[str, Any]] = {
    # The KMNIST report's setups (heavy augmentation, dropout and batch norm throughout).
    "lenet5": dict(model="lenet5", optimizer="sgd", lr=0.01, momentum=0.9, epochs=20, batch_size=64, schedule="constant"),
    "alexnet5-sgd": dict(model="alexnet5", optimizer="sgd", lr=5e-3, momentum=0.8, weight_decay=1e-4, epochs=30, batch_size=64, schedule="constant"),
    "alexnet7-sgd": dict(model="alexnet7", optimizer="sgd", lr=5e-3, momentum=0.8, weight_decay=1e-4, epochs=30, batch_size=64, schedule="constant"),
    "alexnet5-adam": dict(model="alexnet5", optimizer="adam", lr=1e-4, epochs=30, batch_size=64, schedule="constant", momentum=0.0),
    "alexnet7-adam": dict(model="alexnet7", optimizer="adam", lr=1e-4, epochs=30, batch_size=64, schedule="constant", momentum=0.0),
    # The MNIST-MIX report's setups (no augmentation there).
    "ff-2x250": dict(model="ff-2x250", optimizer="sgd", lr=0.1, momentum=0.9, batch_size=16, epochs=10, schedule="constant", aug="none"),
    "resnet26": dict(model="resnet26", optimizer="sgd", lr=0.01, momentum=0.9, batch_size=32, epochs=15, schedule="constant", aug="none"),
    # Best accuracy reachable in minutes on a 2-core CPU.
    "fast": dict(model="resnet9", model_kwargs={"width": 16}, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                 epochs=20, batch_size=128, schedule="onecycle", warmup_epochs=3, label_smoothing=0.1, aug="heavy", keep="last"),
    # The recommended recipe: a wider ResNet-9 and a longer one-cycle schedule (4-view TTA measured no OOF gain).
    "best": dict(model="resnet9", model_kwargs={"width": 32}, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                 epochs=30, batch_size=128, schedule="onecycle", warmup_epochs=4, label_smoothing=0.1, aug="heavy", keep="last"),
    # `fast`'s accuracy in a third of its CPU training time (issue 17; BENCHMARKS.md "Speedrun recipe": 0.31-0.32x,
    # OOF 0.9886 against 0.9889, Private 0.9905 against 0.9905, medians of 3 seeds): the same ResNet-9 with its
    # downsampling convs pooled before BN + ReLU and an 8-channel prep conv, 16 epochs, `heavy` augmentation
    # without random erasing, bf16 autocast and channels_last where they are faster (CUDA; on the CPU as a short timed
    # probe finds on the machine: AVX512-BF16/AMX cores gain most, others lose with bf16) and the validation rows
    # scored only at the last epoch (the one `keep="last"` keeps).
    "speedrun": dict(model="resnet9", model_kwargs={"width": 16, "pool_first": True, "prep": 8}, optimizer="sgd", lr=0.1,
                     momentum=0.9, nesterov=True, weight_decay=5e-4, epochs=16, batch_size=128, schedule="onecycle",
                     warmup_epochs=2, label_smoothing=0.1, aug="heavy-noerase", keep="last", val_every=0,
                     channels_last="probe", bf16="probe"),
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against the field's declared type; bool is not an int here, int is a float."""
    allowed = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,)}
    names = [part.strip() for part in str(annotation).split("|")]
    if value is None and "None" in names:
        return None
    for name in names:
        types = allowed.get(name)
        if types and isinstance(value, types) and not (name in ("int", "float") and isinstance(value, bool)):
            if name == "float" and not isinstance(value, float) and "int" not in names:
                if abs(value) > 2**1023:  # float() would raise OverflowError
                    raise UsageError(f"config value {key}={value} must be a finite number")
                return float(value)
            return value
    raise UsageError(f"config key {key!r} expects {annotation}, got {value!r}")


def resolve_config(preset: str | None = None, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Build a validated TrainConfig from a preset, an optional JSON file and explicit overrides."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; available: {', '.join(preset_names())}")
        values.update(PRESETS[preset])
    if config_file is not None:
        path = Path(config_file)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{path}: config file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{path}: a config file must hold a JSON object")
        values.update(_checked(loaded, origin=str(path)))
    values.update(_checked(overrides or {}, origin="command line"))
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    typed = {key: _coerce(key, value, fields[key].type) for key, value in values.items()}
    return TrainConfig(**typed).validate()


def _checked(values: dict[str, Any], origin: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in values:
        if key not in known:
            raise UsageError(f"{origin}: unknown config key {key!r}")
    return dict(values)
