"""Hyperparameter search as typed functions: one Optuna trial is one k-fold CV run of a sampled config.

``tune`` asks Optuna (``TPESampler``, seeded) for a config, trains it through the training flow into
``OUT/trials/NNNN/`` (locally, or with its folds as Ray tasks and several trials at once), reports each
finished fold's validation score as an intermediate value (step = fold index) so that a pruner can stop a
trial between folds, and tells the study the competition metric on the trial's out-of-fold probabilities.
The study lives in ``sqlite:///OUT/study.db`` (or any Optuna storage URL); re-running the command continues
it. Results: ``OUT/trials.csv``, ``OUT/best.json`` (a ``--config`` file), PNG figures and, on request, the
mean of the best trials' test probabilities as a submission.

Optuna is imported only by ``tune`` (and the functions that need it); torch only through ``kfold.nn``,
lazily. The search space, the base config, the metric and the storage are checked before anything is
written.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kfold.config import TrainConfig, resolve_config
from kfold.data.task import Task
from kfold.errors import DataError, UsageError, param
from kfold.files.rundir import RunDir, TuneDir
from kfold.flows.backend import LocalBackend
from kfold.flows.training import RunRequest, TaskSpec, check_task, parse_fold_list, summarize, train_run
from kfold.registry import MODELS, check_aug, check_model

__all__ = ["Param", "SearchSpace", "TuneResult", "check_space", "default_space", "default_storage",
           "ensemble_best", "format_top", "import_optuna", "make_pruner", "make_sampler", "objective_metric",
           "open_storage", "open_study", "parse_space", "read_space", "study_name", "top_trials", "trial_config",
           "trials_table", "tune", "write_results"]

INSTALL_HINT = "pip install -e '.[tune]'"
PRUNERS = ("median", "halving", "none")
KINDS = ("log_uniform", "uniform", "int", "choice")
STUDY_DB, TRIALS_CSV, BEST_JSON = TuneDir.STUDY_DB, TuneDir.TRIALS_CSV, TuneDir.BEST_JSON
FIGURES = TuneDir.FIGURES  # the names live in files/rundir.py: the report reads them too
MODEL_OPTION = "model_kwargs."  # a space key "model_kwargs.width" searches one model option
STALE_AFTER_S = 120.0  # a RUNNING trial without a recorded driver is stale after this long
STUDY_KEYS = ("metric", "direction", "preset", "k", "seed", "folds", "fingerprint", "base", "space")
COUNTED_FAILS = ("invalid_config",)  # failed trials that count towards --trials (the others are re-run)


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
    return parse_space(space, f"the default space of the {family} family").without(fixed)


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


# ----------------------------------------------------------------------------- the metric

def objective_metric(task: Task, metric: str | None = None) -> str:
    """The metric a search optimizes: ``metric`` when given, else the competition's default (accuracy)."""
    from kfold.scoring.metrics import METRICS

    schema = getattr(task, "schema", None)
    name = metric or (schema.metric if schema is not None else None) or "accuracy"
    if name not in METRICS:
        raise UsageError(f"{param('metric')}={name!r}: not one of {', '.join(METRICS)}")
    return name


# ----------------------------------------------------------------------------- Optuna

def import_optuna():
    """``import optuna`` quietly; without it, one line saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UsageError(f"kfold tune needs Optuna, which is not installed: {INSTALL_HINT}") from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(out: str | Path) -> str:
    return f"sqlite:///{Path(out).resolve() / STUDY_DB}"


def open_storage(url: str):
    """An Optuna RDB storage; ``UsageError`` naming the URL when it cannot be opened."""
    optuna = import_optuna()
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None  # several drivers wait their turn
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except Exception as exc:  # noqa: BLE001 - sqlalchemy/driver errors of every kind mean: cannot open it
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            racing = any(word in first for word in ("locked", "UNIQUE constraint", "already exists"))
            if racing and attempt < 5:  # another driver is creating the same new database's tables right now
                time.sleep(0.5 * (attempt + 1))
                continue
            raise UsageError(f"{param('storage')}={url!r}: cannot open this Optuna storage ({type(exc).__name__}: {first})") from None
    raise AssertionError("unreachable")


def make_sampler(seed: int, trial_number: int):
    """TPE seeded from (seed, the number of the trial about to be asked): the same storage state gives the same
    sampled config, also after a resume."""
    optuna = import_optuna()
    state = int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=state, constant_liar=True)


def make_pruner(name: str, prune_after: int = 2):
    optuna = import_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=prune_after, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"{param('pruner')}={name!r}: must be one of {', '.join(PRUNERS)}")


def _counted(trial) -> bool:
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and trial.user_attrs.get("fail_kind") in COUNTED_FAILS)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(trial) -> bool:
    """A RUNNING trial whose driver died: same host and its process is gone (or no driver recorded for long)."""
    driver = trial.user_attrs.get("driver")
    if not isinstance(driver, dict):
        started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        return time.time() - started > STALE_AFTER_S
    if driver.get("host") != socket.gethostname():
        return False  # another machine's driver: it marks its own trials (or its re-run does)
    return driver.get("pid") != os.getpid() and not _pid_alive(int(driver.get("pid", 0)))


# ----------------------------------------------------------------------------- results

@dataclass
class TuneResult:
    """What a search produced: the table of every trial, the best config (a ``--config`` file's content)."""

    out: Path
    metric: str
    direction: str
    table: Any  # pandas DataFrame, one row per trial
    best_config: dict | None
    best_value: float | None
    best_trial: int | None
    study: Any = field(repr=False, default=None)
    files: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    submission: Path | None = None


STATE_WORDS = TuneDir.STATE_WORDS


def trials_table(study, space: SearchSpace, metric: str):
    """One row per trial: number, state, the metric, folds done, seconds, every searched field, reason, dir."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": STATE_WORDS.get(t.state.name, t.state.name.lower()),
               metric: t.value if t.state.name == "COMPLETE" else None,
               "folds_done": t.user_attrs.get("folds_done", 0),
               "seconds": None if t.user_attrs.get("seconds") is None else round(t.user_attrs["seconds"], 3)}
        for name in space.names:
            row[name] = t.params.get(name)
        row["partial_metric"] = t.user_attrs.get("partial_metric")
        row["reason"] = t.user_attrs.get("fail_reason", "")
        row["dir"] = t.user_attrs.get("dir", "")
        rows.append(row)
    columns = ["number", "state", metric, "folds_done", "seconds", *space.names, "partial_metric", "reason", "dir"]
    return pd.DataFrame(rows, columns=columns)


def top_trials(table, metric: str, direction: str, n: int):
    done = table[table["state"] == "complete"]
    return done.sort_values([metric, "number"], ascending=[direction == "minimize", True]).head(n)


def format_top(table, metric: str, direction: str, n: int = 5) -> str:
    top = top_trials(table, metric, direction, n)
    if top.empty:
        return "no trial completed"
    shown = top.drop(columns=["state", "reason", "dir", "partial_metric"])
    shown["seconds"] = shown["seconds"].map(lambda v: "" if v is None or v != v else f"{v:.1f}")
    counts = table["state"].value_counts()
    head = ", ".join(f"{counts[s]} {s}" for s in ("complete", "pruned", "failed", "running") if s in counts)
    return (f"top {len(top)} trials by {metric} ({direction}; {head}):\n"
            + shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _importances(study, space: SearchSpace) -> dict[str, float]:
    optuna = import_optuna()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    varied = [n for n in space.names if len({json.dumps(t.params.get(n)) for t in complete}) > 1]
    if len(complete) < 2 or not varied:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study, params=varied))
    except (RuntimeError, ValueError):  # too few distinct trials for the fANOVA forest
        return {}


def write_results(study, out: Path, space: SearchSpace, metric: str, direction: str, figures: bool = True) -> TuneResult:
    """trials.csv, best.json and (``figures``) the PNGs, written together; the result object."""
    from kfold.files.atomic import together, write_csv, write_json

    table = trials_table(study, space, metric)
    top = top_trials(table, metric, direction, 1)
    best = None
    if not top.empty:
        number = int(top.iloc[0]["number"])
        best = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    files = [out / TRIALS_CSV]
    with together():
        write_csv(out / TRIALS_CSV, table)
        if best is not None:
            write_json(out / BEST_JSON, best.user_attrs["config"])
            files.append(out / BEST_JSON)
        if figures and best is not None:
            from kfold.figures import plot_metric_vs_params, plot_optimization_history, plot_param_importances

            plot_optimization_history(table, metric, direction, out / FIGURES[0])
            importances = _importances(study, space)
            if importances:
                plot_param_importances(importances, metric, out / FIGURES[1])
            plot_metric_vs_params(table, space.names, metric, out / FIGURES[2],
                                  log=tuple(p.name for p in space.params if p.kind == "log_uniform" or p.log))
            files += [out / FIGURES[0], *([out / FIGURES[1]] if importances else []), out / FIGURES[2]]
    return TuneResult(out, metric, direction, table, None if best is None else best.user_attrs["config"],
                      None if best is None else best.value, None if best is None else best.number, study, files)


# ----------------------------------------------------------------------------- the driver

class _Pruned(Exception):
    """Raised out of a backend when the pruner stops a trial between folds."""


class _FoldReporter:
    """Scores each finished fold on its validation rows and reports them to the trial in fold order."""

    def __init__(self, trial, run: RunDir, fold_list: list[int], metric: str, num_classes: int, prune: bool):
        self.trial, self.run, self.fold_list, self.metric = trial, run, fold_list, metric
        self.num_classes, self.prune = num_classes, prune
        self.scores: dict[int, float] = {}
        self.reported = 0

    def fold_done(self, fold: int) -> None:
        from kfold.files.probs import read_probs
        from kfold.scoring.metrics import score

        part = read_probs(self.run.fold_oof(fold))
        self.scores[fold] = score(self.metric, part.labels, part.probs, self.num_classes)
        while self.reported < len(self.fold_list) and self.fold_list[self.reported] in self.scores:
            f = self.fold_list[self.reported]
            self.reported += 1
            if not math.isnan(self.scores[f]):
                self.trial.report(self.scores[f], step=f)
            if self.prune and self.reported < len(self.fold_list) and self.trial.should_prune():
                raise _Pruned(f)


@dataclass
class _Live:
    trial: Any
    run: RunDir
    cfg: TrainConfig
    reporter: _FoldReporter
    start: float
    refs: dict = field(default_factory=dict)  # Ray object ref -> fold


def _oof_score(run: RunDir, folds: Sequence[int], metric: str, num_classes: int) -> tuple[float, int]:
    """The metric on the out-of-fold rows of ``folds`` (finished ones), and how many folds that was."""
    from kfold.files.probs import read_probs
    from kfold.scoring.metrics import score

    parts = [read_probs(run.fold_oof(f)) for f in folds if run.is_done(f)]
    if not parts:
        return float("nan"), 0
    labels = np.concatenate([p.labels for p in parts])
    probs = np.concatenate([p.probs for p in parts])
    if labels.ndim == 2 and metric != "mean-auc":  # tags: scored at the thresholds chosen on these rows
        from kfold.scoring.multilabel import search_thresholds

        return float(search_thresholds(labels, probs, metric)["score"]), len(parts)
    return float(score(metric, labels, probs, num_classes)), len(parts)


class _TrialBackend(LocalBackend):
    """A trial's folds one after another here, each reported to the pruner as it finishes (which may stop the trial
    between folds). The trial's config was checked when it was sampled (``_Driver.start``), so ``check`` does not
    build the model again."""

    def __init__(self, reporter: "_FoldReporter", echo: Callable[[str], None]):
        super().__init__(echo=echo)
        self.reporter = reporter

    def check(self, cfg, task, spec, device) -> None:
        pass

    def train_folds(self, jobs, task) -> None:
        from kfold.nn.fold import train_fold

        for job in jobs:
            meta = train_fold(job, task)  # its header line printed, as every trial's
            acc = meta.get("val_accuracy")
            self.echo(f"fold {job.fold} done in {meta['seconds']:.1f}s" + ("" if acc is None else f", val_acc {acc:.4f}"))
            self.reporter.fold_done(int(job.fold))


class _Driver:
    def __init__(self, study, *, space: SearchSpace, base: dict, task: Task, task_spec: TaskSpec, out: Path,
                 preset: str | None, k: int, seed: int, fold_list: list[int], metric: str, trials: int,
                 timeout: float | None, prune: bool, device: str, threads: int | None, progress: bool, backend,
                 trials_in_parallel: int, echo: Callable[[str], None], tracker=None):
        self.tracker = tracker
        self.study, self.space, self.base, self.task, self.spec, self.out = study, space, base, task, task_spec, out
        self.preset, self.k, self.seed, self.fold_list, self.metric = preset, k, seed, fold_list, metric
        self.trials, self.deadline = trials, None if timeout is None else time.monotonic() + timeout
        self.prune, self.device, self.threads, self.progress = prune, device, threads, progress
        self.backend, self.parallel, self.echo = backend, trials_in_parallel, echo
        self.driver = {"host": socket.gethostname(), "pid": os.getpid()}
        self.storage = study._storage

    # -- bookkeeping
    def recover_stale(self) -> None:
        """Trials left RUNNING by a driver that died: failed ('interrupted'), their configs queued again."""
        optuna = import_optuna()
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not _stale(t):
                continue
            self.storage.set_trial_user_attr(t._trial_id, "fail_kind", "interrupted")
            self.storage.set_trial_user_attr(t._trial_id, "fail_reason", "its driver stopped; re-run as a new trial")
            try:
                self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another driver got there first
            self._requeue(t.params, t.number, t.user_attrs.get("dir"))
            self.echo(f"trial {t.number}: its driver stopped while it ran; queued again")

    def _requeue(self, params: dict, number: int, directory: str | None) -> None:
        attrs = {"rerun_of": number, **({"dir": directory} if directory else {})}
        self.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)

    def _taken(self) -> int:
        from optuna.trial import TrialState

        return sum(1 for t in self.study.get_trials(deepcopy=False) if _counted(t) or t.state == TrialState.RUNNING)

    def can_ask(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        return self._taken() < self.trials

    def ask(self) -> Any | None:
        """The next trial, or None when the study already holds ``trials`` (another driver asked first)."""
        from optuna.trial import TrialState

        self.study.sampler = make_sampler(self.seed, len(self.study.get_trials(deepcopy=False)))
        trial = self.study.ask()
        trial.set_user_attr("driver", self.driver)
        ahead = sum(1 for t in self.study.get_trials(deepcopy=False)
                    if t.number < trial.number and (_counted(t) or t.state == TrialState.RUNNING))
        if ahead >= self.trials:  # two drivers asked at once for the last trial: this one stands down
            trial.set_user_attr("fail_kind", "surplus")
            trial.set_user_attr("fail_reason", "the study already held --trials trials when it was asked")
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def fail(self, trial, kind: str, reason: str, start: float | None = None) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("fail_kind", kind)
        trial.set_user_attr("fail_reason", reason[:500])
        if start is not None:
            trial.set_user_attr("seconds", time.perf_counter() - start)
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def interrupted(self, live: list[_Live]) -> None:
        for item in live:
            self.fail(item.trial, "interrupted", "interrupted (Ctrl-C); queued again", item.start)
            self._requeue(item.trial.params, item.trial.number, str(item.run.path))

    def _params_text(self, trial) -> str:
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())

    def start(self, trial) -> _Live | None:
        """Sample the trial's config and prepare its run; a config that fails validation fails the trial."""
        start = time.perf_counter()
        values = {p.name: p.suggest(trial) for p in self.space.params}
        directory = trial.user_attrs.get("dir") or str(TuneDir(self.out).trial(trial.number))
        run = RunDir(directory)
        if "rerun_of" not in trial.user_attrs and run.is_run():
            self.fail(trial, "error", f"{run.path} already holds a run", start)
            raise DataError(f"{run.path}: already holds a run that study {self.study.study_name!r} does not know "
                            f"(a deleted study.db?); use a new {param('out')} directory")
        self.echo(f"\n== trial {trial.number}: {self._params_text(trial)}")
        try:
            cfg = trial_config(self.base, values)
            if self.backend is None:
                from kfold.nn.checks import check_model_fits

                check_model_fits(cfg, self.task.num_classes, self.task.image_shape, f"{param('data')}={self.spec.data}",
                                 channels=self.task.channels)
        except UsageError as exc:
            self.fail(trial, "invalid_config", str(exc), start)
            self.echo(f"trial {trial.number} failed: {exc}")
            return None
        trial.set_user_attr("dir", str(run.path))  # a trial whose config failed has none
        trial.set_user_attr("config", cfg.to_dict())
        reporter = _FoldReporter(trial, run, self.fold_list, self.metric, self.task.num_classes, self.prune)
        return _Live(trial, run, cfg, reporter, start)

    def start_or_requeue(self, trial) -> _Live | None:
        """``start``; Ctrl-C while it samples or checks: the trial is failed and queued again."""
        try:
            return self.start(trial)
        except KeyboardInterrupt:
            self.fail(trial, "interrupted", "interrupted (Ctrl-C) before training; queued again")
            self._requeue(trial.params, trial.number, trial.user_attrs.get("dir"))
            raise

    def finish(self, live: _Live, pruned_after: int | None = None) -> None:
        from optuna.trial import TrialState

        summarize(live.run, self.task, self.k, live.cfg, preset=self.preset, seed=self.seed)
        value, done = _oof_score(live.run, self.fold_list, self.metric, self.task.num_classes)
        live.trial.set_user_attr("folds_done", done)
        live.trial.set_user_attr("seconds", time.perf_counter() - live.start)
        if pruned_after is not None:
            live.trial.set_user_attr("partial_metric", None if math.isnan(value) else value)
            self.study.tell(live.trial, state=TrialState.PRUNED)
            self.echo(f"trial {live.trial.number} pruned after fold {pruned_after} ({done}/{len(self.fold_list)} "
                      f"folds, {self.metric} {value:.4f} on their rows)")
        else:
            self.study.tell(live.trial, value)
            self.echo(f"trial {live.trial.number}: {self.metric} {value:.4f} ({done} folds, "
                      f"{time.perf_counter() - live.start:.1f}s)")
        if self.tracker:  # the trial's run, folds, state and objective, from its files and the study
            self.tracker.trial_done(self.out, self.study.get_trials(deepcopy=False)[live.trial.number])

    def _done_before(self, live: _Live) -> list[int]:
        """Folds already finished in the trial's directory (a re-run of an interrupted trial): reported first."""
        done = [f for f in self.fold_list if live.run.is_done(f)] if live.run.is_run() else []
        for fold in done:
            live.reporter.fold_done(fold)
        return done

    # -- local: one trial at a time, its folds one after another in this process
    def run_local(self) -> None:
        while self.can_ask():
            trial = self.ask()
            if trial is None:
                break
            live = self.start_or_requeue(trial)
            if live is None:
                continue
            try:
                self._train_local(live)
            except _Pruned as pruned:
                self.finish(live, pruned_after=int(pruned.args[0]))
            except KeyboardInterrupt:
                self.interrupted([live])
                raise
            except UsageError as exc:  # a sampled config a fold refuses (e.g. more rows per batch than it has)
                self.fail(live.trial, "invalid_config", str(exc), live.start)
                self.echo(f"trial {live.trial.number} failed: {exc}")
            except BaseException as exc:
                self.fail(live.trial, "error", f"{type(exc).__name__}: {exc}", live.start)
                raise
            else:
                self.finish(live)

    def _train_local(self, live: _Live) -> None:
        self._done_before(live)
        request = RunRequest(live.cfg, self.spec, preset=self.preset, k=self.k, seed=self.seed, folds=self.fold_list,
                             device=self.device, threads=self.threads, resume="rerun_of" in live.trial.user_attrs,
                             progress=self.progress)
        train_run(request, self.task, live.run, backend=_TrialBackend(live.reporter, self.echo), echo=self.echo)

    # -- Ray: several trials at once, every fold a Ray task
    def run_ray(self) -> None:
        from kfold.flows.training import fold_jobs, prepare_run

        backend = self.backend
        threads = backend.options.threads(self.threads)
        live: dict[int, _Live] = {}
        try:
            while True:
                while len(live) < self.parallel and self.can_ask():
                    trial = self.ask()
                    if trial is None:
                        break
                    item = self.start_or_requeue(trial)
                    if item is None:
                        continue
                    try:
                        prepare_run(item.run, item.cfg, self.task, preset=self.preset, k=self.k, seed=self.seed,
                                    data=self.spec.data, resume="rerun_of" in item.trial.user_attrs, threads=threads)
                        done = self._done_before(item)
                    except _Pruned as pruned:
                        self.finish(item, pruned_after=int(pruned.args[0]))
                        continue
                    todo = [f for f in self.fold_list if f not in done]
                    if not todo:
                        self.finish(item)
                        continue
                    jobs = fold_jobs(item.run, item.cfg, self.spec, todo, k=self.k, seed=self.seed, preset=self.preset,
                                     device=self.device, threads=threads, resume="rerun_of" in item.trial.user_attrs,
                                     progress=False)
                    item.refs = dict(zip(backend.submit(jobs), todo))
                    live[trial.number] = item
                if not live:
                    break
                owner = {ref: number for number, item in live.items() for ref in item.refs}
                ready, _ = backend.ray.wait(list(owner), num_returns=1)
                for ref in ready:
                    item = live[owner[ref]]
                    fold = item.refs.pop(ref)
                    try:
                        result = backend.get(ref)
                        acc = result.get("val_accuracy")
                        self.echo(f"trial {item.trial.number} fold {fold} finished on {result['node']} in "
                                  f"{result['seconds']:.1f}s" + ("" if acc is None else f", val_acc {acc:.4f}")
                                  + (" (retried after a lost worker)" if result.get("retry") else ""))
                        item.reporter.fold_done(fold)
                    except _Pruned as pruned:
                        self._cancel(item)
                        del live[owner[ref]]
                        self.finish(item, pruned_after=int(pruned.args[0]))
                        continue
                    except UsageError as exc:
                        self._cancel(item)
                        del live[owner[ref]]
                        self.fail(item.trial, "invalid_config", str(exc), item.start)
                        self.echo(f"trial {item.trial.number} failed: {exc}")
                        continue
                    if not item.refs:
                        del live[owner[ref]]
                        self.finish(item)
        except KeyboardInterrupt:
            for item in live.values():
                self._cancel(item)
            self.interrupted(list(live.values()))
            raise
        except BaseException as exc:
            for item in live.values():
                self._cancel(item)
                self.fail(item.trial, "error", f"{type(exc).__name__}: {exc}", item.start)
            raise

    def _cancel(self, item: _Live) -> None:
        for ref in list(item.refs):
            try:
                self.backend.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        item.refs.clear()


def _study_settings(metric: str, direction: str, preset: str | None, k: int, seed: int, folds: list[int],
                    fingerprint: str, base: dict, space: SearchSpace) -> dict:
    return {"metric": metric, "direction": direction, "preset": preset, "k": k, "seed": seed, "folds": folds,
            "fingerprint": fingerprint, "base": base, "space": space.to_json()}


def open_study(storage, name: str, settings: dict, where: str):
    """Create the study, or load it and refuse when it was made with other settings (metric, direction, data ...)."""
    optuna = import_optuna()
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage)
        saved = study.user_attrs.get("kfold")
        if not isinstance(saved, dict):
            raise UsageError(f"{where}: study {name!r} was not created by kfold tune; choose another {param('out')} or {param('storage')}")
        if study.direction.name.lower() != settings["direction"]:
            raise UsageError(f"{where}: study {name!r} was created to {study.direction.name.lower()} "
                             f"{saved.get('metric')!r}; this command would {settings['direction']} {settings['metric']!r}; "
                             f"use a new {param('out')} for another metric")
        differ = [key for key in STUDY_KEYS if json.dumps(saved.get(key), sort_keys=True) != json.dumps(settings[key], sort_keys=True)]
        if differ:
            shown = "; ".join(f"{key}: {_short(saved.get(key))} in the study, {_short(settings[key])} now" for key in differ)
            raise UsageError(f"{where}: study {name!r} was created with other settings ({shown}); "
                             f"use a new {param('out')} directory for a new search")
        return study, False
    study = optuna.create_study(storage=storage, study_name=name, direction=settings["direction"], load_if_exists=True)
    if "kfold" not in study.user_attrs:
        study.set_user_attr("kfold", settings)
    elif json.dumps(study.user_attrs["kfold"], sort_keys=True) != json.dumps(settings, sort_keys=True):
        raise UsageError(f"{where}: study {name!r} was just created by another driver with other settings; "
                         f"use a new {param('out')} directory")  # two drivers with different settings started together
    return study, True


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def study_name(out: str | Path) -> str:
    """The study's name: the --out folder's name."""
    return Path(out).resolve().name or "kfold-tune"


def tune(base: TrainConfig, task: Task, out: str | Path, *, task_spec: TaskSpec, trials: int, preset: str | None = None,
         space: SearchSpace | None = None, fixed: Sequence[str] = (), metric: str | None = None, k: int = 5,
         seed: int = 0, folds: str | Sequence[int] | None = None, timeout: float | None = None,
         pruner: str = "median", prune_after: int = 2, storage: str | None = None, device: str = "auto",
         threads: int | None = None, progress: bool = True, backend=None, trials_in_parallel: int = 1,
         ensemble_top: int | None = None, echo: Callable[[str], None] = print, tracker=None) -> TuneResult:
    """Search ``space`` (default: the preset family's, without the ``fixed`` fields) around ``base`` with
    ``trials`` k-fold runs in ``out``; re-running continues the study. Returns the table and the best config.
    ``tracker`` (``kfold.flows.tracking.open_tracker``) logs each trial as it ends and the study at the end."""
    from kfold.files.folds import check_k

    if isinstance(backend, LocalBackend):  # a local backend object: the trials train here, as with None
        backend = None
    out = Path(out)
    check_k(k)
    fold_list = parse_fold_list(folds, k)
    for name, value, low in (("trials", trials, 1), ("prune_after", prune_after, 0), ("trials_in_parallel", trials_in_parallel, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{name}={value!r}: must be an integer >= {low}")
    if timeout is not None and (not _is_number(timeout) or timeout <= 0):
        raise UsageError(f"timeout={timeout!r}: must be a positive number of seconds")
    if ensemble_top is not None and (isinstance(ensemble_top, bool) or not isinstance(ensemble_top, int) or ensemble_top < 1):
        raise UsageError(f"ensemble_top={ensemble_top!r}: must be an integer >= 1")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads={threads!r}: must be an integer >= 1")
    if ensemble_top is not None and len(fold_list) < k:
        raise UsageError(f"ensemble_top needs every fold of each trial; folds={folds!r} trains {len(fold_list)} of {k}")
    if trials_in_parallel > 1 and backend is None:
        raise UsageError(f"trials_in_parallel={trials_in_parallel} needs the Ray backend")
    if space is None:
        space = default_space(base, fixed)
    else:
        clash = [name for name in space.names if name in set(fixed)]
        if clash:
            raise UsageError(f"{space.origin}: searches {clash[0]!r}, which the command line also fixes; drop one of them")
    if not space.params:
        raise UsageError(f"{space.origin}: nothing left to search")
    check_space(space, base)
    check_task(task, task_spec.data)
    if ensemble_top is not None and not task.has_test:
        raise UsageError(f"{param('ensemble_top')} ensembles test predictions, but {task_spec.data} has no test set "
                         "(training data alone); the search itself needs none")
    metric = objective_metric(task, metric)
    from kfold.scoring.metrics import get_metric

    direction = get_metric(metric).direction
    import_optuna()  # one error line before anything is written when Optuna is missing
    pruner_obj = make_pruner(pruner, prune_after)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{param('out')}={str(out)!r}: exists and is not a directory")
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs

    guard_outputs([out], data_inputs(task_spec.data), root=out.parent, error=UsageError)  # not the data, no link
    if RunDir(out).config.exists():
        raise UsageError(f"{param('out')}={str(out)!r}: holds a training run, not a search; choose another {param('out')}")
    url = storage or default_storage(out)
    if storage is not None:
        store = open_storage(url)  # a bad URL is named before anything is created
    else:
        out.mkdir(parents=True, exist_ok=True)
        store = open_storage(url)
    settings = _study_settings(metric, direction, preset, k, seed, fold_list, task.fingerprint(), base.to_dict(), space)
    name = study_name(out)
    study, created = open_study(store, name, settings, f"{param('storage')}={url!r}" if storage else str(out / STUDY_DB))
    study.pruner = pruner_obj
    out.mkdir(parents=True, exist_ok=True)
    echo(f"study {name!r} in {url}: {'new' if created else 'continued'}, {metric} ({direction}), "
         f"{len(space.params)} fields searched, {trials} trials" + (f" or {timeout:g}s" if timeout else ""))
    driver = _Driver(study, space=space, base=base.to_dict(), task=task, task_spec=task_spec, out=out, preset=preset,
                     k=k, seed=seed, fold_list=fold_list, metric=metric, trials=trials, timeout=timeout,
                     prune=pruner != "none", device=device, threads=threads, progress=progress, backend=backend,
                     trials_in_parallel=trials_in_parallel, echo=echo, tracker=tracker)
    driver.recover_stale()
    try:
        driver.run_local() if backend is None else driver.run_ray()
    except KeyboardInterrupt:
        write_results(study, out, space, metric, direction, figures=False)
        raise KeyboardInterrupt(f"interrupted; the study {name!r} is consistent: re-run the same command to continue") from None
    result = write_results(study, out, space, metric, direction)
    if tracker:
        tracker.tune_done(out)  # every trial (failed ones too) and the study's files
    result.lines.append(format_top(result.table, metric, direction))
    if result.best_trial is not None:
        best_dir = study.trials[result.best_trial].user_attrs.get("dir")
        result.lines.append(f"best: trial {result.best_trial} ({best_dir}), {metric} {result.best_value:.4f}; "
                            f"its config: {out / BEST_JSON}")
        result.lines.append(f"train it:  kfold train --data {task_spec.data} --config {out / BEST_JSON} --k {k} "
                            f"--seed {seed}" + (f" --threads {threads}" if threads else "") + " --out runs/tuned")
    if ensemble_top is not None:
        result.submission = ensemble_best(result, task, task_spec, ensemble_top, seed=seed, device=device,
                                          threads=threads, backend=backend, echo=echo)
    return result


def ensemble_best(result: TuneResult, task: Task, task_spec: TaskSpec, n: int, *, seed: int, device: str,
                  threads: int | None, backend=None, echo: Callable[[str], None] = print) -> Path | None:
    """The mean of the best ``n`` complete trials' test probabilities as ``OUT/ensemble-topN.csv`` and, when the
    competition has a solution file, its local leaderboard line (appended to ``result.lines``)."""
    from kfold.files.rundir import PredDir
    from kfold.flows.ensembling import make_submission

    top = top_trials(result.table, result.metric, result.direction, n)
    if top.empty:
        result.lines.append("--ensemble-top: no complete trial to ensemble")
        return None
    runs = [RunDir(d) for d in top["dir"]]
    incomplete = [str(r.path) for r in runs if not r.oof.is_file()]
    if incomplete:
        raise UsageError(f"{param('ensemble_top')} needs every fold of the trials; {incomplete[0]} trained only some ({param('folds')})")
    probs = PredDir(result.out / "ensemble" / "probs")
    echo(f"\n== predict the top {len(runs)} trials: {probs.path}")
    if backend is None:
        with LocalBackend(echo=echo) as local:
            local.predict(runs, task, probs.path, spec=task_spec, device=device, threads=threads)
    else:  # Ray: each run a task; no line of its own here (as the trials' folds)
        backend.predict(runs, task, probs.path, spec=task_spec, device=device, threads=threads, echo=lambda _: None)
    target = result.out / f"ensemble-top{n}.csv"
    made = make_submission([probs.mean(r.name) for r in runs], target, method="mean", seed=seed,
                           sample=task.sample_submission)
    line = f"ensemble of the top {len(runs)} trials ({', '.join(r.name for r in runs)}): {made.submission}"
    if task.solution is not None:
        from kfold.scoring.leaderboard import leaderboard, read_solution

        row = leaderboard([made.submission], read_solution(task.solution), seed=seed).iloc[0]
        line += f"; local Public {row['public']:.4f}, Private {row['private']:.4f}"
    result.lines.append(line)
    return made.submission
