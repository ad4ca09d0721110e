"""Shared flag groups and typed validators used by every command (one message template for all of them).

Every validator raises ``argparse.ArgumentTypeError``; ``kfold.errors.ArgumentParser`` turns that into one
``error: PROG: argument --FLAG: ...`` line with exit status 2. Lists are comma-separated everywhere
(``--seeds 0,1,2``, ``--presets fast,best``, ``--languages Arabic,Bangla``).
"""
from __future__ import annotations

import argparse
import math
import re
import time
from typing import Callable

from kfold.config import PARAMS, preset_names
from kfold.errors import ArgumentParser, flag_of

SEED_MAX = 2 ** 32 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
DEVICES = ["auto", "cpu", "cuda", "mps"]


def _message(value: str, expected: str) -> argparse.ArgumentTypeError:
    """The one template of a bad flag value."""
    return argparse.ArgumentTypeError(f"{value!r} is not {expected}")


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``low..high``.

    >>> int_at_least(2)("5")
    5
    """
    expected = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"

    def parse(text: str) -> int:
        if not isinstance(text, str) or not _INTEGER.fullmatch(text):  # int() also takes 1_0, ' 5' and other digits
            raise _message(text, expected)
        value = int(text)
        if value < low or (high is not None and value > high):
            raise _message(text, expected)
        return value

    parse.__name__ = "integer"
    return parse


def int_choice(choices: list[int]) -> Callable[[str], int]:
    """An integer from a closed set.

    >>> int_choice([1, 3])("3")
    3
    """
    expected = "one of " + ", ".join(map(str, choices))
    exact = int_at_least(min(choices), max(choices))

    def parse(text: str) -> int:
        try:
            value = exact(text)
        except argparse.ArgumentTypeError:
            raise _message(text, expected) from None
        if value not in choices:
            raise _message(text, expected)
        return value

    parse.__name__ = "integer"
    return parse


positive_int = int_at_least(1)
k_folds = int_at_least(2, 10_000)
seed = int_at_least(0, SEED_MAX)


def finite_float(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = False) -> Callable[[str], float]:
    """A finite number in a range (open or closed at each end).

    >>> finite_float(0, 1, high_open=True)("0.5")
    0.5
    """
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    expected = f"a finite number in {left}{low:g}, {high:g}{right}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise _message(text, expected) from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise _message(text, expected)
        return value

    parse.__name__ = "number"
    return parse


fraction = finite_float(0, 1, low_open=True, high_open=True)


def comma_list(item: Callable[[str], object] = str, *, unique: bool = True) -> Callable[[str], list]:
    """``"a,b"`` -> ``[item("a"), item("b")]``; empty items and (by default) duplicates are errors.

    >>> comma_list(int)("0,1,2")
    [0, 1, 2]
    """

    def parse(text: str) -> list:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r}: empty item in the comma-separated list")
        values = [item(part) for part in parts]
        if unique:
            seen = [str(v) for v in values]
            twice = next((parts[i] for i, v in enumerate(seen) if v in seen[:i]), None)
            if twice is not None:
                raise argparse.ArgumentTypeError(f"{text!r}: {twice!r} is listed twice")
        return values

    parse.__name__ = "list"
    return parse


def one_of(kind: str, choices: list[str]) -> Callable[[str], str]:
    """A name from a closed set.

    >>> one_of("device", ["cpu", "cuda"])("cpu")
    'cpu'
    """

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"unknown {kind} {text!r}; available: {', '.join(choices)}")
        return text

    parse.__name__ = kind
    return parse


def choice_list(choices: list[str]) -> Callable[[str], list[str]]:
    def item(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return comma_list(item)


def parser(prog: str, description: str | None = None, **kwargs) -> ArgumentParser:
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return ArgumentParser(prog=prog, description=description, **kwargs)


def add_data_flags(p: argparse.ArgumentParser, required: bool = True, default: str | None = None,
                   metric: bool = True) -> None:
    """``--data`` and what goes with it, and the layout flags (``metric``: with ``--metric``, the competition's)."""
    group = p.add_argument_group("data")
    group.add_argument("--data", required=required and default is None, default=default,
                       help="competition directory, official KMNIST/MNIST-MIX files, or the word 'kmnist' "
                            "(the official release, 60,000 training images, downloaded once)"
                            + (f" (default: {default})" if default else ""))
    group.add_argument("--task", default="auto", choices=["auto", "kmnist", "mnist-mix"],
                       help="expected task (default: detect from --data)")
    group.add_argument("--languages", type=comma_list(), help="MNIST-MIX: comma-separated subset of languages")
    group.add_argument("--label-mode", default="specific", choices=["specific", "agnostic"],
                       help="MNIST-MIX labels: language-specific (default) or language-agnostic digits")
    group.add_argument("--cache-dir", help="download cache for --data kmnist (default: $KFOLD_CACHE or ~/.cache/kfold)")
    add_layout_flags(p, metric=metric)
    p.set_defaults(layout_metric=metric)  # False: the command's own --metric is not the competition's


def task_spec(args: argparse.Namespace):
    """The ``TaskSpec`` of the data flags (``add_data_flags``)."""
    from kfold.data.jobs import TaskSpec

    options = tuple((name, getattr(args, name)) for name in LAYOUT_FLAGS if getattr(args, name, None) is not None
                    and (name != "metric" or getattr(args, "layout_metric", True)))
    return TaskSpec(args.data, args.cache_dir, tuple(args.languages) if args.languages else None, args.label_mode, args.task,
                    options)


def add_device_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("device")
    group.add_argument("--device", default="auto", type=one_of("device", DEVICES), metavar="|".join(DEVICES),
                       help="where to train and predict (default: auto, the GPU when there is one)")
    group.add_argument("--threads", type=int_at_least(1, 4096), default=None, metavar="N",
                       help="torch CPU threads (default: torch's choice). CPU results are bit-identical only at "
                            "the same thread count; it is recorded, and a resume must use the same")


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (epoch lines are still printed)")


def config_flag_type(name: str) -> Callable[[str], object]:
    """The parser of a config field's flag, from its row of ``kfold.config.PARAMS`` (type, bounds, choices).

    >>> config_flag_type("momentum")("0.9")
    0.9
    >>> config_flag_type("keep")("last")
    'last'
    """
    spec = PARAMS[name]
    if spec.choices is not None:
        return one_of(name.replace("_", " "), spec.allowed())
    if spec.kind == (int,):
        low, high = int(spec.low), int(spec.high)
        at_least, within = int_at_least(low), int_at_least(low, high)

        def parse(text: str) -> int:  # below the bound: "an integer >= 1", as every other flag says it
            return within(str(at_least(text)))

        parse.__name__ = "integer"
        return parse
    if spec.kind == (float,):
        return finite_float(spec.low, spec.high, low_open=spec.low_open, high_open=spec.high_open)
    raise ValueError(f"config field {name!r} of type {spec.type_name} has no flag")


# The config fields set by flags (--lr, --batch-size ...); their types, bounds, choices and help come from
# kfold.config.PARAMS. Flags left unset keep the preset's value.
TRAINING_FLAGS: list[str] = [name for name, spec in PARAMS.items() if spec.flag]


def _bounds(spec) -> str:
    """``: 1..9 views``, ``: (0, 10]``: a numeric field's range and unit for its help text."""
    if spec.low is None or spec.high is None:
        return ""
    span = f"{spec.low:g}..{spec.high:g}" if spec.kind == (int,) else spec.interval()
    return f" in {span}" + (f" {spec.unit}" if spec.unit else "")


def add_recipe_flags(p: argparse.ArgumentParser, default_preset: str = "fast") -> None:
    group = p.add_argument_group("recipe", "a preset, then --config FILE, then any flag below (kfold presets --show NAME)")
    group.add_argument("--preset", default=default_preset, type=one_of("preset", preset_names()), metavar="PRESET",
                       help=f"one of: {', '.join(preset_names())} (default: {default_preset})")
    group.add_argument("--config", help="JSON file with config overrides (applied after the preset)")
    group.add_argument("--compile", action="store_true", default=None, help=PARAMS["compile"].help)
    for name in TRAINING_FLAGS:
        spec = PARAMS[name]
        choices = spec.allowed()
        group.add_argument(flag_of(name), dest=name, type=config_flag_type(name), default=None,
                           metavar="|".join(choices) if choices else None, help=f"{spec.help}{_bounds(spec)} (default: the preset's)")


def recipe_overrides(args: argparse.Namespace) -> dict:
    """The config fields set on the command line."""
    overrides = {key: getattr(args, key) for key in TRAINING_FLAGS if getattr(args, key, None) is not None}
    if getattr(args, "compile", None):
        overrides["compile"] = True
    return overrides


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    """Where folds train: here, one after another (local), or as Ray tasks on a local or remote cluster."""
    group = p.add_argument_group("backend", "train every fold here, one after another (local), or as a Ray task "
                                            "each, on an embedded local cluster or a real one (pip install -e '.[ray]')")
    group.add_argument("--backend", default="local", type=one_of("backend", ["local", "ray"]), metavar="local|ray",
                       help="local (default) or ray")
    group.add_argument("--address", default=None, metavar="HOST:PORT",
                       help="Ray cluster to use (default: $RAY_ADDRESS, else an embedded local cluster for this command)")
    group.add_argument("--cpus-per-fold", type=finite_float(0, 4096), default=1.0, metavar="N",
                       help="CPUs a fold task holds (default 1; also its torch threads unless --threads)")
    group.add_argument("--gpus-per-fold", type=finite_float(0, 64), default=0.0, metavar="F",
                       help="GPUs a fold task holds; fractions share one (0.25: four folds per GPU). 0 (default): the fold runs on the CPU")
    group.add_argument("--max-retries", type=int_at_least(0, 100), default=3, metavar="N",
                       help="retries of a fold whose Ray worker or node was lost (default 3); a fold that raises is never retried")
    group.add_argument("--parallel-folds", type=int_at_least(1, 1024), default=None, metavar="N",
                       help="shorthand for --backend ray on an embedded local cluster running N folds at once")
    group.add_argument("--ray-timeout", type=finite_float(0, 86_400, low_open=True), default=30.0, metavar="SECONDS",
                       help="how long to wait for the Ray cluster at --address to answer, and for a fold task to be "
                            "scheduled while none runs (default 30); then one error line. Requests no node can hold "
                            "(--gpus-per-fold 1 without GPUs) are refused before anything is submitted")


def backend_from_args(args: argparse.Namespace, progress: bool = True):
    """``None`` (local) or a validated, not yet started ``kfold.flows.ray_backend.RayBackend``."""
    if args.backend == "local" and args.parallel_folds is None:
        if args.address:
            from kfold.errors import UsageError

            raise UsageError("--address needs --backend ray")
        if args.cpus_per_fold != 1.0 or args.gpus_per_fold != 0.0 or args.max_retries != 3 or args.ray_timeout != 30.0:
            from kfold.errors import UsageError

            raise UsageError("--cpus-per-fold, --gpus-per-fold, --max-retries and --ray-timeout need --backend ray")
        return None
    from kfold.flows.ray_backend import make_backend

    return make_backend("ray", address=args.address, cpus_per_fold=args.cpus_per_fold, gpus_per_fold=args.gpus_per_fold,
                        max_retries=args.max_retries, parallel_folds=args.parallel_folds, device=args.device,
                        progress=progress, ray_timeout=args.ray_timeout)


def open_backend(args: argparse.Namespace, progress: bool = True):
    """The ``kfold.flows.backend.Backend`` of the backend flags: a ``LocalBackend``, or a validated, not yet started
    ``RayBackend``. Use it as a context manager (``with``): it is closed when the command ends."""
    backend = backend_from_args(args, progress=progress)
    if backend is None:
        from kfold.flows.backend import LocalBackend

        backend = LocalBackend()
    return backend


def add_training_flags(p: argparse.ArgumentParser, recipe: bool = True) -> None:
    """The flag groups of every command that trains (``run``, ``train``, ``tune``, ``compare``): device and threads,
    progress, the recipe (config fields; ``recipe=False`` for ``compare``, whose recipes are its setups) and the
    backend."""
    add_device_flags(p)
    add_progress_flag(p)
    if recipe:
        add_recipe_flags(p)
    add_backend_flags(p)
    add_track_flags(p)


def add_track_flags(p: argparse.ArgumentParser) -> None:
    """``--track mlflow|wandb`` and ``--track-models``: experiment tracking (``kfold.flows.tracking``)."""
    group = p.add_argument_group("tracking", "log runs, folds, trials, ensembles and Kaggle scores to MLflow or "
                                             "Weights & Biases (pip install -e '.[track]'); the run directory stays the "
                                             "source of truth")
    group.add_argument("--track", default=None, type=one_of("tracker", ["mlflow", "wandb", "none"]),
                       metavar="mlflow|wandb|none",
                       help="mlflow: $MLFLOW_TRACKING_URI, else sqlite:///RUNS/mlflow.db beside the runs; wandb: W&B, "
                            "offline in RUNS/wandb/ (or $WANDB_DIR) unless logged in or $WANDB_MODE says otherwise "
                            "(default: $KFOLD_TRACK, else none)")
    group.add_argument("--track-models", action="store_true",
                       help="with --track: also log every model's weights (safetensors)")


def open_tracker(args: argparse.Namespace, runs_folder):
    """The tracker of ``--track``/``--track-models`` (``kfold.flows.tracking.open_tracker``), its store beside
    ``runs_folder``; checked here, before anything is written."""
    from kfold.flows.tracking import open_tracker as open_

    tracker = open_(args.track, runs_folder, models=args.track_models)
    tracker.opened_at = time.perf_counter()  # for tracking_cost: its share of the command's wall time
    return tracker


def tracking_cost(tracker) -> None:
    """Print what tracking cost the command (seconds, calls, share of its wall time); nothing when untracked."""
    if tracker and hasattr(tracker, "cost_line"):
        tracker.close()
        print(tracker.cost_line(time.perf_counter() - getattr(tracker, "opened_at", time.perf_counter())))


def open_run(args: argparse.Namespace, **fields):
    """The shared steps of the training commands, once: the config (``--preset``, ``--config``, the recipe flags),
    the task spec (the data flags), the backend (the backend flags) and its threads, as a
    ``kfold.flows.training.RunRequest`` (checked when made; ``fields``: the command's own, like ``seed``) and the
    backend (``open_backend``; closed again if the request is refused). Nothing is loaded or started yet."""
    from kfold.config import resolve_config
    from kfold.flows.training import RunRequest

    cfg = resolve_config(args.preset, args.config, recipe_overrides(args))
    spec = task_spec(args)
    progress = not args.no_progress
    backend = open_backend(args, progress=progress)  # checked; Ray starts at the first fold
    try:
        request = RunRequest(cfg, spec, preset=args.preset, k=args.k, device=args.device,
                             threads=backend.threads(args.threads), progress=progress, **fields)
    except BaseException:
        backend.close()
        raise
    return request, backend


# -- competition layouts (kfold.data.layouts.LoadOptions): what detection cannot decide -------------------
LAYOUT_FLAGS = ("train_csv", "test_csv", "image_dir", "test_dir", "id_column", "label_column", "image_column",
                "image_size", "channels", "metric", "target")


def add_layout_flags(p: argparse.ArgumentParser, metric: bool = True) -> None:
    """``--train-csv`` ... ``--target``: the fields of ``LoadOptions`` (``layout_options`` reads them back)."""
    from kfold.files.schema import TARGETS
    from kfold.metrics import METRICS

    group = p.add_argument_group("layout (when detection cannot decide)")
    group.add_argument("--train-csv", metavar="FILE", help="training pixel CSV, or the labels CSV of image files "
                       "(default: train.csv, train_labels.csv)")
    group.add_argument("--test-csv", metavar="FILE", help="test pixel CSV (default: test.csv)")
    group.add_argument("--image-dir", metavar="DIR", help="folder of training images, or of class subfolders "
                       "(default: train/ or train_images/)")
    group.add_argument("--test-dir", metavar="DIR", help="folder of test images (default: test/ or test_images/)")
    group.add_argument("--id-column", metavar="NAME", help="the Id column (default: the sample submission's first)")
    group.add_argument("--label-column", metavar="NAME", help="the training label column (default: 'label' or the "
                       "sample's target column)")
    group.add_argument("--image-column", metavar="NAME", help="the labels CSV column naming the image files "
                       "(default: the Id column)")
    group.add_argument("--image-size", type=int_at_least(1, 4096), metavar="N",
                       help="resize every image to N x N (default: the images' own size, which they must share)")
    group.add_argument("--channels", type=int_choice([1, 3]), metavar="1|3", help="1 (grayscale) or 3 (RGB) (default: 1 for "
                       "grayscale images, else 3)")
    if metric:
        group.add_argument("--metric", type=one_of("metric", list(METRICS)), metavar="|".join(METRICS),
                           help="the competition's metric (default: accuracy for a label target, log loss for class "
                                "probabilities, AUC for a binary probability)")
    group.add_argument("--target", type=one_of("target", list(TARGETS)), metavar="|".join(TARGETS),
                       help="what the submission holds (default: from the sample submission)")


def layout_options(args: argparse.Namespace):
    """The ``kfold.data.layouts.LoadOptions`` of ``add_layout_flags``' flags."""
    from kfold.data.layouts import LoadOptions

    return LoadOptions(**{name: getattr(args, name, None) for name in LAYOUT_FLAGS})


def in_flag_words(error):
    """The same UsageError, naming the flag (``--label-column``) where the library named its parameter
    (``label_column``); other errors are returned as they are."""
    from kfold.errors import UsageError

    message = str(error)
    if isinstance(error, UsageError):
        for name in LAYOUT_FLAGS:
            if message.startswith((name + " ", name + ":", name + ",")):
                return UsageError("--" + name.replace("_", "-") + message[len(name):])
    return error
