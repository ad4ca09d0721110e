"""Local Kaggle-style leaderboard: score submissions on the Public and Private rows of a solution file.

A solution file is ``Id,Category[,Usage][,Language]``. ``Usage`` is ``Public`` or ``Private`` (``Ignored``
rows are scored nowhere, as on Kaggle). A solution without ``Usage`` gets a seeded random
Public/Private split (``public_fraction`` of the rows Public), the same one ``make_solution``
writes. Accuracy intervals are 95% percentile bootstraps (``scipy.stats.bootstrap``, seeded);
probability files also get a log loss. A ``Language`` column (MNIST-MIX) adds the accuracy of each
language on the scored rows (Public and Private), as columns ``accuracy_<language>``. Nothing here
imports torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn.metrics import accuracy_score, log_loss

from kfold.files.atomic import write_csv, write_text
from kfold.scoring.ensemble import input_name, load_input
from kfold.errors import DataError, UsageError
from kfold.files.probs import ProbFile
from kfold.files.split import PUBLIC_FRACTION as DEFAULT_PUBLIC_FRACTION
from kfold.files.split import check_fraction as _check_fraction, make_solution, random_usage  # noqa: F401
from kfold.scoring.report import display_names, markdown_table
from kfold.files.submission import (FIRST_DATA_LINE, Submission, align_ids, check_categories, check_unique_ids,
                                   id_category_columns, read_csv_frame)

USAGES = ("Public", "Private", "Ignored")
GROUP_COLUMN = "Language"  # optional last solution column: accuracy per group
GROUP_PREFIX = "accuracy_"
COLUMNS = ["public_rank", "submission", "public", "private", "private_rank", "rank_shift", "public_low", "public_high",
           "private_low", "private_high", "public_logloss", "private_logloss", "n_public", "n_private"]


@dataclass
class Solution:
    ids: np.ndarray
    categories: np.ndarray
    usage: np.ndarray      # str per row: Public | Private | Ignored
    path: Path | None = None
    split_generated: bool = False  # True when the file had no Usage column
    groups: np.ndarray | None = None  # str per row from the Language column, if any
    num_classes: int | None = None  # the competition's classes: a submitted Category must lie in 0..num_classes-1
    classes_source: str = ""

    @property
    def public(self) -> np.ndarray:
        return self.usage == "Public"

    @property
    def private(self) -> np.ndarray:
        return self.usage == "Private"


def read_solution(path: str | os.PathLike, public_fraction: float = DEFAULT_PUBLIC_FRACTION, seed: int = 0) -> Solution:
    """Read and check a solution file; generate the Public/Private split if it has no Usage column."""
    path = Path(path)
    where = str(path)
    frame = read_csv_frame(path, "solution")
    columns = list(frame.columns)
    group_values = frame.pop(GROUP_COLUMN) if columns[2:] and columns[-1] == GROUP_COLUMN else None
    columns = list(frame.columns)
    if columns not in (["Id", "Category"], ["Id", "Category", "Usage"]):
        raise DataError(f"{where}: line 1: header '{','.join(map(str, columns))}' must be 'Id,Category,Usage' "
                        f"(or 'Id,Category')")
    ids, categories = id_category_columns(frame, where)
    groups = None
    if group_values is not None:
        groups = group_values.str.strip().to_numpy(dtype=object)
        if (groups == "").any():
            row = int(np.argmax(groups == ""))
            raise DataError(f"{where}: line {row + FIRST_DATA_LINE} (Id {ids[row]}), column '{GROUP_COLUMN}': empty")
    if (categories < 0).any():
        row = int(np.argmax(categories < 0))
        raise DataError(f"{where}: line {row + FIRST_DATA_LINE} (Id {ids[row]}): Category {categories[row]} is negative")
    num_classes, classes_source = solution_classes(path, categories)
    if "Usage" not in frame:
        return Solution(ids, categories, random_usage(len(ids), seed, public_fraction), path, split_generated=True,
                        groups=groups, num_classes=num_classes, classes_source=classes_source)
    usage = frame["Usage"].astype(str).str.strip().to_numpy(dtype=object)
    bad = ~np.isin(usage, USAGES)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{where}: line {row + FIRST_DATA_LINE} (Id {ids[row]}), column 'Usage': "
                        f"'{usage[row]}' is not one of {', '.join(USAGES)}")
    for split in ("Public", "Private"):
        if not (usage == split).any():
            raise DataError(f"{where}: no {split} rows in the Usage column")
    return Solution(ids, categories, usage, path, groups=groups, num_classes=num_classes, classes_source=classes_source)


def solution_classes(path: Path, categories: np.ndarray) -> tuple[int | None, str]:
    """The competition's class count from the files beside the solution (class map, data) when they agree with
    its Categories; (None, '') when nothing there says (then any non-negative Category is scored)."""
    from kfold.data.classes import competition_classes

    known = competition_classes(path.parent)
    if known is not None and known.count > categories.max():
        return known.count, known.source
    return None, ""


def _interval(correct: np.ndarray, n_bootstrap: int, seed: int) -> tuple[float, float]:
    if len(correct) < 2:  # nothing to resample: the interval is the single observation
        return float(correct.mean()), float(correct.mean())
    result = bootstrap((correct,), np.mean, n_resamples=n_bootstrap, method="percentile", vectorized=True,
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def score_submission(submission: Submission | ProbFile | str | os.PathLike, solution: Solution | str | os.PathLike,
                     n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Public and Private accuracy (with 95% bootstrap intervals) and, for probability files, log loss.

    The submission must cover exactly the solution's Ids (any order).
    """
    if n_bootstrap < 1:
        raise UsageError(f"--bootstrap must be at least 1, got {n_bootstrap}")
    if not isinstance(solution, Solution):
        solution = read_solution(solution, seed=seed)
    item = submission if isinstance(submission, (Submission, ProbFile)) else load_input(submission)
    name = input_name(item)
    reference = f"the solution {solution.path}" if solution.path else "the solution"
    order = align_ids(item.ids, solution.ids, name, reference, first_line=FIRST_DATA_LINE if isinstance(item, Submission) else None)
    probs = None
    if isinstance(item, ProbFile):
        if solution.categories.max() >= item.num_classes:
            raise DataError(f"{name}: {item.num_classes} classes but the solution has Category {solution.categories.max()}")
        probs = item.probs[order].astype(np.float64)
        probs /= probs.sum(axis=1, keepdims=True)
        predicted = probs.argmax(axis=1)
    else:
        if solution.num_classes is not None:
            check_categories(item.ids, item.categories, solution.num_classes, f"{name}",
                             suffix=f" of the competition ({solution.num_classes} classes from {solution.classes_source})")
        predicted = item.categories[order]
    scores = {"submission": name}
    for split, mask in (("public", solution.public), ("private", solution.private)):
        truth, guess = solution.categories[mask], predicted[mask]
        scores[split] = float(accuracy_score(truth, guess))
        scores[f"{split}_low"], scores[f"{split}_high"] = _interval((truth == guess).astype(np.float64), n_bootstrap, seed)
        scores[f"{split}_logloss"] = (float(log_loss(truth, probs[mask], labels=np.arange(probs.shape[1])))
                                      if probs is not None else np.nan)
        scores[f"n_{split}"] = int(mask.sum())
    if solution.groups is not None:
        scored = solution.public | solution.private
        for group in dict.fromkeys(solution.groups[scored]):
            mask = scored & (solution.groups == group)
            scores[GROUP_PREFIX + group] = float(accuracy_score(solution.categories[mask], predicted[mask]))
    return scores


def leaderboard(submissions: Sequence[str | os.PathLike], solution: Solution, n_bootstrap: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """Score every submission; rank by Public (ties share a rank), with the Private rank and the shift."""
    if not submissions:
        raise UsageError("no submissions to score")
    table = pd.DataFrame([score_submission(path, solution, n_bootstrap, seed) for path in submissions])
    table.insert(0, "public_rank", table["public"].rank(ascending=False, method="min").astype(int))
    table["private_rank"] = table["private"].rank(ascending=False, method="min").astype(int)
    table["rank_shift"] = table["public_rank"] - table["private_rank"]  # > 0: climbed on Private
    table = table[COLUMNS + [column for column in table.columns if column.startswith(GROUP_PREFIX)]]
    return table.sort_values(["public_rank", "private_rank", "submission"], kind="stable").reset_index(drop=True)


def leaderboard_markdown(table: pd.DataFrame) -> str:
    def with_ci(split: str) -> pd.Series:
        return table.apply(lambda r: f"{r[split]:.4f} [{r[f'{split}_low']:.4f}, {r[f'{split}_high']:.4f}]", axis=1)

    shown = pd.DataFrame({
        "#": table["public_rank"],
        "submission": display_names(list(table["submission"])),
        "public (95% CI)": with_ci("public"),
        "private (95% CI)": with_ci("private"),
        "private #": table["private_rank"],
        "shift": table["rank_shift"].map(lambda s: f"{s:+d}"),
        "public logloss": table["public_logloss"],
        "private logloss": table["private_logloss"],
        **{column[len(GROUP_PREFIX):]: table[column] for column in table.columns if column.startswith(GROUP_PREFIX)},
    })
    return markdown_table(shown)


def write_leaderboard(table: pd.DataFrame, out_dir: str | os.PathLike) -> str:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` into ``out_dir``; return the Markdown."""
    text = leaderboard_markdown(table)
    write_csv(Path(out_dir) / "leaderboard.csv", table)
    write_text(Path(out_dir) / "leaderboard.md", text)
    return text
