#!/usr/bin/env python
"""Speed benchmarks of kfold, measured side by side in one process, driving the shipped code.

    python benchmarks/bench.py [--quick] [--device D] [--data DIR] [--out DIR] [--record]

Sections (``--sections`` picks a subset):

* ``throughput``: ``FoldTrainer.train_epoch`` images/s of the fast path (``aug_backend='kornia'``)
  against the conventional loop (``aug_backend='albumentations'``: torch DataLoader, per-image
  albumentations in ``num_workers`` worker processes) for lenet5, alexnet5 and resnet20, same policy
  and batch size; the fast path's augmentation share of its step time is timed inside the same epochs.
* ``threads`` (CPU only): fast-path lenet5 images/s with 1 torch thread against one per core.
* ``inference``: ``predict_proba`` images/s per model on the test images, and the wall time of
  ``predict.py`` (``kfold.commands.predict.main``) on a one-fold lenet5 run.
* ``time-to-accuracy``: wall time until the test accuracy, scored against the competition's
  ``solution.csv`` (scoring only), first reaches the target: fast and speedrun presets in turn, one model on all
  training images each, and the ratio of their times.
* ``ensemble``: ``ensemble.py`` (``kfold.commands.ensemble.main``, in-process) wall time for many
  probability files.
* ``parity``: best validation accuracy of both loops on fold 0 of 5, lenet5 preset, several seeds.
* ``parallel``: ``train.py --parallel-folds 1`` against ``2`` on two folds (only when the flag exists;
  not in ``--quick``: it spawns training processes).

Repeats of the variants being compared run interleaved (A B A B ...); every cell is a median with
its n, min and max and the 1-minute load average when it finished. Results go to stdout and to
``OUT/bench-<time>.csv`` (the shipped CLIs' own output to ``OUT/bench-<time>.log``); ``--record`` also
adds a Markdown block to the ``## Speed`` section of BENCHMARKS.md. ``--quick`` shrinks everything to a
smoke test of a few seconds (numbers meaningless).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kfold.files.atomic import write_csv, write_text  # noqa: E402
from kfold.errors import ArgumentParser, UsageError, run_cli  # noqa: E402

SECTIONS = ("throughput", "threads", "inference", "time-to-accuracy", "ensemble", "parity", "parallel")
SECTION_TITLE = "## Speed (benchmarks/bench.py)"
FILE_TITLE = "# Benchmarks"
COLUMNS = ["section", "case", "metric", "median", "unit", "n", "min", "max", "load1"]
# Training-throughput models: label -> (preset, overrides, optimizer steps per timed epoch); batch size and
# policy are set for all alike. Steps are chosen for a few seconds per epoch on 2 CPU cores.
THROUGHPUT_MODELS = {"lenet5": ("lenet5", {}, 40), "alexnet5": ("alexnet5-sgd", {}, 12), "resnet20": ("resnet26", {"model": "resnet20"}, 5)}
INFERENCE_MODELS = ("lenet5", "alexnet5", "resnet20")
INFERENCE_PRESETS = ("fast", "best")  # and the models of these presets (those that exist)
# CPU targets of issue 5 (speedup vs the conventional loop with 2 workers; augmentation share).
SPEEDUP_TARGET, SPEEDUP_MODELS, AUG_SHARE_TARGET = 3.0, ("lenet5", "alexnet5"), 10.0
GPU_TIME_TARGET = 10.0  # seconds to the accuracy target on an H100
ACCURACY_PRESETS = ("fast", "speedrun")  # time-to-accuracy: the first is the reference of the ratio


@dataclass(frozen=True)
class Plan:
    """How much of each section to run."""

    repeats: int = 3
    batch_size: int = 128
    train_steps: int | None = None     # optimizer steps per timed training epoch (None: per model)
    warmup: bool = True                # one untimed step per trainer first
    workers: tuple[int, ...] = (2, 0)  # num_workers of the conventional loop
    predict_rows: int | None = None   # test images for inference (None: all)
    predict_batch: int = 2048         # predict.py's default
    target: float = 99.0              # accuracy target (%)
    accuracy_cap: float = 360.0       # seconds
    accuracy_rows: int | None = None  # training rows (None: all)
    accuracy_epochs: int | None = None  # None: the fast preset's
    score_rows: int | None = None     # test rows scored (None: all)
    ensemble_files: tuple[int, ...] = (50, 200)
    ensemble_rows: int = 10_000
    parity_seeds: int = 3
    parity_epochs: int = 4
    parity_rows: int | None = None    # cap on training and validation rows of the fold (None: whole fold)
    parallel_epochs: int = 1
    parallel: bool = True


FULL = Plan()
QUICK = Plan(repeats=1, batch_size=16, train_steps=2, warmup=False, predict_rows=64, accuracy_cap=60.0, accuracy_rows=32,
             accuracy_epochs=2, score_rows=64, ensemble_files=(3, 6), ensemble_rows=500, parity_seeds=1, parity_epochs=1,
             parity_rows=48, parallel=False)


# ----------------------------------------------------------------------------- measurement helpers

@dataclass
class Context:
    task: object   # kfold.data.task.Task
    device: object  # torch.device
    plan: Plan
    data: Path     # the competition directory
    scratch: Path  # temporary files
    log: Path      # where the shipped CLIs' output goes


def load1() -> float:
    return os.getloadavg()[0]


def cell(section: str, case: str, metric: str, values: Sequence[float], unit: str) -> dict:
    """One table row: the median of ``values`` with n, min, max and the current load."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    stats = (np.median(finite), finite.min(), finite.max()) if finite.size else (np.nan,) * 3
    return dict(section=section, case=case, metric=metric, median=stats[0], unit=unit, n=len(values),
                min=stats[1], max=stats[2], load1=round(load1(), 2))


def sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed(device, fn, *args, **kwargs) -> float:
    """Seconds ``fn`` takes, device work included."""
    sync(device)
    start = time.perf_counter()
    fn(*args, **kwargs)
    sync(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def quiet(log: Path):
    """Send what the shipped CLIs print (epoch lines, progress bars, worker processes' output) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            fh.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def interleaved(variants: dict, repeats: int, measure) -> dict:
    """``measure(name, obj)`` for every variant in turn, ``repeats`` rounds (A B C A B C ...)."""
    results: dict = {name: [] for name in variants}
    for _ in range(repeats):
        for name, obj in variants.items():
            results[name].append(measure(name, obj))
    return results


# ----------------------------------------------------------------------------- sections

def _trainer(ctx: Context, cfg, rows, val_rows, seed: int, work_dir: Path):
    from kfold.nn.engine import FoldTrainer

    task = ctx.task
    return FoldTrainer(cfg, task.train_images, task.train_labels, task.num_classes, rows, val_rows, ctx.device,
                       seed=seed, work_dir=work_dir, progress=False)


def _warm(trainer, rows: np.ndarray, batch_size: int) -> None:
    """One untimed step (first-call costs: allocator, kernels, imports in the workers)."""
    trainer.set_train_rows(rows[:batch_size])
    trainer.train_epoch()
    trainer.set_train_rows(rows)


class _AugTimer:
    """Stands in for a trainer's ``augment`` module and adds up the seconds spent in it."""

    def __init__(self, augment, device):
        self.augment, self.device, self.seconds = augment, device, 0.0

    def __call__(self, x):
        sync(self.device)
        start = time.perf_counter()
        out = self.augment(x)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        return out


def bench_throughput(ctx: Context) -> list[dict]:
    """images/s of train_epoch: fast path against the conventional loop; the fast path's augmentation share."""
    from kfold.config import resolve_config

    plan, out = ctx.plan, []
    for label, (preset, overrides, steps) in THROUGHPUT_MODELS.items():
        rows = np.arange(plan.batch_size * (plan.train_steps or steps))
        if len(rows) > len(ctx.task.train_labels):
            raise UsageError(f"{len(rows)} images per timed epoch exceed the {len(ctx.task.train_labels)} training images")
        base = {**overrides, "batch_size": plan.batch_size, "aug": "heavy"}
        variants = {"fast": resolve_config(preset, None, {**base, "aug_backend": "kornia"})}
        for workers in plan.workers:
            variants[f"conventional w{workers}"] = resolve_config(preset, None, {**base, "aug_backend": "albumentations", "num_workers": workers})
        trainers = {name: _trainer(ctx, cfg, rows, None, 0, ctx.scratch) for name, cfg in variants.items()}
        if plan.warmup:
            for trainer in trainers.values():
                _warm(trainer, rows, plan.batch_size)
        aug = trainers["fast"].augment = _AugTimer(trainers["fast"].augment, ctx.device)
        shares = []

        def epoch(name, trainer):
            aug.seconds = 0.0
            seconds = timed(ctx.device, trainer.train_epoch)
            if name == "fast":
                shares.append(100 * aug.seconds / seconds)
            return len(rows) / seconds

        speeds = interleaved(trainers, plan.repeats, epoch)
        case = f"{label}, {len(rows) // plan.batch_size} steps of {plan.batch_size}"
        for name, values in speeds.items():
            out.append(cell("throughput", case, f"{name} images/s", values, "img/s"))
        for workers in plan.workers:
            ratios = np.array(speeds["fast"]) / np.array(speeds[f"conventional w{workers}"])
            out.append(cell("throughput", case, f"speedup vs conventional w{workers}", ratios, "x"))
        out.append(cell("throughput", case, "fast: augmentation share of step time", shares, "%"))
    return out


def bench_threads(ctx: Context) -> list[dict]:
    """Fast-path lenet5 images/s with 1 torch thread and with one per core (CPU only)."""
    import torch

    from kfold.config import resolve_config

    if ctx.device.type != "cpu" or (os.cpu_count() or 1) < 2:
        print("  threads: needs a CPU device with 2 or more cores; skipped")
        return []
    plan, before = ctx.plan, torch.get_num_threads()
    preset, overrides, steps = THROUGHPUT_MODELS["lenet5"]
    rows = np.arange(plan.batch_size * (plan.train_steps or steps))
    trainer = _trainer(ctx, resolve_config(preset, None, {**overrides, "batch_size": plan.batch_size}), rows, None, 0, ctx.scratch)
    if plan.warmup:
        _warm(trainer, rows, plan.batch_size)

    def epoch(threads, _):
        torch.set_num_threads(threads)
        return len(rows) / timed(ctx.device, trainer.train_epoch)

    try:
        speeds = interleaved({n: n for n in (1, os.cpu_count())}, plan.repeats, epoch)
    finally:
        torch.set_num_threads(before)
    case = f"lenet5 fast path, {len(rows) // plan.batch_size} steps of {plan.batch_size}"
    out = [cell("threads", case, f"{n} torch thread(s) images/s", values, "img/s") for n, values in speeds.items()]
    out.append(cell("threads", case, f"{os.cpu_count()} threads / 1 thread", np.array(speeds[os.cpu_count()]) / np.array(speeds[1]), "x"))
    return out


def bench_inference(ctx: Context) -> list[dict]:
    """predict_proba images/s per model (untrained weights: speed does not depend on them); predict.py wall time."""
    import torch

    from kfold.config import PRESETS
    from kfold.nn.inference import predict_proba, use_channels_last
    from kfold.nn.models import create_model
    from kfold.commands.predict import main as predict_main
    from kfold.commands.train import main as train_main

    plan, device, task = ctx.plan, ctx.device, ctx.task
    images = task.test_images[:plan.predict_rows]
    channels_last = use_channels_last("auto", device)
    specs = {name: (name, {}) for name in INFERENCE_MODELS}
    for preset in INFERENCE_PRESETS:
        if preset in PRESETS:
            name, kwargs = PRESETS[preset]["model"], PRESETS[preset].get("model_kwargs", {})
            specs[" ".join([name, *(f"{k}={v}" for k, v in kwargs.items()), f"({preset} preset)"])] = (name, kwargs)
    models = {}
    for label, (name, kwargs) in specs.items():
        model = create_model(name, task.num_classes, in_chans=task.channels, image_size=int(task.image_shape[0]),
                             **kwargs).to(device).eval()
        models[label] = model.to(memory_format=torch.channels_last) if channels_last else model

    def run(name, model):
        return len(images) / timed(device, predict_proba, model, images, 0.2, 0.3, device, plan.predict_batch, 1, channels_last)

    if plan.warmup:
        for model in models.values():
            run("warm-up", model)
    speeds = interleaved(models, plan.repeats, run)
    out = [cell("inference", f"{name}, {len(images)} images", f"predict_proba images/s (batch {plan.predict_batch})", values, "img/s")
           for name, values in speeds.items()]

    run_dir = ctx.scratch / "predict-run"
    with quiet(ctx.log):
        train_main(["--data", str(ctx.data), "--preset", "lenet5", "--k", "2", "--folds", "0", "--epochs", "1",
                    "--out", str(run_dir), "--device", str(device), "--no-progress"])
    argv = [str(run_dir), "--data", str(ctx.data), "--out", str(ctx.scratch / "predict-probs"), "--device", str(device),
            "--allow-incomplete"]

    def predict(_name, _):
        start = time.perf_counter()
        with quiet(ctx.log):
            predict_main(argv)
        return time.perf_counter() - start

    walls = np.array(interleaved({"predict.py": None}, plan.repeats, predict)["predict.py"])
    case = f"predict.py, 1 lenet5 model, {len(task.test_images)} images"
    out.append(cell("inference", case, "wall time (load data and model, predict, write npz)", walls, "s"))
    out.append(cell("inference", case, "images/s of that wall time", len(task.test_images) / walls, "img/s"))
    return out


def solution_labels(task, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(test row positions, true labels) from the competition's solution.csv, read with pandas (scoring only)."""
    if task.solution is None:
        raise UsageError(f"{task.source or 'the data'}: no solution.csv; the time-to-accuracy section scores against it")
    solution = pd.read_csv(task.solution)
    position = pd.Series(np.arange(len(task.test_ids)), index=task.test_ids)
    missing = ~solution["Id"].isin(position.index)
    if missing.any():
        raise UsageError(f"{task.solution}: Id {solution['Id'][missing].iloc[0]} is not a test image Id")
    positions = position.loc[solution["Id"]].to_numpy()[:rows]
    return positions, solution["Category"].to_numpy()[:rows]


def bench_time_to_accuracy(ctx: Context) -> list[dict]:
    """Each preset of ACCURACY_PRESETS, one model on the training images (no validation rows), test accuracy after
    every epoch; then the ratio of the seconds to the target (speedrun / fast), both measured in this run."""
    out, seconds = [], {}
    for preset in ACCURACY_PRESETS:
        rows, reached = _time_to_accuracy(ctx, preset)
        out += rows
        seconds[preset] = reached
    first, *others = ACCURACY_PRESETS
    for other in others:
        values = [seconds[other] / seconds[first]] if seconds[first] and seconds[other] else [np.nan]
        out.append(cell("time-to-accuracy", f"{other} against {first}, same run", f"ratio of the seconds to {ctx.plan.target:g}%", values, "x"))
    return out


def _time_to_accuracy(ctx: Context, preset: str) -> tuple[list[dict], float | None]:
    from kfold.config import resolve_config
    from kfold.nn.inference import predict_proba

    plan, device, task = ctx.plan, ctx.device, ctx.task
    positions, truth = solution_labels(task, plan.score_rows)
    test_images = task.test_images[positions]
    cfg = resolve_config(preset, None, {"epochs": plan.accuracy_epochs} if plan.accuracy_epochs else {})
    rows = np.arange(len(task.train_labels))[:plan.accuracy_rows]
    start = time.perf_counter()
    trainer = _trainer(ctx, cfg, rows, None, 0, ctx.scratch)
    history, train_seconds = [], 0.0
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        train_seconds += timed(device, trainer.train_epoch)
        trainer.state["epoch"] = epoch
        probs = predict_proba(trainer.eval_model, test_images, trainer.mean, trainer.std, device, cfg.eval_batch_size,
                              channels_last=trainer.channels_last, bf16=trainer.bf16)
        accuracy = 100 * float((probs.argmax(1) == truth).mean())
        elapsed = time.perf_counter() - start
        history.append((epoch, elapsed, accuracy))
        print(f"  time-to-accuracy: {preset} epoch {epoch}: test accuracy {accuracy:.2f}% after {elapsed:.1f}s", flush=True)
        if accuracy >= plan.target or elapsed + (time.perf_counter() - epoch_start) > plan.accuracy_cap:
            break  # reached, or the next epoch would end past the cap
    epoch, elapsed, accuracy = history[-1]
    reached = accuracy >= plan.target
    if reached:
        outcome = f"reached at epoch {epoch}"
    elif epoch == cfg.epochs:
        outcome = f"not reached in all {cfg.epochs} epochs ({elapsed:.0f}s)"
    else:
        outcome = f"not reached within {plan.accuracy_cap:g}s: stopped after epoch {epoch} of {cfg.epochs} ({elapsed:.0f}s)"
    print(f"  time-to-accuracy: {preset}: {plan.target:g}% {outcome}")
    case = f"{preset} preset ({cfg.epochs} epochs), {len(rows)} train images, {len(truth)} test images scored"
    section = "time-to-accuracy"
    return [
        cell(section, case, f"seconds to {plan.target:g}% test accuracy: {outcome}", [elapsed if reached else np.nan], "s"),
        cell(section, case, f"test accuracy at epoch {epoch}", [accuracy], "%"),
        cell(section, case, f"wall seconds for {epoch} epochs incl. setup and per-epoch scoring", [elapsed], "s"),
        cell(section, case, "of which training (train_epoch)", [train_seconds], "s"),
    ], (elapsed if reached else None)


def bench_ensemble(ctx: Context) -> list[dict]:
    """ensemble.py --method mean on N random probability files of ensemble_rows x 10 (npz)."""
    from kfold.commands.ensemble import main as ensemble_main
    from kfold.files.probs import write_probs

    plan, folder = ctx.plan, ctx.scratch / "ensemble"
    rng = np.random.default_rng(0)
    ids, classes = np.arange(plan.ensemble_rows), [str(c) for c in range(10)]
    files = []
    for i in range(max(plan.ensemble_files)):
        path = folder / f"model{i:03d}.npz"
        write_probs(path, ids, rng.dirichlet(np.ones(10), size=plan.ensemble_rows), classes, {"kind": "test", "model": f"m{i}"})
        files.append(str(path))

    def run(count, inputs):
        start = time.perf_counter()
        with quiet(ctx.log):
            ensemble_main([*inputs, "--method", "mean", "--out", str(folder / f"mean{count}.csv")])
        return time.perf_counter() - start

    walls = interleaved({count: files[:count] for count in plan.ensemble_files}, plan.repeats, run)
    return [cell("ensemble", f"{count} files of {plan.ensemble_rows:,} x 10 (npz)", "ensemble.py --method mean wall time (in-process)", values, "s")
            for count, values in walls.items()]


def bench_parity(ctx: Context) -> list[dict]:
    """Best validation accuracy of the fast path and the conventional loop (2 workers), lenet5 preset, fold 0 of 5."""
    from scipy.stats import ttest_ind

    from kfold.config import resolve_config
    from kfold.files.folds import assign_folds

    plan, labels = ctx.plan, ctx.task.train_labels
    folds = assign_folds(labels, 5, seed=0)
    train_rows, val_rows = np.flatnonzero(folds != 0)[:plan.parity_rows], np.flatnonzero(folds == 0)[:plan.parity_rows]
    base = {"epochs": plan.parity_epochs, "aug": "heavy"}
    variants = {"fast": {**base, "aug_backend": "kornia"}, "conventional w2": {**base, "aug_backend": "albumentations", "num_workers": 2}}
    accuracy: dict[str, list] = {name: [] for name in variants}
    for seed in range(plan.parity_seeds):  # interleaved: seed 0 fast, seed 0 conventional, seed 1 ...
        for name, overrides in variants.items():
            trainer = _trainer(ctx, resolve_config("lenet5", None, overrides), train_rows, val_rows, seed, ctx.scratch / f"parity-{name}-{seed}")
            with quiet(ctx.log):
                result = trainer.fit()
            accuracy[name].append(100 * result.val_accuracy)
            print(f"  parity: seed {seed} {name}: best val accuracy {accuracy[name][-1]:.2f}%", flush=True)
    case = f"lenet5 preset, heavy aug, {plan.parity_epochs} epochs, fold 0/5: {len(train_rows)} train / {len(val_rows)} val, seeds 0-{plan.parity_seeds - 1}"
    out = [cell("parity", case, f"{name} best val accuracy", values, "%") for name, values in accuracy.items()]
    for name, values in accuracy.items():
        sd = f", sd {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
        out.append(cell("parity", case, f"{name} mean{sd}", [np.mean(values)], "%"))
    out.append(cell("parity", case, "difference of means (fast - conventional)", [np.mean(accuracy["fast"]) - np.mean(accuracy["conventional w2"])], "pp"))
    if plan.parity_seeds >= 2:
        p_value = ttest_ind(accuracy["fast"], accuracy["conventional w2"], equal_var=False).pvalue
        out.append(cell("parity", case, "Welch t-test p-value", [p_value], "p"))
    return out


def bench_parallel(ctx: Context) -> list[dict]:
    """Wall time of train.py on two folds with --parallel-folds 1 and 2 (skipped when the flag does not exist)."""
    from kfold.commands.train import build_parser
    from kfold.commands.train import main as train_main

    if not ctx.plan.parallel:
        print("  parallel: skipped in --quick (it spawns training processes)")
        return []
    if "--parallel-folds" not in build_parser()._option_string_actions:
        print("  parallel: kfold.commands.train has no --parallel-folds; skipped")
        return []
    runs = iter(range(1 << 30))

    def run(n, _):
        argv = ["--data", str(ctx.data), "--preset", "lenet5", "--k", "5", "--folds", "0,1", "--epochs", str(ctx.plan.parallel_epochs),
                "--out", str(ctx.scratch / f"parallel-{next(runs)}"), "--device", str(ctx.device), "--no-progress", "--parallel-folds", str(n)]
        start = time.perf_counter()
        with quiet(ctx.log):
            train_main(argv)
        return time.perf_counter() - start

    walls = interleaved({1: None, 2: None}, 1, run)  # whole train.py runs, dominated by process start-up: one round
    case = f"train.py lenet5, folds 0,1 of 5, {ctx.plan.parallel_epochs} epoch(s)"
    out = [cell("parallel", case, f"--parallel-folds {n} wall time", values, "s") for n, values in walls.items()]
    out.append(cell("parallel", case, "speedup of --parallel-folds 2", np.array(walls[1]) / np.array(walls[2]), "x"))
    return out


RUNNERS = {"throughput": bench_throughput, "threads": bench_threads, "inference": bench_inference,
           "time-to-accuracy": bench_time_to_accuracy, "ensemble": bench_ensemble, "parity": bench_parity,
           "parallel": bench_parallel}


# ----------------------------------------------------------------------------- report

def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"{device.type} ({threads} torch thread{'s' if threads > 1 else ''})"


def fmt(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return "-"
    if unit in ("%", "pp", "x"):
        return f"{value:.2f}"
    if unit == "p":
        return f"{value:.3f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def target_lines(table: pd.DataFrame, device) -> list[str]:
    """Verdicts on the issue's targets, from the measured medians."""
    def median(section: str, label: str, metric: str) -> float | None:
        hit = table[(table.section == section) & table.case.str.startswith(label) & (table.metric == metric)]
        return float(hit["median"].iloc[0]) if len(hit) else None

    lines = []
    if device.type == "cpu":
        for model in SPEEDUP_MODELS:
            speedup = median("throughput", f"{model},", "speedup vs conventional w2")
            if speedup is not None:
                lines.append(f"{model}: fast path {speedup:.2f}x the images/s of the conventional loop (2 workers); "
                             f"target >= {SPEEDUP_TARGET:g}x: {'met' if speedup >= SPEEDUP_TARGET else 'MISSED'}")
        for model in THROUGHPUT_MODELS:
            share = median("throughput", f"{model},", "fast: augmentation share of step time")
            if share is not None:
                lines.append(f"{model}: augmentation {share:.1f}% of the fast path's step time; target <= {AUG_SHARE_TARGET:g}%: "
                             f"{'met' if share <= AUG_SHARE_TARGET else 'MISSED'}")
    reached = table[(table.section == "time-to-accuracy") & table.metric.str.startswith("seconds to")]
    if device.type == "cuda" and len(reached):
        seconds = float(reached["median"].iloc[0])
        lines.append(f"time to accuracy: {fmt(seconds, 's')}s; target <= {GPU_TIME_TARGET:g}s on an H100: "
                     f"{'met' if np.isfinite(seconds) and seconds <= GPU_TIME_TARGET else 'MISSED'}")
    return lines


def markdown_block(table: pd.DataFrame, info: dict, verdicts: list[str]) -> str:
    quick = " (--quick smoke test: not measurements)" if info["quick"] else ""
    lines = [f"### {info['date']}: {info['device']}{quick}", "",
             f"- command: `{info['command']}`",
             f"- machine: {info['machine']}; device: {info['device']}",
             f"- versions: {info['versions']}",
             f"- load average (1 min) at start / end: {info['load_start']:.2f} / {info['load_end']:.2f}, per cell in the tables "
             f"(the cores were shared with other jobs: prefer the ratios, which come from interleaved runs)",
             f"- n runs per cell as in the tables; medians quoted; total wall time {info['wall']:.0f}s",
             ""]
    for section, part in table.groupby("section", sort=False):
        lines += [f"#### {section}", "", "| case | metric | median | min - max | n | unit | load |", "|---|---|---:|---:|---:|---|---:|"]
        for row in part.itertuples():
            spread = f"{fmt(row.min, row.unit)} - {fmt(row.max, row.unit)}" if row.n > 1 else ""
            lines.append(f"| {row.case} | {row.metric} | {fmt(row.median, row.unit)} | {spread} | {row.n} | {row.unit} | {row.load1:.1f} |")
        lines.append("")
    if verdicts:
        lines += ["#### targets", "", *[f"- {line}" for line in verdicts], ""]
    return "\n".join(lines)


def record(path: Path, block: str) -> None:
    """Add ``block`` at the end of the Speed section of ``path`` (created if needed); other sections stay as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"{FILE_TITLE}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION_TITLE), None)
    if start is None:
        write_text(path, f"{text.rstrip()}\n\n{SECTION_TITLE}\n\n{block.rstrip()}\n")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    head, tail = "".join(lines[:end]).rstrip(), "".join(lines[end:])
    write_text(path, f"{head}\n\n{block.rstrip()}\n" + (f"\n{tail}" if tail else ""))


# ----------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="benchmarks/bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, one repeat (a few seconds; numbers meaningless)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps (default auto)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "kmnist-comp",
                   help="competition directory with solution.csv (default ../shared/data/kmnist-comp)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench", help="directory for the CSV and log (default runs/bench)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--record", action="store_true", help="add the Markdown tables to the Speed section of --benchmarks-md")
    p.add_argument("--benchmarks-md", type=Path, default=REPO / "BENCHMARKS.md", help="default BENCHMARKS.md")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--repeats", type=int, help=f"interleaved repeats per cell (default {FULL.repeats}; --quick {QUICK.repeats})")
    p.add_argument("--train-steps", type=int, help="optimizer steps per timed training epoch (default: "
                   + ", ".join(f"{label} {steps}" for label, (_, _, steps) in THROUGHPUT_MODELS.items()) + ")")
    p.add_argument("--batch-size", type=int, help=f"training batch size of the throughput section (default {FULL.batch_size})")
    p.add_argument("--accuracy-cap", type=float, help=f"seconds allowed to reach the accuracy target (default {FULL.accuracy_cap:g})")
    p.add_argument("--parity-seeds", type=int, help=f"seeds per loop in the parity section (default {FULL.parity_seeds})")
    p.add_argument("--parity-epochs", type=int, help=f"epochs per parity run (default {FULL.parity_epochs})")
    return p


def make_plan(args) -> Plan:
    keys = ("repeats", "train_steps", "batch_size", "accuracy_cap", "parity_seeds", "parity_epochs")
    overrides = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    for key, value in [*overrides.items(), *([("threads", args.threads)] if args.threads is not None else [])]:
        if value <= 0:
            raise UsageError(f"--{key.replace('_', '-')} {value}: must be positive")
    return replace(QUICK if args.quick else FULL, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    plan = make_plan(args)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if not sections or set(sections) - set(SECTIONS):
        raise UsageError(f"--sections {args.sections!r}: choose from {', '.join(SECTIONS)}")
    if not args.data.is_dir():
        raise UsageError(f"--data {args.data}: no such directory (a Kaggle-style competition directory is needed)")
    import torch

    threads_before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run_sections(args, argv, plan, sections)
    finally:
        torch.set_num_threads(threads_before)  # main may run inside another program (the tests)


def run_sections(args, argv: list[str], plan: Plan, sections: list[str]) -> int:
    from kfold.data import load_task
    from kfold.nn.inference import resolve_device
    from kfold.nn.fold import library_versions

    device = resolve_device(args.device)
    task = load_task(args.data, progress=False)
    versions = library_versions()
    now = datetime.datetime.now(datetime.timezone.utc)
    stem = args.out / f"bench-{now.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "device": device_name(device), "load_start": load1(),
            "versions": ", ".join(f"{k} {versions[k]}" for k in ("torch", "kornia", "albumentations", "numpy", "python")),
            "command": shlex.join(["python", "benchmarks/bench.py", *argv]), "quick": args.quick}
    print(f"{info['machine']}; {info['device']}; {info['versions']}; data {args.data} ({task.name}); load {info['load_start']:.2f}")
    start = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="kfold-bench-") as tmp:
        ctx = Context(task, device, plan, args.data, Path(tmp), stem.with_suffix(".log"))
        for section in SECTIONS:
            if section in sections:
                section_start = time.perf_counter()
                print(f"{section} ...", flush=True)
                rows += RUNNERS[section](ctx)
                print(f"{section}: {time.perf_counter() - section_start:.1f}s", flush=True)
    info.update(load_end=load1(), wall=time.perf_counter() - start)
    table = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(stem.with_suffix(".csv"), table)
    shown = table.assign(**{key: [fmt(v, u) for v, u in zip(table[key], table["unit"])] for key in ("median", "min", "max")})
    print(shown.to_string(index=False))
    verdicts = [] if args.quick else target_lines(table, device)
    for line in verdicts or (["--quick: a smoke test; the numbers are not measurements and no target is judged"] if args.quick else []):
        print(line)
    print(f"wrote {stem.with_suffix('.csv')}")
    if args.record:
        record(args.benchmarks_md, markdown_block(table, info, verdicts))
        print(f"recorded in {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
