"""The examples in the docstrings of the torch-free core run as written (scikit-learn style)."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["kfold.files.rundir", "kfold.commands.args", "kfold.scoring.metrics", "kfold.api", "kfold.errors",
           "kfold.config", "kfold.registry", "kfold.files.folds", "kfold.data.toy", "kfold.flows.pipeline",
           "kfold.data.jobs", "kfold.flows.backend", "kfold.flows.training", "kfold.flows.tracking",
           "kfold.flows.mlflow_tracker", "kfold.files.schema", "kfold.files.package", "kfold.flows.code_submission",
           "kfold.files.multilabel", "kfold.files.multilabel_folds", "kfold.files.multilabel_submission",
           "kfold.scoring.multilabel", "kfold.scoring.multilabel_board", "kfold.data.mosaic", "kfold.code_api", "kfold.scoring.bootstrap",
           "kfold.flows.wandb_tracker", "kfold.flows.track_params", "kfold.files.past_ensembles", "kfold.flows.ray_logging"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
