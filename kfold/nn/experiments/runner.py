"""The typed function under ``mnist_mix.py``: one MNIST-MIX experiment, its tables returned (and written)."""
from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import torch

from kfold.errors import UsageError
from kfold.nn.experiments.common import Experiment, check_models, load_experiment_task
from kfold.nn.inference import resolve_device

QUICK_EPOCHS = 1
# experiment -> (module, runner function)
RUNNERS = {"compare": ("compare", "run_compare"), "roundrobin": ("schedules", "run_roundrobin"),
           "transfer": ("transfer", "run_transfer"), "sequential": ("schedules", "run_sequential")}


def run_experiment(experiment: str, data: str, out: str | Path, *, models: list[str] | None = None,
                   languages: list[str] | None = None, device: str = "auto", seed: int = 0, epochs: int | None = None,
                   rounds: int | None = None, quick: bool = False, threads: int | None = None, progress: bool = True,
                   command: str = "", backend=None) -> dict[str, pd.DataFrame]:
    """Run one of the four MNIST-MIX report experiments into ``out``; returns its tables by title.

    ``backend`` (a ``kfold.flows.ray_backend.RayBackend``) trains every model as a Ray task; the tables and figures
    are written here."""
    if experiment not in RUNNERS:
        raise UsageError(f"unknown experiment {experiment!r}; available: {', '.join(RUNNERS)}")
    out = Path(out)
    module_name, runner_name = RUNNERS[experiment]
    module = importlib.import_module(f"kfold.nn.experiments.{module_name}")
    models = check_models(models or (module.QUICK_MODELS if quick else module.DEFAULT_MODELS))
    task = load_experiment_task(data, languages, module.LABEL_MODE, quick=quick, seed=seed)
    if experiment != "compare" and len(task.group_names) < 2:
        raise UsageError(f"{experiment} needs at least 2 languages; {data} gives {', '.join(task.group_names)}")
    device = resolve_device(device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    default = QUICK_EPOCHS if quick else None
    exp = Experiment(task, out, device, seed=seed, epochs=epochs or default, progress=progress, command=command,
                     backend=backend, threads=threads)
    out.mkdir(parents=True, exist_ok=True)
    options = {"rounds": rounds or default} if experiment == "roundrobin" else {}
    print(f"{experiment}: {', '.join(models)} on {task.source}; device {device}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return getattr(module, runner_name)(exp, models, **options)
    finally:  # a process-wide setting: leave it as found (in-process callers, tests)
        torch.set_num_threads(before)
        if backend is not None:
            backend.close()
