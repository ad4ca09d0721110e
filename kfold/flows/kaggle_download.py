"""``kfold download``: a competition's files downloaded through ``kfold.kaggle_api`` and unpacked all or nothing,
then the data layout found in them (``detect_layout``). Re-exported by ``kfold.flows.kaggle_loop``. Torch-free.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kfold.errors import DataError, UsageError, param

__all__ = ["DATA_ROOT", "Downloaded", "detect_layout", "download"]

DATA_ROOT = Path("data")


def _competition_layout(folder: Path) -> str | None:
    """The description of a pixel-csv, image-files or class-folders competition in ``folder`` (None: none, or an
    incomplete one, which ``kfold inspect`` / ``kfold run`` will explain)."""
    from kfold.data.layouts import detect_layout as detect

    try:
        found = detect(folder)
    except (DataError, UsageError):
        return None
    if found is None:
        return None
    train = found.train.name + ("/" if found.train.is_dir() else "")
    test = found.test.name + ("/" if found.test.is_dir() else "")
    images = f", images in {found.image_dir.name}/" if found.layout == "image-files" and found.image_dir else ""
    return f"{found.layout} ({train} and {test}{images}, {found.sample.name})"


def detect_layout(directory: Path, depth: int = 2) -> tuple[Path, str] | None:
    """The first folder (``directory`` or below, breadth first) holding a competition kfold reads: the KMNIST or
    MNIST-MIX arrays, or a pixel-csv, image-files or class-folders layout."""
    from kfold.data.kmnist import LAYOUTS
    from kfold.data.mnist_mix import is_mnist_mix

    level = [directory]
    for _ in range(depth + 1):
        for folder in level:
            for layout in LAYOUTS:
                if all((folder / name).is_file() for name in layout.required):
                    return folder, layout.description
            if is_mnist_mix(folder):
                return folder, "MNIST-MIX"
            described = _competition_layout(folder)
            if described is not None:
                return folder, described
        level = sorted(child for folder in level for child in folder.iterdir()
                       if child.is_dir() and not child.is_symlink() and not child.name.startswith("."))
    return None


@dataclass
class Downloaded:
    """The files unpacked into ``folder`` and the data layout found there (None when none is recognised)."""

    folder: Path
    files: list[Path]
    layout: tuple[Path, str] | None


def download(competition: str, data_dir: str | os.PathLike | None = None, max_size: str = "8G",
             force: bool = False) -> Downloaded:
    """Download the competition's files and unpack them into ``data_dir`` (default ``data/COMP``), all or
    nothing: into a temporary folder beside it first, refusing archives that unpack to more than ``max_size``,
    members that escape, symlinks on the way, and existing files unless ``force``."""
    from kfold import kaggle_api
    from kfold.files.archive import check_not_symlink, extract_zip, parse_size

    competition = kaggle_api.check_competition(competition)
    limit = parse_size(max_size)
    data_dir = Path(data_dir) if data_dir is not None else DATA_ROOT / competition
    check_not_symlink(data_dir, "the data folder")
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"{data_dir}: exists and is not a folder; give a folder for {param('data_dir')}")
    client = kaggle_api.connect()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.download-", dir=data_dir.parent))
    try:
        saved = client.download(competition, staging)
        if saved.stat().st_size > limit:
            raise DataError(f"{saved.name} (downloaded): {saved.stat().st_size} bytes, more than {param('max_size')} {max_size}")
        if saved.suffix.lower() == ".zip":
            files = extract_zip(saved, data_dir, max_size=limit, force=force, name=f"{saved.name} (downloaded)")
        else:  # a competition with a single non-zip file
            target = data_dir / saved.name
            check_not_symlink(target, "the downloaded file's target")
            if target.exists() and not force:
                raise DataError(f"{target}: already exists; give {param('force')}=True to replace it")
            data_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(saved), target)
            files = [target]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Downloaded(data_dir, files, detect_layout(data_dir))
