"""A run's nested config as a tracker's flat parameters and its summary as metrics, shared by the MLflow and the W&B tracker (below both, and
below ``kfold.flows.tracking``, which opens them: no import cycle)."""
from __future__ import annotations

import json
import math
from typing import Any

from kfold.files.rundir import safe_name

__all__ = ["MAX_TEXT", "finite_number", "flatten", "summary_metrics"]

MAX_TEXT = 6000  # MLflow 3's longest parameter value


def flatten(value: Any, prefix: str = "", *, text: bool = True) -> dict[str, Any]:
    """A nested config as flat tracker parameters with ``model_kwargs.width`` style keys: JSON text values (MLflow's
    parameters, at most 6000 characters), or the values themselves with ``text=False`` (W&B's config, whose numbers
    then sort and filter as numbers).

    Parameters
    ----------
    value : dict
        The config (``config.json``'s ``config``).
    prefix : str, default ""
        Prepended to every key (used by the recursion).
    text : bool, default True
        JSON text values (MLflow) or the values as they are (W&B).

    Returns
    -------
    dict
        One key per leaf.

    Examples
    --------
    >>> flatten({"lr": 0.1, "model_kwargs": {"width": 16}, "aug": None})
    {'lr': '0.1', 'model_kwargs.width': '16', 'aug': 'null'}
    >>> flatten({"lr": 0.1, "model_kwargs": {"width": 16}, "sizes": [1, 2]}, text=False)
    {'lr': 0.1, 'model_kwargs.width': 16, 'sizes': [1, 2]}
    """
    out: dict[str, Any] = {}
    if isinstance(value, dict) and (value or not prefix):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}.", text=text))
        return out
    if not text:
        out[prefix[:-1]] = value
        return out
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    out[prefix[:-1]] = shown[:MAX_TEXT]
    return out


def summary_metrics(summary: dict) -> tuple[dict[str, float | None], dict[str, str]]:
    """A run's ``summary.json`` as tracker metrics (out-of-fold scores, train seconds, folds done, each fold's kept
    epoch and validation accuracy; ``oof_<metric>`` for the competition's metric) and the code's identity.

    Examples
    --------
    >>> metrics, code = summary_metrics({"oof_score": 0.9, "metric": "accuracy", "folds_done": 2,
    ...                                  "folds": [{"fold": 0, "best_epoch": 3, "val_accuracy": 0.8}],
    ...                                  "code": {"kfold": "1.0", "git_commit": "abc"}})
    >>> metrics["oof_accuracy"], metrics["kept_epoch.0"], metrics["train_seconds"], code["version"]
    (0.9, 3.0, None, '1.0')
    """
    metrics: dict[str, float | None] = {}
    for name in ("oof_score", "oof_accuracy", "oof_accuracy_last_epoch", "oof_logloss", "train_seconds", "folds_done"):
        metrics[name] = finite_number(summary.get(name))
    if summary.get("metric") and summary.get("oof_score") is not None:
        metrics[f"oof_{safe_name(str(summary['metric']))}"] = finite_number(summary["oof_score"])
    for row in summary.get("folds", []):
        metrics[f"kept_epoch.{row['fold']}"] = finite_number(row.get("best_epoch"))
        metrics[f"val_accuracy.{row['fold']}"] = finite_number(row.get("val_accuracy"))
    code = summary.get("code") or {}
    return metrics, {"version": str(code.get("kfold", "")), "git_commit": str(code.get("git_commit", ""))}


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, else None (a tracker logs no NaN, infinity or text as a metric).

    >>> finite_number("0.5"), finite_number(float("nan")), finite_number(None)
    (0.5, None, None)
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
