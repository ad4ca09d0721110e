"""What a fold's training needs, as plain picklable values: how to load the task again (``TaskSpec``) and one
fold of a prepared run (``FoldJob``).

They live on the data floor, below ``kfold.nn``: ``kfold.nn.fold.train_fold`` takes a typed ``FoldJob`` and loads
its task through ``TaskSpec.load`` without reaching up into the flows; the flows build the jobs
(``kfold.flows.training.fold_jobs``) and hand them to a backend (``kfold.flows.backend.Backend``).
Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfold.config import TrainConfig
from kfold.data.task import Task
from kfold.errors import UsageError, param

__all__ = ["FoldJob", "TaskSpec"]


@dataclass(frozen=True)
class TaskSpec:
    """How to load a task again (a worker process or another node loads it from these values).

    Parameters
    ----------
    data : str
        Competition directory, official KMNIST/MNIST-MIX files, or ``"kmnist"``.
    cache_dir : str, optional
        Download cache for ``data="kmnist"``.
    languages : tuple of str, optional
        MNIST-MIX: the languages to load.
    label_mode : {"specific", "agnostic"}, default "specific"
        MNIST-MIX labels.
    expected : {"auto", "kmnist", "mnist-mix"}, default "auto"
        The task ``data`` must hold.
    options : tuple of (str, value) pairs, default ()
        Fields of ``kfold.data.layouts.LoadOptions``: what layout detection cannot decide.

    Examples
    --------
    >>> import tempfile
    >>> from kfold.data.toy import make_toy_competition
    >>> spec = TaskSpec(str(make_toy_competition(tempfile.mkdtemp() + "/comp")))
    >>> task = spec.load()
    >>> task.num_classes, len(task.train_labels)
    (10, 40)
    """

    data: str
    cache_dir: str | None = None
    languages: tuple[str, ...] | None = None
    label_mode: str = "specific"
    expected: str = "auto"  # kmnist | mnist-mix | auto
    options: tuple = ()  # (field, value) pairs of kfold.data.layouts.LoadOptions: what layout detection cannot decide

    def load(self, progress: bool = False, test_only: bool = False) -> Task:
        """The task these values describe (``test_only``: see :func:`kfold.data.load_task`).

        Raises
        ------
        UsageError
            ``expected`` names another kind of task than ``data`` holds.
        DataError
            Unreadable or inconsistent data.
        """
        from kfold.data import load_task
        from kfold.data.layouts import LAYOUT_NAMES, LoadOptions

        task = load_task(self.data, cache_dir=None if self.cache_dir is None else Path(self.cache_dir),
                         languages=None if self.languages is None else list(self.languages),
                         label_mode=self.label_mode, progress=progress,
                         options=LoadOptions(**dict(self.options)) if self.options else None, test_only=test_only)
        layout = task.extra.get("layout")
        kind = "mnist-mix" if task.name == "mnist-mix" else (layout if layout in LAYOUT_NAMES else "kmnist")
        if self.expected not in ("auto", kind):  # --task names what the data must hold: never ignored
            what = f"a {kind} dataset" if kind in ("kmnist", "mnist-mix") else f"a {kind} competition, neither KMNIST nor MNIST-MIX"
            raise UsageError(f"{param('task')}={self.expected}: {param('data')}={self.data} holds {what}")
        return task


@dataclass(frozen=True)
class FoldJob:
    """Everything one fold's training needs, as plain values (picklable for a Ray task).

    ``config`` is the run's validated ``TrainConfig`` itself (resolved once, by the caller): a fold trains with it
    as it is. ``fold`` is ``0..k-1`` or ``"full"``.
    """

    run_dir: str
    fold: int | str  # 0..k-1 or "full"
    k: int
    seed: int
    preset: str | None
    config: TrainConfig
    task: TaskSpec
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    progress: bool = True
