"""The trial loop of ``kfold tune``: ask Optuna for a config, train it as a k-fold run (here, or its folds as Ray
tasks with several trials at once), report each fold to the pruner, tell the study the score.

``_Driver.run_trial`` is one local trial from its sampled config to its told result: the place for a hook that
must see every trial (its config, folds, score and state)."""
from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kfold.config import TrainConfig
from kfold.data.task import Task
from kfold.errors import DataError, UsageError, param
from kfold.files.rundir import RunDir, TuneDir
from kfold.flows.backend import LocalBackend
from kfold.flows.training import RunRequest, TaskSpec, summarize, train_run
from kfold.flows.tune.space import SearchSpace, trial_config
from kfold.flows.tune.study import _counted, _stale, import_optuna, make_sampler


# ----------------------------------------------------------------------------- the driver

class _Pruned(Exception):
    """Raised out of a backend when the pruner stops a trial between folds."""


class _FoldReporter:
    """Scores each finished fold on its validation rows and reports them to the trial in fold order."""

    def __init__(self, trial, run: RunDir, fold_list: list[int], metric: str, num_classes: int, prune: bool):
        self.trial, self.run, self.fold_list, self.metric = trial, run, fold_list, metric
        self.num_classes, self.prune = num_classes, prune
        self.scores: dict[int, float] = {}
        self.reported = 0

    def fold_done(self, fold: int) -> None:
        from kfold.files.probs import read_probs
        from kfold.scoring.metrics import score

        part = read_probs(self.run.fold_oof(fold))
        self.scores[fold] = score(self.metric, part.labels, part.probs, self.num_classes)
        while self.reported < len(self.fold_list) and self.fold_list[self.reported] in self.scores:
            f = self.fold_list[self.reported]
            self.reported += 1
            if not math.isnan(self.scores[f]):
                self.trial.report(self.scores[f], step=f)
            if self.prune and self.reported < len(self.fold_list) and self.trial.should_prune():
                raise _Pruned(f)


@dataclass
class _Live:
    trial: Any
    run: RunDir
    cfg: TrainConfig
    reporter: _FoldReporter
    start: float
    refs: dict = field(default_factory=dict)  # Ray object ref -> fold


def _oof_score(run: RunDir, folds: Sequence[int], metric: str, num_classes: int, target: str = "label"
               ) -> tuple[float, int]:
    """The metric on the out-of-fold rows of ``folds`` (finished ones), and how many folds that was: a tags target at
    the thresholds chosen on these rows (its submissions use chosen thresholds), any other as ``kfold run`` scores it
    (probability columns and a tag metric: 0.5 with the top-1 fallback, ``kfold.metrics.tags_from_probs``)."""
    from kfold.files.probs import read_probs
    from kfold.scoring.metrics import score

    parts = [read_probs(run.fold_oof(f)) for f in folds if run.is_done(f)]
    if not parts:
        return float("nan"), 0
    labels = np.concatenate([p.labels for p in parts])
    probs = np.concatenate([p.probs for p in parts])
    if labels.ndim == 2 and target == "tags" and metric != "mean-auc":  # at the thresholds chosen on these rows
        from kfold.scoring.multilabel import search_thresholds

        return float(search_thresholds(labels, probs, metric)["score"]), len(parts)
    return float(score(metric, labels, probs, num_classes)), len(parts)


class _TrialBackend(LocalBackend):
    """A trial's folds one after another here, each reported to the pruner as it finishes (which may stop the trial
    between folds). The trial's config was checked when it was sampled (``_Driver.start``), so ``check`` does not
    build the model again."""

    def __init__(self, reporter: "_FoldReporter", echo: Callable[[str], None]):
        super().__init__(echo=echo)
        self.reporter = reporter

    def check(self, cfg, task, spec, device) -> None:
        pass

    def train_folds(self, jobs, task) -> None:
        from kfold.nn.fold import train_fold

        for job in jobs:
            meta = train_fold(job, task)  # its header line printed, as every trial's
            acc = meta.get("val_accuracy")
            self.echo(f"fold {job.fold} done in {meta['seconds']:.1f}s" + ("" if acc is None else f", val_acc {acc:.4f}"))
            self.reporter.fold_done(int(job.fold))


class _Driver:
    def __init__(self, study, *, space: SearchSpace, base: dict, task: Task, task_spec: TaskSpec, out: Path,
                 preset: str | None, k: int, seed: int, fold_list: list[int], metric: str, trials: int,
                 timeout: float | None, prune: bool, device: str, threads: int | None, progress: bool, backend,
                 trials_in_parallel: int, echo: Callable[[str], None], tracker=None):
        self.tracker = tracker
        self.study, self.space, self.base, self.task, self.spec, self.out = study, space, base, task, task_spec, out
        self.preset, self.k, self.seed, self.fold_list, self.metric = preset, k, seed, fold_list, metric
        self.trials, self.deadline = trials, None if timeout is None else time.monotonic() + timeout
        self.prune, self.device, self.threads, self.progress = prune, device, threads, progress
        self.backend, self.parallel, self.echo = backend, trials_in_parallel, echo
        self.driver = {"host": socket.gethostname(), "pid": os.getpid()}
        self.storage = study._storage

    # -- bookkeeping
    def recover_stale(self) -> None:
        """Trials left RUNNING by a driver that died: failed ('interrupted'), their configs queued again."""
        optuna = import_optuna()
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not _stale(t):
                continue
            self.storage.set_trial_user_attr(t._trial_id, "fail_kind", "interrupted")
            self.storage.set_trial_user_attr(t._trial_id, "fail_reason", "its driver stopped; re-run as a new trial")
            try:
                self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another driver got there first
            self._requeue(t.params, t.number, t.user_attrs.get("dir"))
            self.echo(f"trial {t.number}: its driver stopped while it ran; queued again")

    def _requeue(self, params: dict, number: int, directory: str | None) -> None:
        attrs = {"rerun_of": number, **({"dir": directory} if directory else {})}
        self.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)

    def _taken(self) -> int:
        from optuna.trial import TrialState

        return sum(1 for t in self.study.get_trials(deepcopy=False) if _counted(t) or t.state == TrialState.RUNNING)

    def can_ask(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        return self._taken() < self.trials

    def ask(self) -> Any | None:
        """The next trial, or None when the study already holds ``trials`` (another driver asked first)."""
        from optuna.trial import TrialState

        self.study.sampler = make_sampler(self.seed, len(self.study.get_trials(deepcopy=False)))
        trial = self.study.ask()
        trial.set_user_attr("driver", self.driver)
        ahead = sum(1 for t in self.study.get_trials(deepcopy=False)
                    if t.number < trial.number and (_counted(t) or t.state == TrialState.RUNNING))
        if ahead >= self.trials:  # two drivers asked at once for the last trial: this one stands down
            trial.set_user_attr("fail_kind", "surplus")
            trial.set_user_attr("fail_reason", "the study already held --trials trials when it was asked")
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def fail(self, trial, kind: str, reason: str, start: float | None = None) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("fail_kind", kind)
        trial.set_user_attr("fail_reason", reason[:500])
        if start is not None:
            trial.set_user_attr("seconds", time.perf_counter() - start)
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def interrupted(self, live: list[_Live]) -> None:
        for item in live:
            self.fail(item.trial, "interrupted", "interrupted (Ctrl-C); queued again", item.start)
            self._requeue(item.trial.params, item.trial.number, str(item.run.path))

    def _params_text(self, trial) -> str:
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())

    def start(self, trial) -> _Live | None:
        """Sample the trial's config and prepare its run; a config that fails validation fails the trial."""
        start = time.perf_counter()
        values = {p.name: p.suggest(trial) for p in self.space.params}
        directory = trial.user_attrs.get("dir") or str(TuneDir(self.out).trial(trial.number))
        run = RunDir(directory)
        if "rerun_of" not in trial.user_attrs and run.is_run():
            self.fail(trial, "error", f"{run.path} already holds a run", start)
            raise DataError(f"{run.path}: already holds a run that study {self.study.study_name!r} does not know "
                            f"(a deleted study.db?); use a new {param('out')} directory")
        self.echo(f"\n== trial {trial.number}: {self._params_text(trial)}")
        try:
            cfg = trial_config(self.base, values)
            if self.backend is None:
                from kfold.nn.checks import check_model_fits

                check_model_fits(cfg, self.task.num_classes, self.task.image_shape, f"{param('data')}={self.spec.data}",
                                 channels=self.task.channels)
        except UsageError as exc:
            self.fail(trial, "invalid_config", str(exc), start)
            self.echo(f"trial {trial.number} failed: {exc}")
            return None
        trial.set_user_attr("dir", str(run.path))  # a trial whose config failed has none
        trial.set_user_attr("config", cfg.to_dict())
        reporter = _FoldReporter(trial, run, self.fold_list, self.metric, self.task.num_classes, self.prune)
        return _Live(trial, run, cfg, reporter, start)

    def start_or_requeue(self, trial) -> _Live | None:
        """``start``; Ctrl-C while it samples or checks: the trial is failed and queued again."""
        try:
            return self.start(trial)
        except KeyboardInterrupt:
            self.fail(trial, "interrupted", "interrupted (Ctrl-C) before training; queued again")
            self._requeue(trial.params, trial.number, trial.user_attrs.get("dir"))
            raise

    def finish(self, live: _Live, pruned_after: int | None = None) -> None:
        from optuna.trial import TrialState

        summarize(live.run, self.task, self.k, live.cfg, preset=self.preset, seed=self.seed)
        value, done = _oof_score(live.run, self.fold_list, self.metric, self.task.num_classes, self.task.schema.target)
        live.trial.set_user_attr("folds_done", done)
        live.trial.set_user_attr("seconds", time.perf_counter() - live.start)
        if pruned_after is not None:
            live.trial.set_user_attr("partial_metric", None if math.isnan(value) else value)
            self.study.tell(live.trial, state=TrialState.PRUNED)
            self.echo(f"trial {live.trial.number} pruned after fold {pruned_after} ({done}/{len(self.fold_list)} "
                      f"folds, {self.metric} {value:.4f} on their rows)")
        else:
            self.study.tell(live.trial, value)
            self.echo(f"trial {live.trial.number}: {self.metric} {value:.4f} ({done} folds, "
                      f"{time.perf_counter() - live.start:.1f}s)")
        if self.tracker:  # the trial's run, folds, state and objective, from its files and the study
            self.tracker.trial_done(self.out, self.study.get_trials(deepcopy=False)[live.trial.number])

    def _done_before(self, live: _Live) -> list[int]:
        """Folds already finished in the trial's directory (a re-run of an interrupted trial): reported first."""
        done = [f for f in self.fold_list if live.run.is_done(f)] if live.run.is_run() else []
        for fold in done:
            live.reporter.fold_done(fold)
        return done

    # -- local: one trial at a time, its folds one after another in this process
    def run_local(self) -> None:
        while self.can_ask():
            trial = self.ask()
            if trial is None:
                break
            live = self.start_or_requeue(trial)
            if live is not None:
                self.run_trial(live)

    def run_trial(self, live: _Live) -> None:
        """One local trial, from its prepared run to the result told to the study: trained fold by fold, finished
        as complete or pruned, failed on a config a fold refuses; Ctrl-C queues it again."""
        try:
            self._train_local(live)
        except _Pruned as pruned:
            self.finish(live, pruned_after=int(pruned.args[0]))
        except KeyboardInterrupt:
            self.interrupted([live])
            raise
        except UsageError as exc:  # a sampled config a fold refuses (e.g. more rows per batch than it has)
            self.fail(live.trial, "invalid_config", str(exc), live.start)
            self.echo(f"trial {live.trial.number} failed: {exc}")
        except BaseException as exc:
            self.fail(live.trial, "error", f"{type(exc).__name__}: {exc}", live.start)
            raise
        else:
            self.finish(live)

    def _train_local(self, live: _Live) -> None:
        self._done_before(live)
        request = RunRequest(live.cfg, self.spec, preset=self.preset, k=self.k, seed=self.seed, folds=self.fold_list,
                             device=self.device, threads=self.threads, resume="rerun_of" in live.trial.user_attrs,
                             progress=self.progress)
        train_run(request, self.task, live.run, backend=_TrialBackend(live.reporter, self.echo), echo=self.echo)

    # -- Ray: several trials at once, every fold a Ray task
    def run_ray(self) -> None:
        from kfold.flows.training import fold_jobs, prepare_run

        backend = self.backend
        threads = backend.options.threads(self.threads)
        live: dict[int, _Live] = {}
        try:
            while True:
                while len(live) < self.parallel and self.can_ask():
                    trial = self.ask()
                    if trial is None:
                        break
                    item = self.start_or_requeue(trial)
                    if item is None:
                        continue
                    try:
                        prepare_run(item.run, item.cfg, self.task, preset=self.preset, k=self.k, seed=self.seed,
                                    data=self.spec.data, resume="rerun_of" in item.trial.user_attrs, threads=threads)
                        done = self._done_before(item)
                    except _Pruned as pruned:
                        self.finish(item, pruned_after=int(pruned.args[0]))
                        continue
                    todo = [f for f in self.fold_list if f not in done]
                    if not todo:
                        self.finish(item)
                        continue
                    jobs = fold_jobs(item.run, item.cfg, self.spec, todo, k=self.k, seed=self.seed, preset=self.preset,
                                     device=self.device, threads=threads, resume="rerun_of" in item.trial.user_attrs,
                                     progress=False)
                    item.refs = dict(zip(backend.submit(jobs), todo))
                    live[trial.number] = item
                if not live:
                    break
                owner = {ref: number for number, item in live.items() for ref in item.refs}
                ready, _ = backend.ray.wait(list(owner), num_returns=1)
                for ref in ready:
                    item = live[owner[ref]]
                    fold = item.refs.pop(ref)
                    try:
                        result = backend.get(ref)
                        acc = result.get("val_accuracy")
                        self.echo(f"trial {item.trial.number} fold {fold} finished on {result['node']} in "
                                  f"{result['seconds']:.1f}s" + ("" if acc is None else f", val_acc {acc:.4f}")
                                  + (" (retried after a lost worker)" if result.get("retry") else ""))
                        item.reporter.fold_done(fold)
                    except _Pruned as pruned:
                        self._cancel(item)
                        del live[owner[ref]]
                        self.finish(item, pruned_after=int(pruned.args[0]))
                        continue
                    except UsageError as exc:
                        self._cancel(item)
                        del live[owner[ref]]
                        self.fail(item.trial, "invalid_config", str(exc), item.start)
                        self.echo(f"trial {item.trial.number} failed: {exc}")
                        continue
                    if not item.refs:
                        del live[owner[ref]]
                        self.finish(item)
        except KeyboardInterrupt:
            for item in live.values():
                self._cancel(item)
            self.interrupted(list(live.values()))
            raise
        except BaseException as exc:
            for item in live.values():
                self._cancel(item)
                self.fail(item.trial, "error", f"{type(exc).__name__}: {exc}", item.start)
            raise

    def _cancel(self, item: _Live) -> None:
        for ref in list(item.refs):
            try:
                self.backend.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        item.refs.clear()

