"""The whole competition flow as one typed function: train -> predict -> ensemble -> validate -> leaderboard.

``run_competition`` loads the task once, trains one k-fold run per seed (``OUT`` itself for one seed,
``OUT/seed{s}`` for several), predicts the test set, writes a mean and a vote submission with agreement
reports, validates them and scores them on the local leaderboard when the data has a solution file.
Torch is imported only by the training and prediction steps (with a Ray backend: only in its tasks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from kfold.data.task import Task
from kfold.files.rundir import RunDir, safe_name
from kfold.flows.backend import Backend, LocalBackend
from kfold.flows.training import RunRequest, RunSummary, format_summary, train_run

__all__ = ["CompetitionResult", "METHODS", "run_competition", "validate_files"]

METHODS = ("mean", "vote")


@dataclass
class CompetitionResult:
    """What ``kfold run`` produced: runs, probability files, submissions, the leaderboard and the recommendation."""

    runs: list[RunSummary]
    probability_files: list[Path]
    submissions: dict[str, Path]
    leaderboard: pd.DataFrame | None = None
    recommended: Path | None = None
    lines: list[str] = field(default_factory=list)


def validate_files(files: Sequence[Path], sample: Path | None, num_classes: int | None = None,
                   schema=None) -> list[str]:
    """One 'ok: ...' line per file (submission CSV or probability file), or the first error."""
    from kfold.files.probs import ProbFile
    from kfold.files.submission import Submission, align_ids, sample_ids
    from kfold.scoring.ensemble import load_input

    reference = Submission(sample_ids(sample, schema), None) if sample is not None else None
    lines = []
    for path in files:
        item = load_input(path, num_classes=num_classes, schema=schema)
        if isinstance(item, ProbFile):
            what = f"probability file ({item.kind}), {len(item.ids)} rows x {item.num_classes} classes"
        else:
            what = f"submission, {len(item.ids)} rows"
        if reference is not None:
            align_ids(item.ids, reference.ids, str(path), f"the sample {sample}",
                      first_line=None if isinstance(item, ProbFile) else 2)
        lines.append(f"ok: {path}: {what}")
    return lines


def guard_competition(root: RunDir, run_dirs: Sequence[RunDir], submissions: Path, data: str, k: int) -> None:
    """Every output of ``kfold run`` checked before anything is trained: --submissions is a folder, no output is an
    input (the data, the runs' own files), and no folder on the way to one is a planted symbolic link."""
    from kfold.errors import UsageError, param
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs, probs_path
    from kfold.files.rundir import LEADERBOARD_FILES, MULTILABEL_REPORT_FILES, REPORT_FILES
    from kfold.flows.training import run_outputs

    if submissions.exists() and not submissions.is_dir():
        raise UsageError(f"{param('submissions')}={str(submissions)!r}: is a file; give the folder the submission CSVs go to")
    inputs = data_inputs(data)  # the runs' own files are rewritten by training itself (its guard checks them)
    probs = root.probs
    outputs = [*(path for run in run_dirs for path in run_outputs(run, k)), probs.path,
               *(probs.model(run.name, fold) for run in run_dirs for fold in (*range(k), "full")),
               *(probs.mean(run.name) for run in run_dirs), *(probs.oof(run.name) for run in run_dirs),
               *(root.report(method) / file for method in METHODS for file in (*REPORT_FILES, *MULTILABEL_REPORT_FILES)),
               *(root.leaderboard / file for file in LEADERBOARD_FILES)]
    from kfold.errors import DataError

    guard_outputs(outputs, inputs, root=root.path, error=DataError, links="folders")
    subs = [submissions / f"{safe_name(root.name)}-{method}.csv" for method in METHODS]
    guard_outputs([*subs, *(probs_path(sub) for sub in subs)], [*inputs, *(p for run in run_dirs for p in run.inputs())],
                  root=submissions.parent, error=UsageError)


def no_test_line(summaries: Sequence[RunSummary], task: Task, data: str) -> str:
    """The one line ``kfold run`` ends with on training data alone: the out-of-fold score, and no submission."""
    scores = [s["oof_score"] for s in summaries if s.values.get("oof_score") is not None]
    score = f"out-of-fold {task.schema.metric} {sum(scores) / len(scores):.4f}" if scores else "no out-of-fold score"
    return f"{score}; {data} has no test set (training data alone), so no submission was written"


def run_competition(request: RunRequest, task: Task, out: str | Path, *, seeds: Sequence[int] = (0,),
                    submissions: str | Path = "submissions", backend: Backend | None = None,
                    echo: Callable[[str], None] = print, tracker=None) -> CompetitionResult:
    """Train, predict, ensemble, validate and score; re-running continues (or reuses) the runs.

    Parameters
    ----------
    request : RunRequest
        The config, data (``task_spec``), preset, ``k``, folds, device, ``tta``, threads and progress of every run
        (``kfold.flows.training.RunRequest``); each seed's run is this request with its ``seed``, resumed when its
        directory already holds a run.
    task : Task
        The loaded data (``request.task_spec.load()``), loaded once for every step.
    out : str or Path
        Run directory; with several seeds, one run per seed in ``out/seed{s}``.
    seeds : sequence of int, default (0,)
        Distinct seeds, one k-fold run each; their models are ensembled together.
    submissions : str or Path, default "submissions"
        Folder of the submission CSVs (``NAME-mean.csv``, ``NAME-vote.csv``).
    backend : Backend, optional
        Trains the folds and predicts the runs (default: a ``LocalBackend`` reporting through ``echo``).
    echo : callable, default print
        Receives every progress line.
    tracker : kfold.flows.tracking.Tracker, optional
        Logs every run, fold and ensemble (with its local scores) from their files (``open_tracker``).

    Returns
    -------
    CompetitionResult
        The run summaries, probability files, submissions, the local leaderboard (when the data has a solution
        file), the recommended submission and the closing lines.

    Raises
    ------
    UsageError
        Bad parameters (``seeds=[0, 0]``; ``folds`` outside ``0..k-1`` already when the request is made), before
        anything is written.
    DataError
        Data or run directories that are damaged or made for other settings.

    Examples
    --------
    >>> import tempfile
    >>> from kfold.config import resolve_config
    >>> from kfold.data.toy import make_toy_competition
    >>> from kfold.flows.training import RunRequest, TaskSpec
    >>> tmp = tempfile.mkdtemp()
    >>> spec = TaskSpec(str(make_toy_competition(f"{tmp}/comp")))
    >>> cfg = resolve_config("lenet5", overrides={"epochs": 1})
    >>> request = RunRequest(cfg, spec, preset="lenet5", k=2, device="cpu", threads=1, progress=False)
    >>> result = run_competition(request, spec.load(), f"{tmp}/toy", submissions=f"{tmp}/subs",
    ...                          echo=lambda line: None)
    fold 0 epoch   1/1 loss ...
    >>> sorted(result.submissions), result.recommended.name, len(result.leaderboard)
    (['mean', 'vote'], 'toy-mean.csv', 4)
    >>> run_competition(request, spec.load(), f"{tmp}/toy", seeds=[0, 0])
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: seeds=[0, 0]: give distinct seeds
    """
    from kfold.errors import UsageError, check_list, param
    from kfold.flows.ensembling import make_submission

    seeds = check_list("seeds", seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"{param('seeds')}={seeds}: give distinct seeds")
    backend = LocalBackend(echo=echo) if backend is None else backend
    preset, k, task_spec = request.preset, request.k, request.task_spec
    root = RunDir(out)
    name = root.name
    submissions = Path(submissions)
    run_dirs = [root] if len(seeds) == 1 else [RunDir(root.path / f"seed{seed}") for seed in seeds]
    guard_competition(root, run_dirs, submissions, task_spec.data, k)
    summaries = []
    for seed, run in zip(seeds, run_dirs):
        echo(f"== train: {run.path} (preset {preset}, k {k}, seed {seed})")
        summary = train_run(request.replace(seed=seed, resume=run.is_run()), task, run, backend=backend, echo=echo,
                            tracker=tracker)
        echo(format_summary(summary.values))
        summaries.append(summary)
    incomplete = [s.run.path for s in summaries if s["folds_done"] < k]
    if incomplete:
        echo(f"\nfolds left to train in {', '.join(map(str, incomplete))}: not predicting (run without --folds, or "
             f"with the remaining folds, to finish)")
        return CompetitionResult(summaries, [], {})
    if not task.has_test:  # labelled training data alone: the out-of-fold score is the result
        return CompetitionResult(summaries, [], {}, lines=[no_test_line(summaries, task, task_spec.data)])

    probs = root.probs
    echo(f"\n== predict: {probs.path}")
    written = backend.predict([r.path for r in run_dirs], task, probs.path, spec=task_spec, tta=request.tta,
                              device=request.device, threads=backend.threads(request.threads), echo=echo)
    fold_files = [probs.fold(run.name, fold) for run in run_dirs for fold in range(k)]

    metric = task.schema.metric
    oof = [s["oof_score"] for s in summaries if s.values.get("oof_score") is not None]
    cv = f"out-of-fold {metric} {sum(oof) / len(oof):.4f}" if oof else "no out-of-fold score"
    if task.schema.multilabel:  # tags or independent probability columns: kfold.flows.multilabel
        from kfold.flows.multilabel import finish_competition

        subs, table, lines = finish_competition(task, root, fold_files, cv, submissions, seeds[0], preset, k, echo,
                                                tracker=tracker)
        return CompetitionResult(summaries, written, subs, leaderboard=table, recommended=subs["mean"], lines=lines)
    sample = task.sample_submission
    subs: dict[str, Path] = {}
    methods = METHODS if not task.schema.writes_probabilities else ("mean",)  # a vote holds no probabilities
    for method in methods:
        target = submissions / f"{safe_name(name)}-{method}.csv"
        echo(f"\n== ensemble ({method}): {target}")
        made = make_submission(fold_files, target, method=method, seed=seeds[0], sample=sample, report=root.report(method),
                               schema=task.schema)
        echo(f"{method} of {len(made.ensemble.names)} inputs, {len(made.ensemble.ids)} rows"
             + (f", {made.ensemble.tied_rows} tied rows broken at random (seed {seeds[0]})" if method == "vote" else ""))
        echo(f"report: {root.report(method) / 'report.md'}")
        subs[method] = target
    for line in validate_files(list(subs.values()), sample, schema=task.schema):
        echo(line)
    result = CompetitionResult(summaries, written, subs, recommended=subs["mean"])
    if task.solution is None:
        result.lines = [f"recommended submission: {subs['mean']} (probability mean of {len(fold_files)} models; {cv})",
                        f"submit it:  kfold submit {subs['mean']} -c COMPETITION -m \"{preset} {k}-fold mean\""]
    else:
        from kfold.scoring.leaderboard import leaderboard, read_solution, write_leaderboard

        solution = read_solution(task.solution, schema=task.schema)
        files = fold_files + list(subs.values())
        echo(f"\n== leaderboard: {root.leaderboard}")
        table = leaderboard(files, solution, seed=seeds[0])
        echo(write_leaderboard(table, root.leaderboard))
        result.leaderboard = table
        row = table[table["submission"] == str(subs["mean"])].iloc[0]
        result.lines = [
            f"recommended submission: {subs['mean']} (probability mean of {len(fold_files)} models; {cv})",
            f"  local Public {row['public']:.4f} [{row['public_low']:.4f}, {row['public_high']:.4f}], "
            f"Private {row['private']:.4f} [{row['private_low']:.4f}, {row['private_high']:.4f}] (95% bootstrap)",
            f"  leaderboard of {len(files)} files: {root.leaderboard / 'leaderboard.md'}",
            f"submit it:  kfold submit {subs['mean']} -c COMPETITION -m \"{preset} {k}-fold mean\"",
        ]
    for method, target in subs.items() if tracker else ():  # each ensemble, its inputs' runs and local scores
        board = result.leaderboard
        row = {} if board is None else board[board["submission"] == str(target)].iloc[0]
        tracker.ensemble_done(target, fold_files, method, public=row.get("public"), private=row.get("private"),
                              report=root.report(method))
    return result
