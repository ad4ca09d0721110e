"""``tune``: the search from its checked arguments to its results; ``ensemble_best``: the best trials' mean."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from kfold.config import TrainConfig
from kfold.data.task import Task
from kfold.errors import UsageError, check_list, param
from kfold.files.rundir import RunDir, TuneDir
from kfold.flows.backend import LocalBackend
from kfold.flows.training import TaskSpec, check_task, parse_fold_list
from kfold.flows.tune.driver import _Driver
from kfold.flows.tune.space import SearchSpace, _is_number, check_space, default_space
from kfold.flows.tune.study import (BEST_JSON, STUDY_DB, TuneResult, _study_settings, default_storage, format_top,
                                    import_optuna, make_pruner, objective_metric, open_storage, open_study, study_name,
                                    top_trials, write_results)


def tune(base: TrainConfig, task: Task, out: str | Path, *, task_spec: TaskSpec, trials: int, preset: str | None = None,
         space: SearchSpace | None = None, fixed: Sequence[str] = (), metric: str | None = None, k: int = 5,
         seed: int = 0, folds: str | Sequence[int] | None = None, timeout: float | None = None,
         pruner: str = "median", prune_after: int = 2, storage: str | None = None, device: str = "auto",
         threads: int | None = None, progress: bool = True, backend=None, trials_in_parallel: int = 1,
         ensemble_top: int | None = None, echo: Callable[[str], None] = print, tracker=None) -> TuneResult:
    """Search ``space`` (default: the preset family's, without the ``fixed`` fields) around ``base`` with
    ``trials`` k-fold runs in ``out``; re-running continues the study. Returns the table and the best config.
    ``tracker`` (``kfold.flows.tracking.open_tracker``) logs each trial as it ends and the study at the end."""
    from kfold.files.folds import check_k

    if isinstance(backend, LocalBackend):  # a local backend object: the trials train here, as with None
        backend = None
    out = Path(out)
    fixed = check_list("fixed", fixed)
    check_k(k)
    fold_list = parse_fold_list(folds, k)
    for name, value, low in (("trials", trials, 1), ("prune_after", prune_after, 0), ("trials_in_parallel", trials_in_parallel, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{name}={value!r}: must be an integer >= {low}")
    if timeout is not None and (not _is_number(timeout) or timeout <= 0):
        raise UsageError(f"timeout={timeout!r}: must be a positive number of seconds")
    if ensemble_top is not None and (isinstance(ensemble_top, bool) or not isinstance(ensemble_top, int) or ensemble_top < 1):
        raise UsageError(f"ensemble_top={ensemble_top!r}: must be an integer >= 1")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads={threads!r}: must be an integer >= 1")
    if ensemble_top is not None and len(fold_list) < k:
        raise UsageError(f"ensemble_top needs every fold of each trial; folds={folds!r} trains {len(fold_list)} of {k}")
    if trials_in_parallel > 1 and backend is None:
        raise UsageError(f"trials_in_parallel={trials_in_parallel} needs the Ray backend")
    if space is None:
        space = default_space(base, fixed)
    else:
        clash = [name for name in space.names if name in set(fixed)]
        if clash:
            raise UsageError(f"{space.origin}: searches {clash[0]!r}, which the command line also fixes; drop one of them")
    if not space.params:
        raise UsageError(f"{space.origin}: nothing left to search")
    check_space(space, base)
    check_task(task, task_spec.data)
    if ensemble_top is not None and not task.has_test:
        raise UsageError(f"{param('ensemble_top')} ensembles test predictions, but {task_spec.data} has no test set "
                         "(training data alone); the search itself needs none")
    metric = objective_metric(task, metric)
    if backend is not None:  # Ray: connected and its resources checked before the study or a trial is written
        backend.check(base, task, task_spec, device)
    from kfold.scoring.metrics import get_metric

    direction = get_metric(metric).direction
    import_optuna()  # one error line before anything is written when Optuna is missing
    pruner_obj = make_pruner(pruner, prune_after)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{param('out')}={str(out)!r}: exists and is not a directory")
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs

    guard_outputs([out], data_inputs(task_spec.data), root=out.parent, error=UsageError)  # not the data, no link
    if RunDir(out).config.exists():
        raise UsageError(f"{param('out')}={str(out)!r}: holds a training run, not a search; choose another {param('out')}")
    if TuneDir(out).is_tune():  # a resumed search: its result files are read as strictly as the report reads them
        from kfold.files.tune_results import read_results

        read_results(TuneDir(out))
    url = storage or default_storage(out)
    if storage is not None:
        store = open_storage(url)  # a bad URL is named before anything is created
    else:
        out.mkdir(parents=True, exist_ok=True)
        store = open_storage(url)
    settings = _study_settings(metric, direction, preset, k, seed, fold_list, task.fingerprint(), base.to_dict(), space)
    name = study_name(out)
    study, created = open_study(store, name, settings, f"{param('storage')}={url!r}" if storage else str(out / STUDY_DB))
    study.pruner = pruner_obj
    out.mkdir(parents=True, exist_ok=True)
    echo(f"study {name!r} in {url}: {'new' if created else 'continued'}, {metric} ({direction}), "
         f"{len(space.params)} fields searched, {trials} trials" + (f" or {timeout:g}s" if timeout else ""))
    driver = _Driver(study, space=space, base=base.to_dict(), task=task, task_spec=task_spec, out=out, preset=preset,
                     k=k, seed=seed, fold_list=fold_list, metric=metric, trials=trials, timeout=timeout,
                     prune=pruner != "none", device=device, threads=threads, progress=progress, backend=backend,
                     trials_in_parallel=trials_in_parallel, echo=echo, tracker=tracker)
    driver.recover_stale()
    try:
        driver.run_local() if backend is None else driver.run_ray()
    except KeyboardInterrupt:
        write_results(study, out, space, metric, direction, figures=False)
        raise KeyboardInterrupt(f"interrupted; the study {name!r} is consistent: re-run the same command to continue") from None
    result = write_results(study, out, space, metric, direction)
    if tracker:
        tracker.tune_done(out)  # every trial (failed ones too) and the study's files
    result.lines.append(format_top(result.table, metric, direction))
    if result.best_trial is not None:
        best_dir = study.trials[result.best_trial].user_attrs.get("dir")
        result.lines.append(f"best: trial {result.best_trial} ({best_dir}), {metric} {result.best_value:.4f}; "
                            f"its config: {out / BEST_JSON}")
        result.lines.append(f"train it:  kfold train --data {task_spec.data} --config {out / BEST_JSON} --k {k} "
                            f"--seed {seed}" + (f" --threads {threads}" if threads else "") + " --out runs/tuned")
    if ensemble_top is not None:
        result.submission = ensemble_best(result, task, task_spec, ensemble_top, seed=seed, device=device,
                                          threads=threads, backend=backend, echo=echo)
    return result


def ensemble_best(result: TuneResult, task: Task, task_spec: TaskSpec, n: int, *, seed: int, device: str,
                  threads: int | None, backend=None, echo: Callable[[str], None] = print) -> Path | None:
    """The mean of the best ``n`` complete trials' test probabilities as ``OUT/ensemble-topN.csv`` and, when the
    competition has a solution file, its local leaderboard line (appended to ``result.lines``)."""
    from kfold.files.rundir import PredDir
    from kfold.flows.ensembling import make_submission

    top = top_trials(result.table, result.metric, result.direction, n)
    if top.empty:
        result.lines.append("--ensemble-top: no complete trial to ensemble")
        return None
    runs = [RunDir(d) for d in top["dir"]]
    incomplete = [str(r.path) for r in runs if not r.oof.is_file()]
    if incomplete:
        raise UsageError(f"{param('ensemble_top')} needs every fold of the trials; {incomplete[0]} trained only some ({param('folds')})")
    probs = PredDir(result.out / "ensemble" / "probs")
    echo(f"\n== predict the top {len(runs)} trials: {probs.path}")
    if backend is None:
        with LocalBackend(echo=echo) as local:
            local.predict(runs, task, probs.path, spec=task_spec, device=device, threads=threads)
    else:  # Ray: each run a task; no line of its own here (as the trials' folds)
        backend.predict(runs, task, probs.path, spec=task_spec, device=device, threads=threads, echo=lambda _: None)
    target = result.out / f"ensemble-top{n}.csv"
    made = make_submission([probs.mean(r.name) for r in runs], target, method="mean", seed=seed,
                           sample=task.sample_submission)
    line = f"ensemble of the top {len(runs)} trials ({', '.join(r.name for r in runs)}): {made.submission}"
    if task.solution is not None:
        from kfold.scoring.leaderboard import leaderboard, read_solution

        row = leaderboard([made.submission], read_solution(task.solution), seed=seed).iloc[0]
        line += f"; local Public {row['public']:.4f}, Private {row['private']:.4f}"
    result.lines.append(line)
    return made.submission
