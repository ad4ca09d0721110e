"""Multi-label ensembles to files: tags or independent probability columns in the competition's own format.

``make_multilabel_submission`` combines the test probability files of one or more runs: ``mean`` averages the
per-tag probabilities; ``vote`` takes each model's tags (its run's out-of-fold thresholds) and keeps a tag that
more than half of the models give, an even split broken by a seeded coin. A ``tags`` submission is the mean's
probabilities taken at the thresholds the runs chose on their out-of-fold rows (recorded in ``summary.json`` and
in every test probability file), each row keeping at least its most probable tag; a ``multilabel-probs``
submission is the probabilities themselves (not renormalized). The agreement of the models with the ensemble
is written per tag and per model. Everything is checked before the first byte is written. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from kfold.errors import DataError, UsageError, param
from kfold.files.rundir import MULTILABEL_REPORT_FILES

if TYPE_CHECKING:
    import pandas as pd

    from kfold.data.task import Task
    from kfold.files.rundir import RunDir
    from kfold.flows.tracking import Tracker

__all__ = ["MULTILABEL_METHODS", "MULTILABEL_REPORT_FILES", "MultilabelEnsemble", "make_multilabel_submission",
           "validate_multilabel"]

MULTILABEL_METHODS = ("mean", "vote")


@dataclass
class MultilabelEnsemble:
    """A multi-label ensemble: its rows (in the sample's order), tags or probabilities, and the files written."""

    ids: np.ndarray
    names: list[str]
    probs: np.ndarray | None
    tags: np.ndarray | None
    thresholds: np.ndarray | None
    tied_cells: int = 0
    written: list[Path] = field(default_factory=list)
    per_tag: object | None = None

    @property
    def categories(self) -> np.ndarray:
        """What the submission holds per row: the (N, tags) 0/1 tags, or the probabilities."""
        return self.tags if self.tags is not None else self.probs

    @property
    def tied_rows(self) -> int:
        """The vote's tied (row, tag) cells (``ensemble.py`` prints them as the single-label vote's tied rows)."""
        return self.tied_cells


def _inputs(paths: Sequence[str | Path], schema):
    from kfold.files.probs import is_multilabel, read_probs
    from kfold.scoring.multilabel import thresholds_of

    items = []
    for path in paths:
        item = read_probs(path)
        if not is_multilabel(item.meta):
            raise DataError(f"{path}: not a multi-label probability file (its metadata's schema target is not tags or "
                            "multilabel-probs)")
        if item.classes != list(schema.classes):
            raise DataError(f"{path}: tags {item.classes[:6]} are not the competition's {list(schema.classes)[:6]}")
        if item.kind != "test":
            raise UsageError(f"{path}: a {item.kind!r} file; the ensemble combines test predictions")
        thresholds = thresholds_of(item.meta.get("thresholds"), len(schema.classes)) if schema.target == "tags" else None
        items.append((item, thresholds))
    if not items:
        raise UsageError("no inputs to ensemble")
    return items


def make_multilabel_submission(inputs: Sequence[str | Path], out: str | Path, *, schema, method: str = "mean",
                               seed: int = 0, sample: str | Path | None = None,
                               report: str | Path | None = None) -> MultilabelEnsemble:
    """Combine multi-label test probability files and write the submission ``out`` (and the agreement report).

    Parameters
    ----------
    inputs : sequence of path
        Test probability files of a multi-label task (``kfold predict`` / ``kfold run`` write them).
    out : path
        The submission CSV, in the sample's columns and row order.
    schema : Schema
        The competition's schema (``tags`` or ``multilabel-probs``).
    method : {"mean", "vote"}
        Mean of the probabilities, or per-tag majority vote (tags only).
    seed : int
        Seed of the vote's tie-breaking.
    sample : path, optional
        The sample submission: its Ids and order.
    report : path, optional
        Folder of the agreement report (per tag, per model, report.md).

    Returns
    -------
    MultilabelEnsemble

    Raises
    ------
    UsageError
        An unknown method, a vote for probability columns, an output that is an input.
    DataError
        Inputs that are not multi-label test files of this competition, Ids that are not the sample's.
    """
    from kfold.files.atomic import guard_outputs, together, write_csv, write_text
    from kfold.files.multilabel_submission import write_multilabel_submission
    from kfold.files.submission import align_ids, sample_ids
    from kfold.scoring.ensemble import check_seed
    from kfold.scoring.multilabel import agreement_tables, apply_thresholds, vote_tags
    from kfold.scoring.report import markdown_table

    out = Path(out)
    check_seed(seed)
    if method not in MULTILABEL_METHODS:
        raise UsageError(f"{param('method')}={method!r}: a multi-label ensemble is one of {', '.join(MULTILABEL_METHODS)}")
    if method == "vote" and schema.target != "tags":
        raise UsageError(f"{param('method')}='vote' gives tags, but the submission holds one probability per label "
                         f"({', '.join(schema.target_columns[:5])}); use 'mean'")
    if out.suffix.lower() != ".csv":
        raise UsageError(f"{param('out')} must be a .csv file, got {out}")
    sources = [*map(Path, inputs), *([Path(sample)] if sample else [])]
    guard_outputs([out], sources, error=UsageError)
    if report:
        guard_outputs([Path(report), *(Path(report) / name for name in MULTILABEL_REPORT_FILES)], sources,
                      root=Path(report).parent, error=UsageError)
    items = _inputs(inputs, schema)
    first = items[0][0]
    ids = sample_ids(sample, schema) if sample else first.ids
    columns = []
    for item, _ in items:
        order = align_ids(item.ids, ids, str(item.path), f"the sample {sample}" if sample else str(first.path),
                          first_line=None)
        columns.append(item.probs[order].astype(np.float64))
    mean = np.mean(columns, axis=0)
    names = [str(item.path) for item, _ in items]
    result = MultilabelEnsemble(ids=ids, names=names, probs=mean, tags=None, thresholds=None)
    predictions = None
    if schema.target == "tags":
        predictions = [apply_thresholds(probs, thresholds) for probs, (_, thresholds) in zip(columns, items)]
        result.thresholds = np.mean([thresholds for _, thresholds in items], axis=0)
        if method == "mean":
            result.tags = apply_thresholds(mean, result.thresholds)
        else:
            tags, result.tied_cells = vote_tags(predictions, seed)
            empty = tags.sum(axis=1) == 0  # no majority for any tag: the mean's most probable one
            tags[np.flatnonzero(empty), mean[empty].argmax(axis=1)] = 1
            result.tags = tags
    with together():
        write_multilabel_submission(out, schema, ids, tags=result.tags, probs=mean)
        result.written.append(out)
        if report:
            report = Path(report)
            report.mkdir(parents=True, exist_ok=True)
            if predictions is not None:
                per_tag, per_model = agreement_tables(predictions, result.tags, names, schema.classes)
            else:  # probability columns: the mean absolute difference of each model from the mean, per tag
                stack = np.stack(columns)
                per_tag = _probability_spread(stack, mean, schema.classes)
                per_model = _model_spread(stack, mean, names)
            write_csv(report / MULTILABEL_REPORT_FILES[0], per_tag)
            write_csv(report / MULTILABEL_REPORT_FILES[1], per_model)
            text = (f"# {method} of {len(items)} inputs, {len(ids)} rows, {len(schema.classes)} tags\n\n"
                    + (f"{result.tied_cells} tied (row, tag) cells broken at random (seed {seed}).\n\n"
                       if method == "vote" else "")
                    + "## per tag\n\n" + markdown_table(per_tag) + "\n## per model\n\n" + markdown_table(per_model))
            write_text(report / MULTILABEL_REPORT_FILES[2], text)
            result.written += [report / name for name in MULTILABEL_REPORT_FILES]
            result.per_tag = per_tag
    return result


def _probability_spread(stack: np.ndarray, mean: np.ndarray, tags) -> "object":
    import pandas as pd

    return pd.DataFrame({"tag": list(tags), "mean_probability": mean.mean(axis=0),
                         "mean_abs_difference": np.abs(stack - mean[None]).mean(axis=(0, 1))})


def _model_spread(stack: np.ndarray, mean: np.ndarray, names) -> "object":
    import pandas as pd

    return pd.DataFrame({"input": list(names), "mean_abs_difference": np.abs(stack - mean[None]).mean(axis=(1, 2))})


def validate_multilabel(files: Sequence[Path], sample: Path | None, schema) -> list[str]:
    """One 'ok: ...' line per multi-label submission (tags in the vocabulary, probabilities in [0, 1], the sample's
    Ids), or the first error."""
    from kfold.files.multilabel_submission import read_multilabel_submission
    from kfold.files.submission import align_ids, sample_ids

    reference = sample_ids(sample, schema) if sample is not None else None
    lines = []
    for path in files:
        ids, values = read_multilabel_submission(path, schema)
        if reference is not None:
            align_ids(ids, reference, str(path), f"the sample {sample}")
        what = (f"{values.sum(axis=1).mean():.2f} tags per row on average" if schema.target == "tags"
                else f"{values.shape[1]} probability columns")
        lines.append(f"ok: {path}: {schema.target} submission, {len(ids)} rows, {what}")
    return lines


def finish_competition(task: "Task", root: "RunDir", fold_files: list[Path], cv: str, submissions: Path, seed: int,
                       preset: str, k: int, echo: Callable[[str], None], tracker: "Tracker | None" = None
                       ) -> tuple[dict[str, Path], "pd.DataFrame | None", list[str]]:
    """``kfold run``'s steps after prediction for a multi-label task: the submissions (mean, and vote for tags) of
    ``fold_files``, their validation and the local leaderboard (``seed``: the vote's ties and the bootstrap; ``cv``:
    the runs' out-of-fold score in words); ``tracker`` is told each ensemble with its local Public/Private (``None``
    without a solution). Returns the submissions, the leaderboard and the closing lines."""
    subs, table, lines = _finish(task, root, fold_files, cv, submissions, seed, preset, k, echo)
    for method, target in subs.items() if tracker else ():  # each ensemble, its inputs' runs and local scores
        row = {} if table is None else table[table["submission"] == str(target)].iloc[0]
        tracker.ensemble_done(target, fold_files, method, public=row.get("public"), private=row.get("private"),
                              report=root.report(method))
    return subs, table, lines


def _finish(task: "Task", root: "RunDir", fold_files: list[Path], cv: str, submissions: Path, seed: int, preset: str,
            k: int, echo: Callable[[str], None]) -> tuple[dict[str, Path], "pd.DataFrame | None", list[str]]:
    from kfold.files.rundir import safe_name

    schema = task.schema
    sample = task.sample_submission
    subs: dict[str, Path] = {}
    for method in MULTILABEL_METHODS if schema.target == "tags" else ("mean",):
        target = submissions / f"{safe_name(root.name)}-{method}.csv"
        echo(f"\n== ensemble ({method}): {target}")
        made = make_multilabel_submission(fold_files, target, schema=schema, method=method, seed=seed, sample=sample,
                                          report=root.report(method))
        shown = ("" if made.thresholds is None else
                 f", thresholds {made.thresholds.min():.2f}..{made.thresholds.max():.2f}, "
                 f"{made.tags.sum(axis=1).mean():.2f} tags per row")
        echo(f"{method} of {len(made.names)} inputs, {len(made.ids)} rows{shown}"
             + (f", {made.tied_cells} tied (row, tag) cells broken at random (seed {seed})" if method == "vote" else ""))
        echo(f"report: {root.report(method) / MULTILABEL_REPORT_FILES[2]}")
        subs[method] = target
    for line in validate_multilabel(list(subs.values()), sample, schema):
        echo(line)
    head = f"recommended submission: {subs['mean']} (probability mean of {len(fold_files)} models; {cv})"
    submit = f"submit it:  kfold submit {subs['mean']} -c COMPETITION -m \"{preset} {k}-fold mean\""
    if task.solution is None:
        return subs, None, [head, submit]
    from kfold.scoring.leaderboard import leaderboard, read_solution, write_leaderboard

    solution = read_solution(task.solution, schema=schema)
    files = fold_files + list(subs.values())
    echo(f"\n== leaderboard ({solution.metric}): {root.leaderboard}")
    table = leaderboard(files, solution, seed=seed)
    echo(write_leaderboard(table, root.leaderboard))
    row = table[table["submission"] == str(subs["mean"])].iloc[0]
    return subs, table, [
        head,
        f"  local Public {row['public']:.4f} [{row['public_low']:.4f}, {row['public_high']:.4f}], "
        f"Private {row['private']:.4f} [{row['private_low']:.4f}, {row['private_high']:.4f}] (95% bootstrap, {solution.metric})",
        f"  leaderboard of {len(files)} files: {root.leaderboard / 'leaderboard.md'}",
        submit,
    ]
