"""``load_task(spec)``: the official KMNIST release by name, or any supported directory layout.

The arrays layouts (KMNIST ``.npy``/``.npz``/idx, MNIST-MIX) are tried first, exactly as before; then the
layouts of :mod:`kfold.data.layouts` (pixel CSVs, image files with a labels CSV, class subfolders).
"""
from __future__ import annotations

from pathlib import Path

from kfold.errors import DataError, UsageError, param
from kfold.data.task import Task

from kfold.data.competition import SAMPLE_SUBMISSION, SOLUTION, write_sample_submission, write_solution
from kfold.data.download import download_kmnist
from kfold.data.flag_use import check_target, check_used
from kfold.data.kmnist import LAYOUTS, load_kmnist_dir
from kfold.data.layouts import LoadOptions, detect_layout, load_layout
from kfold.data.mnist_mix import COMBINED, LABEL_MODES, is_mnist_mix, load_mnist_mix

from kfold.files.split import PUBLIC_FRACTION, SOLUTION_SEED


def load_task(spec: str | Path, *, cache_dir: Path | None = None, languages: list[str] | None = None,
              label_mode: str = "specific", progress: bool = True, options: LoadOptions | None = None,
              test_only: bool = False) -> Task:
    """Load a competition.

    ``spec`` is ``"kmnist"`` (the official release, downloaded once into the cache, scored on its
    10k test set through a generated ``solution.csv``), a directory in one of the KMNIST layouts
    (Kaggle ``.npy``, official ``.npz``, official idx ``.gz``), or an MNIST-MIX file or directory.
    ``languages`` and ``label_mode`` apply to MNIST-MIX only. Any other directory is read by
    :func:`kfold.data.layouts.detect_layout` / :func:`~kfold.data.layouts.load_layout`; ``options``
    (:class:`~kfold.data.layouts.LoadOptions`) names what detection cannot decide. When ``options``
    names a file or folder (``train_csv``, ``test_csv``, ``image_dir``, ``test_dir``), the arrays layouts are
    not tried. ``test_only``: a CSV or image layout with a sample submission decodes its test images alone (no
    training row; the same schema and classes), as a code competition's notebook needs; other layouts load whole.
    """
    options = (options or LoadOptions()).check()
    if label_mode not in LABEL_MODES:
        raise UsageError(f"label_mode {label_mode!r}: must be one of {', '.join(LABEL_MODES)}")
    given = {**options.given(), "languages": languages, "cache_dir": cache_dir,
             "label_mode": None if label_mode == "specific" else label_mode}
    path = Path(spec)
    if str(spec) == "kmnist":  # always the official release; a local folder of that name is "./kmnist"
        check_used("kmnist", given, "the official KMNIST release")
        return _array_options(load_official_kmnist(cache_dir, progress=progress), options)
    if not path.exists():
        raise UsageError(f"dataset {str(spec)!r}: no such directory; give 'kmnist' (the official release, "
                         "downloaded) or a directory holding a KMNIST or MNIST-MIX layout")
    if path.is_dir() and not options.names_files:
        layout = _arrays_layout(path)
        if layout is not None:
            check_used("arrays", given, str(path))
            return _array_options(load_kmnist_dir(path, layout), options, path)
    if not options.names_files and is_mnist_mix(path):
        check_used("mnist-mix", given, str(path))
        return _array_options(load_mnist_mix(path, languages=languages, label_mode=label_mode), options,
                              path if path.is_dir() else path.parent)
    if path.is_dir():
        detected = _detect(path, options)
        if detected is not None:
            check_used(detected.layout, given, str(path))
            note = _switch_note(path, options, detected)
            try:
                return load_layout(detected, options, cache_dir=cache_dir, progress=progress, test_only=test_only)
            except DataError as exc:
                if note is None:
                    raise
                raise DataError(f"{exc.args[0]} ({note})") from None
    if path.is_file():
        raise DataError(f"{path}: not a dataset; a file spec must be an MNIST-MIX .npz like {COMBINED}")
    raise DataError(f"{path}: {_missing_files_report(path)}")


def load_schema(directory: str | Path):
    """The schema ``load_task(directory).schema`` gives, without decoding an image where the layout allows it: a CSV
    or image layout's comes from its sample and training labels alone (``kfold.data.layouts.layout_schema``); the
    arrays layouts (KMNIST, MNIST-MIX) are loaded. ``kfold leaderboard --solution``, ``kfold validate --sample`` and
    ``kfold submit`` learn a competition's columns and classes with it."""
    from kfold.data.layouts import layout_schema

    path = Path(directory)
    if path.is_dir() and _arrays_layout(path) is None and not is_mnist_mix(path):
        schema = layout_schema(path)
        if schema is not None:
            return schema
    return load_task(path, progress=False).schema


def _arrays_layout(directory: Path):
    """The KMNIST arrays layout ``directory`` holds (all its files, or its training arrays alone), or None."""
    for layout in LAYOUTS:
        if all((directory / name).is_file() for name in layout.required) or _training_arrays_alone(directory, layout):
            return layout
    return None


def _training_arrays_alone(directory: Path, layout) -> bool:
    """Training images and labels of an arrays layout without its test images: training data alone, unless a
    sample submission (which promises a test set) lies beside them (one line)."""
    if not all((directory / name).is_file() for name in (layout.train_images, layout.train_labels)) or \
            (directory / layout.test_images).exists():
        return False
    if (directory / SAMPLE_SUBMISSION).is_file():
        raise DataError(f"{directory}: {layout.description} layout is missing {layout.test_images}: "
                        f"{SAMPLE_SUBMISSION} promises test images (without the sample the training images alone are "
                        "trained and scored out of fold)")
    return True


def _detect(path: Path, options: LoadOptions):
    """``detect_layout``; when files or folders were named (which read the folder as a CSV or image layout), a
    failure to find that layout names them, so that they are never the silent cause."""
    named = [name for name in ("train_csv", "test_csv", "image_dir", "test_dir") if getattr(options, name) is not None]
    try:
        detected = detect_layout(path, options)
    except DataError as exc:
        if not named:
            raise
        raise DataError(f"{exc.args[0]} ({_shown(options, named)} read {path} as a CSV or image layout)") from None
    if detected is None and named:
        raise DataError(f"{path}: {_shown(options, named)} read the folder as a CSV or image layout, but it holds no "
                        "training CSV (train.csv, *train*.csv) and no image folder (train/, train_images/)")
    return detected


def _shown(options: LoadOptions, names: list[str]) -> str:
    return ", ".join(f"{param(name)}={str(getattr(options, name))!r}" for name in names)


def load_official_kmnist(cache_dir: Path | None = None, *, progress: bool = True) -> Task:
    """The official 60k/10k KMNIST task; writes ``sample_submission.csv`` and ``solution.csv`` in the cache."""
    directory = download_kmnist(cache_dir, progress=progress)
    task = load_kmnist_dir(directory, LAYOUTS[-1], name="kmnist")
    task.sample_submission = write_sample_submission(task, directory / SAMPLE_SUBMISSION)
    task.solution = write_solution(task, directory / SOLUTION, seed=SOLUTION_SEED, public_fraction=PUBLIC_FRACTION)
    return task


def _switch_note(path: Path, options: LoadOptions, detected) -> str | None:
    """When named files or folders made the folder read as another layout than it holds without them, say so
    (a load error of that layout then names the flags that chose it)."""
    named = [name for name in ("train_csv", "test_csv", "image_dir", "test_dir") if getattr(options, name) is not None]
    if not named:
        return None
    try:
        plain = detect_layout(path)
    except DataError:
        plain = None
    if plain is not None and plain.layout == detected.layout:
        return None
    return (f"{_shown(options, named)} read {path} as a {detected.layout} layout"
            + (f"; without {'them' if len(named) > 1 else 'it'} it is a {plain.layout} layout" if plain is not None else ""))


def _array_options(task: Task, options: LoadOptions, directory: Path | None = None) -> Task:
    """The options that apply to an arrays layout: image size, channels, metric; column options do not."""
    check_target(options.target, "label", f"of the arrays layout of {task.name}", task.schema.header)
    if options.image_size is not None or options.channels is not None:
        from kfold.data.pixel_csv import convert_images

        task.train_images = convert_images(task.train_images, options.image_size, options.channels)
        task.test_images = convert_images(task.test_images, options.image_size, options.channels)
    if directory is not None:  # a competition kfold wrote records its metric
        from kfold.data.layouts import recorded_options

        options = recorded_options(directory, options)
    if options.metric is not None:
        from kfold.metrics import check_metric

        check_metric(options.metric, task.schema.target, task.schema.classes)
        task.schema = task.schema.with_metric(options.metric)
    return task


def _missing_files_report(directory: Path) -> str:
    """Which layouts were tried and, for a partly present one, which files it lacks."""
    partial = []
    for layout in LAYOUTS:
        present = [name for name in layout.required if (directory / name).is_file()]
        if present:
            missing = [name for name in layout.required if name not in present]
            partial.append(f"{layout.description} layout is missing {', '.join(missing)}")
    if partial:
        return "; ".join(partial)
    tried = "; ".join(f"{layout.description} ({', '.join(layout.required)})" for layout in LAYOUTS)
    return (f"no dataset found; tried {tried}; MNIST-MIX ({COMBINED} or <Language>_train_test.npz); pixel CSVs "
            "(train.csv, test.csv, sample_submission.csv); image files (train/ or train_images/ with a labels CSV, "
            "or train/<class>/ folders, test/, sample_submission.csv)")
