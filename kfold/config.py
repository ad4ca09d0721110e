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
from typing import Any, Callable

from kfold.errors import UsageError
from kfold.registry import aug_names, check_aug, check_model, model_names

__all__ = ["AUG_BACKENDS", "KEEP_EPOCHS", "MAX_BATCH", "MAX_EPOCHS", "MAX_LR", "MAX_TTA", "OPTIMIZERS", "Param",
           "PARAMS", "preset_names", "PRESETS", "resolve_config", "SCHEDULES", "TrainConfig"]

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
        """Raise ``UsageError`` naming the first nonsensical value: each field against its row of ``PARAMS``
        (type, bounds or choices), then the rules that tie fields together."""
        for spec in PARAMS.values():
            spec.check(getattr(self, spec.name))
        rules = [
            (not (self.keep == "last" and self.early_stopping), "early_stopping",
             "cannot be combined with keep='last' (early stopping keeps the best epoch)"),
            (self.val_every == 1 or self.keep == "last", "val_every", "other than 1 needs keep='last' (keep='best' compares every epoch)"),
            (self.low_res == 0 or self.low_res >= 8, "low_res", "must be 0 (off) or at least 8 pixels"),
            (self.low_res_epochs < self.epochs or not self.low_res, "low_res_epochs",
             f"must be less than epochs={self.epochs} (the last epochs train at full size)"),
        ]
        for ok, key, why in rules:
            if not ok:
                raise UsageError(f"config value {key}={getattr(self, key)!r} {why}")
        check_model(self.model, self.model_kwargs)  # names and options known torch-free: a typo fails before any file
        check_aug(self.aug)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MAX_LR = 10.0
MAX_EPOCHS = 100_000
MAX_TTA = 9  # len(kfold.nn.augment.TTA_VIEWS)
MAX_BATCH = 1 << 24


@dataclass(frozen=True)
class Param:
    """One row of the table of config fields (as scikit-learn's ``_param_validation`` constraints).

    ``kind`` is the field's type (``float`` accepts an int; ``bool`` is never an int), ``low``..``high`` its
    bounds (open at an end with ``low_open``/``high_open``), ``choices`` its closed set of names (a callable
    for sets that can grow, such as the registered models), ``unit`` what the number counts, ``help`` the
    text of its command-line flag; ``flag=False``: set through ``--config FILE`` or a preset only.

    >>> PARAMS["lr"].check(0.1)
    0.1
    >>> PARAMS["tta"].check(10)
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: config value tta=10 must be at most 9 (views)
    """

    name: str
    kind: tuple[type, ...]
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | Callable[[], list[str]] | None = None
    unit: str = ""
    optional: bool = False  # None allowed (the model's own default)
    flag: bool = True
    validator: Callable[[Any], Any] | None = None  # a registry's check of a name (it lists the names it knows)

    @property
    def type_name(self) -> str:
        names = " | ".join(t.__name__ for t in self.kind)
        return names + " | None" if self.optional else names

    def allowed(self) -> list[str] | None:
        """The closed set of names, or ``None`` for a number or a flag."""
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)

    def interval(self) -> str:
        """``[0, 1)``, ``(0, 10]``: the bounds as a mathematician writes them."""
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"

    def check_type(self, value: Any) -> Any:
        """``value`` if it has the field's type (an int is a float here, a bool is neither); else ``UsageError``."""
        if value is None and self.optional:
            return value
        numeric = int in self.kind or float in self.kind
        if isinstance(value, self.kind) and not (numeric and isinstance(value, bool)):
            return value
        if float in self.kind and isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UsageError(f"config key {self.name!r} expects {self.type_name}, got {value!r}")

    def check(self, value: Any) -> Any:
        """``value`` if it is of the field's type, finite, in bounds and among the choices; else ``UsageError``."""
        value = self.check_type(value)
        if value is None or isinstance(value, bool):
            return value
        if self.validator is not None:  # a registry's own check, with its own message (unknown model 'x'; ...)
            self.validator(value)
            return value
        why = None
        if isinstance(value, float) and not math.isfinite(value):
            why = "must be a finite number"
        elif isinstance(value, (int, float)) and not self.within(value):
            unit = f" ({self.unit})" if self.unit else ""
            if self.high is not None and self.high <= 1 and self.low is not None:
                why = f"must be in {self.interval()}"
            elif self.low is not None and (value < self.low or (self.low_open and value == self.low)):
                why = ("must be positive" if self.low == 0 and self.low_open else "must be non-negative" if self.low == 0
                       else f"must be at least {self.low:g}{unit}")
            else:
                why = f"must be at most {self.high:g}{unit}"
        elif isinstance(value, str) and self.choices is not None and value not in self.allowed():
            names = self.allowed()
            why = (f"must be {', '.join(names[:-1])} or {names[-1]}" if self.choices is _SWITCH
                   else f"must be one of {', '.join(names)}")
        if why is not None:
            raise UsageError(f"config value {self.name}={value!r} {why}")
        return value

    def within(self, value: float) -> bool:
        """``value`` lies within the bounds."""
        above = self.low is None or value > self.low or (value == self.low and not self.low_open)
        below = self.high is None or value < self.high or (value == self.high and not self.high_open)
        return above and below


_INT, _FLOAT, _BOOL, _STR = (int,), (float,), (bool,), (str,)
_SWITCH = PRECISION_SETTINGS

# Every TrainConfig field, once: its type, bounds or choices, unit and help. TrainConfig.validate, the training
# flags of every command (kfold.commands.args) and their help text, and tests/test_config_table.py come from it.
PARAMS: dict[str, Param] = {p.name: p for p in [
    Param("model", _STR, "network (kfold models lists them)", choices=model_names, validator=check_model),
    Param("model_kwargs", (dict,), "the model's own options (kfold models)", flag=False),
    Param("dropout", _FLOAT, "dropout rate (default: the model's)", 0, 1, high_open=True, optional=True),
    Param("batch_norm", _BOOL, "batch norm layers", flag=False),
    Param("epochs", _INT, "training epochs", 1, MAX_EPOCHS, unit="epochs"),
    Param("batch_size", _INT, "training batch size", 1, MAX_BATCH, unit="images"),
    Param("optimizer", _STR, "optimizer", choices=OPTIMIZERS),
    Param("lr", _FLOAT, "peak learning rate", 0, MAX_LR, low_open=True),
    Param("momentum", _FLOAT, "SGD/RMSprop momentum", 0, 1, high_open=True),
    Param("nesterov", _BOOL, "Nesterov momentum", flag=False),
    Param("weight_decay", _FLOAT, "L2 weight decay", 0, 1),
    Param("schedule", _STR, "learning-rate schedule", choices=SCHEDULES),
    Param("warmup_epochs", _FLOAT, "warm-up epochs of the schedule", 0, MAX_EPOCHS, unit="epochs"),
    Param("step_epochs", _INT, "'step' schedule: multiply the lr by step_gamma every step_epochs", 1, MAX_EPOCHS,
          unit="epochs", flag=False),
    Param("step_gamma", _FLOAT, "'step' schedule: the lr factor", 0, 1, low_open=True, flag=False),
    Param("label_smoothing", _FLOAT, "label smoothing", 0, 1, high_open=True),
    Param("aug", (str, dict), "augmentation policy", choices=aug_names, validator=check_aug),
    Param("aug_backend", _STR, "augmentation backend", choices=AUG_BACKENDS),
    Param("mixup", _FLOAT, "mixup Beta(alpha, alpha); 0 disables", 0, 100),
    Param("cutmix", _FLOAT, "cutmix Beta(alpha, alpha); 0 disables", 0, 100),
    Param("mix_prob", _FLOAT, "probability that a batch is mixed when mixup/cutmix are on", 0, 1, flag=False),
    Param("ema", _FLOAT, "EMA decay of the weights, e.g. 0.999; 0 disables", 0, 1, high_open=True),
    Param("pseudo_label", _FLOAT, "pseudo-label confidence threshold; 0 disables", 0, 1, high_open=True),
    Param("pseudo_start", _FLOAT, "fraction of the epochs before pseudo-labels start", 0, 1, high_open=True),
    Param("early_stopping", _INT, "patience in epochs; 0 disables", 0, MAX_EPOCHS, unit="epochs"),
    Param("keep", _STR, "which epoch a fold keeps", choices=KEEP_EPOCHS),
    Param("eval_batch_size", _INT, "evaluation batch size", 1, MAX_BATCH, unit="images"),
    Param("val_every", _INT, "score the validation rows every N epochs (and at the last); 0: only at the last",
          0, MAX_EPOCHS, unit="epochs", flag=False),
    Param("num_workers", _INT, "DataLoader workers of the albumentations backend", 0, 1024),
    Param("channels_last", _STR, "channels-last memory format (auto: CUDA only)", choices=_SWITCH, flag=False),
    Param("bf16", _STR, "bf16 autocast of training and evaluation (auto: CUDA only)", choices=_SWITCH, flag=False),
    Param("compile", _BOOL, "torch.compile the model (falls back to eager)", flag=False),
    Param("low_res", _INT, "progressive resizing: side of the first epochs' images; 0 disables", 0, 4096,
          unit="pixels", flag=False),
    Param("low_res_epochs", _INT, "progressive resizing: epochs at low_res", 0, MAX_EPOCHS, unit="epochs", flag=False),
    Param("tta", _INT, "default test-time views used by predict", 1, MAX_TTA, unit="views"),
]}
assert set(PARAMS) == {f.name for f in dataclasses.fields(TrainConfig)}, "every config field has one row in PARAMS"


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


def _coerce(key: str, value: Any) -> Any:
    """``value`` checked against the field's type in ``PARAMS``; an int becomes a float where a float is due."""
    spec = PARAMS[key]
    value = spec.check_type(value)
    if spec.kind == _FLOAT and isinstance(value, int):
        if abs(value) > 2**1023:  # float() would raise OverflowError
            raise UsageError(f"config value {key}={value} must be a finite number")
        return float(value)
    return value


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
    typed = {key: _coerce(key, value) for key, value in values.items()}
    return TrainConfig(**typed).validate()


def _checked(values: dict[str, Any], origin: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in values:
        if key not in known:
            raise UsageError(f"{origin}: unknown config key {key!r}")
    return dict(values)
