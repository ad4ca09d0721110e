"""Competition layouts beyond the arrays: pixel CSVs, image files with a labels CSV, class subfolders. Torch-free.

:func:`detect_layout` looks at a competition folder as Kaggle ships it and says which layout it holds;
:func:`load_layout` reads it into a :class:`~kfold.data.task.Task` whose schema (Id column, target columns,
classes, metric) comes from ``sample_submission.csv`` and the training labels (:mod:`kfold.files.schema`).
:class:`LoadOptions` names what detection cannot decide (the ``--train-csv``, ``--label-column`` ... flags).

========================  ===========================================================================
layout                    files
========================  ===========================================================================
``pixel-csv``             ``train.csv`` (label + pixel columns), ``test.csv`` (pixels, with or without the
                          Id column), ``sample_submission.csv``
``image-files``           ``train/`` (or ``train_images/``) + ``train_labels.csv`` / ``train.csv`` (Id =
                          file name with or without extension, label), ``test/`` (or ``test_images/``),
                          ``sample_submission.csv``
``class-folders``         ``train/<class>/*.png``, ``test/*.png``, ``sample_submission.csv``
========================  ===========================================================================

Labelled training data alone (``train/<class>/`` folders, images with a labels CSV, a ``train.csv`` pixel CSV;
no sample submission and no test set) loads as a Task without test rows (``Task.has_test`` False): its schema
is :func:`kfold.files.schema.schema_without_sample`'s, from the labels' own columns or Kaggle-like defaults, and
``Task.extra['schema_from']`` says which. A sample without test images, or test images without a sample, is
refused with one line.

Test images come in the sample's row order with the sample's Ids: a pixel CSV without an Id column is
matched row by row (the sample's first Id is row 0), otherwise every sample Id must have its test row or
image file (the first that has none is named).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.data.describe import LAYOUT_NAMES, NO_TEST_ROWS, describe  # noqa: F401 - kfold.data.layouts.describe
from kfold.data.task import Task, no_test
from kfold.errors import DataError, UsageError, param
from kfold.files.schema import LABEL_COLUMN, USAGE_COLUMN, Sample, Schema, TARGETS, infer_schema, read_sample

SAMPLE_NAME = "sample_submission.csv"
SOLUTION_NAME = "solution.csv"
TRAIN_FOLDERS = ("train", "train_images")
TEST_FOLDERS = ("test", "test_images")
LABEL_CSVS = ("train_labels.csv", "train.csv", "labels.csv")
PIXEL_TRAIN = "train.csv"
PIXEL_TEST = "test.csv"


@dataclass(frozen=True)
class LoadOptions:
    """What detection cannot decide, each ``None`` by default (detected).

    ``train_csv``: the pixel CSV of the training rows, or the labels CSV of image files; ``test_csv``: the
    pixel CSV of the test rows; ``image_dir`` / ``test_dir``: folders of training / test images;
    ``id_column``: the Id column (of the sample and the data files); ``label_column``: the training label
    column; ``image_column``: the labels CSV's column naming the image files (default: the Id column);
    ``image_size``: resize every image to N x N; ``channels``: 1 or 3 (default: 1 for grayscale data, else 3);
    ``metric`` and ``target`` (``label``, ``probs``, ``binary``): as in :func:`kfold.files.schema.infer_schema`.
    Relative paths are looked up in the current directory, then in the data folder.
    """

    train_csv: str | os.PathLike | None = None
    test_csv: str | os.PathLike | None = None
    image_dir: str | os.PathLike | None = None
    test_dir: str | os.PathLike | None = None
    id_column: str | None = None
    label_column: str | None = None
    image_column: str | None = None
    image_size: int | None = None
    channels: int | None = None
    metric: str | None = None
    target: str | None = None

    def check(self) -> "LoadOptions":
        from kfold.data.decode import check_decode_settings

        check_decode_settings(self.image_size, self.channels)
        if self.target is not None and self.target not in TARGETS:
            raise UsageError(f"target {self.target!r}: must be one of {', '.join(TARGETS)}")
        if self.metric is not None:
            from kfold.metrics import get_metric

            try:
                get_metric(self.metric)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        for name in ("id_column", "label_column", "image_column"):
            value = getattr(self, name)
            if value is not None and not str(value).strip():
                raise UsageError(f"{name}: an empty column name")
        return self

    @property
    def names_files(self) -> bool:
        """True when a file or folder is given: the folder is read as one of the new layouts."""
        return any(getattr(self, name) is not None for name in ("train_csv", "test_csv", "image_dir", "test_dir"))

    def given(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class Detected:
    """A layout found in ``directory`` and its files."""

    layout: str
    directory: Path
    sample: Path | None    # None (and test None): labelled training data alone
    train: Path            # pixel CSV, labels CSV or the class-folder root
    test: Path | None      # pixel CSV or test image folder
    image_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def resolve_option(directory: Path, value, what: str, kind: str) -> Path:
    """A file (``kind`` ``"file"``) or folder option as loading resolves it: an absolute path as it is, a relative
    one in the current directory, then in ``directory`` (the data folder); else UsageError naming ``what``."""
    path = Path(value)
    candidates = [path] if path.is_absolute() else [path, directory / path]
    for candidate in candidates:
        if (candidate.is_file() if kind == "file" else candidate.is_dir()):
            return candidate
    raise UsageError(f"{param(what)}={str(value)!r}: no such {kind} (looked in the current directory and in {directory})")


_resolve = resolve_option


def _first(directory: Path, names, kind: str) -> Path | None:
    for name in names:
        path = directory / name
        if path.is_file() if kind == "file" else path.is_dir():
            return path
    return None


def _one_glob(directory: Path, pattern: str) -> Path | None:
    found = sorted(p for p in directory.glob(pattern) if p.is_file())
    return found[0] if len(found) == 1 else None


def _has_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file directly (stops at the first)."""
    from kfold.data.image_files import is_image_name

    try:
        with os.scandir(folder) as entries:
            return any(is_image_name(e.name) and not e.name.startswith(".") and e.is_file() for e in entries)
    except OSError:
        return False


def detect_layout(directory: str | os.PathLike, options: LoadOptions | None = None) -> Detected | None:
    """The layout of a competition folder, or None when nothing in it looks like one of these layouts."""
    from kfold.data.image_files import has_subfolders, list_images

    options = options or LoadOptions()
    directory = Path(directory)
    sample = _first(directory, (SAMPLE_NAME,), "file") or _one_glob(directory, "*sample*submission*.csv")
    if options.image_dir is not None:
        image_dir = _resolve(directory, options.image_dir, "image_dir", "folder")
    elif options.test_csv is not None:  # a pixel CSV of test rows: no image folder
        image_dir = None
    else:
        image_dir = _first(directory, TRAIN_FOLDERS, "folder")
    if image_dir is not None:
        test = (_resolve(directory, options.test_dir, "test_dir", "folder") if options.test_dir is not None
                else _first(directory, TEST_FOLDERS, "folder"))
        if options.train_csv is not None:
            labels = _resolve(directory, options.train_csv, "train_csv", "file")
        else:
            labels = _first(directory, LABEL_CSVS, "file")
        images = _has_images(image_dir)
        classes = has_subfolders(image_dir) and (labels is None or not images)
        if not classes and not images:
            raise DataError(f"{image_dir}: an empty training folder (no images, no class subfolders)")
        layout = "class-folders" if classes else "image-files"
        if sample is None and test is not None:
            raise DataError(f"{directory}: test images in {test.name}/ but no {SAMPLE_NAME}: the test Ids and the "
                            f"submission's columns come from it (without {test.name}/ the training images alone are "
                            "trained and scored out of fold)")
        if test is None and sample is not None:
            raise DataError(f"{directory}: {sample.name} but no folder of test images "
                            f"({' or '.join(n + '/' for n in TEST_FOLDERS)}, or name it with {param('test_dir')})")
        if layout == "image-files" and labels is None:
            raise DataError(f"{directory}: images in {image_dir.name}/ but no labels CSV "
                            f"({', '.join(LABEL_CSVS)}; or name it with {param('train_csv')}), and no class subfolders")
        return Detected(layout, directory, sample, labels if layout == "image-files" else image_dir, test, image_dir)
    train = (_resolve(directory, options.train_csv, "train_csv", "file") if options.train_csv is not None
             else _first(directory, (PIXEL_TRAIN,), "file") or _one_glob(directory, "*train*.csv"))
    if train is None:
        return None
    test = (_resolve(directory, options.test_csv, "test_csv", "file") if options.test_csv is not None
            else _first(directory, (PIXEL_TEST,), "file") or _one_glob(directory, "*test*.csv"))
    if test is None and sample is not None:
        raise DataError(f"{directory}: {train.name} and {sample.name} but no test CSV ({PIXEL_TEST}; or name it with "
                        f"{param('test_csv')}) and no image folder ({', '.join(n + '/' for n in TRAIN_FOLDERS)})")
    if sample is None and test is not None:
        raise DataError(f"{directory}: a pixel-csv layout with a test CSV ({test.name}) needs {SAMPLE_NAME}: the test "
                        f"Ids and the submission's columns come from it (without {test.name} the training rows alone "
                        "are trained and scored out of fold)")
    return Detected("pixel-csv", directory, sample, train, test)


# -- loading -------------------------------------------------------------------------------------------
def load_layout(detected: Detected, options: LoadOptions | None = None, *, cache_dir=None,
                progress: bool = True, test_only: bool = False) -> Task:
    """Read the detected layout into a Task (schema from the sample and the training labels).

    ``test_only`` (a folder with a sample submission): the training images are not decoded or read; the Task has no
    training rows, and the schema and classes are the same (they come from the sample and the training labels)."""
    test_only = test_only and detected.sample is not None
    sample, options, parts, schema = _read_layout(detected, options, cache_dir, progress,
                                                  images="test" if test_only else True)
    train_labels = schema.encode(parts["label_values"], parts["labels_file"], parts["label_column"],
                                 first_line=parts.get("first_line"))
    test_labels = None
    if parts.get("test_label_values") is not None:
        test_labels = schema.encode(parts["test_label_values"], str(detected.test), parts["label_column"], first_line=2)
    solution = detected.directory / SOLUTION_NAME
    train_images, test_images = parts["train_images"], parts["test_images"]
    if test_only:  # no training row: an empty array of the test images' size and channels (as no_test does)
        train_images, train_labels = np.empty((0, *test_images.shape[1:]), dtype=test_images.dtype), train_labels[:0]
    extra = {"layout": detected.layout, "label_column": parts["label_column"], **parts.get("extra", {})}
    test_ids = None if sample is None else sample.ids
    if sample is None:
        test_images, test_ids = no_test(train_images)
        extra["schema_from"] = f"no {SAMPLE_NAME}: {parts['schema_from']}"
    return Task(
        name=detected.directory.resolve().name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_ids=test_ids,
        class_names=list(schema.classes),
        test_labels=test_labels,
        sample_submission=detected.sample,
        solution=solution if solution.is_file() else None,
        source=f"{detected.layout} layout in {detected.directory}{', training data alone' if sample is None else ''}",
        extra=extra,
        schema=schema,
    )


def layout_schema(directory: str | os.PathLike, options: LoadOptions | None = None) -> Schema | None:
    """The schema of a competition folder of a CSV or image layout with a sample submission, from the sample and
    the training labels alone (no image decoded, no pixel read; the same schema ``load_layout`` gives); ``None``
    for a folder of no such layout or without a sample."""
    detected = detect_layout(directory, options)
    if detected is None or detected.sample is None:
        return None
    return _read_layout(detected, options, None, False, images=False)[3]


def _read_layout(detected: Detected, options: LoadOptions | None, cache_dir, progress: bool, *, images: bool | str
                 ) -> tuple[Sample | None, LoadOptions, dict, Schema]:
    """The sample, the options in force, the loader's parts and the schema (``images`` False: no image decoded;
    ``"test"``: the test images alone)."""
    given = (options or LoadOptions()).check()
    options = recorded_options(detected.directory, given)
    sample = None if detected.sample is None else read_sample(detected.sample, id_column=options.id_column)
    if sample is not None:  # training data alone: the target flag is used by schema_without_sample
        _check_target_flag(given.target, sample)
    loader = {"pixel-csv": _load_pixel_csv, "image-files": _load_image_files, "class-folders": _load_class_folders}
    parts = loader[detected.layout](detected, sample, options, cache_dir, progress, images)
    if sample is None:  # training data alone: the columns of the labels, or Kaggle-like defaults
        from kfold.files.schema import infer_id_kind, schema_without_sample

        names = parts.get("id_values")
        schema = schema_without_sample(
            parts["label_values"], str(detected.directory), id_column=parts["id_column"],
            label_column=parts["label_column"], id_kind="int" if names is None else infer_id_kind(list(names)),
            metric=options.metric, target=options.target, where_labels=parts["labels_where"])
    else:
        schema = infer_schema(sample, parts["label_values"], metric=options.metric, target=options.target,
                              where_labels=parts["labels_where"])
    return sample, options, parts, schema


def _check_target_flag(target: str | None, sample: Sample) -> None:
    """``target`` must be a target the sample can hold where the sample decides it (several probability columns:
    'probs' or 'multilabel-probs', the training labels tell them apart and the flag forces either; one column:
    'label' or 'binary', never 'probs'); else it would be ignored (kfold.data.flag_use)."""
    from kfold.data.flag_use import check_target
    from kfold.files.schema import _is_probability_column

    if target is None:
        return
    if len(sample.target_columns) > 1:
        detected = ("probs", "multilabel-probs")
    elif target == "probs":
        detected = "binary" if _is_probability_column(sample.frame[sample.target_columns[0]]) else "label"
    else:
        return
    check_target(target, detected, str(sample.path), sample.columns)


def recorded_options(directory: Path, options: LoadOptions) -> LoadOptions:
    """``options`` with the metric (and target) recorded in the folder's ``competition.json`` where not given."""
    from dataclasses import replace

    from kfold.files.schema import read_competition_file

    recorded = read_competition_file(directory)
    if recorded is None:
        return options
    schema = recorded["schema"]
    same_target = options.target in (None, schema.target)  # the recorded metric is for the recorded target
    return replace(options, metric=options.metric or (schema.metric if same_target else None),
                   target=options.target or (schema.target if schema.target != "label" else None))


def _label_column(columns: list[str], sample: Sample | None, options: LoadOptions, where: str,
                  exclude: tuple[str, ...]) -> str:
    if options.label_column is not None:
        if options.label_column not in columns:
            raise UsageError(f"{param('label_column')}={options.label_column!r}: {where} has no such column "
                             f"(has: {', '.join(columns[:8])}{', ...' if len(columns) > 8 else ''})")
        return options.label_column
    targets = sample.target_columns if sample is not None else []
    if len(targets) == 1 and targets[0] in columns and targets[0] not in exclude:
        return targets[0]
    lowered = {c.lower(): c for c in columns if c not in exclude}
    for name in ([LABEL_COLUMN] + ([targets[0].lower()] if len(targets) == 1 else [])):
        if name.lower() in lowered:
            return lowered[name.lower()]
    rest = [c for c in columns if c not in exclude]
    if len(columns) == 2 and len(rest) == 1:
        return rest[0]
    named = f"'{LABEL_COLUMN}'" + (f" or '{targets[0]}'" if targets else "")
    raise DataError(f"{where}: cannot tell which column holds the labels (no {named} column); name it with "
                    f"{param('label_column')}")


def _zero_one_columns(columns: list[str], sample: Sample | None, options: LoadOptions, file_column: str) -> list[str]:
    """The sample's target columns when the training CSV holds them all as labels (one 0/1 column per class or tag:
    one-hot or multi-label), else [] (one label column)."""
    targets = sample.target_columns if sample is not None else []
    if options.label_column is None and len(targets) > 1 and all(t in columns and t != file_column for t in targets):
        return list(targets)
    return []


def _labels_of(cells: dict, label_columns: list[str], where: str):
    """The label cells of one label column, or the (N, C) 0/1 matrix of several (line and column of a bad cell named)."""
    from kfold.data.image_files import check_labels_present
    from kfold.files.multilabel import zero_one_matrix

    if len(label_columns) > 1:
        return zero_one_matrix(np.column_stack([cells[c] for c in label_columns]), where, label_columns)
    return check_labels_present(pd.Series(cells[label_columns[0]]), where, label_columns[0])


def _load_pixel_csv(detected: Detected, sample: Sample, options: LoadOptions, cache_dir, progress,
                    images: bool = True) -> dict:
    from kfold.data.image_files import check_unique, shown
    from kfold.data.pixel_csv import image_geometry, read_header, read_pixel_csv, to_images

    train_header = read_header(detected.train)
    id_column = sample.id_column if sample is not None else _own_id_column(train_header, options, str(detected.train))
    label_columns = _zero_one_columns(train_header, sample, options, id_column)  # one 0/1 column per class or tag
    label = ",".join(label_columns) if label_columns else _label_column(train_header, sample, options,
                                                                        str(detected.train), (id_column,))
    label_columns = label_columns or [label]
    train_text = label_columns + ([id_column] if id_column in train_header else [])
    if images is not True:  # the schema alone (layout_schema) or the test images alone: the label cells, no pixel read
        cells = pd.read_csv(detected.train, usecols=lambda c: str(c).strip() in label_columns, dtype=str,
                            keep_default_na=False, encoding="utf-8-sig").rename(columns=lambda c: str(c).strip())
        label_values = _labels_of({c: cells[c].to_numpy(dtype=str) for c in label_columns}, label_columns,
                                  str(detected.train))
        if not images or sample is None:
            return {"label_values": label_values, "labels_where": f"{detected.train} column '{label}'"}
        values, n_pixels = None, sum(c not in train_text for c in train_header)
    else:
        values, text, pixel_columns = read_pixel_csv(detected.train, train_text)
        side, channels = image_geometry(values.shape[1], str(detected.train), pixel_columns)
        label_values, n_pixels = _labels_of(text, label_columns, str(detected.train)), values.shape[1]
    if sample is None:  # training rows alone
        own = id_column in train_header
        return {"train_images": to_images(values, side, channels, options.image_size, options.channels),
                "test_images": None, "label_values": label_values, "labels_file": str(detected.train),
                "label_column": label, "labels_where": f"{detected.train} column '{label}'", "first_line": 2,
                "id_column": id_column, "id_values": text[id_column] if own else None,
                "schema_from": f"the columns of {detected.train.name} (target '{label}', "
                               + (f"Id '{id_column}')" if own else f"no Id column there: kfold's default '{id_column}')")}

    test_header = read_header(detected.test)
    test_text = [c for c in (id_column, *label_columns) if c in test_header]
    test_values, test_cells, test_pixels = read_pixel_csv(detected.test, test_text)
    if test_values.shape[1] != n_pixels:
        raise DataError(f"{detected.test}: {test_values.shape[1]} pixel columns but {detected.train} has "
                        f"{n_pixels} (columns other than '{id_column}' and '{label}' are pixels)")
    if values is None:  # the test images alone: their geometry is the training images' (same pixel columns)
        side, channels = image_geometry(n_pixels, str(detected.test), test_pixels)
    extra = {}
    if id_column in test_cells:
        test_ids = _typed_ids(test_cells[id_column], sample, str(detected.test))
        check_unique(test_ids, str(detected.test), id_column)
        rows = pd.Index(test_ids).get_indexer(sample.ids)
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            raise DataError(f"{detected.sample}: line {int(missing[0]) + 2}, column '{id_column}': Id "
                            f"{shown(sample.ids[missing[0]])} is not in {detected.test} ({missing.size} sample Id"
                            f"{'s' if missing.size > 1 else ''} without a test row)")
        extra["unused_test_rows"] = int(len(test_ids) - len(rows))
    else:
        if len(test_values) != len(sample.ids):
            raise DataError(f"{detected.test}: {len(test_values)} rows but {detected.sample} has {len(sample.ids)} Ids "
                            f"(without a '{id_column}' column, test row i is the sample's i-th Id)")
        rows = np.arange(len(sample.ids))
    out_channels = options.channels
    test_label_values = None
    if all(c in test_cells for c in label_columns):
        test_label_values = _labels_of(test_cells, label_columns, str(detected.test))[rows]
    return {
        "train_images": None if values is None else to_images(values, side, channels, options.image_size, out_channels),
        "test_images": to_images(test_values[rows], side, channels, options.image_size, out_channels),
        "label_values": label_values, "labels_file": str(detected.train), "label_column": label,
        "labels_where": f"{detected.train} column{'s' if ',' in label else ''} '{label}'", "first_line": 2,
        "test_label_values": test_label_values, "extra": extra,
    }


def _own_id_column(columns: list[str], options: LoadOptions, where: str) -> str:
    """The Id column of training rows without a sample: ``options.id_column``, a column named ``id`` (any case),
    else kfold's default name (the rows then have no Id column; only the schema names it)."""
    from kfold.files.schema import DEFAULT_ID_COLUMN

    if options.id_column is not None:
        if options.id_column not in columns:
            raise UsageError(f"{param('id_column')}={options.id_column!r}: {where} has no such column")
        return options.id_column
    return next((c for c in columns if c.lower() == DEFAULT_ID_COLUMN), DEFAULT_ID_COLUMN)


def _typed_ids(cells: np.ndarray, sample: Sample, where: str) -> np.ndarray:
    from kfold.files.schema import parse_ids

    return parse_ids(pd.Series(cells, dtype=object), where, sample.id_column, sample.id_kind)


def _decode_pair(train_paths, test_paths, options: LoadOptions, cache_dir, progress, images: bool = True
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Train and test images decoded with one size and one channel count (``images`` False: none decoded;
    ``"test"``: the test images alone, with the channels the options give)."""
    from kfold.data.decode import decode_images

    if not images:  # the schema alone (layout_schema)
        return None, None

    kwargs = dict(image_size=options.image_size, cache_dir=cache_dir, progress=progress)
    if images == "test" and test_paths is not None:
        return None, decode_images(test_paths, split="test", channels=options.channels, **kwargs)
    train = decode_images(train_paths, split="train", channels=options.channels, **kwargs)
    if test_paths is None:  # training images alone
        return train, None
    test = decode_images(test_paths, split="test", channels=options.channels, **kwargs)
    if options.channels is None and train.ndim != test.ndim:  # one split gray, the other colour: both RGB
        if train.ndim == 3:
            train = decode_images(train_paths, split="train", channels=3, **kwargs)
        else:
            test = decode_images(test_paths, split="test", channels=3, **kwargs)
    if train.shape[1:3] != test.shape[1:3]:
        raise DataError(f"images differ in size: {train_paths[0]} is {train.shape[2]}x{train.shape[1]} but "
                        f"{test_paths[0]} is {test.shape[2]}x{test.shape[1]}; give an image size ({param('image_size')}=N) "
                        "to resize them all")
    return train, test


def _test_files(detected: Detected, sample: Sample | None) -> list[str] | None:
    from kfold.data.image_files import FileIndex, list_images

    if sample is None:  # training images alone
        return None
    files = list_images(detected.test)
    if not files:
        raise DataError(f"{detected.test}: no test images")
    return FileIndex.of(detected.test, files).find(sample.ids, str(detected.sample), sample.id_column)


def _load_image_files(detected: Detected, sample: Sample, options: LoadOptions, cache_dir, progress,
                      images: bool = True) -> dict:
    from kfold.data.image_files import FileIndex, check_labels_present, check_unique, list_images, read_text_csv

    frame = read_text_csv(detected.train, "labels CSV")
    columns = list(frame.columns)
    where = str(detected.train)
    if options.image_column is not None:
        if options.image_column not in columns:
            raise UsageError(f"{param('image_column')}={options.image_column!r}: {where} has no such column (has: {', '.join(columns)})")
        file_column = options.image_column
    elif sample is not None and sample.id_column in columns:
        file_column = sample.id_column
    elif sample is None and options.id_column is not None:
        if options.id_column not in columns:
            raise UsageError(f"{param('id_column')}={options.id_column!r}: {where} has no such column "
                             f"(has: {', '.join(columns)})")
        file_column = options.id_column
    else:
        file_column = columns[0]
    if _zero_one_columns(columns, sample, options, file_column):
        return _image_files_parts(detected, sample, options, cache_dir, progress, frame, file_column, images)  # 0/1 columns
    label = _label_column(columns, sample, options, where, (file_column,))
    if label == file_column:
        raise UsageError(f"{param('label_column')}={label!r} is also the column of the image file names")
    names = frame[file_column].astype(str).str.strip().to_numpy(dtype=object)
    check_unique(names, where, file_column)
    values = check_labels_present(frame[label], where, label)
    files = list_images(detected.image_dir)
    if not files:
        raise DataError(f"{detected.image_dir}: no training images")
    train_paths = FileIndex.of(detected.image_dir, files).find(names, where, file_column)
    test_paths = _test_files(detected, sample)
    train, test = _decode_pair(train_paths, test_paths, options, cache_dir, progress, images)
    return {"train_images": train, "test_images": test, "label_values": values, "labels_file": where,
            "label_column": label, "labels_where": f"{where} column '{label}'", "first_line": 2,
            "extra": {"image_column": file_column, "unused_train_images": len(files) - len(train_paths)},
            "id_column": file_column, "id_values": names,
            "schema_from": f"the columns of {detected.train.name} (Id '{file_column}': the image file names, target "
                           f"'{label}')"}


def _image_files_parts(detected: Detected, sample: Sample, options: LoadOptions, cache_dir, progress, frame,
                       file_column: str, images: bool = True) -> dict:
    """Image files whose labels CSV holds the sample's target columns (0/1 each; multi-label or one-hot)."""
    from kfold.data.image_files import FileIndex, check_unique, list_images
    from kfold.files.multilabel import zero_one_matrix

    where = str(detected.train)
    names = frame[file_column].astype(str).str.strip().to_numpy(dtype=object)
    check_unique(names, where, file_column)
    targets = list(sample.target_columns)
    values = zero_one_matrix(frame[targets].to_numpy(dtype=object), where, targets)
    files = list_images(detected.image_dir)
    if not files:
        raise DataError(f"{detected.image_dir}: no training images")
    train_paths = FileIndex.of(detected.image_dir, files).find(names, where, file_column)
    train, test = _decode_pair(train_paths, _test_files(detected, sample), options, cache_dir, progress, images)
    return {"train_images": train, "test_images": test, "label_values": values, "labels_file": where,
            "label_column": ",".join(targets), "labels_where": f"{where} columns {', '.join(targets[:6])}",
            "first_line": 2, "extra": {"image_column": file_column, "unused_train_images": len(files) - len(train_paths)}}


def _load_class_folders(detected: Detected, sample: Sample, options: LoadOptions, cache_dir, progress,
                        images: bool = True) -> dict:
    from kfold.data.image_files import list_class_folders

    classes = list_class_folders(detected.train)
    if not classes:
        raise DataError(f"{detected.train}: no class folders")
    from kfold.files.schema import DEFAULT_ID_COLUMN

    id_column = sample.id_column if sample is not None else options.id_column or DEFAULT_ID_COLUMN
    targets = sample.target_columns if sample is not None else [options.label_column or LABEL_COLUMN]
    reserved = {id_column, LABEL_COLUMN, USAGE_COLUMN}
    if len(targets) == 1:
        reserved.add(targets[0])
    for name, _ in classes:
        if name in reserved:
            raise DataError(f"{detected.train / name}: class folder name {name!r} is also a column name of the "
                            f"competition's files ({', '.join(sorted(reserved))}); rename the folder")
    train_paths = [path for _, files in classes for path in files]
    values = np.array([name for name, files in classes for _ in files], dtype=object)
    test_paths = _test_files(detected, sample)
    train, test = _decode_pair(train_paths, test_paths, options, cache_dir, progress, images)
    label = targets[0] if len(targets) == 1 else LABEL_COLUMN
    given = [name for name, value in (("id", options.id_column), ("label", options.label_column)) if value is not None]
    return {"train_images": train, "test_images": test, "label_values": values,
            "labels_file": str(detected.train), "label_column": label,
            "labels_where": f"the class folders of {detected.train}", "first_line": None,
            "id_column": id_column, "id_values": [os.path.basename(path) for path in train_paths],
            "schema_from": f"kfold's defaults for class folders (Id '{id_column}': the file names, target '{label}')"
                           + (f"; {' and '.join(given)} column named by the options" if given else "")}
