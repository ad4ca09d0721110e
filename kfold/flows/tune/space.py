"""The search space of ``kfold tune``: its JSON/YAML file, the preset family's default, and the checks of both
against the base config (every field, kind, bound and choice a valid config) before anything is written."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from kfold.config import TrainConfig, resolve_config
from kfold.errors import UsageError, check_list, param
from kfold.registry import MODELS, check_aug, check_model

KINDS = ("log_uniform", "uniform", "int", "choice")
MODEL_OPTION = "model_kwargs."  # a space key "model_kwargs.width" searches one model option


# ----------------------------------------------------------------------------- the search space

@dataclass(frozen=True)
class Param:
    """One searched config field: ``log_uniform``/``uniform`` (floats), ``int`` (optionally ``log`` or ``step``)
    or ``choice`` (a list of JSON scalars)."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()
    log: bool = False
    step: int = 1

    def to_json(self) -> dict:
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        spec: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.kind == "int" and self.log:
            spec["log"] = True
        if self.kind == "int" and self.step != 1:
            spec["step"] = self.step
        return spec

    def values_to_check(self) -> list:
        """The values whose config must validate on their own: both bounds, or every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step, log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.kind == "log_uniform")


@dataclass(frozen=True)
class SearchSpace:
    """The searched fields, in the order of the file (or of the default space); ``origin`` names the source."""

    params: tuple[Param, ...]
    origin: str = "the default space"

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def to_json(self) -> dict:
        return {p.name: p.to_json() for p in self.params}

    def without(self, names) -> "SearchSpace":
        return SearchSpace(tuple(p for p in self.params if p.name not in set(names)), self.origin)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_space(raw: Any, origin: str) -> SearchSpace:
    """A search space from its JSON/YAML mapping; ``UsageError`` naming ``origin``, the field and the value."""
    if not isinstance(raw, dict) or not raw:
        raise UsageError(f"{origin}: a search space is a non-empty mapping of config fields to "
                         f"{{\"log_uniform\"|\"uniform\"|\"int\": [low, high]}} or {{\"choice\": [...]}}")
    params = []
    for name, spec in raw.items():
        where = f"{origin}: field {name!r}"
        if not isinstance(name, str):
            raise UsageError(f"{where}: field names are strings")
        if not isinstance(spec, dict):
            raise UsageError(f"{where}: expected a mapping like {{\"uniform\": [0, 0.2]}}, got {spec!r}")
        kinds = [key for key in spec if key in KINDS]
        extra = [key for key in spec if key not in KINDS and key not in ("log", "step")]
        if len(kinds) != 1 or extra:
            raise UsageError(f"{where}: give exactly one of {', '.join(KINDS)} (and for int optionally log or step), "
                             f"got {sorted(spec)}")
        kind = kinds[0]
        value = spec[kind]
        if kind != "int" and ("log" in spec or "step" in spec):
            raise UsageError(f"{where}: log and step go with int only")
        if kind == "choice":
            if not isinstance(value, list) or not value:
                raise UsageError(f"{where}: choice needs a non-empty list, got {value!r}")
            for item in value:
                if not (item is None or isinstance(item, (bool, str)) or _is_number(item)):
                    raise UsageError(f"{where}: choice {item!r} is not a number, string, true/false or null")
            if len({json.dumps(item) for item in value}) != len(value):
                raise UsageError(f"{where}: choice {value!r} lists a value twice")
            params.append(Param(name, kind, choices=tuple(value)))
            continue
        if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value):
            raise UsageError(f"{where}: {kind} needs [low, high] of two finite numbers, got {value!r}")
        low, high = value
        if not low < high:
            raise UsageError(f"{where}: {kind} needs low < high, got [{low!r}, {high!r}]")
        if kind == "log_uniform" and low <= 0:
            raise UsageError(f"{where}: log_uniform needs 0 < low, got [{low!r}, {high!r}]")
        log, step = False, 1
        if kind == "int":
            if not all(isinstance(v, int) for v in value):
                raise UsageError(f"{where}: int needs integer bounds, got [{low!r}, {high!r}]")
            log = spec.get("log", False)
            step = spec.get("step", 1)
            if not isinstance(log, bool):
                raise UsageError(f"{where}: log must be true or false, got {log!r}")
            if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= high - low:
                raise UsageError(f"{where}: step must be an integer in 1..{high - low}, got {step!r}")
            if log and (low < 1 or step != 1):
                raise UsageError(f"{where}: an int with log needs low >= 1 and no step")
        params.append(Param(name, kind, low, high, log=log, step=step))
    return SearchSpace(tuple(params), origin)


def read_space(path: str | Path) -> SearchSpace:
    """A search space file: JSON, or YAML (``.yaml``/``.yml``, with PyYAML installed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{param('space')}={str(path)!r}: file not found") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise UsageError(f"{param('space')}={str(path)!r}: cannot read a text file ({exc.__class__.__name__})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UsageError(f"{param('space')}={str(path)!r}: YAML needs PyYAML (pip install pyyaml), or give the space as JSON") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{param('space')}={str(path)!r}: not valid YAML ({str(exc).splitlines()[0]})") from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{param('space')}={str(path)!r}: not valid JSON ({exc})") from None
    return parse_space(raw, str(path))


def _family(model: str) -> str:
    if model.startswith(("resnet", "preact_resnet", "vgg_bn")):
        return "resnet"
    if model.startswith("ff"):
        return "ff"
    if model.startswith("alexnet"):
        return "alexnet"
    return model


def default_space(base: TrainConfig, fixed: Sequence[str] = ()) -> SearchSpace:
    """The default space around a preset's config (its family decides the model options searched); fields
    in ``fixed`` (set on the command line) are left out.

    >>> from kfold.config import resolve_config
    >>> default_space(resolve_config("fast")).names[:3]
    ['lr', 'weight_decay', 'label_smoothing']
    """
    lr = base.lr
    batch = base.batch_size
    space: dict[str, dict] = {
        "lr": {"log_uniform": [round(lr / 10, 12), round(min(lr * 3, 10.0), 12)]},
        "weight_decay": {"log_uniform": [1e-6, 1e-2]},
        "label_smoothing": {"uniform": [0.0, 0.2]},
        "epochs": {"int": [max(1, base.epochs // 2), max(2, base.epochs)]},
        "aug": {"choice": ["none", "light", "heavy", "heavy-noerase"]},
        "mixup": {"choice": [0.0, 0.2]},
        "cutmix": {"choice": [0.0, 1.0]},
        "dropout": {"uniform": [0.0, 0.5]},
        "batch_size": {"choice": sorted({max(8, batch // 2), batch, batch * 2})},
    }
    family = _family(base.model)
    if family == "resnet" and "width" in MODELS[base.model].options:
        width = base.model_kwargs.get("width", MODELS[base.model].options["width"])
        space[MODEL_OPTION + "width"] = {"choice": sorted({max(4, width * 3 // 4), width, width * 3 // 2})}
    if family == "ff":
        space.pop("aug")  # the MNIST-MIX report trains these without augmentation
    return parse_space(space, f"the default space of the {family} family").without(check_list("fixed", fixed))


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def _apply(base: dict, values: dict) -> dict:
    """``base`` with the sampled ``values``; ``model_kwargs.X`` keys set one model option. A sampled model other
    than the base's starts from that model's default options."""
    config = {**base, "model_kwargs": dict(base.get("model_kwargs") or {})}
    if "model" in values and values["model"] != base.get("model"):
        config["model_kwargs"] = {}
    for name, value in values.items():
        if name.startswith(MODEL_OPTION):
            config["model_kwargs"][name[len(MODEL_OPTION):]] = value
        else:
            config[name] = value
    return config


def trial_config(base: dict, values: dict) -> TrainConfig:
    """The validated config of one trial (``UsageError`` naming the first bad value)."""
    return resolve_config(None, None, _apply(base, values))


def check_space(space: SearchSpace, base: TrainConfig) -> None:
    """Every field a ``TrainConfig`` field (or a model option the searched models have), every kind fits the
    field's type, every bound and choice gives a valid config (model and augmentation names from the
    registry) unless it fails only together with another searched field (then trials judge it)."""
    types = _field_types()
    models = [base.model]
    for searched in space.params:
        if searched.name == "model":
            models = list(searched.choices) if searched.kind == "choice" else models
            for model in models:
                try:
                    check_model(model)
                except UsageError as exc:
                    raise UsageError(f"{space.origin}: field 'model': {exc}") from None
        if searched.name == "aug" and searched.kind == "choice":
            for aug in searched.choices:
                try:
                    check_aug(aug)
                except UsageError as exc:
                    raise UsageError(f"{space.origin}: field 'aug': {exc}") from None
    for searched in space.params:
        where = f"{space.origin}: field {searched.name!r}"
        if searched.name.startswith(MODEL_OPTION):
            option = searched.name[len(MODEL_OPTION):]
            lacking = [m for m in models if m in MODELS and option not in MODELS[m].options]
            if lacking:
                raise UsageError(f"{where}: model {lacking[0]!r} has no option {option!r} "
                                 f"(options: {', '.join(MODELS[lacking[0]].options) or 'none'})")
            kind_of = {type(MODELS[m].options[option]).__name__ for m in models if m in MODELS}
            declared = " | ".join(sorted(kind_of))
            if "list" in kind_of:
                raise UsageError(f"{where}: list-valued options cannot be searched; search a scalar option")
        elif searched.name not in types or searched.name == "model_kwargs":
            known = ", ".join(sorted(set(types) - {"model_kwargs"}))
            raise UsageError(f"{where}: not a config field (fields: {known}; model options as model_kwargs.NAME)")
        else:
            declared = types[searched.name]
        allowed = [part.strip() for part in declared.split("|")]
        if searched.kind in ("log_uniform", "uniform") and "float" not in allowed:
            raise UsageError(f"{where}: {searched.kind} draws floats, but the field holds {declared}")
        if searched.kind == "int" and not ({"int", "float"} & set(allowed)):
            raise UsageError(f"{where}: int draws integers, but the field holds {declared}")
        others = [n for n in space.names if n != searched.name]
        for value in searched.values_to_check():
            try:
                trial_config(base.to_dict(), {searched.name: value})
            except UsageError as exc:
                text = str(exc)
                if any(_names(text, other) for other in others):
                    continue  # fails with the base's value of another searched field: judged per trial
                raise UsageError(f"{where}: value {value!r}: {text}") from None


def _names(text: str, name: str) -> bool:
    import re

    short = name[len(MODEL_OPTION):] if name.startswith(MODEL_OPTION) else name
    return re.search(rf"(?<![A-Za-z_]){re.escape(short)}(?![A-Za-z_])", text) is not None

