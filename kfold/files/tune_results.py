"""``kfold tune``'s result files read as strictly as a run's: ``trials.csv`` and ``best.json``. Torch-free.

Read by ``kfold report`` (a search's section) and by a resumed search before it continues: a damaged file is one
``DataError`` naming the file, row and column, never a wrong report or a search continued on a fake trial.

* ``trials.csv``: the columns ``number, state, METRIC, folds_done, seconds, <searched fields>, partial_metric,
  reason, dir``; METRIC a metric kfold knows; ``number`` whole and unique; ``state`` one of the states kfold
  writes; scores (METRIC, ``partial_metric``) finite and in the metric's range (accuracy in [0, 1], log loss
  >= 0, qwk in [-1, 1] ...); a complete trial has its score; ``folds_done`` and ``seconds`` not negative.
* ``best.json``: a JSON object (a config), present exactly when a trial completed, whose searched fields are
  those of the best complete trial (by the metric's direction, ties to the lower number).
"""
from __future__ import annotations

import json
import math

from kfold.errors import DataError
from kfold.files.rundir import TuneDir, read_table

__all__ = ["read_results", "read_trials", "read_best"]


def read_trials(tune: TuneDir):
    """``tune.trials_csv`` (``tune``: a ``kfold.files.rundir.TuneDir``; a folder is taken as one) as a checked DataFrame; its metric's name
    is ``table.attrs["metric"]``."""
    from kfold.metrics import METRICS, score_range

    tune = tune if isinstance(tune, TuneDir) else TuneDir(tune)
    path = tune.trials_csv
    columns = [str(c) for c in read_table(path, {}, allow_empty=True).columns]
    if len(columns) < 5 or columns[:2] != ["number", "state"] or columns[3:5] != ["folds_done", "seconds"]:
        raise DataError(f"{path}: columns {', '.join(columns[:5])} ...: not a kfold tune trials table "
                        "(number, state, METRIC, folds_done, seconds, ...)")
    metric = columns[2]
    if metric not in METRICS:
        raise DataError(f"{path}: column 3 is {metric!r}, not a metric kfold knows ({', '.join(METRICS)})")
    table = read_table(path, {"number": "count", "state": "text", metric: "number?", "folds_done": "count",
                              "seconds": "number?"}, {"partial_metric": "number?"}, allow_empty=True,
                       text=("state",) + tuple(c for c in columns[5:] if c != "partial_metric"))
    states = table["state"].astype(str)
    _refuse(path, table, "state", ~states.isin(tune.STATES), f"is not one of {', '.join(tune.STATES)}")
    low, high = score_range(metric)
    for column in (metric, "partial_metric"):
        if column in table.columns:
            values = table[column]
            _refuse(path, table, column, values.notna() & ((values < low) | (values > high)),
                    f"is not {_A_SCORE.get(metric, f'a {metric} score')} (one lies in [{low:g}, {high:g}])")
    _refuse(path, table, "seconds", table["seconds"] < 0, "is not a number of seconds (negative)")
    missing = (states == "complete") & table[metric].isna()
    if missing.any():
        row = int(missing.to_numpy().argmax())
        raise DataError(f"{path}: row {row + 2}, column '{metric}': a complete trial without its score")
    twice = table["number"].duplicated()
    if twice.any():
        row = int(twice.to_numpy().argmax())
        raise DataError(f"{path}: row {row + 2}, column 'number': trial {int(table['number'].iloc[row])} appears twice")
    table.attrs["metric"] = metric
    return table


_A_SCORE = {"accuracy": "an accuracy", "macro-f1": "a macro-F1 score", "qwk": "a QWK score", "logloss": "a log loss",
            "auc": "an AUC"}


def _refuse(path, table, column: str, bad, what: str) -> None:
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{path}: row {row + 2}, column '{column}': {table[column].iloc[row]!r} {what}")


def searched_fields(table) -> list[str]:
    """The searched fields: the columns between ``seconds`` and ``partial_metric``."""
    columns = list(table.columns)
    end = columns.index("partial_metric") if "partial_metric" in columns else len(columns)
    return [c for c in columns[5:end] if c not in ("reason", "dir")]


def read_best(tune, table) -> dict | None:
    """``tune.best_json``: None when no trial completed (and there is no file); else the config, which must be the
    best complete trial's (each searched field of ``table``'s best complete row)."""
    from kfold.metrics import METRICS

    path = tune.best_json
    metric = table.attrs["metric"]
    done = table[table["state"].astype(str) == "complete"]
    if not path.is_file():
        if len(done):
            raise DataError(f"{path}: missing, but {tune.trials_csv} has {len(done)} complete trial(s) "
                            f"(row {int(done.index[0]) + 2} first); a search writes both together")
        return None
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    if not isinstance(best, dict):
        raise DataError(f"{path}: not a JSON object (a config: field -> value)")
    if done.empty:
        raise DataError(f"{path}: {tune.trials_csv} has no complete trial, so there is no best trial for it to be")
    order = done.sort_values([metric, "number"], ascending=[not METRICS[metric].greater_is_better, True])
    row = order.index[0]
    for field in searched_fields(table):
        have, want = _field(best, field), done.loc[row, field]
        if not _same(have, want):
            raise DataError(f"{path}: field {field!r} is {have!r}, but the best complete trial ({tune.trials_csv} row "
                            f"{int(row) + 2}, trial {int(done.loc[row, 'number'])}, {metric} "
                            f"{float(done.loc[row, metric]):.6g}) has {want!r} in column {field!r}: not the best "
                            "trial's config")
    return best


def _field(config: dict, name: str):
    if name.startswith("model_kwargs."):
        options = config.get("model_kwargs")
        return options.get(name.split(".", 1)[1]) if isinstance(options, dict) else None
    return config.get(name)


def _same(have, want) -> bool:
    """A best.json value and the trials.csv cell of the same field (read back by pandas) agree."""
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return have is None
    if isinstance(have, bool) or isinstance(want, bool):
        return str(have).lower() == str(want).lower()
    if isinstance(have, (int, float)):
        try:
            return math.isclose(float(have), float(want), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return str(have) == str(want)


def read_results(tune) -> tuple:
    """``(trials table, best config or None)`` of a ``TuneDir`` (or a folder): both files checked and checked
    against each other."""
    tune = tune if isinstance(tune, TuneDir) else TuneDir(tune)
    table = read_trials(tune)
    return table, read_best(tune, table)
