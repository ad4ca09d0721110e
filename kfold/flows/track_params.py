"""A run's nested config as a tracker's flat parameters, shared by the MLflow and the W&B tracker (below both, and
below ``kfold.flows.tracking``, which opens them: no import cycle)."""
from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_TEXT", "flatten"]

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
