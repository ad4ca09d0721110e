"""``kfold tune`` (issue 25): Optuna search with one k-fold run per trial, pruning between folds, resume,
two drivers on one SQLite study, the Ray backend, results (trials.csv, best.json, figures, ensemble) and
bad input. CI-sized: lenet5, 120 synthetic images, k = 2, one epoch, 2-4 trials per search, one thread.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")

from kfold.commands.tune import main as tune_main  # noqa: E402
from kfold.commands.train import main as train_main  # noqa: E402
from kfold.errors import run_cli  # noqa: E402
from kfold.files.probs import read_probs  # noqa: E402
from kfold.flows.tune import parse_space, read_space  # noqa: E402
from kfold.scoring.metrics import score  # noqa: E402
from synthetic import write_kmnist_comp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPACE = {"lr": {"log_uniform": [0.005, 0.2]}, "aug": {"choice": ["none", "light"]}, "batch_size": {"choice": [16, 32]}}
COMMON = ["--preset", "lenet5", "--epochs", "1", "--k", "2", "--threads", "1", "--device", "cpu", "--no-progress",
          "--seed", "0"]


def tune(*argv) -> int:
    return run_cli(tune_main, [*map(str, argv)])


def load_study(out: Path):
    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")


def states(out: Path) -> list[str]:
    return [t.state.name for t in load_study(out).trials]


def params_and_values(out: Path) -> list[tuple[dict, float | None]]:
    return [(t.params, t.value) for t in load_study(out).trials if t.state.name == "COMPLETE"]


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Path:
    return write_kmnist_comp(tmp_path_factory.mktemp("comp"), n_train=120, n_test=30, seed=1)


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.json"
    path.write_text(json.dumps(SPACE))
    return path


@pytest.fixture(scope="module")
def searched(comp, space_file, tmp_path_factory) -> tuple[Path, str]:
    """Three trials on the local backend, no pruning, with the top-2 ensemble: the reference search."""
    out = tmp_path_factory.mktemp("a") / "search"
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert tune("--data", comp, "--out", out, "--space", space_file, "--trials", 3, "--pruner", "none",
                    "--ensemble-top", 2, *COMMON) == 0
    return out, printed.getvalue()


def test_search_end_to_end(searched, comp):
    """trials.csv, best.json, the figures, the console table and the top-2 ensemble with its leaderboard line."""
    out, printed = searched
    table = pd.read_csv(out / "trials.csv")
    assert list(table["state"]) == ["complete"] * 3 and list(table["folds_done"]) == [2, 2, 2]
    assert {"number", "accuracy", "seconds", "lr", "aug", "batch_size", "dir"} <= set(table.columns)
    for _, row in table.iterrows():  # the objective is the metric on the trial's OOF probabilities
        oof = read_probs(Path(row["dir"]) / "oof.npz")
        assert row["accuracy"] == pytest.approx(score("accuracy", oof.labels, oof.probs), abs=1e-12)
        assert Path(row["dir"]).name == f"{row['number']:04d}"
    best = table.sort_values(["accuracy", "number"], ascending=[False, True]).iloc[0]
    config = json.loads((out / "best.json").read_text())
    assert config["lr"] == pytest.approx(best["lr"]) and config["batch_size"] == best["batch_size"] and config["epochs"] == 1
    for name in ("history.png", "importance.png", "params.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "top 3 trials by accuracy (maximize; 3 complete)" in printed and f"best: trial {best['number']}" in printed
    submission = pd.read_csv(out / "ensemble-top2.csv")
    assert list(submission.columns) == ["Id", "Category"] and len(submission) == 30
    assert "ensemble of the top 2 trials" in printed and "local Public" in printed and "Private" in printed
    study = load_study(out)
    assert study.direction.name == "MAXIMIZE" and study.user_attrs["kfold"]["metric"] == "accuracy"


def test_best_json_reproduces_the_best_trial(searched, comp, tmp_path):
    """train.py --config best.json at the same k, seed and threads: the best trial's OOF score, bit for bit."""
    out, _ = searched
    study = load_study(out)
    run = tmp_path / "tuned"
    assert run_cli(train_main, ["--data", str(comp), "--config", str(out / "best.json"), "--k", "2", "--seed", "0",
                                "--threads", "1", "--device", "cpu", "--no-progress", "--out", str(run)]) == 0
    oof = read_probs(run / "oof.npz")
    assert score("accuracy", oof.labels, oof.probs) == study.best_value
    trial_oof = read_probs(Path(study.best_trial.user_attrs["dir"]) / "oof.npz")
    assert np.array_equal(oof.probs, trial_oof.probs)


def test_resume_continues_with_the_same_sampled_configs(searched, comp, space_file, tmp_path):
    """Two trials, then the same command with --trials 3: the study continues (3 trials, not 5) and samples the
    same configs with the same scores as the uninterrupted search (same seed, same storage state)."""
    out = tmp_path / "search"
    args = ["--data", comp, "--out", out, "--space", space_file, "--pruner", "none", *COMMON]
    assert tune(*args, "--trials", 2) == 0
    assert tune(*args, "--trials", 3) == 0
    assert states(out) == ["COMPLETE"] * 3
    assert params_and_values(out) == params_and_values(searched[0])
    assert tune(*args, "--trials", 3) == 0 and len(load_study(out).trials) == 3  # nothing left to do


def test_api_returns_the_table_and_best_config(searched, comp, space_file):
    import kfold

    out, _ = searched
    result = kfold.tune(str(comp), "lenet5", trials=3, out=out, space=space_file, k=2, seed=0, threads=1,
                        device="cpu", progress=False, pruner="none", epochs=1)
    assert len(result.table) == 3 and result.best_config == json.loads((out / "best.json").read_text())
    assert result.best_value == load_study(out).best_value and result.direction == "maximize"


@pytest.mark.parametrize("pruner, k, folds_done", [("median", 2, 1), ("halving", 3, 2)])
def test_pruning_stops_a_trial_between_folds(pruner, k, folds_done, comp, tmp_path):
    """A hopeless learning rate is stopped between folds (median: after the first; successive halving: at its
    first rung, the second fold) and recorded as pruned with the folds it finished."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr": {"choice": [1e-6, 0.1]}}))
    out = tmp_path / "search"
    assert tune("--data", comp, "--out", out, "--space", space, "--trials", 4, "--pruner", pruner,
                "--prune-after", 1, *COMMON, "--k", k, "--batch-size", 8) == 0
    table = pd.read_csv(out / "trials.csv")
    pruned = table[table["state"] == "pruned"]
    assert len(pruned) >= 1 and set(pruned["folds_done"]) == {folds_done} and set(pruned["lr"]) == {1e-6}, table
    for directory in pruned["dir"]:
        assert (Path(directory) / f"fold{folds_done - 1}" / "meta.json").is_file()
        assert not (Path(directory) / f"fold{folds_done}").exists() and not (Path(directory) / "oof.npz").exists()
    assert pruned["partial_metric"].notna().all()
    assert len(table) == 4 and (table["state"] == "complete").sum() == 4 - len(pruned)


def test_a_trial_whose_config_fails_is_recorded_and_the_search_goes_on(comp, tmp_path, capsys):
    """keep='last' with early stopping is refused by the config: that trial fails with the reason, counts, and
    the other trials train."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"keep": {"choice": ["best", "last"]}, "early_stopping": {"choice": [1]}}))
    out = tmp_path / "search"
    assert tune("--data", comp, "--out", out, "--space", space, "--trials", 4, "--pruner", "none", *COMMON) == 0
    table = pd.read_csv(out / "trials.csv")
    failed, complete = table[table["state"] == "failed"], table[table["state"] == "complete"]
    assert len(table) == 4 and len(failed) >= 1 and len(complete) >= 1, table
    assert set(failed["keep"]) == {"last"} and set(complete["keep"]) == {"best"}
    assert all("early_stopping" in reason for reason in failed["reason"])
    assert "failed: config value early_stopping" in capsys.readouterr().out


def test_ctrl_c_and_a_dead_driver_leave_a_consistent_study(comp, space_file, tmp_path, monkeypatch, capsys):
    """Ctrl-C during a fold: exit 130, no trial left running, the trial queued again; a trial left RUNNING by a
    driver that died is failed and queued again too. The re-run resumes the interrupted trial's directory
    (its finished fold is not retrained) and counts every trial once."""
    import kfold.nn.fold as fold_module

    out = tmp_path / "search"
    args = ["--data", comp, "--out", out, "--space", space_file, "--pruner", "none", "--trials", 2, *COMMON]
    real, calls = fold_module.train_fold, []

    def interrupted(job, task=None):
        calls.append(job.fold)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, task)

    monkeypatch.setattr(fold_module, "train_fold", interrupted)
    assert tune(*args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: interrupted") and "re-run the same command" in err[0]
    monkeypatch.setattr(fold_module, "train_fold", real)
    study = load_study(out)
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"]
    assert study.trials[0].user_attrs["fail_kind"] == "interrupted"
    first_fold = Path(study.trials[0].user_attrs["dir"]) / "fold0" / "meta.json"
    stamp = first_fold.stat().st_mtime_ns

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    lost = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params={"lr": 0.05, "aug": "none", "batch_size": 16},
        distributions={"lr": FloatDistribution(0.005, 0.2, log=True), "aug": CategoricalDistribution(["none", "light"]),
                       "batch_size": CategoricalDistribution([16, 32])},
        user_attrs={"driver": {"host": socket.gethostname(), "pid": dead.pid}, "dir": str(out / "trials" / "0002")})
    study.add_trial(lost)
    lost = load_study(out).trials[-1]
    assert tune(*args) == 0
    trials = load_study(out).trials
    by_state = [t.state.name for t in trials]
    assert "RUNNING" not in by_state and by_state.count("COMPLETE") == 2, by_state
    assert trials[lost.number].state.name == "FAIL" and trials[lost.number].user_attrs["fail_kind"] == "interrupted"
    reruns = {t.user_attrs.get("rerun_of"): t for t in trials if t.state.name == "COMPLETE"}
    assert set(reruns) == {0, lost.number}
    assert reruns[lost.number].params == trials[lost.number].params
    assert reruns[0].params == trials[0].params and reruns[0].user_attrs["dir"] == trials[0].user_attrs["dir"]
    assert first_fold.stat().st_mtime_ns == stamp  # fold 0 of the interrupted trial was kept, not retrained


def test_two_drivers_share_one_sqlite_study(comp, space_file, tmp_path):
    """Two driver processes on one study: every trial trained once, --trials counted over both, none running."""
    out = tmp_path / "search"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    out.mkdir()
    command = [sys.executable, "-m", "kfold", "tune", "--data", str(comp), "--out", str(out), "--space", str(space_file),
               "--trials", "4", "--pruner", "none", *COMMON]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trials = load_study(out).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and all(t.state.name in ("COMPLETE", "FAIL") for t in trials)
    assert all(t.user_attrs.get("fail_kind") == "surplus" for t in trials if t.state.name == "FAIL")
    assert len({t.user_attrs["dir"] for t in complete}) == 4
    assert {t.user_attrs["driver"]["pid"] for t in trials} <= {first.pid, second.pid}


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="kftu", dir="/tmp")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.2",
             logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_backend_gives_the_local_results(searched, cluster, comp, space_file, tmp_path):
    """Two trials in flight, every fold a Ray task: the same sampled configs with the same scores as local."""
    out = tmp_path / "search"
    assert tune("--data", comp, "--out", out, "--space", space_file, "--trials", 3, "--pruner", "none",
                "--backend", "ray", "--trials-in-parallel", 2, *COMMON) == 0
    assert params_and_values(out) == params_and_values(searched[0])


def test_show_space_prints_a_valid_space(tmp_path, capsys):
    assert tune("--show-space", "--preset", "fast", "--epochs", "3") == 0
    printed = capsys.readouterr().out
    shown = json.loads(printed)
    assert "epochs" not in shown and shown["model_kwargs.width"] == {"choice": [12, 16, 24]}
    assert shown["lr"] == {"log_uniform": [0.01, 0.3]}
    path = tmp_path / "space.json"
    path.write_text(printed)
    assert read_space(path).to_json() == shown


def test_yaml_space_equals_json(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "space.yaml"
    path.write_text("lr:\n  log_uniform: [0.005, 0.2]\naug:\n  choice: [none, light]\nbatch_size:\n  choice: [16, 32]\n")
    assert read_space(path).to_json() == parse_space(SPACE, "x").to_json()


BAD_SPACES = [
    ({"learning_rate": {"uniform": [0.1, 0.2]}}, "field 'learning_rate': not a config field"),
    ({"lr": {"uniform": [0.2, 0.1]}}, "needs low < high"),
    ({"lr": {"uniform": [0.1, 0.1]}}, "needs low < high"),
    ({"lr": {"log_uniform": [0, 0.1]}}, "log_uniform needs 0 < low"),
    ({"lr": {"uniform": [0.1]}}, "needs [low, high]"),
    ({"lr": {"uniform": [0.1, 100]}}, "value 100: config value lr=100.0 must be at most 10"),
    ({"lr": {"uniform": [0.1, 0.2], "choice": [1]}}, "give exactly one of"),
    ({"epochs": {"int": [1.5, 3]}}, "int needs integer bounds"),
    ({"optimizer": {"uniform": [0, 1]}}, "uniform draws floats, but the field holds str"),
    ({"lr": {"choice": []}}, "choice needs a non-empty list"),
    ({"model": {"choice": ["lenet5", "nosuchnet"]}}, "unknown model 'nosuchnet'"),
    ({"aug": {"choice": ["light", "sparkly"]}}, "unknown augmentation 'sparkly'"),
    ({"model_kwargs.width": {"choice": [16, 32]}}, "model 'lenet5' has no option 'width'"),  # another preset's field
    ({"batch_size": {"choice": [16, 0]}}, "value 0: config value batch_size=0 must be at least 1"),
    ([1, 2], "a search space is a non-empty mapping"),
]


@pytest.mark.parametrize("space, message", BAD_SPACES, ids=[m[:24] for _, m in BAD_SPACES])
def test_bad_space_is_one_error_line_and_nothing_is_written(space, message, comp, tmp_path, capsys):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    before = path.read_bytes()
    out = tmp_path / "search"
    assert tune("--data", comp, "--out", out, "--space", path, "--trials", 2, *COMMON) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and message in err[0], err
    assert not out.exists() and path.read_bytes() == before


BAD_FLAGS = [
    (["--trials", "0"], "argument --trials: '0' is not an integer >= 1"),
    (["--trials", "-3"], "argument --trials"),
    (["--trials", "2", "--timeout", "0"], "argument --timeout"),
    (["--trials", "2", "--timeout", "nan"], "argument --timeout"),
    (["--trials", "2", "--pruner", "hyperband"], "unknown pruner 'hyperband'"),
    (["--trials", "2", "--metric", "f2"], "unknown metric 'f2'"),
    (["--trials", "2", "--trials-in-parallel", "2"], "--trials-in-parallel needs --backend ray"),
    (["--trials", "2", "--folds", "0", "--ensemble-top", "1"], "--ensemble-top needs every fold of each trial; --folds 0 trains 1 of 2"),
    (["--trials", "2", "--folds", "0,5"], "--folds '0,5': folds must be in 0..1"),
    ([], "--trials N is required"),
    (["--trials", "2", "--space", "SPACE_WITH_EPOCHS"], "searches 'epochs', which the command line also fixes"),
    (["--trials", "2", "--space", "MISSING"], "file not found"),
    (["--trials", "2", "--space", "NOT_JSON"], "not valid JSON"),
    (["--trials", "2", "--storage", "nosuchdialect://x/y"], "--storage 'nosuchdialect://x/y': cannot open"),
    (["--trials", "2", "--storage", "sqlite:////nonexistent-kfold-dir/sub/study.db"], "cannot open this Optuna storage"),
    (["--trials", "2", "--storage", "not a url"], "cannot open this Optuna storage"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(f)[:30] or "none" for f, _ in BAD_FLAGS])
def test_bad_flags_are_one_error_line_and_nothing_is_written(flags, message, comp, tmp_path, capsys):
    files = {"SPACE_WITH_EPOCHS": json.dumps({"epochs": {"int": [1, 3]}}), "NOT_JSON": "{lr: ", "MISSING": None}
    flags = list(flags)
    for i, flag in enumerate(flags):
        if flag in files:
            flags[i] = str(tmp_path / flag.lower())
            if files[flag] is not None:
                Path(flags[i]).write_text(files[flag])
    out = tmp_path / "search"
    assert tune("--data", comp, "--out", out, *flags, *COMMON) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("change, message", [
    (["--metric", "logloss"], "metric 'logloss' scores probabilities, but the submission holds one class label"),
    (["--metric", "macro-f1"], "metric: \"accuracy\" in the study, \"macro-f1\" now"),
    (["--k", "3"], "k: 2 in the study, 3 now"),
])
def test_a_study_of_other_settings_is_refused(change, message, searched, comp, space_file, capsys):
    out, _ = searched
    before = (out / "trials.csv").read_bytes(), len(load_study(out).trials)
    args = ["--data", comp, "--out", out, "--space", space_file, "--trials", 4, "--pruner", "none", *COMMON, *change]
    assert tune(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert ((out / "trials.csv").read_bytes(), len(load_study(out).trials)) == before


def test_without_optuna_one_line_says_how_to_install(comp, space_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    out = tmp_path / "search"
    assert tune("--data", comp, "--out", out, "--space", space_file, "--trials", 2, *COMMON) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: kfold tune needs Optuna, which is not installed: pip install -e '.[tune]'"]
    assert not out.exists()
