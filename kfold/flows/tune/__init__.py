"""Hyperparameter search as typed functions: one Optuna trial is one k-fold CV run of a sampled config.

``tune`` asks Optuna (``TPESampler``, seeded) for a config, trains it through the training flow into
``OUT/trials/NNNN/`` (locally, or with its folds as Ray tasks and several trials at once), reports each
finished fold's validation score as an intermediate value (step = fold index) so that a pruner can stop a
trial between folds, and tells the study the competition metric on the trial's out-of-fold probabilities.
The study lives in ``sqlite:///OUT/study.db`` (or any Optuna storage URL); re-running the command continues
it. Results: ``OUT/trials.csv``, ``OUT/best.json`` (a ``--config`` file), PNG figures and, on request, the
mean of the best trials' test probabilities as a submission.

Optuna is imported only by ``tune`` (and the functions that need it); torch only through ``kfold.nn``,
lazily. The search space, the base config, the metric and the storage are checked before anything is
written.

The package: ``space`` (the search space), ``study`` (metric, Optuna, results), ``driver`` (the trial loop),
``search`` (``tune`` itself); every public name is importable from ``kfold.flows.tune``.
"""
from __future__ import annotations

from kfold.flows.tune.driver import _Driver, _FoldReporter, _Pruned
from kfold.flows.tune.search import ensemble_best, tune
from kfold.flows.tune.space import (KINDS, MODEL_OPTION, Param, SearchSpace, check_space, default_space, parse_space,
                                    read_space, trial_config)
from kfold.flows.tune.study import (BEST_JSON, FIGURES, INSTALL_HINT, PRUNERS, STUDY_DB, TRIALS_CSV, TuneResult,
                                    default_storage, format_top, import_optuna, make_pruner, make_sampler,
                                    objective_metric, open_storage, open_study, study_name, top_trials, trials_table,
                                    write_results)

__all__ = ["Param", "SearchSpace", "TuneResult", "check_space", "default_space", "default_storage",
           "ensemble_best", "format_top", "import_optuna", "make_pruner", "make_sampler", "objective_metric",
           "open_storage", "open_study", "parse_space", "read_space", "study_name", "top_trials", "trial_config",
           "trials_table", "tune", "write_results"]
