"""``kfold tune``: hyperparameter search with Optuna, one k-fold CV run per trial, folds pruned early.

Every trial trains a config sampled from the search space (``--space FILE``, JSON or YAML; default: the
preset family's, ``--show-space`` prints it) as a k-fold run in OUT/trials/NNNN/; the objective is the metric
on its out-of-fold probabilities. Each finished fold's validation score goes to the pruner (--pruner).
The study is kept in sqlite:///OUT/study.db (or --storage URL: several drivers, also on several machines,
may share one); re-running the same command continues it. Results: OUT/trials.csv, OUT/best.json (train it
with --config), OUT/*.png, and with --ensemble-top N the mean of the best N trials as a submission.
Needs Optuna: pip install -e '.[tune]'.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags
from kfold.errors import UsageError


def build_parser(prog: str = "kfold tune") -> argparse.ArgumentParser:
    from kfold.scoring.metrics import METRICS

    p = flags.parser(prog, __doc__)
    flags.add_data_flags(p, required=False, metric=False)
    search = p.add_argument_group("search")
    search.add_argument("--trials", type=flags.positive_int, default=None, metavar="N",
                        help="trials the study should hold (complete, pruned, or failed on their config); a re-run "
                             "continues up to N")
    search.add_argument("--timeout", type=flags.finite_float(0, 10 ** 9, low_open=True), default=None, metavar="SECONDS",
                        help="ask no new trial after this many seconds (running trials finish)")
    search.add_argument("--space", type=Path, default=None, metavar="FILE",
                        help="search space, JSON (or YAML): {\"lr\": {\"log_uniform\": [0.01, 0.3]}, \"aug\": "
                             "{\"choice\": [\"light\", \"heavy\"]}, \"epochs\": {\"int\": [4, 12]}, "
                             "\"model_kwargs.width\": {\"choice\": [16, 32]}} (default: the preset family's)")
    search.add_argument("--show-space", action="store_true", help="print the search space as JSON and exit")
    search.add_argument("--metric", type=flags.one_of("metric", list(METRICS)), default=None, metavar="|".join(METRICS),
                        help="objective on the out-of-fold probabilities (default: the competition's, accuracy)")
    search.add_argument("--pruner", default="median", type=flags.one_of("pruner", ["median", "halving", "none"]),
                        metavar="median|halving|none",
                        help="stop a trial between folds: below the median of earlier trials at that fold (default), "
                             "successive halving, or never")
    search.add_argument("--prune-after", type=flags.int_at_least(0, 10 ** 6), default=2, metavar="N",
                        help="median pruner: complete trials before it prunes (default 2)")
    search.add_argument("--storage", default=None, metavar="URL",
                        help="Optuna storage URL (default: sqlite:///OUT/study.db); e.g. postgresql://user@host/db "
                             "for drivers on several machines")
    search.add_argument("--trials-in-parallel", type=flags.int_at_least(1, 1024), default=1, metavar="N",
                        help="--backend ray: trials in flight at once, every fold a Ray task (default 1)")
    search.add_argument("--ensemble-top", type=flags.int_at_least(1, 1000), default=None, metavar="N",
                        help="predict the test set with the best N trials and write their mean as OUT/ensemble-topN.csv "
                             "(with the local leaderboard line when the competition has a solution file)")
    p.add_argument("--k", type=flags.k_folds, default=5, help="number of folds of every trial (default 5)")
    p.add_argument("--seed", type=flags.seed, default=0,
                   help="seed of every trial's folds, weights and augmentation, and of the sampler (default 0)")
    p.add_argument("--folds", type=flags.comma_list(flags.int_at_least(0)),
                   help="train only these folds in every trial (e.g. 0,1; the objective is scored on their rows)")
    p.add_argument("--out", type=Path, default=Path("runs") / "tune", help="search directory (default: runs/tune)")
    flags.add_training_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold tune") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.config import resolve_config
    from kfold.flows.tune import check_space, default_space, read_space, tune

    overrides = flags.recipe_overrides(args)
    base = resolve_config(args.preset, args.config, overrides)
    fixed = list(overrides)
    space = read_space(args.space) if args.space is not None else None
    if args.show_space:
        shown = space if space is not None else default_space(base, fixed)
        check_space(shown, base)
        fields = [f"  {json.dumps(name)}: {json.dumps(spec)}" for name, spec in shown.to_json().items()]
        print("{\n" + ",\n".join(fields) + "\n}")  # one field a line; valid JSON for --space
        return 0
    if args.data is None:
        raise UsageError(f"{prog}: --data is required (or --show-space)")
    if args.trials is None:
        raise UsageError(f"{prog}: --trials N is required")
    if args.trials_in_parallel > 1 and args.backend != "ray" and args.parallel_folds is None:
        raise UsageError(f"{prog}: --trials-in-parallel needs --backend ray")
    if args.ensemble_top is not None and args.folds is not None and len(args.folds) < args.k:
        raise UsageError(f"{prog}: --ensemble-top needs every fold of each trial; --folds "
                         f"{','.join(map(str, args.folds))} trains {len(args.folds)} of {args.k}")
    spec = flags.task_spec(args)
    tracker = flags.open_tracker(args, Path(args.out).parent)  # checked before anything is written
    backend = flags.backend_from_args(args, progress=not args.no_progress)  # checked; Ray starts at the first fold
    threads = args.threads if backend is None else backend.options.threads(args.threads)
    from kfold.flows.tune import import_optuna

    import_optuna()  # without Optuna: one line, before the data is loaded
    task = spec.load(progress=not args.no_progress)
    try:
        result = tune(base, task, args.out, task_spec=spec, trials=args.trials, preset=args.preset, space=space,
                      fixed=fixed, metric=args.metric, k=args.k, seed=args.seed, folds=args.folds, timeout=args.timeout,
                      pruner=args.pruner, prune_after=args.prune_after, storage=args.storage, device=args.device,
                      threads=threads, progress=not args.no_progress, backend=backend,
                      trials_in_parallel=args.trials_in_parallel, ensemble_top=args.ensemble_top, tracker=tracker)
    finally:
        if backend is not None:
            backend.close()
    print("\n" + "\n".join(result.lines))
    print("wrote " + ", ".join(str(path) for path in result.files))
    flags.tracking_cost(tracker)
    return 0
