"""Local Kaggle-style leaderboard: score submissions on the Public and Private rows of a solution file.

A solution file is ``Id,Category[,Usage][,Language]``. ``Usage`` is ``Public`` or ``Private`` (``Ignored``
rows are scored nowhere, as on Kaggle). A solution without ``Usage`` gets a seeded random
Public/Private split (``public_fraction`` of the rows Public), the same one ``make_solution``
writes. Every submission is scored on Public, Private and Overall (all scored rows).

Intervals are 95% percentile bootstraps with ONE resampling of the rows per split shared by all
submissions (``n_bootstrap`` resamples, seeded; the Overall resample is the Public and the Private one
together, a stratified bootstrap): it makes the scoring a matrix product instead of a loop over
submissions, it makes the comparisons paired, and a submission's interval does not depend on which
other submissions are on the board. Each submission is compared with the best
Public one (rank 1; ties: the first listed) on the same rows of each split: the bootstrap interval of the
accuracy difference, and McNemar's exact test on the discordant rows (rows exactly one of the two gets
right; two-sided binomial test with p = 1/2, the same value as ``scipy.stats.binomtest``). A difference
is marked significant when that p-value is below ``ALPHA``: Kaggle's rank shifts between submissions a
few rows apart are mostly noise, and this says which are not. No correction for the number of
comparisons is made (with 200 submissions, expect ~5% of the equal ones marked by chance).

Probability files also get a log loss; a submission CSV with a ``<stem>.probs.npz`` beside it (what
``ensemble.py`` writes) gets the log loss of that file, after checking that its predictions are the
CSV's. A ``Language`` column (MNIST-MIX) adds the accuracy of each language on the scored rows, as
columns ``accuracy_<language>``. Nothing here imports torch, scipy or sklearn (start-up time counts
when the leaderboard is rerun after every submission); matplotlib only for ``leaderboard.png``, which is
drawn on request (``--plot``: importing matplotlib and drawing cost more than scoring 200 submissions).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kfold.files.atomic import write_csv, write_text
from kfold.scoring.ensemble import check_seed, input_name, load_input
from kfold.errors import DataError, UsageError, check_list, param
from kfold.files.probs import ProbFile, read_probs
from kfold.files.rundir import probs_path
from kfold.files.split import PUBLIC_FRACTION as DEFAULT_PUBLIC_FRACTION
from kfold.files.split import make_solution, random_usage  # noqa: F401  (make_solution: re-exported)
from kfold.files.schema import GROUP_COLUMN, KMNIST, USAGE_COLUMN, USAGE_VALUES, Schema, read_competition_file
from kfold.scoring.bootstrap import ALPHA, SPLITS, paired_tests, percentile_interval
from kfold.scoring.report import display_names, markdown_table
from kfold.files.submission import (FIRST_DATA_LINE, Submission, align_ids, check_categories,
                                   id_category_columns, read_csv_frame)

__all__ = ["ALPHA", "bootstrap_counts", "bootstrap_means", "COLUMNS", "GROUP_COLUMN", "GROUP_PREFIX", "leaderboard",
           "leaderboard_markdown", "mcnemar_exact", "percentile_interval", "read_solution", "score_many",
           "score_submission", "Solution", "solution_classes", "SPLITS", "USAGES", "write_leaderboard"]

USAGES = USAGE_VALUES
GROUP_PREFIX = "accuracy_"
COLUMNS = ["public_rank", "submission", "public", "private", "overall", "private_rank", "rank_shift",
           "public_low", "public_high", "private_low", "private_high", "overall_low", "overall_high",
           "public_logloss", "private_logloss", "overall_logloss", "n_public", "n_private", "n_overall",
           "public_diff", "public_diff_low", "public_diff_high", "public_p", "public_significant",
           "private_diff", "private_diff_low", "private_diff_high", "private_p", "private_significant",
           "logloss_from"]


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
    schema: Schema | None = None  # the competition's own columns and classes; KMNIST's Id,Category when None
    metric: str = "accuracy"      # what the board scores (kfold.metrics)

    @property
    def public(self) -> np.ndarray:
        return self.usage == "Public"

    @property
    def private(self) -> np.ndarray:
        return self.usage == "Private"


def read_solution(path: str | os.PathLike, public_fraction: float = DEFAULT_PUBLIC_FRACTION, seed: int = 0,
                  schema: Schema | None = None, metric: str | None = None) -> Solution:
    """Read and check a solution file; generate the Public/Private split if it has no Usage column.

    The competition's schema is ``schema``, else the one its folder records (``competition.json``, written by
    ``kfold make-competition``), else KMNIST's ``Id,Category``; ``metric`` defaults to the schema's."""
    path = Path(path)
    where = str(path)
    frame = read_csv_frame(path, "solution")
    columns = list(frame.columns)
    group_values = frame.pop(GROUP_COLUMN) if columns[2:] and columns[-1] == GROUP_COLUMN else None
    columns = list(frame.columns)
    if schema is None:
        schema = solution_schema(path, frame)
    if schema is not None and schema.multilabel:  # tags or 0/1 columns (kfold.scoring.multilabel_board)
        from kfold.scoring.multilabel_board import multilabel_solution

        check_seed(seed)
        return Solution(**multilabel_solution(path, schema, public_fraction, seed, metric))
    id_column, label_column, usage_column = (schema or KMNIST).solution_header
    if columns not in ([id_column, label_column], [id_column, label_column, usage_column]):
        raise DataError(f"{where}: line 1: header '{','.join(map(str, columns))}' must be "
                        f"'{id_column},{label_column},{usage_column}' (or '{id_column},{label_column}')")
    if schema is None or schema.header == KMNIST.header and schema.class_kind == "int" and schema.id_kind == "int":
        ids, categories = id_category_columns(frame, where)
    else:
        if frame.empty:
            raise DataError(f"{where}: no rows after the header")
        ids = schema.parse_ids(frame[id_column], where)
        from kfold.files.submission import check_unique_ids

        check_unique_ids(ids, where)
        categories = schema.encode(frame[label_column].tolist(), where, label_column, FIRST_DATA_LINE)
    metric = metric or (schema.metric if schema is not None else "accuracy")
    from kfold.metrics import get_metric

    try:
        get_metric(metric)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    groups = None
    if group_values is not None:
        groups = group_values.str.strip().to_numpy(dtype=object)
        if (groups == "").any():
            row = int(np.argmax(groups == ""))
            raise DataError(f"{where}: line {row + FIRST_DATA_LINE} (Id {ids[row]}), column '{GROUP_COLUMN}': empty")
    if (categories < 0).any():
        row = int(np.argmax(categories < 0))
        raise DataError(f"{where}: line {row + FIRST_DATA_LINE} (Id {ids[row]}): Category {categories[row]} is negative")
    if schema is not None and schema != KMNIST:
        num_classes, classes_source = schema.num_classes, f"the competition's {schema.num_classes} classes"
    else:
        num_classes, classes_source = solution_classes(path, categories)
    if usage_column not in frame:
        check_seed(seed)
        usage = random_usage(len(ids), seed, public_fraction)
        for split in ("Public", "Private"):
            if not (usage == split).any():
                raise UsageError(f"{where}: has no Usage column, and a seeded split of {len(ids)} row(s) with "
                                 f"{param('public_fraction')}={public_fraction:g} leaves no {split} rows; add a Usage column "
                                 f"or choose another {param('public_fraction')}")
        return Solution(ids, categories, usage, path, split_generated=True, groups=groups, num_classes=num_classes,
                        classes_source=classes_source, schema=schema, metric=metric)
    usage = frame[usage_column].astype(str).str.strip().to_numpy(dtype=object)
    bad = ~np.isin(usage, USAGES)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{where}: line {row + FIRST_DATA_LINE} (Id {ids[row]}), column '{usage_column}': "
                        f"'{usage[row]}' is not one of {', '.join(USAGES)}")
    for split in ("Public", "Private"):
        if not (usage == split).any():
            raise DataError(f"{where}: no {split} rows in the {usage_column} column")
    return Solution(ids, categories, usage, path, groups=groups, num_classes=num_classes, classes_source=classes_source,
                    schema=schema, metric=metric)


def solution_schema(path: Path, frame) -> Schema | None:
    """The schema of the competition whose solution is ``path`` (``frame``: its cells): the folder's
    ``competition.json``; else KMNIST's (``None``) for an ``Id,Category`` header; else the competition beside it
    (its sample and training labels, ``kfold.data.load.load_schema``: no image decoded) when its columns are the
    solution's; else the solution's own header: the Id column first,
    ``Usage`` last (optional), the one label column between (classes: the label values), as ``kfold validate
    --sample`` reads a competition. Only a header with several candidates for the label column is refused, naming
    them."""
    from kfold.errors import KfoldError

    recorded = read_competition_file(path.parent) if path.parent.is_dir() else None
    if recorded is not None:
        return recorded["schema"]
    columns = [str(c) for c in frame.columns]
    if columns[:2] == KMNIST.solution_header[:2] or len(columns) < 2:
        return None  # KMNIST's Id,Category (checked as always); too few columns: refused with KMNIST's header
    try:  # the schema alone: the sample and the training labels are read, no image is decoded
        from kfold.data.load import load_schema

        beside = load_schema(path.parent) if (path.parent / "sample_submission.csv").is_file() else None
    except KfoldError:
        beside = None
    if beside is not None and columns in (beside.solution_header[:2], beside.solution_header):
        return beside
    between = columns[1:-1] if columns[-1] == USAGE_COLUMN else columns[1:]
    if len(between) != 1:
        raise DataError(f"{path}: line 1: header '{','.join(columns)}': cannot tell the label column among "
                        f"{', '.join(map(repr, between))} (a solution holds the Id column first, then one label column, "
                        f"then '{USAGE_COLUMN}'); keep one of them, or put a competition.json or the competition's "
                        "sample_submission.csv and data beside it")
    from kfold.files.schema import Sample, infer_id_kind, infer_schema, parse_ids

    id_column, label = columns[0], between[0]
    cells = frame[id_column].astype(str)
    id_kind = infer_id_kind(cells.tolist())
    sample = Sample(path=path, columns=[id_column, label], ids=parse_ids(cells, str(path), id_column, id_kind),
                    id_kind=id_kind, frame=frame[[id_column, label]].astype(str))
    labels = frame[label].astype(str).str.strip()
    blank = (labels == "").to_numpy()
    if blank.any():
        row = int(np.argmax(blank))
        raise DataError(f"{path}: line {row + FIRST_DATA_LINE}, column '{label}': empty label")
    return infer_schema(sample, labels.tolist(), target="label", where_labels=f"{path} column '{label}'")


def solution_classes(path: Path, categories: np.ndarray) -> tuple[int | None, str]:
    """The competition's class count from the files beside the solution (class map, data) when they agree with
    its Categories; (None, '') when nothing there says (then any non-negative Category is scored)."""
    from kfold.data.classes import competition_classes

    known = competition_classes(path.parent)
    if known is not None and known.count > categories.max():
        return known.count, known.source
    return None, ""


def bootstrap_counts(n_rows: int, n_resamples: int, rng: np.random.Generator, chunk: int = 100):
    """Yield (resamples, n_rows) float32 arrays: how often each row is drawn in each bootstrap resample.

    A resample's mean of any per-row score is then ``counts @ score / n_rows``: one set of draws serves
    every submission (and makes two submissions' resamples paired)."""
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        dtype = np.int32 if size * n_rows < 2**31 else np.int64
        draws = rng.integers(0, n_rows, size=(size, n_rows), dtype=dtype)
        draws += (np.arange(size, dtype=dtype) * n_rows)[:, None]
        yield np.bincount(draws.ravel(), minlength=size * n_rows).reshape(size, n_rows).astype(np.float32)


def bootstrap_means(correct: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, K) bootstrap means of the (K, n) 0/1 matrix ``correct``, rows resampled once for all K.

    Each submission's mean is read from its rarer outcome only (the rows it gets wrong, for any useful
    submission): a gather of the resample counts at those rows, so the cost grows with the errors, not
    with rows x submissions. Dense 0/1 matrices (mostly wrong submissions) use a matrix product."""
    n_subs, n_rows = correct.shape
    if n_rows < 2:  # nothing to resample: every resample is the single observation
        return np.repeat(correct.mean(axis=1, keepdims=True).T.astype(np.float64), max(n_resamples, 1), axis=0)
    flip = correct.mean(axis=1) > 0.5          # count the wrong rows of these, the right rows of the others
    rare = correct ^ flip[:, None]
    per_sub = rare.sum(axis=1)
    out = []
    if per_sub.sum() > 0.2 * rare.size:
        scores = np.ascontiguousarray(rare.T, dtype=np.float32)
        for counts in bootstrap_counts(n_rows, n_resamples, rng):
            out.append(counts @ scores)
    else:
        columns = np.flatnonzero(rare.ravel()) % n_rows   # rare rows, submission after submission
        nonempty = np.flatnonzero(per_sub)
        starts = (np.cumsum(per_sub) - per_sub)[nonempty]
        for counts in bootstrap_counts(n_rows, n_resamples, rng):
            sums = np.zeros((len(counts), n_subs), dtype=np.float64)
            if len(columns):
                sums[:, nonempty] = np.add.reduceat(counts[:, columns], starts, axis=1)
            out.append(sums)
    rare_means = np.concatenate(out).astype(np.float64) / n_rows
    return np.where(flip, 1.0 - rare_means, rare_means)


def mcnemar_exact(wins: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Two-sided exact McNemar p-values: binomial test of ``wins`` out of ``wins + losses`` discordant rows at 1/2.

    Equal to ``scipy.stats.binomtest(wins, wins + losses, 0.5).pvalue`` (checked in the tests) without
    importing scipy.stats; 1.0 when there is no discordant row."""
    wins, losses = np.asarray(wins, dtype=np.int64), np.asarray(losses, dtype=np.int64)
    n = wins + losses
    top = int(n.max()) if n.size else 0
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, top + 1, dtype=np.float64)))])
    p = np.ones(n.shape, dtype=np.float64)
    for index in np.ndindex(n.shape):
        total, low = int(n[index]), int(min(wins[index], losses[index]))
        if total == 0 or 2 * low == total:
            continue
        i = np.arange(low + 1)
        log_pmf = log_fact[total] - log_fact[i] - log_fact[total - i] - total * np.log(2.0)
        top_term = log_pmf.max()
        p[index] = min(1.0, 2.0 * float(np.exp(top_term) * np.exp(log_pmf - top_term).sum()))
    return p


def _log_loss(p_true: np.ndarray) -> float:
    """Mean negative log of the (row-normalised) probability of the true class, clipped like sklearn's."""
    eps = np.finfo(np.float64).eps
    return float(-np.mean(np.log(np.clip(p_true, eps, 1 - eps)))) if len(p_true) else np.nan


@dataclass
class _Scored:
    name: str
    predicted: np.ndarray        # in solution row order
    p_true: np.ndarray | None    # row-normalised probability of the true class, solution row order
    logloss_from: str
    item_for_data_check: ProbFile | None
    probs: np.ndarray | None = None  # (N, C) in solution row order: only for metrics other than accuracy and log loss


def _class_of(solution: Solution, index) -> str:
    """Class ``index`` as the competition spells it (its schema's value; KMNIST's integers as they are)."""
    classes = solution.schema.classes if solution.schema is not None else None
    if classes is None or not 0 <= int(index) < len(classes):
        return str(int(index))
    name = classes[int(index)]
    return name if name.lstrip("-").isdigit() else repr(name)


def _score_one(source, solution: Solution, ids: np.ndarray | None, log_probs: bool, side_files: bool) -> _Scored:
    item = source if isinstance(source, (Submission, ProbFile)) else load_input(source, ids=ids, log_probs=log_probs,
                                                                                schema=solution.schema)
    name = input_name(item)
    reference = f"the solution {solution.path}" if solution.path else "the solution"
    order = align_ids(item.ids, solution.ids, name, reference,
                      first_line=FIRST_DATA_LINE if isinstance(item, Submission) else None)
    probs, logloss_from, data_item = None, "", None
    if isinstance(item, ProbFile):
        probs, data_item, logloss_from = item, item, name
        if solution.categories.max() >= item.num_classes:
            raise DataError(f"{name}: {item.num_classes} classes but the solution has "
                            f"{(solution.schema or KMNIST).solution_label_column} {_class_of(solution, solution.categories.max())}")
        predicted = np.empty(len(order), dtype=np.int64)
        for start in range(0, len(order), 8192):  # argmax in chunks: no full copy of a large file
            predicted[start:start + 8192] = item.probs[order[start:start + 8192]].argmax(axis=1)
    else:
        if solution.num_classes is not None:
            check_categories(item.ids, item.categories, solution.num_classes, f"{name}",
                             suffix=f" of the competition ({solution.num_classes} classes from {solution.classes_source})")
        predicted = item.categories[order]
        side = probs_path(item.path) if (side_files and item.path is not None) else None
        if side is not None and side.is_file():
            probs = read_probs(side)
            side_order = align_ids(probs.ids, solution.ids, str(side), reference, first_line=None)
            if probs.num_classes <= solution.categories.max():
                raise DataError(f"{side}: {probs.num_classes} classes but the solution has "
                                f"{(solution.schema or KMNIST).solution_label_column} "
                                f"{_class_of(solution, solution.categories.max())}")
            side_predicted = probs.probs[side_order].argmax(axis=1)
            differ = side_predicted != predicted
            if differ.any():
                row = int(np.argmax(differ))
                raise DataError(f"{side}: predicts class {_class_of(solution, side_predicted[row])} for Id "
                                f"{solution.ids[row]} where {name} says {_class_of(solution, predicted[row])} "
                                f"({int(differ.sum())} rows differ): a stale side file? "
                                f"Move it away or rewrite both")
            order, data_item, logloss_from = side_order, probs, str(side)
    p_true = None
    full = None
    if probs is not None and solution.metric not in ("accuracy", "logloss"):
        full = np.asarray(probs.probs[order], dtype=np.float64)
        full /= full.sum(axis=1, keepdims=True)
    if probs is not None:
        rows = probs.probs[order] if len(order) * probs.num_classes <= 50_000_000 else None
        if rows is not None:
            sums = rows.sum(axis=1, dtype=np.float64)
            p_true = rows[np.arange(len(order)), solution.categories] / sums
        else:
            p_true = np.empty(len(order))
            for start in range(0, len(order), 8192):
                block = probs.probs[order[start:start + 8192]]
                cats = solution.categories[start:start + 8192]
                p_true[start:start + 8192] = block[np.arange(len(block)), cats] / block.sum(axis=1, dtype=np.float64)
    return _Scored(name, predicted, p_true, logloss_from, data_item, full)


def score_many(submissions: Sequence, solution: Solution, n_bootstrap: int = 1000, seed: int = 0,
               ids: np.ndarray | None = None, log_probs: bool = False, side_files: bool = True) -> pd.DataFrame:
    """Scores of every submission (unranked, in input order); see :func:`leaderboard`."""
    if n_bootstrap < 1:
        raise UsageError(f"{param('bootstrap')} must be at least 1, got {n_bootstrap}")
    check_seed(seed)
    if solution.schema is not None and solution.schema.multilabel:
        from kfold.scoring.multilabel_board import score_multilabel

        return score_multilabel(submissions, solution, n_bootstrap, seed)
    scored = [_score_one(source, solution, ids, log_probs, side_files) for source in submissions]
    from kfold.scoring.ensemble import check_same_data

    check_same_data((s.logloss_from, s.item_for_data_check) for s in scored if s.item_for_data_check is not None)
    truth = solution.categories
    if solution.metric != "accuracy":
        return _score_metric(scored, solution, n_bootstrap, seed)
    correct = np.stack([s.predicted == truth for s in scored])  # (K, N) bool
    records = {"submission": [s.name for s in scored], "logloss_from": [s.logloss_from for s in scored]}
    masks = {"public": solution.public, "private": solution.private, "overall": solution.public | solution.private}
    rng = np.random.default_rng(seed)
    boots = {}
    for split in SPLITS:
        mask = masks[split]
        part = correct[:, mask]
        records[split] = part.mean(axis=1)
        if split == "overall":  # stratified: the Public and Private resamples together (no third draw)
            n_public, n_private = int(masks["public"].sum()), int(masks["private"].sum())
            boots[split] = (n_public * boots["public"] + n_private * boots["private"]) / max(n_public + n_private, 1)
        else:
            boots[split] = bootstrap_means(part, n_bootstrap, rng)
        records[f"{split}_low"], records[f"{split}_high"] = percentile_interval(boots[split])
        records[f"{split}_logloss"] = [(_log_loss(s.p_true[mask]) if s.p_true is not None else np.nan) for s in scored]
        records[f"n_{split}"] = np.full(len(scored), int(mask.sum()))
    # paired comparisons with the best Public submission (ties: the first given)
    best = int(np.argmax(records["public"]))
    for split in ("public", "private"):
        part = correct[:, masks[split]]
        records[f"{split}_diff"] = records[split] - records[split][best]
        diffs = boots[split] - boots[split][:, [best]]
        records[f"{split}_diff_low"], records[f"{split}_diff_high"] = percentile_interval(diffs)
        wins = (part & ~part[best]).sum(axis=1)
        losses = (~part & part[best]).sum(axis=1)
        records[f"{split}_p"] = mcnemar_exact(wins, losses)
        records[f"{split}_significant"] = records[f"{split}_p"] < ALPHA
    table = pd.DataFrame(records)
    table["best_public"] = np.arange(len(scored)) == best
    if solution.groups is not None:
        scored_rows = masks["overall"]
        for group in dict.fromkeys(solution.groups[scored_rows]):
            rows = scored_rows & (solution.groups == group)
            table[GROUP_PREFIX + group] = correct[:, rows].mean(axis=1)
    return table


def _metric_scores(scored: list, solution: Solution) -> list[np.ndarray]:
    """What the metric reads of each submission, in solution row order: probabilities, or the predicted class
    for label metrics; a submission that holds no probabilities cannot be scored by a probability metric."""
    from kfold.metrics import get_metric

    metric = get_metric(solution.metric)
    out = []
    for s in scored:
        if metric.name == "logloss":
            if s.p_true is None:
                raise DataError(f"{s.name}: holds class labels, and the competition's metric {metric.name} scores "
                                "probabilities; score a probability file (the probabilities ensemble.py writes beside a mean submission)")
            out.append(s.p_true)
        elif metric.needs == "probs":
            if s.probs is None:
                raise DataError(f"{s.name}: holds class labels, and the competition's metric {metric.name} scores "
                                "probabilities; score a probability file (the probabilities ensemble.py writes beside a mean submission)")
            out.append(s.probs)
        else:
            out.append(s.predicted)
    return out


def _score_metric(scored: list, solution: Solution, n_bootstrap: int, seed: int) -> pd.DataFrame:
    """:func:`score_many` for a metric other than accuracy: the metric on each split, a 95% percentile
    bootstrap (one resampling of the rows per split shared by all submissions, so comparisons are paired) and
    the paired bootstrap p-value of each submission's difference from the best Public one."""
    from kfold.metrics import get_metric, score

    metric = get_metric(solution.metric)
    truth = solution.categories
    num_classes = solution.num_classes or (int(truth.max()) + 1)
    inputs = _metric_scores(scored, solution)
    records = {"submission": [s.name for s in scored], "logloss_from": [s.logloss_from for s in scored]}
    masks = {"public": solution.public, "private": solution.private, "overall": solution.public | solution.private}
    rng = np.random.default_rng(seed)
    rows = {split: np.flatnonzero(masks[split]) for split in ("public", "private")}
    draws = {split: [rng.integers(0, len(rows[split]), size=len(rows[split])) for _ in range(n_bootstrap)]
             for split in ("public", "private")}
    draws["overall"] = [np.concatenate([rows["public"][a], rows["private"][b]])
                        for a, b in zip(draws["public"], draws["private"])]
    draws["public"] = [rows["public"][d] for d in draws["public"]]
    draws["private"] = [rows["private"][d] for d in draws["private"]]

    def value(values: np.ndarray, index: np.ndarray) -> float:
        if metric.name == "logloss":  # values: the probability of the true class
            return float(-np.mean(np.log(np.clip(values[index], 1e-15, 1 - 1e-15))))
        return score(metric, truth[index], values[index], num_classes)

    boots = {}
    for split in SPLITS:
        index = np.flatnonzero(masks[split])
        records[split] = np.array([value(v, index) for v in inputs])
        boots[split] = np.array([[value(v, d) for v in inputs] for d in draws[split]])
        records[f"{split}_low"], records[f"{split}_high"] = percentile_interval(np.nan_to_num(boots[split], nan=0.0)
                                                                                 if np.isnan(boots[split]).all()
                                                                                 else boots[split])
        records[f"{split}_logloss"] = [(_log_loss(s.p_true[masks[split]]) if s.p_true is not None else np.nan)
                                       for s in scored]
        records[f"n_{split}"] = np.full(len(scored), int(masks[split].sum()))
    public = np.asarray(records["public"], dtype=np.float64)
    best = int(np.nanargmax(public) if metric.greater_is_better else np.nanargmin(public))
    paired_tests(records, boots, best)
    table = pd.DataFrame(records)
    table["best_public"] = np.arange(len(scored)) == best
    table.attrs["metric"] = metric.name
    return table


def score_submission(submission: Submission | ProbFile | str | os.PathLike, solution: Solution | str | os.PathLike,
                     n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Public, Private and Overall accuracy (with 95% bootstrap intervals) and, for probability files, log loss.

    The submission must cover exactly the solution's Ids (any order).
    """
    if not isinstance(solution, Solution):
        solution = read_solution(solution, seed=seed)
    row = score_many([submission], solution, n_bootstrap, seed).iloc[0]
    keep = ["submission", *[c for c in COLUMNS if c.startswith(SPLITS) or c.startswith("n_")]]
    scores = {key: row[key] for key in keep if key in row and not key.endswith(("_diff", "_diff_low", "_diff_high", "_p", "_significant"))}
    scores.update({key: row[key] for key in row.index if key.startswith(GROUP_PREFIX)})
    scores = {key: (value.item() if isinstance(value, np.generic) else value) for key, value in scores.items()}
    return {key: (np.nan if isinstance(value, float) and np.isnan(value) else value) for key, value in scores.items()}


def leaderboard(submissions: Sequence[str | os.PathLike], solution: Solution, n_bootstrap: int = 1000,
                seed: int = 0, ids: np.ndarray | None = None, log_probs: bool = False) -> pd.DataFrame:
    """Score every submission; rank by Public (ties share a rank), with the Private rank, the shift, and the
    paired comparison of each with the best Public one (``*_diff``, ``*_diff_low/high``, ``*_p``, ``*_significant``)."""
    submissions = check_list("submissions", submissions)
    if not submissions:
        raise UsageError("no submissions to score")
    from kfold.metrics import get_metric

    table = score_many(submissions, solution, n_bootstrap, seed, ids=ids, log_probs=log_probs)
    ascending = not get_metric(solution.metric).greater_is_better  # log loss: lower is better
    table.insert(0, "public_rank", table["public"].rank(ascending=ascending, method="min").astype(int))
    table["private_rank"] = table["private"].rank(ascending=ascending, method="min").astype(int)
    table["rank_shift"] = table["public_rank"] - table["private_rank"]  # > 0: climbed on Private
    order = np.lexsort((table["submission"].to_numpy(), table["private_rank"].to_numpy(),
                        table["public_rank"].to_numpy(), ~table["best_public"].to_numpy()))
    table = table.iloc[order]
    table = table[COLUMNS + [column for column in table.columns if column.startswith(GROUP_PREFIX)]]
    table = table.reset_index(drop=True)
    table.attrs["metric"] = solution.metric
    return table


def _with_interval(table: pd.DataFrame, value: str, low: str, high: str, signed: bool = False,
                   mark: str | None = None) -> list[str]:
    fmt = "+.4f" if signed else ".4f"
    cells = []
    for i in range(len(table)):
        text = f"{table[value].iat[i]:{fmt}} [{table[low].iat[i]:{fmt}}, {table[high].iat[i]:{fmt}}]"
        if mark is not None and bool(table[mark].iat[i]):
            text += " *"
        cells.append(text)
    return cells


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """The leaderboard as Markdown: scores with intervals, and each one's difference from the best Public one."""
    columns = {
        "#": table["public_rank"],
        "submission": display_names(list(table["submission"])),
        "public (95% CI)": _with_interval(table, "public", "public_low", "public_high"),
        "private (95% CI)": _with_interval(table, "private", "private_low", "private_high"),
    }
    if "overall" in table:
        columns["overall (95% CI)"] = _with_interval(table, "overall", "overall_low", "overall_high")
    columns["private #"] = table["private_rank"]
    columns["shift"] = table["rank_shift"].map(lambda s: f"{s:+d}")
    paired = all(f"{split}_diff" in table for split in ("public", "private"))
    if paired:
        for split in ("public", "private"):
            columns[f"{split} vs #1 (95% CI)"] = _with_interval(table, f"{split}_diff", f"{split}_diff_low",
                                                                 f"{split}_diff_high", signed=True,
                                                                 mark=f"{split}_significant")
    for split in ("public", "private"):  # the overall log loss is in leaderboard.csv
        if f"{split}_logloss" in table:
            columns[f"{split} logloss"] = table[f"{split}_logloss"]
    columns.update({column[len(GROUP_PREFIX):]: table[column] for column in table.columns if column.startswith(GROUP_PREFIX)})
    text = markdown_table(pd.DataFrame(columns))
    metric = table.attrs.get("metric", "accuracy")
    if paired and len(table) and metric != "accuracy":
        text += (f"\nScores are {metric}. `vs #1`: {metric} minus that of {display_names(list(table['submission']))[0]} "
                 f"(the best Public submission) on the same rows, 95% paired-bootstrap interval; `*`: the paired "
                 f"bootstrap gives p < {ALPHA}.\n")
    elif paired and len(table):
        text += (f"\n`vs #1`: accuracy minus that of {display_names(list(table['submission']))[0]} (the best Public "
                 f"submission) on the same rows, 95% paired-bootstrap interval; `*`: McNemar's exact test on the rows "
                 f"exactly one of the two gets right gives p < {ALPHA} (a real difference, not noise).\n")
    return text


def write_leaderboard(table: pd.DataFrame, out_dir: str | os.PathLike, plot: bool = False) -> str:
    """Write ``leaderboard.csv``, ``leaderboard.md`` and (``plot``) ``leaderboard.png`` into ``out_dir``; return the Markdown."""
    text = leaderboard_markdown(table)
    write_csv(Path(out_dir) / "leaderboard.csv", table)
    write_text(Path(out_dir) / "leaderboard.md", text)
    if plot and {"public_diff", "private_diff"} <= set(table.columns):
        from kfold.figures import plot_paired_differences

        plot_paired_differences(table, display_names(list(table["submission"])), Path(out_dir) / "leaderboard.png")
    return text
