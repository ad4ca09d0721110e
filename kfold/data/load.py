"""``load_task(spec)``: the official KMNIST release by name, or any supported directory layout."""
from __future__ import annotations

from pathlib import Path

from kfold.errors import DataError, UsageError
from kfold.data.task import Task

from kfold.data.competition import SAMPLE_SUBMISSION, SOLUTION, write_sample_submission, write_solution
from kfold.data.download import download_kmnist
from kfold.data.kmnist import LAYOUTS, load_kmnist_dir
from kfold.data.mnist_mix import COMBINED, LABEL_MODES, is_mnist_mix, load_mnist_mix

from kfold.files.split import PUBLIC_FRACTION, SOLUTION_SEED


def load_task(spec: str | Path, *, cache_dir: Path | None = None, languages: list[str] | None = None,
              label_mode: str = "specific", progress: bool = True) -> Task:
    """Load a competition.

    ``spec`` is ``"kmnist"`` (the official release, downloaded once into the cache, scored on its
    10k test set through a generated ``solution.csv``), a directory in one of the KMNIST layouts
    (Kaggle ``.npy``, official ``.npz``, official idx ``.gz``), or an MNIST-MIX file or directory.
    ``languages`` and ``label_mode`` apply to MNIST-MIX only.
    """
    if label_mode not in LABEL_MODES:
        raise UsageError(f"label_mode {label_mode!r}: must be one of {', '.join(LABEL_MODES)}")
    path = Path(spec)
    if str(spec) == "kmnist":  # always the official release; a local folder of that name is "./kmnist"
        _kmnist_only(spec, languages, label_mode)
        return load_official_kmnist(cache_dir, progress=progress)
    if not path.exists():
        raise UsageError(f"dataset {str(spec)!r}: no such directory; give 'kmnist' (the official release, "
                         "downloaded) or a directory holding a KMNIST or MNIST-MIX layout")
    if path.is_dir():
        for layout in LAYOUTS:
            if all((path / name).is_file() for name in layout.required):
                _kmnist_only(spec, languages, label_mode)
                return load_kmnist_dir(path, layout)
    if is_mnist_mix(path):
        return load_mnist_mix(path, languages=languages, label_mode=label_mode)
    if path.is_file():
        raise DataError(f"{path}: not a dataset; a file spec must be an MNIST-MIX .npz like {COMBINED}")
    raise DataError(f"{path}: {_missing_files_report(path)}")


def load_official_kmnist(cache_dir: Path | None = None, *, progress: bool = True) -> Task:
    """The official 60k/10k KMNIST task; writes ``sample_submission.csv`` and ``solution.csv`` in the cache."""
    directory = download_kmnist(cache_dir, progress=progress)
    task = load_kmnist_dir(directory, LAYOUTS[-1], name="kmnist")
    task.sample_submission = write_sample_submission(task, directory / SAMPLE_SUBMISSION)
    task.solution = write_solution(task, directory / SOLUTION, seed=SOLUTION_SEED, public_fraction=PUBLIC_FRACTION)
    return task


def _kmnist_only(spec, languages, label_mode) -> None:
    if languages is not None or label_mode != "specific":
        raise UsageError(f"{spec}: languages and label_mode apply to MNIST-MIX only, not to KMNIST")


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
    return f"no dataset found; tried {tried}; MNIST-MIX ({COMBINED} or <Language>_train_test.npz)"
