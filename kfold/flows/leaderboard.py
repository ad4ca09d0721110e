"""The local leaderboard to files: the typed function under ``kfold leaderboard`` (and ``kfold.leaderboard``).

Every output is checked against every input before anything is read; the solution is read, every submission
scored (Public/Private with bootstrap intervals, paired tests), the board written (CSV, Markdown, optionally a
picture) and the tracker told each submission's local scores (logged to the ensembles that wrote those bytes).
Torch-free.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from kfold.errors import check_list
from kfold.files.rundir import LEADERBOARD_FILES
from kfold.files.split import PUBLIC_FRACTION

if TYPE_CHECKING:
    import pandas as pd

    from kfold.flows.tracking import Tracker
    from kfold.scoring.leaderboard import Solution

__all__ = ["BoardResult", "guard_leaderboard", "local_leaderboard"]


@dataclass
class BoardResult:
    """A local leaderboard: its table, its Markdown text, the solution it scored against and the files written."""

    table: "pd.DataFrame"
    text: str
    solution: "Solution"
    written: list[Path] = field(default_factory=list)


def guard_leaderboard(out: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> None:
    """The output guard of a leaderboard folder: no file of it is an input, the folder is no planted link."""
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import probs_path

    out, inputs = Path(out), check_list("inputs", inputs)
    sources = [*inputs, *(probs_path(path) for path in inputs)]  # a submission's probabilities are read too
    guard_outputs([out / name for name in LEADERBOARD_FILES], sources, root=out.parent)


def local_leaderboard(submissions: Sequence[str | os.PathLike], solution: str | os.PathLike, out: str | os.PathLike, *,
                      public_fraction: float = PUBLIC_FRACTION, seed: int = 0, bootstrap: int = 1000,
                      ids: str | os.PathLike | None = None, log_probs: bool = False, plot: bool = False,
                      tracker: "Tracker | None" = None) -> BoardResult:
    """Score ``submissions`` against ``solution`` and write the board to ``out``; tell ``tracker`` the scores.

    Parameters
    ----------
    submissions : sequence of path
        Submission CSVs and/or probability files.
    solution : path
        The host's solution file (a Usage column, or a seeded split of ``public_fraction``).
    out : path
        Folder of ``leaderboard.csv``, ``leaderboard.md`` (and ``leaderboard.png`` with ``plot``).
    public_fraction : float, default 0.3
        Public share of a solution without Usage.
    seed : int, default 0
        Seed of the bootstrap and of a generated split.
    bootstrap : int, default 1000
        Bootstrap resamples of each interval.
    ids : path, optional
        The row Ids of ``.npy`` inputs (a CSV with an Id column, or a 1-D ``.npy``).
    log_probs : bool, default False
        Probability inputs hold natural-log probabilities.
    plot : bool, default False
        Also draw ``leaderboard.png``.
    tracker : Tracker, optional
        Told each submission's local Public/Private (``Tracker.scored``).

    Returns
    -------
    BoardResult

    Raises
    ------
    UsageError
        An output that is an input, a bad seed or bootstrap count.
    DataError
        A solution or submission that is unreadable or does not hold the solution's Ids.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> tmp = tempfile.mkdtemp()
    >>> pd.DataFrame({"Id": range(4), "Category": [0, 1, 1, 0], "Usage": ["Public", "Private"] * 2}).to_csv(
    ...     f"{tmp}/solution.csv", index=False)
    >>> pd.DataFrame({"Id": range(4), "Category": [0, 1, 0, 0]}).to_csv(f"{tmp}/sub.csv", index=False)
    >>> board = local_leaderboard([f"{tmp}/sub.csv"], f"{tmp}/solution.csv", f"{tmp}/board", bootstrap=10)
    >>> board.table[["public", "private"]].values.tolist(), [p.name for p in board.written]
    ([[0.5, 1.0]], ['leaderboard.csv', 'leaderboard.md'])
    """
    from kfold.scoring.ensemble import check_seed
    from kfold.scoring.leaderboard import leaderboard, read_solution, write_leaderboard

    submissions = check_list("submissions", submissions)
    check_seed(seed)
    out = Path(out)
    guard_leaderboard(out, [*submissions, solution, *([ids] if ids else [])])  # before anything is read
    row_ids = None
    if ids:
        from kfold.files.readers import read_ids

        row_ids = read_ids(ids)
    truth = read_solution(solution, public_fraction=public_fraction, seed=seed)
    table = leaderboard(submissions, truth, n_bootstrap=bootstrap, seed=seed, ids=row_ids, log_probs=log_probs)
    text = write_leaderboard(table, out, plot=plot)
    for row in table.to_dict("records") if tracker else ():  # the local scores of tracked ensembles
        tracker.scored(row["submission"], row.get("public"), row.get("private"))
    written = [out / name for name in LEADERBOARD_FILES if plot or not name.endswith(".png")]
    return BoardResult(table, text, truth, written)
