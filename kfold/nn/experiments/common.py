"""What every MNIST-MIX experiment shares: the task, per-model configs, training epochs without
validation, test accuracy per language, and the ``summary.md`` header.

Models are trained on the training split and scored on the MNIST-MIX test split (as in the
report); nothing is selected on the test split: every number is the model after its last epoch.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kfold.files.atomic import write_text
from kfold.config import TrainConfig, resolve_config
from kfold.data import load_mnist_mix
from kfold.nn.engine import FoldTrainer
from kfold.errors import UsageError, param
from kfold.nn.inference import predict_proba
from kfold.data.task import Task
from kfold.nn.fold import library_versions

# The report's two training setups: feed-forward nets as ff-2x250, every other network as resnet26.
FF_PRESET, CNN_PRESET = "ff-2x250", "resnet26"
QUICK_ROWS = (300, 100)  # --quick: at most this many train / test rows per language


@dataclasses.dataclass
class Experiment:
    """One experiment run: its data, where it writes, and how it trains."""

    task: Task
    out: Path
    device: torch.device
    seed: int = 0
    epochs: int | None = None  # None: each model's preset epochs
    progress: bool = True
    command: str = ""
    backend: object = dataclasses.field(default=None, repr=False, compare=False)  # a RayBackend: one task per model
    threads: int | None = None  # torch threads of each model's training (Ray tasks set it explicitly)

    @property
    def languages(self) -> list[str]:
        return list(self.task.group_names)

    def train_rows(self, language: str | None = None) -> np.ndarray:
        """Training rows of one language, or of all languages."""
        if language is None:
            return np.arange(len(self.task.train_labels))
        return self.task.group_rows("train")[language]


def load_experiment_task(data: str | Path, languages: list[str] | None, label_mode: str, quick: bool = False,
                         seed: int = 0) -> Task:
    """The MNIST-MIX task (specific or agnostic labels); ``quick`` keeps a seeded sample per language."""
    task = load_mnist_mix(data, languages=languages, label_mode=label_mode)
    return subsample(task, *QUICK_ROWS, seed=seed) if quick else task


def subsample(task: Task, n_train: int, n_test: int, seed: int = 0) -> Task:
    """At most ``n_train`` / ``n_test`` rows per language (seeded choice, row order kept)."""
    rng = np.random.default_rng(seed)

    def pick(split: str, n: int) -> np.ndarray:
        groups = task.group_rows(split).values()
        return np.sort(np.concatenate([rng.choice(rows, min(n, len(rows)), replace=False) for rows in groups]))

    train, test = pick("train", n_train), pick("test", n_test)
    return dataclasses.replace(
        task, train_images=task.train_images[train], train_labels=task.train_labels[train],
        train_groups=task.train_groups[train], test_images=task.test_images[test], test_labels=task.test_labels[test],
        test_groups=task.test_groups[test], test_ids=np.arange(len(test), dtype=np.int64), solution=None,
        source=f"{task.source}, sample of <= {n_train}/{n_test} train/test rows per language (seed {seed})")


def preset_for(model: str) -> str:
    return FF_PRESET if model.startswith("ff") else CNN_PRESET


def model_config(model: str, epochs: int | None = None) -> TrainConfig:
    """The report's setup for ``model`` (see FF_PRESET / CNN_PRESET), with ``epochs`` if given."""
    overrides = {"model": model} if epochs is None else {"model": model, "epochs": epochs}
    return resolve_config(preset_for(model), None, overrides)


def check_models(models: list[str]) -> list[str]:
    from kfold.nn.models import list_models

    unknown = [name for name in models if name not in list_models()]
    if unknown:
        raise UsageError(f"{param('models')}: unknown model(s) {', '.join(unknown)}; available: {', '.join(list_models())}")
    if not models:
        raise UsageError(f"{param('models')}: give at least one model")
    return models


def new_trainer(exp: Experiment, cfg: TrainConfig, rows: np.ndarray, desc: str) -> FoldTrainer:
    """A trainer without validation rows; normalisation statistics come from ``rows``."""
    return FoldTrainer(cfg, exp.task.train_images, exp.task.train_labels, exp.task.num_classes, rows, None,
                       exp.device, exp.seed, exp.out, desc=desc, progress=exp.progress)


def train_epochs(trainer: FoldTrainer, epochs: int) -> dict:
    """``epochs`` epochs on the trainer's current rows; the last epoch's loss and accuracy."""
    for _ in range(epochs):
        start = time.perf_counter()
        loss, accuracy = trainer.train_epoch()
        trainer.state["epoch"] += 1  # the engine's counter (its progress label); fit() is not used here
        trainer.state["seconds"] += time.perf_counter() - start
    return {"train_loss": loss, "train_accuracy": accuracy}


def predict_test(exp: Experiment, trainer: FoldTrainer) -> np.ndarray:
    """Predicted class of every test image."""
    probs = predict_proba(trainer.eval_model, exp.task.test_images, trainer.mean, trainer.std, exp.device,
                          trainer.cfg.eval_batch_size, channels_last=trainer.channels_last)
    return probs.argmax(1)


def accuracy_by_language(task: Task, predicted: np.ndarray) -> dict[str, float]:
    """``overall`` test accuracy, then one entry per language."""
    from kfold.scoring.metrics import accuracy_by_group

    correct = predicted == task.test_labels
    if task.test_groups is None:  # one group, named as Task.group_rows names it
        return {"overall": float(correct.mean()), "all": float(correct.mean())}
    return {"overall": float(correct.mean()), **accuracy_by_group(correct, task.test_groups, task.group_names)}


def language_counts(task: Task) -> str:
    train, test = task.group_rows("train"), task.group_rows("test")
    return ", ".join(f"{name} {len(train[name])}/{len(test[name])}" for name in task.group_names)


def write_summary(exp: Experiment, title: str, sections: list[str]) -> Path:
    """``summary.md``: title, how the run was made (command, date, machine, data), then ``sections``."""
    versions = library_versions()
    header = [
        f"# {title}", "",
        f"- command: `{exp.command}`" if exp.command else "- command: (called from Python)",
        f"- date: {datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, device {exp.device}, torch threads {torch.get_num_threads()}",
        f"- versions: torch {versions['torch']}, numpy {versions['numpy']}, kfold {versions['kfold']}",
        f"- data: {exp.task.source}",
        f"- train/test rows per language: {language_counts(exp.task)}",
        f"- seed: {exp.seed}; accuracy is on the test split after the last epoch (no selection on it)",
        "",
    ]
    path = exp.out / "summary.md"
    write_text(path, "\n".join(header + sections).rstrip() + "\n")
    return path


def console_table(frame: pd.DataFrame) -> str:
    """Accuracies with 4 decimals, seconds with a precision that means something (1.57, 161.9)."""
    frame = frame.copy()
    for column in [c for c in frame.columns if "seconds" in str(c) and frame[c].dtype.kind == "f"]:
        frame[column] = frame[column].map(lambda v: f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}")
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _model_task(fn, exp: Experiment, model: str, args: tuple, threads: int):
    torch.set_num_threads(threads)  # explicit: a reused Ray worker keeps its thread pool otherwise
    return fn(exp, model, *args)


def map_models(exp: Experiment, fn, models: list[str], *args) -> list:
    """``fn(exp, model, *args)`` for every model: one after another here, or one Ray task per model when the
    experiment has a backend (``mnist_mix.py --backend ray``); results in the order of ``models``."""
    if exp.backend is None:
        from tqdm.auto import tqdm

        return [fn(exp, model, *args) for model in tqdm(models, desc=getattr(fn, "__name__", "models"),
                                                         disable=not exp.progress)]
    backend = exp.backend
    device = torch.device(backend.options.device(exp.device.type))
    shipped = dataclasses.replace(exp, backend=None, device=device, progress=False)
    task = backend.remote(_model_task)
    threads = backend.options.threads(None if exp.threads is None else exp.threads)
    refs = [task.remote(fn, shipped, model, args, threads) for model in models]
    return [backend.get(ref) for ref in refs]
