"""How many classes a competition has, from the files beside a sample submission or a solution.

``kfold validate --sample``, ``kfold submit --sample`` and ``kfold leaderboard`` use it so that a Category
outside the competition's classes (11 on a 10-class competition) is refused even without ``--num-classes``.
The directory's ``kmnist_classmap.csv`` answers first; otherwise a dataset in the directory (a KMNIST
layout, MNIST-MIX files) is loaded and its class count taken. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfold.errors import KfoldError, UsageError, param


@dataclass(frozen=True)
class Classes:
    count: int
    source: str  # the file or dataset the count comes from, for error messages

    def describe(self) -> str:
        return f"{self.count} classes from {self.source}"


def competition_classes(directory: str | Path) -> Classes | None:
    """The class count of the competition in ``directory``, or None when nothing there says."""
    from kfold.data.competition import CLASSMAP, read_classmap

    directory = Path(directory)
    classmap = directory / CLASSMAP
    try:
        if classmap.is_file():
            return Classes(len(read_classmap(classmap)), str(classmap))
        from kfold.data import load_task

        task = load_task(directory, progress=False)
    except KfoldError:  # not a dataset (or a damaged one): the class count stays unknown
        return None
    return Classes(task.num_classes, f"the {task.name} data in {directory}")


def competition_schema(sample: str | Path):
    """The schema of the competition whose sample submission is ``sample``: ``None`` for KMNIST's ``Id,Category``
    (checked as before), else the folder's ``competition.json`` or the schema of the data beside it; a sample in
    another schema whose competition kfold cannot read is an error (its classes would be unknown)."""
    from kfold.errors import DataError
    from kfold.files.readers import csv_header
    from kfold.files.schema import KMNIST, read_competition_file

    sample = Path(sample)
    if not sample.is_file():
        raise DataError(f"{sample}: sample submission not found")
    if [h.strip() for h in csv_header(sample)] == KMNIST.header:
        return None
    recorded = read_competition_file(sample.parent)
    if recorded is not None:
        return recorded["schema"]
    from kfold.data.load import load_schema

    try:  # the sample and the training labels: no image is decoded
        return load_schema(sample.parent)
    except KfoldError as exc:
        raise DataError(f"{sample}: a sample in the competition's own columns, and the folder beside it holds no "
                        f"competition kfold can read to know its classes ({exc})") from None


def resolve_num_classes(num_classes: int | None, beside: str | Path | None) -> tuple[int | None, str]:
    """``--num-classes`` checked against the competition beside ``beside`` (a sample file); the count to use
    and where it comes from ('' when unknown or given by the flag)."""
    known = competition_classes(Path(beside).parent) if beside is not None else None
    if num_classes is None:
        return (known.count, known.describe()) if known else (None, "")
    if known is not None and known.count != num_classes:
        raise UsageError(f"{param('num_classes')}={num_classes!r}: the competition of {beside} has {known.describe()}")
    return num_classes, ""
