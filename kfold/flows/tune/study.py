"""The study of ``kfold tune``: the objective metric, Optuna (storage, sampler, pruner, trial states), the study's
settings, and the results (``trials.csv``, ``best.json``, figures)."""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kfold.data.task import Task
from kfold.errors import UsageError, param
from kfold.files.rundir import TuneDir
from kfold.flows.tune.space import SearchSpace

INSTALL_HINT = "pip install -e '.[tune]'"
PRUNERS = ("median", "halving", "none")
STUDY_DB, TRIALS_CSV, BEST_JSON = TuneDir.STUDY_DB, TuneDir.TRIALS_CSV, TuneDir.BEST_JSON
FIGURES = TuneDir.FIGURES  # the names live in files/rundir.py: the report reads them too
STALE_AFTER_S = 120.0  # a RUNNING trial without a recorded driver is stale after this long
STUDY_KEYS = ("metric", "direction", "preset", "k", "seed", "folds", "fingerprint", "base", "space")
COUNTED_FAILS = ("invalid_config",)  # failed trials that count towards --trials (the others are re-run)


# ----------------------------------------------------------------------------- the metric

def objective_metric(task: Task, metric: str | None = None) -> str:
    """The metric a search optimizes: ``metric`` when given, else the competition's default (accuracy); checked
    against the competition's target and classes exactly as ``kfold run`` checks it (``kfold.metrics.check_metric``:
    ``qwk`` on class names, a probability metric on a label target are refused)."""
    from kfold.metrics import check_metric

    schema = getattr(task, "schema", None)
    name = metric or (schema.metric if schema is not None else None) or "accuracy"
    if schema is None:
        check_metric(name, "label", list(getattr(task, "class_names", ())) or ["0", "1"])
    else:
        check_metric(name, schema.target, schema.classes, f"{param('metric')}={name!r}")
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



# ----------------------------------------------------------------------------- the study

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

