"""Several k-fold runs in flight at once on a Ray backend (``kfold compare --backend ray``): every fold of every run
submitted together, each run's summary and prediction as soon as its own folds are done. Ray only through the
``RayBackend`` (``kfold.flows.ray_backend``); torch never imported here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["RunPlan", "train_runs"]


@dataclass
class RunPlan:
    """One k-fold run of a flow that keeps several runs in flight (compare): what to train and where to predict."""

    key: Any
    run: Any  # RunDir
    cfg: Any  # TrainConfig
    preset: str | None
    k: int
    seed: int
    resume: bool
    probs_dir: Path | None = None


def train_runs(backend, plans: Sequence[RunPlan], task, spec, *, device: str, threads: int | None,
               tta: int | None = None, echo: Callable[[str], None] = print) -> dict:
    """Prepare every run (all checks first), submit every unfinished fold of every run at once, then each run's
    prediction (waiting only on its own folds); summaries are written by the driver as runs finish.
    Returns key -> summary dict."""
    from kfold.flows.training import fold_jobs, prepare_run, summarize

    threads = backend.options.threads(threads)
    todo: dict[Any, list] = {}
    for plan in plans:
        prepare_run(plan.run, plan.cfg, task, preset=plan.preset, k=plan.k, seed=plan.seed, data=spec.data,
                    resume=plan.resume, threads=threads)
        todo[plan.key] = []
        for fold in range(plan.k):
            if plan.resume and plan.run.is_done(fold):
                echo(f"{plan.run.path}: fold {fold}: already finished, skipping")
                plan.run.checkpoint(fold).unlink(missing_ok=True)
            else:
                todo[plan.key].append(fold)
    by_key = {plan.key: plan for plan in plans}
    summaries: dict[Any, dict] = {}
    predicts: dict[Any, Any] = {}

    def run_finished(key) -> None:  # the summary (and oof.npz) first: the prediction copies the run's OOF file
        plan = by_key[key]
        summaries[key] = summarize(plan.run, task, plan.k, plan.cfg, preset=plan.preset, seed=plan.seed)
        if plan.probs_dir is not None:
            predicts[key] = backend.submit_predict(str(plan.run.path), spec, str(plan.probs_dir), tta=tta,
                                                   device=device, threads=threads)

    refs, labels, owner = [], [], []
    for plan in plans:
        jobs = fold_jobs(plan.run, plan.cfg, spec, todo[plan.key], k=plan.k, seed=plan.seed, preset=plan.preset,
                         device=device, threads=threads, resume=plan.resume, progress=False)
        mine = backend.submit(jobs) if jobs else []
        refs += mine
        labels += [f"{plan.run.path.parent.name}/{plan.run.path.name} "] * len(mine)
        owner += [plan.key] * len(mine)
    echo(f"ray: {len(refs)} fold task(s) submitted for {len(plans)} run(s)")
    left = {plan.key: len(todo[plan.key]) for plan in plans}
    for key, count in left.items():
        if count == 0:
            run_finished(key)

    def finished(i: int, _result: dict) -> None:
        left[owner[i]] -= 1
        if left[owner[i]] == 0:
            run_finished(owner[i])

    backend.wait(refs, labels=labels, on_done=finished)
    for key, ref in predicts.items():
        backend.get(ref)
    return summaries
