"""Which data flags each layout and target uses: the one table every entry point checks. Torch-free.

A flag that the detected layout (or the sample's target) does not use must not be dropped without a word:
:func:`check_used` refuses it with one :class:`~kfold.errors.UsageError` line naming the parameter (``--flag``
from a command), what was detected and where the flag does apply. ``kfold inspect``, ``run``, ``tune``,
``train``, ``compare`` and the Python API read data through :func:`kfold.data.load.load_task`, which checks
here before anything is decoded or written; ``kfold make-competition`` checks its own output flags against
:data:`MAKE_USES`. ``tests/test_flag_use.py`` iterates over every flag x layout x target of these tables and of
the commands' parsers, so a new flag has to be added here (or it fails that test).

>>> sorted(USES["class-folders"] - USES["pixel-csv"])
['cache_dir', 'image_dir', 'test_dir']
>>> check_used("pixel-csv", {"image_column": "file"}, "data/dr")
Traceback (most recent call last):
...
kfold.errors.UsageError: image_column='file': the pixel-csv layout of data/dr does not use it (it has no labels CSV naming image files); image_column applies to the image-files layout
"""
from __future__ import annotations

from typing import Mapping

from kfold.errors import UsageError, param

__all__ = ["DATA_FLAGS", "LOAD_FLAGS", "MAKE_FLAGS", "MAKE_USES", "USES", "check_make_used", "check_target",
           "check_used", "used_by"]

# The fields of kfold.data.layouts.LoadOptions (the --train-csv ... --target flags).
LOAD_FLAGS = ("train_csv", "test_csv", "image_dir", "test_dir", "id_column", "label_column", "image_column",
              "image_size", "channels", "metric", "target")
# The other data flags (TaskSpec / load_task): MNIST-MIX's, and the download/decode cache.
DATA_FLAGS = ("languages", "label_mode", "cache_dir")

_ARRAYS = frozenset({"image_size", "channels", "metric", "target"})
_IMAGES = frozenset({"id_column", "image_size", "channels", "metric", "target", "image_dir", "test_dir", "cache_dir"})

# layout -> the flags it consumes (every other flag of LOAD_FLAGS + DATA_FLAGS is refused there).
# "arrays": KMNIST's .npy/.npz/idx files; "kmnist": the official release by name (downloaded into cache_dir);
# "mnist-mix": MNIST-MIX's .npz files.
USES: Mapping[str, frozenset] = {
    "arrays": _ARRAYS,
    "kmnist": _ARRAYS | {"cache_dir"},
    "mnist-mix": _ARRAYS | {"languages", "label_mode"},
    "pixel-csv": frozenset({"train_csv", "test_csv", "id_column", "label_column", "image_size", "channels", "metric",
                            "target"}),
    "image-files": _IMAGES | {"train_csv", "label_column", "image_column"},
    "class-folders": _IMAGES,
}

# Why a layout has no use for a flag (shown after "does not use it").
_WHY = {
    "train_csv": "its training data are not a CSV",
    "test_csv": "its test images are not a pixel CSV",
    "image_dir": "it has no folder of training images",
    "test_dir": "it has no folder of test images",
    "id_column": "its files have no Id column to choose",
    "label_column": "it has no label column to choose",
    "image_column": "it has no labels CSV naming image files",
    "languages": "it is not MNIST-MIX",
    "label_mode": "it is not MNIST-MIX",
    "cache_dir": "nothing of it is downloaded or decoded into a cache",
}
_WHY_LAYOUT = {("class-folders", "label_column"): "its labels are the class folder names",
               ("class-folders", "train_csv"): "its labels are the class folder names, not a CSV"}

# What each target consumes: --target is used only when it is a target the sample can hold (a sample with one
# probability column per class or label is 'probs' or 'multilabel-probs' whatever --target says).
TARGET_FLAGS = ("target", "metric")


def used_by(name: str) -> list[str]:
    """The layouts that consume flag ``name``."""
    return [layout for layout, used in USES.items() if name in used]


def check_used(layout: str, given: Mapping[str, object], where: str) -> None:
    """Refuse the first given flag that ``layout`` does not consume (``given``: parameter -> value, only those
    the user set). ``UsageError`` naming the parameter, the layout, ``where`` and the layouts it applies to."""
    used = USES[layout]
    for name in (*LOAD_FLAGS, *DATA_FLAGS):
        if name in given and given[name] is not None and name not in used:
            why = _WHY_LAYOUT.get((layout, name), _WHY.get(name, "it has no such setting"))
            applies = ", ".join(used_by(name))
            raise UsageError(f"{param(name)}={given[name]!r}: the {layout} layout of {where} does not use it ({why}); "
                             f"{param(name)} applies to the {applies} layout{'s' if ',' in applies else ''}")


def check_target(given: str | None, detected: str | tuple[str, ...], where: str,
                 columns: list[str] | tuple[str, ...]) -> None:
    """Refuse ``target`` when the sample holds another target than it names (it would be ignored); ``detected``:
    the target the sample holds, or the targets it can hold (several probability columns: one per class, or one
    independent probability per label)."""
    accepted = (detected,) if isinstance(detected, str) else tuple(detected)
    if given is None or given in accepted:
        return
    shown = ",".join(columns[:6]) + (",..." if len(columns) > 6 else "")
    what = {"probs": f"one probability column per class or label ({len(columns) - 1} columns)",
            "label": "one label column", "binary": "one probability column (binary)"}[accepted[0]]
    named = " or ".join(repr(t) for t in accepted)
    raise UsageError(f"{param('target')}={given!r}: the sample {where} (header '{shown}') holds {what}, "
                     f"so its target is {named}; leave {param('target')} out or give {named}")


# -- make-competition: the flags of the competition it writes -------------------------------------------
MAKE_FLAGS = ("target", "metric", "id_column", "label_column", "string_ids", "class_values", "rgb", "resize",
              "test_id_column")
_MAKE_ALL = frozenset(MAKE_FLAGS) - {"test_id_column"}
# (layout, target kind) -> the flags it consumes; the kind is 'binary' for --target probs with two classes.
MAKE_USES: Mapping[tuple[str, str], frozenset] = {
    ("arrays", "label"): frozenset({"metric"}),  # the arrays layout has a label target only
    **{("pixel-csv", kind): frozenset(MAKE_FLAGS) for kind in ("label", "probs", "binary")},
    **{("image-files", kind): _MAKE_ALL for kind in ("label", "probs", "binary")},
    ("class-folders", "label"): _MAKE_ALL,
    ("class-folders", "binary"): _MAKE_ALL,
    ("class-folders", "probs"): _MAKE_ALL - {"label_column"},  # class folders + one column per class: no label column
    ("image-files", "tags"): _MAKE_ALL,  # mosaics (kfold.data.mosaic): space-separated tags in the label column
    ("image-files", "multilabel-probs"): _MAKE_ALL - {"label_column"},  # mosaics: one 0/1 column per tag
}
_MAKE_WHY = {
    "arrays": "the arrays layout keeps KMNIST's files and schema (integer Ids, one label column, 28x28 gray)",
    "test_id_column": "only a pixel-csv test.csv can hold the Id column",
    "label_column": "one probability column per class (or tag) leaves no label column to name",
}


def check_make_used(layout: str, kind: str, given: Mapping[str, object]) -> None:
    """Refuse the first make-competition flag (``given``: those set to other than their default) that the
    written ``layout`` with target ``kind`` does not use."""
    used = MAKE_USES.get((layout, kind), frozenset())
    for name in MAKE_FLAGS:
        if name in given and name not in used:
            why = _MAKE_WHY["arrays"] if layout == "arrays" else _MAKE_WHY[name]
            applies = sorted({lay for (lay, _), flags in MAKE_USES.items() if name in flags})
            raise UsageError(f"{param(name)}={given[name]!r}: not used by the {layout} layout with a {kind} target "
                             f"({why}); it applies to {', '.join(applies)}; choose {param('layout')} accordingly")
