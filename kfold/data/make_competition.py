"""Turn labelled data into a Kaggle-style competition directory that ``kfold run --data DIR`` scores.

Labelled data is any dataset kfold reads whose test labels are known: MNIST-MIX (``y_test``), the official
KMNIST release (``t10k-labels`` / ``kmnist-test-labels``), ``kmnist`` (downloaded), or a pixel CSV whose test
CSV keeps its label column (Fashion-MNIST, Sign Language MNIST). Any other dataset kfold reads, such as a
competition downloaded from Kaggle (whose test labels nobody has), becomes labelled data with :func:`hold_out`:
a seeded, stratified share of its training images is the new test set. The directory is written in one of the
layouts kfold reads (:data:`LAYOUTS`):

* ``arrays`` (default): KMNIST's Kaggle ``.npy`` layout (``kmnist-{train,test}-imgs.npy``,
  ``kmnist-train-labels.npy``, ``kmnist_classmap.csv``) or, for MNIST-MIX, ``MNIST_MIX_train_test.npz`` of
  the chosen languages (label = language * 10 + digit; its ``y_test`` is part of that format, training
  never reads it); the schema is KMNIST's (``Id,Category``);
* ``pixel-csv``: ``train.csv`` (label column + ``pixel0..``), ``test.csv`` (pixels, optionally the Id column);
* ``image-files``: ``train/<id>.png`` + ``train.csv`` (Id without extension, label), ``test/<id>.png``;
* ``class-folders``: ``train/<class>/<id>.png``, ``test/<id>.png`` (sample Ids are file names, ``file,species``);

plus ``sample_submission.csv`` in the competition's own columns (a label per row, or one probability column
per class, or one for a binary target), ``solution.csv`` (Id column, label column, ``Usage`` with a seeded
Public/Private split; ``Language`` for MNIST-MIX) and ``competition.json`` (the schema, metric and layout).
Column names, string Ids (file stems like ``0a3f9c1b2e``), the class values (indices or the task's class
names), RGB and the image size are options (:class:`MakeOptions`). Everything is checked before the first
file is written; an existing file is never replaced; the written files appear together. Nothing here imports
torch.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.data.flag_use import MAKE_FLAGS
from kfold.data.competition import CLASSMAP, SAMPLE_SUBMISSION, SOLUTION, write_sample_submission, write_solution
from kfold.data.kmnist import LAYOUTS as KMNIST_LAYOUTS
from kfold.data.mnist_mix import COMBINED, LANGUAGES
from kfold.data.task import Task
from kfold.errors import DataError, UsageError, param
from kfold.files.atomic import atomic_path, together, write_bytes, write_csv
from kfold.files.schema import (COMPETITION_FILE, DEFAULT_ID_COLUMN, GROUP_COLUMN, LABEL_COLUMN, USAGE_COLUMN, Sample,
                                Schema, infer_schema, write_competition_file)
from kfold.files.split import PUBLIC_FRACTION, SOLUTION_SEED, check_fraction

KAGGLE = KMNIST_LAYOUTS[0]  # kmnist-train-imgs.npy, kmnist-train-labels.npy, kmnist-test-imgs.npy
LAYOUTS = ("arrays", "pixel-csv", "image-files", "class-folders")
MAKE_TARGETS = ("label", "probs", "tags", "multilabel-probs")  # the last two: mosaics (kfold.data.mosaic)
CLASS_VALUES = ("index", "names")
DEFAULT_LABEL_COLUMN = LABEL_COLUMN
TRAIN_CSV, TEST_CSV, TRAIN_DIR, TEST_DIR = "train.csv", "test.csv", "train", "test"
IMAGE_SUFFIX = ".png"


@dataclass(frozen=True)
class MakeOptions:
    """The shape of the competition to write.

    ``layout``: one of :data:`LAYOUTS`; ``target``: ``label`` (one class per row) or ``probs`` (one probability
    column per class; one column for two classes); ``metric``: the competition's metric (default: accuracy,
    log loss, or AUC for two classes); ``id_column`` / ``label_column``: the column names (default ``id`` /
    ``label``); ``string_ids``: Ids are file stems such as ``0a3f9c1b2e`` (else the task's integer Ids);
    ``class_values``: ``index`` (0..C-1) or ``names`` (the task's class names); ``rgb``: gray images copied to
    3 channels with a seeded random tint per image; ``resize``: N x N images; ``test_id_column``: the pixel
    test CSV holds the Id column (else row i is the sample's i-th Id, as in Digit Recognizer).
    """

    layout: str = "arrays"
    target: str = "label"
    metric: str | None = None
    id_column: str | None = None
    label_column: str | None = None
    string_ids: bool = False
    class_values: str = "index"
    rgb: bool = False
    resize: int | None = None
    test_id_column: bool = False

    def check(self) -> "MakeOptions":
        for name, value, allowed in (("layout", self.layout, LAYOUTS), ("target", self.target, MAKE_TARGETS),
                                     ("class_values", self.class_values, CLASS_VALUES)):
            if value not in allowed:
                raise UsageError(f"{name} {value!r}: must be one of {', '.join(allowed)}")
        if self.resize is not None and not 1 <= self.resize <= 4096:
            raise UsageError(f"resize {self.resize}: must be in 1..4096")
        for name in ("id_column", "label_column"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or value != value.strip() or any(c in value for c in ',"\n\r')):
                raise UsageError(f"{name} {value!r}: a column name without commas, quotes or surrounding spaces")
        if self.target in ("tags", "multilabel-probs") and self.layout != "image-files":
            raise UsageError(f"target {self.target!r}: multi-label practice data (mosaics) is written in the image-files "
                             f"layout; add {param('layout')} image-files")
        multilabel = self.target in ("tags", "multilabel-probs")
        # the kind is known for certain once the data is (two classes make 'probs' binary)
        self.check_used(self.target if multilabel else "binary" if self.target == "probs" else "label")
        return self

    def given(self) -> dict:
        """The flags set to other than their default (those a layout must use or refuse)."""
        defaults = MakeOptions()
        return {name: getattr(self, name) for name in MAKE_FLAGS if getattr(self, name) != getattr(defaults, name)}

    def check_used(self, kind: str) -> None:
        """Every flag set must be used by the layout with a target of ``kind`` (kfold.data.flag_use.MAKE_USES)."""
        from kfold.data.flag_use import check_make_used

        check_make_used(self.layout, kind, self.given())

        return self


def output_files(task: Task, layout: str = "arrays") -> list[str]:
    if layout == "arrays":
        data = [COMBINED] if task.name == "mnist-mix" else [KAGGLE.train_images, KAGGLE.train_labels, KAGGLE.test_images,
                                                             CLASSMAP]
    elif layout == "pixel-csv":
        data = [TRAIN_CSV, TEST_CSV]
    elif layout == "image-files":
        data = [TRAIN_DIR, TRAIN_CSV, TEST_DIR]
    else:
        data = [TRAIN_DIR, TEST_DIR]
    return [*data, SAMPLE_SUBMISSION, SOLUTION, COMPETITION_FILE]


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # through an open file: numpy would append its suffix to a name
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def _classmap(names: list[str]) -> pd.DataFrame:
    codepoints = [f"U+{ord(name):04X}" if len(name) == 1 else "" for name in names]
    return pd.DataFrame({"index": range(len(names)), "codepoint": codepoints, "char": names})


def hold_out(task: Task, fraction: float, seed: int = SOLUTION_SEED) -> Task:
    """``task`` with a seeded, stratified ``fraction`` of its training images as its labelled test set.

    The test Ids are 0..n-1 in the held-out order; the task's own test images (labelled or not) are not used.
    Stratified by class (and by group, MNIST-MIX's language, where there are groups) with scikit-learn's
    ``StratifiedShuffleSplit``, so the same seed gives the same split.

    >>> import tempfile
    >>> from kfold.data import load_task
    >>> from kfold.data.toy import make_toy_competition
    >>> task = load_task(make_toy_competition(tempfile.mkdtemp()), progress=False)  # 40 training images, 10 classes
    >>> held = hold_out(task, 0.25, seed=0)
    >>> len(held.train_labels), len(held.test_ids), held.test_ids[:3].tolist(), sorted(set(held.test_labels.tolist()))
    (30, 10, [0, 1, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    from dataclasses import replace

    from sklearn.model_selection import StratifiedShuffleSplit

    check_fraction(fraction, "test_fraction")
    labels = np.asarray(task.train_labels, dtype=np.int64)
    strata = labels if task.train_groups is None else np.asarray(task.train_groups) * task.num_classes + labels
    n_test = int(np.ceil(float(fraction) * len(labels)))
    values, counts = np.unique(strata, return_counts=True)
    where = task.source or task.name
    if counts.min() < 2:
        rare = int(values[np.argmin(counts)]) % task.num_classes
        raise DataError(f"{where}: class {task.class_names[rare]!r} has a single training image, so it cannot be in "
                        "both the training and the held-out test images")
    if not len(values) <= n_test <= len(labels) - len(values):
        raise UsageError(f"{param('test_fraction')}={fraction!r}: holds out {n_test} of {len(labels)} training images, "
                         f"but each of the {len(values)} classes{' and groups' if task.train_groups is not None else ''}"
                         " needs at least one image on each side")
    split = StratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
    train, test = next(split.split(np.zeros(len(labels)), strata))
    train, test = np.sort(train), np.sort(test)  # the images keep their order on each side

    def rows(array, index):
        return None if array is None else np.asarray(array)[index]

    return replace(task, train_images=rows(task.train_images, train), train_labels=labels[train],
                   test_images=rows(task.train_images, test), test_ids=np.arange(len(test), dtype=np.int64),
                   test_labels=labels[test], train_groups=rows(task.train_groups, train),
                   test_groups=rows(task.train_groups, test), sample_submission=None, solution=None,
                   source=f"{where}, {len(test)} of its training images held out (seed {seed})")


def make_competition(task: Task, out_dir: str | Path, *, public_fraction: float = PUBLIC_FRACTION,
                     seed: int = SOLUTION_SEED, options: MakeOptions | None = None) -> list[Path]:
    """Write the competition directory for ``task`` (whose test labels must be known); return the files."""
    from kfold.files.split import random_usage  # checks the fraction

    options = (options or MakeOptions()).check()
    if task.test_labels is None:
        raise DataError(f"{task.source or task.name}: no test labels, so no solution can be written "
                        "(make-competition needs labelled test data: MNIST-MIX y_test, the official KMNIST test labels; "
                        f"or hold out some of the training images with {param('test_fraction')})")
    if task.name == "mnist-mix" and task.extra.get("label_mode", "specific") != "specific" and options.layout == "arrays":
        raise UsageError(f"make-competition writes MNIST-MIX with language-specific labels ({param('label_mode')}='specific'); "
                         f"train with {param('label_mode')}='agnostic' on the written directory instead")
    if options.layout == "arrays" and np.asarray(task.train_images).ndim == 4:
        raise UsageError(f"{param('layout')}='arrays' writes KMNIST's grayscale (N, H, W) files, but {task.name}'s images "
                         "are RGB; choose pixel-csv, image-files or class-folders")
    usage = random_usage(len(task.test_ids), seed, public_fraction)  # a bad --public-fraction fails before any file
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{param('out_dir')}={str(out_dir)!r}: exists and is not a directory")
    taken = [name for name in output_files(task, options.layout)
             if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    if taken:
        raise UsageError(f"{param('out_dir')}={str(out_dir)!r}: already holds {', '.join(taken)}; choose a new directory")
    if options.layout == "arrays":
        return _write_arrays(task, out_dir, options, seed, public_fraction)
    if options.target in ("tags", "multilabel-probs"):
        return _write_plan(_mosaic_plan(task, out_dir, options, seed, public_fraction), out_dir, options)
    plan = _plan(task, out_dir, options, seed, usage)
    return _write_plan(plan, out_dir, options)


def _write_arrays(task: Task, out_dir: Path, options: MakeOptions, seed: int, public_fraction: float) -> list[Path]:
    from dataclasses import replace

    from kfold.files.schema import kmnist_schema

    if replace(task.schema, metric="accuracy") != kmnist_schema(task.num_classes):
        # the arrays layout is read back with KMNIST's schema (its class names go to the classmap), whatever columns
        # the source had (a pixel CSV's, or training data alone's defaults)
        task = replace(task, schema=kmnist_schema(task.num_classes))
    schema = task.schema
    if options.metric is not None:
        from kfold.metrics import check_metric

        check_metric(options.metric, schema.target, schema.classes)
        schema = schema.with_metric(options.metric)
    written = []
    with together():
        if task.name == "mnist-mix":
            languages = np.array([LANGUAGES.index(name) for name in task.group_names], dtype=np.int64)
            combined = {"X_train": task.train_images, "y_train": languages[task.train_groups] * 10 + task.train_labels % 10,
                        "X_test": task.test_images, "y_test": languages[task.test_groups] * 10 + task.test_labels % 10}
            _write_npz(out_dir / COMBINED, **{k: np.asarray(v) for k, v in combined.items()})
            written.append(out_dir / COMBINED)
        else:
            for name, array in ((KAGGLE.train_images, task.train_images),
                                (KAGGLE.train_labels, task.train_labels.astype(np.uint8)),
                                (KAGGLE.test_images, task.test_images)):
                _write_npy(out_dir / name, np.ascontiguousarray(array))
                written.append(out_dir / name)
            write_csv(out_dir / CLASSMAP, _classmap(task.class_names))
            written.append(out_dir / CLASSMAP)
        written.append(write_sample_submission(task, out_dir / SAMPLE_SUBMISSION))
        written.append(write_solution(task, out_dir / SOLUTION, seed=seed, public_fraction=public_fraction))
        written.append(write_competition_file(out_dir, schema, {"layout": "arrays"}))
    return written


# -- the other layouts -----------------------------------------------------------------------------------
@dataclass
class _Plan:
    schema: Schema
    train_images: np.ndarray
    test_images: np.ndarray
    train_values: np.ndarray      # the class value of each training image, as written
    train_stems: list[str]
    test_ids: np.ndarray
    sample: pd.DataFrame
    solution: pd.DataFrame
    train_frame: pd.DataFrame | None = None  # train.csv as written (multi-label: tags or 0/1 columns)


def stems(n: int, seed: int, split: str) -> list[str]:
    """``n`` distinct file stems like ``0a3f9c1b2e``, seeded (the same seed and split give the same stems)."""
    out, seen = [], set()
    for i in range(n):
        digest = hashlib.sha256(f"{seed}:{split}:{i}".encode()).hexdigest()
        length = 10
        while digest[:length] in seen:
            length += 2
        out.append(digest[:length])
        seen.add(out[-1])
    return out


def _class_values(task: Task, options: MakeOptions) -> list[str]:
    if options.class_values == "index":
        return [str(i) for i in range(task.num_classes)]
    names = [str(name) for name in task.class_names]
    if all(name.lstrip("-").isdigit() for name in names):
        names = [f"class_{name}" for name in names]
    for name in names:
        if not name.strip() or name in (".", "..") or any(c in name for c in '/\\,"\n\r') or name != name.strip():
            raise DataError(f"class name {name!r} cannot be a class value of the written files (a folder name and a "
                            f"CSV cell); use {param('class_values')}='index'")
    if len(set(names)) != len(names):
        raise DataError(f"class names {names!r}: a name repeats; use {param('class_values')}='index'")
    return names


def _tinted(images: np.ndarray, seed: int, split: str) -> np.ndarray:
    """Gray images -> RGB: each image multiplied by a seeded random colour (RGB images stay as they are)."""
    if images.ndim == 4:
        return images
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    tint = rng.uniform(0.35, 1.0, size=(len(images), 1, 1, 3))
    return np.round(images[..., None].astype(np.float32) * tint).astype(np.uint8)


def _plan(task: Task, out_dir: Path, options: MakeOptions, seed: int, usage: np.ndarray) -> _Plan:
    from kfold.data.pixel_csv import resize_images
    from kfold.files.schema import infer_id_kind

    id_column = options.id_column or DEFAULT_ID_COLUMN
    label_column = options.label_column or DEFAULT_LABEL_COLUMN
    values = _class_values(task, options)
    if id_column == label_column:
        raise UsageError(f"id_column and label_column are both {id_column!r}")
    for name in (id_column, label_column, USAGE_COLUMN, LABEL_COLUMN):
        if options.target == "probs" and task.num_classes > 2 and name in values:
            raise UsageError(f"class value {name!r} would also be a column name of the sample or solution; rename "
                             f"the column or use the other {param('class_values')}")
    if options.layout == "class-folders" and set(values) & {id_column, label_column, USAGE_COLUMN, LABEL_COLUMN}:
        raise UsageError(f"a class folder name among {values!r} is also a column name; rename the column")
    train_images, test_images = np.asarray(task.train_images), np.asarray(task.test_images)
    if options.rgb:
        train_images, test_images = _tinted(train_images, seed, "train"), _tinted(test_images, seed, "test")
    if options.resize is not None:
        train_images, test_images = resize_images(train_images, options.resize), resize_images(test_images, options.resize)
    if options.string_ids:
        test_ids = np.array(stems(len(task.test_ids), seed, "test"), dtype=str)
        train_stems = stems(len(train_images), seed, "train")
    else:
        test_ids = np.asarray(task.test_ids, dtype=np.int64)
        train_stems = [str(i) for i in range(len(train_images))]
    sample_ids = test_ids
    if options.layout == "class-folders":
        sample_ids = np.array([f"{i}{IMAGE_SUFFIX}" for i in test_ids], dtype=str)
    train_values = np.array(values, dtype=object)[task.train_labels]
    test_values = np.array(values, dtype=object)[task.test_labels]
    binary = options.target == "probs" and len(values) == 2
    kind = "binary" if binary else options.target
    options.check_used(kind)
    columns = [id_column, label_column] if kind != "probs" else [id_column, *values]
    frame = pd.DataFrame({id_column: sample_ids.astype(str)})
    for column in columns[1:]:
        frame[column] = "0.5" if kind == "binary" else ("0" if kind == "probs" else values[0])
    ids_text = [str(i) for i in sample_ids]
    id_kind = infer_id_kind(ids_text)
    sample = Sample(path=out_dir / SAMPLE_SUBMISSION, columns=columns, ids=sample_ids, id_kind=id_kind, frame=frame)
    schema = infer_schema(sample, list(train_values), metric=options.metric, target=kind,
                          where_labels="the training labels")
    typed_ids = sample_ids if id_kind == "str" else np.asarray(sample_ids, dtype=np.int64)
    if kind == "label":
        sample_frame = pd.DataFrame({id_column: typed_ids, label_column: schema.decode(np.zeros(len(typed_ids), int))})
    elif kind == "binary":
        sample_frame = pd.DataFrame({id_column: typed_ids, label_column: np.full(len(typed_ids), 0.5)})
    else:
        sample_frame = pd.DataFrame({id_column: typed_ids, **{c: np.full(len(typed_ids), 1 / len(values)) for c in values}})
    solution = pd.DataFrame({id_column: typed_ids, schema.solution_label_column:
                             schema.decode(schema.encode(list(test_values), "the test labels", label_column)),
                             USAGE_COLUMN: usage})
    if task.test_groups is not None and task.group_names is not None:
        if GROUP_COLUMN in solution.columns:
            raise UsageError(f"column {GROUP_COLUMN!r} is taken; rename the Id or label column")
        solution[GROUP_COLUMN] = np.asarray(task.group_names)[task.test_groups]
    return _Plan(schema, train_images, test_images, train_values, train_stems, typed_ids, sample_frame, solution)


def _mosaic_plan(task: Task, out_dir: Path, options: MakeOptions, seed: int, public_fraction: float) -> _Plan:
    """A multi-label practice competition: mosaics of 2-4 of the task's images (``kfold.data.mosaic``)."""
    from dataclasses import replace

    from kfold.data.mosaic import mosaic_split, multilabel_tables
    from kfold.data.pixel_csv import resize_images
    from kfold.files.schema import infer_id_kind
    from kfold.files.split import random_usage

    values = _class_values(task, options)
    n_train, n_test = len(task.train_labels), len(task.test_labels)  # each image in about 3 mosaics
    train_images, train_tags = mosaic_split(task.train_images, task.train_labels, task.num_classes, n_train, seed)
    test_images, test_tags = mosaic_split(task.test_images, task.test_labels, task.num_classes, n_test, seed + 1)
    if options.rgb:
        train_images, test_images = _tinted(train_images, seed, "train"), _tinted(test_images, seed, "test")
    if options.resize is not None:
        train_images, test_images = resize_images(train_images, options.resize), resize_images(test_images, options.resize)
    if options.string_ids:
        test_ids, train_stems = np.array(stems(n_test, seed, "test"), dtype=str), stems(n_train, seed, "train")
        train_ids = np.array(train_stems, dtype=str)
    else:
        test_ids, train_stems = np.arange(n_test, dtype=np.int64), [str(i) for i in range(n_train)]
        train_ids = np.arange(n_train, dtype=np.int64)
    tables = multilabel_tables(train_tags, test_tags, values, options.target, options.id_column or DEFAULT_ID_COLUMN,
                               options.label_column or DEFAULT_LABEL_COLUMN, train_ids, test_ids,
                               random_usage(n_test, seed, public_fraction))
    sample = Sample(path=out_dir / SAMPLE_SUBMISSION, columns=tables["columns"], ids=test_ids,
                    id_kind=infer_id_kind([str(i) for i in test_ids]), frame=tables["sample"].astype(str))
    schema = infer_schema(sample, tables["train_values"], metric=options.metric, target=options.target,
                          where_labels="the mosaics' training tags")
    schema = replace(schema, extra={})  # the reason is found again (and said) whenever the folder is read
    return _Plan(schema, train_images, test_images, tables["train_values"], train_stems, test_ids, tables["sample"],
                 tables["solution"], train_frame=tables["train"])


_PIXEL_TEXT = np.array([str(i).encode() for i in range(256)], dtype=object)


def pixel_csv_bytes(images: np.ndarray, first: list[tuple[str, list[str]]]) -> bytes:
    """A pixel CSV: the ``first`` columns (name, cells) then ``pixel0..`` (each image flattened, row-major)."""
    flat = images.reshape(len(images), -1)
    header = [name for name, _ in first] + [f"pixel{i}" for i in range(flat.shape[1])]
    lines = [",".join(header).encode()]
    for row in range(len(flat)):
        cells = [cells[row].encode() for _, cells in first]
        lines.append(b",".join(cells + _PIXEL_TEXT[flat[row]].tolist()))
    return b"\n".join(lines) + b"\n"


def _write_png_folder(folder: Path, names: list[str], images: np.ndarray) -> None:
    from PIL import Image

    for name, image in zip(names, images):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp:  # a complete PNG under its final name, or none
            Image.fromarray(np.ascontiguousarray(image)).save(temp, format="PNG", compress_level=1)


def _write_plan(plan: _Plan, out_dir: Path, options: MakeOptions) -> list[Path]:
    schema = plan.schema
    id_column, label_column = schema.id_column, (options.label_column or DEFAULT_LABEL_COLUMN)
    folders: dict[str, tuple[list[str], np.ndarray]] = {}
    if options.layout == "image-files":
        folders[TRAIN_DIR] = ([f"{stem}{IMAGE_SUFFIX}" for stem in plan.train_stems], plan.train_images)
    elif options.layout == "class-folders":
        folders[TRAIN_DIR] = ([f"{value}/{stem}{IMAGE_SUFFIX}" for value, stem in zip(plan.train_values, plan.train_stems)],
                              plan.train_images)
    if options.layout != "pixel-csv":
        folders[TEST_DIR] = ([f"{i}{IMAGE_SUFFIX}" for i in plan.test_ids.astype(str)], plan.test_images)
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: dict[Path, Path] = {}
    moved: list[Path] = []
    written: list[Path] = []
    try:
        for name, (names, images) in folders.items():
            tmp = out_dir / f".{name}.{os.getpid()}-tmp"
            staged[out_dir / name] = tmp
            _write_png_folder(tmp, names, images)
        with together():
            if options.layout == "pixel-csv":
                first = [(label_column, [str(v) for v in plan.train_values])]
                write_bytes(out_dir / TRAIN_CSV, pixel_csv_bytes(plan.train_images, first))
                test_first = [(id_column, [str(i) for i in plan.test_ids])] if options.test_id_column else []
                write_bytes(out_dir / TEST_CSV, pixel_csv_bytes(plan.test_images, test_first))
                written += [out_dir / TRAIN_CSV, out_dir / TEST_CSV]
            elif options.layout == "image-files":
                write_csv(out_dir / TRAIN_CSV, plan.train_frame if plan.train_frame is not None else
                          pd.DataFrame({id_column: plan.train_stems, label_column: plan.train_values}))
                written.append(out_dir / TRAIN_CSV)
            write_csv(out_dir / SAMPLE_SUBMISSION, plan.sample)
            write_csv(out_dir / SOLUTION, plan.solution)
            write_competition_file(out_dir, schema, {"layout": options.layout})
            written += [out_dir / SAMPLE_SUBMISSION, out_dir / SOLUTION, out_dir / COMPETITION_FILE]
            for final, tmp in staged.items():
                os.rename(tmp, final)
                moved.append(final)
        return [*moved, *written]
    except BaseException:
        for path in [*staged.values(), *moved]:
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
        raise
