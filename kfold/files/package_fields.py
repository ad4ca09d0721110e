"""The fields of a package's manifest that the notebook and the rehearsal index (``recipe``, ``models``,
``classes``, ``sample``, ``load_options``, ``input``), checked strictly: :func:`check_fields` raises one DataError
naming the manifest and the field. Split from :mod:`kfold.files.package`, which calls it from
``check_manifest``. Torch-free.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from kfold.errors import DataError

__all__ = ["LOAD_OPTION_PATHS", "LOAD_OPTION_TYPES", "MAX_SEED", "RECIPE_DEVICES", "RECIPE_METHODS",
           "RECIPE_TIEBREAKS", "check_fields"]

MODELS = "models"  # kfold.files.package.MODELS: the dataset's folder of fold models
RECIPE_METHODS = ("mean", "geomean", "vote", "rank")  # kfold.scoring.ensemble.METHODS (a test keeps them equal)
RECIPE_TIEBREAKS = ("random", "prob")                # kfold.scoring.ensemble.TIEBREAKS
RECIPE_DEVICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**32 - 1
# kfold.data.layouts.LoadOptions' fields (a test keeps them equal): the file options are paths inside the competition
LOAD_OPTION_PATHS = ("train_csv", "test_csv", "image_dir", "test_dir")
LOAD_OPTION_TYPES = {**dict.fromkeys(LOAD_OPTION_PATHS, str), "id_column": str, "label_column": str,
                     "image_column": str, "image_size": int, "channels": int, "metric": str, "target": str}


def check_fields(manifest: dict, path) -> None:
    """The recipe, the models, the classes, the sample, the layout options and the input of ``manifest`` (whose
    keys ``check_manifest`` has checked to be present and of their kinds); else one DataError naming ``path``."""
    _check_recipe(manifest["recipe"], path)
    _check_models(manifest["models"], manifest["files"], path)
    _check_inputs(manifest, path)


def _fail(path, message: str):
    raise DataError(f"{path}: {message}")


def _int(value, low: int, high: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _relative(rel) -> bool:
    """A plain relative POSIX path that stays below its folder (no '..', no '.', no doubled or trailing '/')."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        return False
    pure = PurePosixPath(rel)
    return not pure.is_absolute() and ".." not in pure.parts and rel == pure.as_posix() and "." not in rel.split("/")


def _bad(path, key: str, value, expected: str):
    _fail(path, f"key '{key}' is {str(value)[:40]!r}, expected {expected}")


def _check_recipe(recipe: dict, path) -> None:
    """The ensemble recipe the notebook applies: a method, 1 to 9 TTA views, a seed; the optional settings typed."""
    checks = {"method": (lambda v: v in RECIPE_METHODS, f"one of {', '.join(RECIPE_METHODS)}"),
              "tta": (lambda v: _int(v, 1, 9), "an integer of 1 to 9 views"),
              "seed": (lambda v: _int(v, 0, MAX_SEED), f"an integer in 0..{MAX_SEED}")}
    for key, (ok, expected) in checks.items():
        if key not in recipe:
            _fail(path, f"key 'recipe.{key}' is missing (a damaged or foreign package)")
        if not ok(recipe[key]):
            _bad(path, f"recipe.{key}", recipe[key], expected)
    optional = {"tiebreak": (lambda v: v in RECIPE_TIEBREAKS, f"one of {', '.join(RECIPE_TIEBREAKS)}"),
                "threads": (lambda v: v is None or _int(v, 1, 1024), "null or a number of threads"),
                "batch_size": (lambda v: _int(v, 1, 2**20), "a positive integer"),
                "device": (lambda v: v in RECIPE_DEVICES, f"one of {', '.join(RECIPE_DEVICES)}")}
    for key, value in recipe.items():
        if key not in checks and key not in optional:
            _fail(path, f"key 'recipe.{key}' is not a recipe setting ({', '.join([*checks, *optional])})")
        if key in optional and not optional[key][0](value):
            _bad(path, f"recipe.{key}", value, optional[key][1])


def _check_models(models: list, files: dict, path) -> None:
    """Each packaged run: a safe name, its folder inside the dataset, distinct fold numbers whose weights the files
    table lists (so that no model outside the sha256 table can load)."""
    from kfold.files.rundir import RunDir

    if not models:
        _fail(path, "key 'models' is empty: a package holds at least one fold model")
    for i, entry in enumerate(models):
        key = f"models[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"run", "dir", "folds"}:
            _bad(path, key, entry, "an object of run, dir and folds")
        if not isinstance(entry["run"], str) or entry["run"] in ("", ".", "..") or set("/\\\0") & set(entry["run"]):
            _bad(path, f"{key}.run", entry["run"], "a run folder's name")
        if not _relative(entry["dir"]) or not entry["dir"].startswith(f"{MODELS}/"):
            _bad(path, f"{key}.dir", entry["dir"], f"a folder inside the dataset's {MODELS}/")
        folds = entry["folds"]
        if not isinstance(folds, list) or not folds or not all(_int(f, 0, 999) for f in folds) \
                or len(set(folds)) != len(folds):
            _bad(path, f"{key}.folds", folds, "a list of distinct fold numbers")
        for fold in folds:
            weights = RunDir(Path(entry["dir"])).weights(fold).as_posix()
            if weights not in files:
                _fail(path, f"key '{key}': fold {fold}'s weights {weights} are not in the files table")


def _check_inputs(manifest: dict, path) -> None:
    """The classes, the sample's path inside the competition, the layout options and the models' input."""
    classes = manifest["classes"]
    if not classes or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        _bad(path, "classes", classes, "a list of distinct class names")
    if not _relative(manifest["sample"]):
        _bad(path, "sample", manifest["sample"], "the sample submission's path inside the competition")
    options = manifest.get("load_options", {})
    if not isinstance(options, dict):
        _bad(path, "load_options", options, "an object")
    for name, value in options.items():
        if name not in LOAD_OPTION_TYPES:
            _fail(path, f"key 'load_options.{name}' is not a layout option ({', '.join(LOAD_OPTION_TYPES)})")
        kind = LOAD_OPTION_TYPES[name]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)
                                  or (name in LOAD_OPTION_PATHS and not _relative(value))):
            _bad(path, f"load_options.{name}", value, "a path inside the competition folder"
                 if name in LOAD_OPTION_PATHS else f"a {kind.__name__}")
    shape = manifest.get("input", {})
    if not isinstance(shape, dict) or set(shape) - {"image_size", "channels"}:
        _bad(path, "input", shape, "an object of image_size and channels")
    if "image_size" in shape and not _int(shape["image_size"], 1, 4096):
        _bad(path, "input.image_size", shape["image_size"], "a positive number of pixels")
    if "channels" in shape and (shape["channels"] not in (1, 3) or isinstance(shape["channels"], bool)):
        _bad(path, "input.channels", shape["channels"], "1 or 3")
