"""A bare string (or path, bytes, mapping, number) where a list is expected is a TypeError naming the parameter, in
every list parameter of the public API (issue 31, item 6).

``test_every_list_parameter_is_in_the_corpus`` finds the list parameters (annotated ``Sequence``/``list``) of every
public function of ``kfold.api``, ``kfold.flows`` and ``kfold.scoring``, so a new one must be added to ``CALLS``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from test_hostile import tree

import kfold
from kfold.errors import ListTypeError, UsageError

BARE = ["runs/x/probs/*.npz", "a.npz,b.npz", "0,1", Path("runs/x/probs/fast-fold0.npz"), b"a.npz", {"a.npz": 1}, 7, ""]


def _comp(tmp):
    from kfold.data.toy import make_toy_competition

    return str(tmp / "comp") if (tmp / "comp").is_dir() else str(make_toy_competition(tmp / "comp"))


def _calls():
    """(function, parameter) -> a call with the parameter set to ``value`` and everything else valid."""
    from kfold.config import TrainConfig
    from kfold.flows import compare, ensembling, kaggle_loop, pipeline
    from kfold.flows.training import RunRequest, TaskSpec
    from kfold.flows.tune import default_space, tune
    from kfold.scoring import ensemble, leaderboard, learning_curve

    def run_competition(v, t):
        spec = TaskSpec(_comp(t))
        request = RunRequest(TrainConfig(), spec, preset="lenet5", k=2, device="cpu", threads=1, progress=False)
        return pipeline.run_competition(request, spec.load(), t / "out", seeds=v)

    return {
        ("kfold.train", "folds"): lambda v, t: kfold.train(_comp(t), "lenet5", k=2, folds=v, out=t / "r", epochs=1),
        ("kfold.tune", "folds"): lambda v, t: kfold.tune(_comp(t), "lenet5", trials=1, k=2, folds=v, out=t / "s"),
        ("kfold.ensemble", "inputs"): lambda v, t: kfold.ensemble(v, out=t / "e.csv"),
        ("kfold.ensemble", "weights"): lambda v, t: kfold.ensemble(["a.npz", "b.npz"], weights=v, out=t / "e.csv"),
        ("kfold.leaderboard", "submissions"): lambda v, t: kfold.leaderboard(t / "solution.csv", v),
        ("guard_leaderboard", "inputs"): lambda v, t: __import__("kfold.api").api.guard_leaderboard(t / "board", v),
        ("local_leaderboard", "submissions"): lambda v, t: __import__("kfold.flows.leaderboard").flows.leaderboard.local_leaderboard(v, t / "s.csv", t / "board"),
        ("compare", "presets"): lambda v, t: compare.compare(_comp(t), t / "c", presets=v, seeds=[0]),
        ("compare", "seeds"): lambda v, t: compare.compare(_comp(t), t / "c", presets=["lenet5"], seeds=v),
        ("compare", "seed_ensembles"): lambda v, t: compare.compare(_comp(t), t / "c", presets=["lenet5"], seeds=[0, 1],
                                                                    seed_ensembles=v),
        ("run_competition", "seeds"): run_competition,
        ("make_submission", "inputs"): lambda v, t: ensembling.make_submission(v, t / "e.csv"),
        ("make_submission", "fit_oof"): lambda v, t: ensembling.make_submission(["a.npz"], t / "e.csv", fit_oof=v),
        ("make_submission", "extra_inputs"): lambda v, t: ensembling.make_submission(["a.npz"], t / "e.csv", extra_inputs=v),
        ("make_submission", "weights"): lambda v, t: ensembling.make_submission(["a.npz"], t / "e.csv", weights=v),
        ("combine", "prob_inputs"): lambda v, t: ensemble.combine(v),
        ("combine", "weights"): lambda v, t: ensemble.combine(["a.npz", "b.npz"], weights=v),
        ("align_inputs", "inputs"): lambda v, t: ensemble.align_inputs(v),
        ("fit_weights", "oof_inputs"): lambda v, t: ensemble.fit_weights(v),
        ("leaderboard", "submissions"): lambda v, t: leaderboard.leaderboard(v, None),
        ("learning_curve", "runs"): lambda v, t: learning_curve.learning_curve(v, t / "lc"),
        ("provenance", "run_dirs"): lambda v, t: kaggle_loop.provenance(t / "s.csv", v),
        ("submit", "runs"): lambda v, t: kaggle_loop.submit(t / "s.csv", "comp", "m", runs=v),
        ("remote_leaderboard", "inputs"): lambda v, t: kaggle_loop.remote_leaderboard("comp", t / "o", inputs=v),
        ("tune", "fixed"): lambda v, t: tune(TrainConfig(), None, t / "s", task_spec=None, trials=1, fixed=v),
        ("default_space", "fixed"): lambda v, t: default_space(TrainConfig(), v),
        ("kfold.package", "runs"): lambda v, t: kfold.package(v, "comp-x", "alice", t / "pkg", rehearse=False),
        ("sync", "paths"): lambda v, t: __import__("kfold.flows.tracking").flows.tracking.sync(v, uri=f"sqlite:///{t}/m.db"),
    }


CALLS = sorted(_calls())
# List-typed parameters of public functions that are not inputs a user passes (arrays, internal plans): exempt.
EXEMPT = {("mean_probs", "probs"), ("geomean_probs", "probs"), ("train_and_predict_at_once", "seeds"),
          ("train_and_predict_at_once", "presets"), ("seed_entries", "presets"), ("guard_comparison", "seeds"),
          ("guard_comparison", "presets"), ("with_na", "columns"), ("validate_files", "files"),
          ("guard_competition", "run_dirs"), ("train_runs", "plans"), ("fold_jobs", "folds"),
          ("run_outputs", "k"), ("check_same_recipe", "configs"), ("check_same_recipe", "runs"),
          ("score_many", "submissions"), ("parse_fold_list", "folds"), ("parse_presets", "allowed"),
          ("merge", "remote"), ("comparison_table", "members"), ("accuracy_by_group", "names"),
          ("agreement_matrix", "names"), ("bootstrap_laws", "points"), ("curve_table", "points"),
          ("fit_power_law", "points"), ("display_names", "paths"),
          # multi-label dispatch under make_submission / leaderboard / validate_files, which check their lists first
          ("make_multilabel_submission", "inputs"), ("score_multilabel", "submissions"), ("validate_multilabel", "files"),
          # arrays and tables built inside the flows; a command's argv; a run's summaries; the network guard's command
          ("agreement_tables", "names"), ("agreement_tables", "predictions"), ("agreement_tables", "tags"),
          ("vote_tags", "predictions"), ("per_tag_table", "tags"), ("check_runs", "runs"),
          ("finish_competition", "fold_files"), ("main", "argv"), ("network_command", "command"),
          ("no_test_line", "summaries")}


@pytest.mark.parametrize("call", CALLS, ids=[f"{f}-{p}" for f, p in CALLS])
@pytest.mark.parametrize("value", BARE, ids=[repr(v)[:20] for v in BARE])
def test_a_bare_value_for_a_list_parameter_is_a_type_error_naming_it(call, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    _comp(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(TypeError) as caught:
        _calls()[call](value, tmp_path)
    error = caught.value
    assert isinstance(error, ListTypeError) and isinstance(error, UsageError)
    message = str(error)
    assert message.startswith(f"{call[1]}=") and "a list is expected" in message and "\n" not in message, message
    assert error.for_command().startswith("--"), error.for_command()  # a command that meets it names the flag
    assert tree(tmp_path) == before  # nothing written


def _list_parameters():
    found = set()
    modules = ["kfold.api", "kfold.code_api"]
    for package in ("kfold.flows", "kfold.scoring"):
        root = importlib.import_module(package)
        modules += [f"{package}.{m.name}" for m in pkgutil.walk_packages(root.__path__) if not m.ispkg]
        modules += [f"{package}.tune"] if package == "kfold.flows" else []
    for name in modules:
        module = importlib.import_module(name)
        for fname, function in inspect.getmembers(module, inspect.isfunction):
            if fname.startswith("_") or function.__module__ != module.__name__:
                continue
            for pname, parameter in inspect.signature(function).parameters.items():
                text = str(parameter.annotation)
                if "Sequence" in text or "list[" in text:
                    found.add((fname, pname))
    return found


def test_every_list_parameter_is_in_the_corpus():
    tested = {(f.split(".")[-1], p) for f, p in CALLS}
    missing = _list_parameters() - tested - EXEMPT
    assert missing == set(), f"list parameters without a bare-string case: {sorted(missing)}"


@pytest.mark.parametrize("value", [["a.npz"], ("a.npz",), [Path("a.npz")], iter(["a.npz"])])
def test_real_lists_are_lists(value):
    from kfold.errors import check_list

    assert [str(v) for v in check_list("inputs", value)] == ["a.npz"]
