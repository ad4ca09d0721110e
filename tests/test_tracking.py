"""Experiment tracking against a REAL MLflow store (SQLite in a temporary folder), read back through ``MlflowClient``:
runs, nesting, parameters, per-epoch metric histories, artifacts, re-syncs that update and never duplicate, tune
trials with their states, ensembles linked to their runs, a store that fails mid-run (one warning line, the run
completes, ``kfold track sync`` fills the gap), hostile tracking URIs, and MLflow never imported without tracking.
The end-to-end run (``kfold run --track mlflow``, then ``kfold submit`` against the loopback Kaggle fake) and the
``mlflow server`` over REST are in ``tests/test_tracking_e2e.py``."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from runs import finished_run, fold_probs_and_solution  # noqa: F401  (also imported by other test files from here)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as kfold sets it: no call to MLflow's telemetry server
pytest.importorskip("mlflow")

from kfold.commands.main import main as kfold_main  # noqa: E402
from kfold.errors import UsageError  # noqa: E402
from kfold.flows.tracking import NullTracker, SafeTracker, check_uri, open_tracker, sync  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def template_db(mlflow_template):
    """An empty MLflow SQLite store migrated once per test process (conftest.py): each test copies it."""
    return mlflow_template


@pytest.fixture
def store(tmp_path, template_db, monkeypatch):
    """(uri, client): a fresh store at tmp_path/runs/mlflow.db, also $MLFLOW_TRACKING_URI."""
    from mlflow.tracking import MlflowClient

    (tmp_path / "runs").mkdir(exist_ok=True)
    db = tmp_path / "runs" / "mlflow.db"
    shutil.copy(template_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("KFOLD_TRACK", raising=False)
    return uri, MlflowClient(tracking_uri=uri)


def runs_of(client, kind: str | None = None):
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, max_results=1000)
    return [r for r in found if kind is None or r.data.tags.get("kfold.kind") == kind]


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, round(m.value, 6)) for m in client.get_metric_history(run_id, key))


# ---------------------------------------------------------------- a run, its folds, a re-sync

def test_sync_logs_the_run_its_folds_epochs_params_and_files_and_a_resync_never_duplicates(tmp_path, store, capsys):
    uri, client = store
    run = finished_run(tmp_path)
    assert kfold_main(["track", "sync", str(run)]) == 0
    assert f"synced run {run}" in capsys.readouterr().out
    (parent,) = runs_of(client, "run")
    folds = sorted(runs_of(client, "fold"), key=lambda r: r.data.tags["kfold.fold"])
    assert [f.data.tags["kfold.fold"] for f in folds] == ["0", "1"]
    assert all(f.data.tags["mlflow.parentRunId"] == parent.info.run_id for f in folds)  # nested under the run
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == json.loads((run / "config.json").read_text())["task"]  # the competition
    params = parent.data.params
    assert params["model_kwargs.width"] == "16" and params["lr"] == "0.1" and params["k"] == "2"
    summary = json.loads((run / "summary.json").read_text())
    assert parent.data.metrics["oof_accuracy"] == pytest.approx(summary["oof_accuracy"])
    assert parent.data.metrics["kept_epoch.1"] == 3 and parent.data.metrics["folds_done"] == 2
    assert parent.data.tags["kfold.folds_sha256"] == "ab" * 32 and parent.data.tags["kfold.seed"] == "0"
    assert parent.info.status == "FINISHED"
    # every epoch of metrics.csv a step
    metrics = pd.read_csv(run / "fold0" / "metrics.csv")
    assert history(client, folds[0].info.run_id, "val_accuracy") == [
        (int(e), round(v, 6)) for e, v in zip(metrics["epoch"], metrics["val_accuracy"])]
    assert [s for s, _ in history(client, folds[0].info.run_id, "lr")] == [1, 2, 3]
    assert [s for s, _ in history(client, folds[0].info.run_id, "train_loss")] == [1, 2, 3]
    assert folds[0].data.tags["kfold.device"] == "cpu" and folds[0].data.tags["kfold.precision.bf16"] == "False"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"config.json", "summary.json", "folds.csv"}
    assert {a.path for a in client.list_artifacts(folds[1].info.run_id)} >= {
        "meta.json", "metrics.csv", "learning_curve.png", "confusion.csv"}
    assert "model.safetensors" not in {a.path for a in client.list_artifacts(folds[1].info.run_id)}

    # a re-sync updates, never duplicates: the same runs, the same metric histories
    assert kfold_main(["track", "sync", str(run)]) == 0
    assert len(runs_of(client, "run")) == 1 and len(runs_of(client, "fold")) == 2
    assert len(client.get_metric_history(folds[0].info.run_id, "val_accuracy")) == 3
    assert len(client.get_metric_history(parent.info.run_id, "oof_accuracy")) == 1

    # a retrained fold (a new meta.json) replaces its nested run; the other fold is left alone
    meta = json.loads((run / "fold1" / "meta.json").read_text())
    (run / "fold1" / "meta.json").write_text(json.dumps({**meta, "seconds": 99.0}))
    sync([run], uri=uri, echo=lambda _: None)
    now = {r.data.tags["kfold.fold"]: r for r in runs_of(client, "fold")}
    assert len(now) == 2 and len(runs_of(client, "fold")) == 2
    assert now["0"].info.run_id == folds[0].info.run_id and now["1"].info.run_id != folds[1].info.run_id
    assert now["1"].data.metrics["train_seconds"] == 99.0


def test_track_models_logs_the_safetensors_weights_only(tmp_path, store):
    uri, client = store
    run = finished_run(tmp_path)
    (run / "fold0" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    sync([run], uri=uri, models=True, echo=lambda _: None)
    fold0 = next(r for r in runs_of(client, "fold") if r.data.tags["kfold.fold"] == "0")
    names = {a.path for a in client.list_artifacts(fold0.info.run_id)}
    assert "model.safetensors" in names and not any(n.endswith((".pt", ".pkl", ".pth")) for n in names)


def test_two_runs_with_the_same_config_in_two_folders_are_two_tracked_runs(tmp_path, store):
    uri, client = store
    first = finished_run(tmp_path, "a")
    second = tmp_path / "b-copy"
    shutil.copytree(first, second)
    sync([first, second, first], uri=uri, echo=lambda _: None)
    assert sorted(r.info.run_name for r in runs_of(client, "run")) == ["b-copy", "run"]
    assert len(runs_of(client, "fold")) == 4


# ---------------------------------------------------------------- a store that fails mid-run

def test_a_store_failing_mid_run_gives_one_warning_the_run_goes_on_and_sync_fills_the_gap(tmp_path, store, monkeypatch):
    """The tracker the commands get (``open_tracker``), told what train_run tells it; the store's artifact upload
    fails from the second call on (a full disk on the tracking server): one warning line for the whole run."""
    from mlflow.tracking import MlflowClient

    uri, client = store
    run = finished_run(tmp_path, k=3)
    real = MlflowClient.log_artifact
    calls = {"n": 0}

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_artifact", failing)
    lines = []
    tracker = open_tracker("mlflow", tmp_path / "runs", echo=lines.append)
    tracker.run_started(run)
    for fold in range(3):
        tracker.fold_done(run, fold)
    tracker.run_done(run)
    tracker.close()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "No space left on device" in warnings[0] and "kfold track sync" in warnings[0]
    assert lines[0].startswith(f"tracking: MLflow at {uri}; open it with: mlflow ui --backend-store-uri {uri}")
    assert len(runs_of(client, "fold")) <= 1  # the gap

    monkeypatch.setattr(MlflowClient, "log_artifact", real)
    sync([run], uri=uri, echo=lambda _: None)
    folds = runs_of(client, "fold")
    assert sorted(r.data.tags["kfold.fold"] for r in folds) == ["0", "1", "2"]
    assert all(len(client.get_metric_history(r.info.run_id, "val_accuracy")) == 3 for r in folds)
    assert all({"meta.json", "metrics.csv"} <= {a.path for a in client.list_artifacts(r.info.run_id)} for r in folds)
    assert len(runs_of(client, "run")) == 1 and runs_of(client, "run")[0].info.status == "FINISHED"


def test_an_unreachable_server_is_one_warning_line_quickly(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    run = finished_run(tmp_path)
    lines = []
    start = time.monotonic()
    tracker = open_tracker("mlflow", tmp_path, echo=lines.append)
    tracker.run_started(run)
    tracker.fold_done(run, 0)
    tracker.fold_done(run, 1)
    tracker.run_done(run)
    assert time.monotonic() - start < 60
    warnings = [line for line in lines if line.startswith("warning: tracking: http://127.0.0.1:")]
    assert len(warnings) == 1 and len(lines) == 2, lines


# ---------------------------------------------------------------- kfold tune

def test_a_search_is_a_parent_run_with_a_nested_run_per_trial_and_its_state(tmp_path, store, capsys):
    uri, client = store
    tune = tmp_path / "tune"
    (tune / "trials").mkdir(parents=True)
    done = finished_run(tmp_path, "t0")
    shutil.move(str(done), tune / "trials" / "0000")
    pruned = finished_run(tmp_path, "t1")
    shutil.move(str(pruned), tune / "trials" / "0001")
    rows = [{"number": 0, "state": "complete", "accuracy": 0.81, "folds_done": 2, "seconds": 3.5, "lr": 0.1,
             "model_kwargs.width": 16, "partial_metric": None, "reason": "", "dir": str(tune / "trials" / "0000")},
            {"number": 1, "state": "pruned", "accuracy": None, "folds_done": 1, "seconds": 1.5, "lr": 0.1,
             "model_kwargs.width": 16, "partial_metric": 0.42, "reason": "", "dir": str(tune / "trials" / "0001")},
            {"number": 2, "state": "failed", "accuracy": None, "folds_done": 0, "seconds": 0.1, "lr": 3.0,
             "model_kwargs.width": 4, "partial_metric": None, "reason": "config value lr=3.0 is too large", "dir": ""}]
    pd.DataFrame(rows).to_csv(tune / "trials.csv", index=False)
    assert kfold_main(["track", "sync", str(tune)]) == 0
    assert f"synced search {tune}" in capsys.readouterr().out
    (study,) = runs_of(client, "study")
    trials = {r.data.tags["kfold.trial"]: r for r in runs_of(client) if "kfold.trial" in r.data.tags}
    assert sorted(trials) == ["0", "1", "2"]
    assert all(t.data.tags["mlflow.parentRunId"] == study.info.run_id for t in trials.values())
    assert {n: t.data.tags["kfold.state"] for n, t in trials.items()} == {"0": "complete", "1": "pruned", "2": "failed"}
    assert {n: t.info.status for n, t in trials.items()} == {"0": "FINISHED", "1": "KILLED", "2": "FAILED"}
    assert trials["0"].data.metrics["accuracy"] == 0.81 and trials["1"].data.metrics["partial_accuracy"] == 0.42
    assert trials["2"].data.tags["kfold.reason"] == "config value lr=3.0 is too large"
    assert trials["2"].data.params["lr"] == "3.0" and trials["1"].data.params["model_kwargs.width"] == "16"
    assert trials["0"].data.metrics["folds_done"] == 2
    # a trial's folds nest under the trial's run
    folds = [r for r in runs_of(client, "fold") if r.data.tags["mlflow.parentRunId"] == trials["0"].info.run_id]
    assert len(folds) == 2
    study = client.get_run(study.info.run_id)
    assert study.data.metrics["best_accuracy"] == 0.81 and study.data.metrics["trials_failed"] == 1
    assert study.info.status == "FINISHED"  # the search ended: its run is not left running
    assert "trials.csv" in {a.path for a in client.list_artifacts(study.info.run_id)}
    sync([tune], uri=uri, echo=lambda _: None)  # again: nothing new
    assert len([r for r in runs_of(client) if "kfold.trial" in r.data.tags]) == 3 and len(runs_of(client, "fold")) == 4


# ---------------------------------------------------------------- ensembles

def test_an_ensemble_links_its_inputs_runs_and_gets_its_local_and_kaggle_scores(tmp_path, store):
    """Test probabilities in a run's probs/ folder (as predict writes them), an ensemble of them with a solution,
    the local leaderboard, then Kaggle's score matched by the submission's sha256."""
    from kfold.files.submission_log import sha256_of

    uri, client = store
    run = finished_run(tmp_path)
    files, sample, solution = fold_probs_and_solution(run, tmp_path)
    out = tmp_path / "subs" / "run-mean.csv"
    assert kfold_main(["ensemble", *files, "--method", "mean", "--out", str(out), "--sample",
                       str(sample), "--solution", str(solution), "--track", "mlflow"]) == 0
    (ensemble,) = runs_of(client, "ensemble")
    (parent,) = runs_of(client, "run")  # the input's run, logged for the link
    assert ensemble.data.tags["kfold.input_run_ids"] == parent.info.run_id
    assert ensemble.data.params["method"] == "mean" and ensemble.data.tags["kfold.submission_sha256"] == sha256_of(out)
    assert 0 <= ensemble.data.metrics["local_public"] <= 1 and "local_private" in ensemble.data.metrics
    assert "run-mean.csv" in {a.path for a in client.list_artifacts(ensemble.info.run_id)}

    # the local leaderboard logs its scores to the ensemble that wrote the file
    assert kfold_main(["leaderboard", "--solution", str(solution), str(out), "--bootstrap", "10", "--out",
                       str(tmp_path / "board"), "--track", "mlflow"]) == 0
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    again = client.get_run(ensemble.info.run_id)
    assert again.data.metrics["local_public"] == pytest.approx(board["public"].iloc[0])

    # Kaggle's score goes to the run with that sha256 (the submit flow calls this after --wait)
    tracker = open_tracker("mlflow", tmp_path / "runs")
    assert tracker.kaggle_score(sha256_of(out), 0.975, None, ref=5001, competition="comp") == [ensemble.info.run_id]
    scored = client.get_run(ensemble.info.run_id)
    assert scored.data.metrics["kaggle_public"] == 0.975 and scored.data.tags["kaggle.ref"] == "5001"
    assert tracker.kaggle_score("0" * 64, 0.5) == []


# ---------------------------------------------------------------- hostile URIs and flags

def _hostile(tmp_path: Path) -> list[tuple[str, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    text_db = tmp_path / "notes.db"
    text_db.write_text("these are my notes, not an SQLite database\n")
    return [("ftp://host/mlflow", "unknown scheme 'ftp'"), ("s3://bucket/x", "unknown scheme 's3'"),
            ("sqlite://", "no file path"), ("sqlite:///:memory:", "no file path"),
            (f"sqlite:///{a_file}/mlflow.db", "is a file where a folder is expected"),
            (f"sqlite:///{a_file}/deeper/mlflow.db", "is a file where a folder is expected"),
            (f"sqlite:///{text_db}", "is not an SQLite database"), (f"sqlite:///{tmp_path}", "is not a file"),
            (f"file://{a_file}", "is a file; a file store is a folder"), (str(a_file), "is a file; a file store is a folder"),
            ("http://", "no host"), ("http://127.0.0.1:99999", "the port is not a number"),
            ("https://:5000", "no host"), ("postgresql:///db", "no host"),
            ("sqlite:///x\n.db", "not a tracking URI")]


def test_hostile_tracking_uris_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    from synthetic import write_kmnist_comp

    with pytest.raises(UsageError, match="not a tracking URI"):
        check_uri("   ")  # (an empty $MLFLOW_TRACKING_URI counts as unset: the default store)

    data = write_kmnist_comp(tmp_path / "comp", n_train=40, n_test=10)
    cases = _hostile(tmp_path)
    for uri, fragment in cases:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace("'", "'")):
            check_uri(uri)
        out = tmp_path / "runs" / "x"
        done = subprocess.run([sys.executable, "-m", "kfold", "train", "--data", str(data), "--preset", "lenet5",
                               "--k", "2", "--out", str(out), "--track", "mlflow"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and fragment in done.stderr, (uri, done.stderr)
        assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists(), uri
        break  # one subprocess for the class (a fresh interpreter costs seconds); the rest in process below
    for uri, fragment in cases:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(UsageError) as refused:
            open_tracker("mlflow", tmp_path / "runs")
        assert fragment in str(refused.value) and str(refused.value).count("\n") == 0, uri
        assert not (tmp_path / "runs").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(UsageError, match="cannot be written"):
            check_uri(f"sqlite:///{locked}/mlflow.db")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("track, env, fragment", [
    ("comet", None, "track='comet': unknown tracker"), (None, "neptune", "KFOLD_TRACK='neptune': unknown tracker"),
    (5, None, "track=5: unknown tracker"), (None, None, None), ("none", "mlflow", None)])
def test_tracker_names(tmp_path, monkeypatch, track, env, fragment):
    monkeypatch.delenv("KFOLD_TRACK", raising=False)
    if env:
        monkeypatch.setenv("KFOLD_TRACK", env)
    if fragment:
        with pytest.raises(UsageError, match=fragment):
            open_tracker(track, tmp_path)
    else:
        assert isinstance(open_tracker(track, tmp_path), NullTracker)
    with pytest.raises(UsageError, match="track_models=1: must be True or False"):
        open_tracker(track if fragment is None else None, tmp_path, models=1)


def test_kfold_track_env_makes_mlflow_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("KFOLD_TRACK", "mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    lines = []
    tracker = open_tracker(None, tmp_path / "runs", echo=lines.append)
    assert isinstance(tracker, SafeTracker) and tracker.uri == f"sqlite:///{(tmp_path / 'runs').resolve()}/mlflow.db"
    assert lines == [f"tracking: MLflow at {tracker.uri}; open it with: mlflow ui --backend-store-uri {tracker.uri}"]
    assert not (tmp_path / "runs").exists()  # opened at its first use, not before


def test_track_models_without_track_and_sync_of_a_plain_folder_are_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KFOLD_TRACK", raising=False)
    assert kfold_main(["ensemble", "a.npz", "--out", str(tmp_path / "e.csv"), "--track-models"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--track-models needs --track" in err, err
    assert kfold_main(["track", "sync", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a kfold run directory" in err
    assert kfold_main(["train", "--data", "x", "--out", str(tmp_path / "r"), "--track", "comet"]) == 2
    assert "unknown tracker 'comet'" in capsys.readouterr().err


# ---------------------------------------------------------------- light imports

def test_mlflow_is_imported_only_when_tracking(tmp_path):
    run = finished_run(tmp_path)
    code = f"""
import sys
import kfold, kfold.flows.tracking, kfold.flows.mlflow_tracker, kfold.commands.main
from kfold.flows.tracking import open_tracker
tracker = open_tracker(None, {str(tmp_path)!r})
assert 'mlflow' not in sys.modules, 'mlflow imported without tracking'
from kfold.commands.main import main
assert main(['validate', {str(run / 'oof.npz')!r}]) == 0
assert 'mlflow' not in sys.modules and 'torch' not in sys.modules
print('LIGHT')
"""
    env = {k: v for k, v in os.environ.items() if k not in ("KFOLD_TRACK", "MLFLOW_TRACKING_URI")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and "LIGHT" in done.stdout, done.stderr


def test_folds_finished_by_ray_tasks_are_logged_by_the_driver_into_the_run(tmp_path, store):
    """RayBackend tells ``on_fold`` on the driver as each fold task's result arrives (here Ray's submit and wait
    are stand-ins: no cluster starts); every fold lands nested in the one MLflow run, once, even when told twice."""
    pytest.importorskip("ray")
    from types import SimpleNamespace

    from kfold.flows.ray_backend import RayBackend

    uri, client = store
    run = finished_run(tmp_path, k=3)
    backend = RayBackend()  # not connected: nothing is started before a fold is submitted
    backend.submit = lambda jobs: [f"ref-{job.fold}" for job in jobs]

    def wait(refs, *, labels=None, on_done=None):
        for i in (2, 0, 1):  # in the order the workers finish
            on_done(i, {"node": "worker", "retry": i == 1})
        return [{} for _ in refs]

    backend.wait = wait
    tracker = open_tracker("mlflow", tmp_path / "runs", echo=lambda _: None)
    tracker.run_started(run)
    backend.on_fold = lambda fold: tracker.fold_done(run, fold)
    backend.train_folds([SimpleNamespace(fold=f) for f in range(3)])
    tracker.fold_done(run, 1)  # told again (a retried fold's second report): nothing new
    (parent,) = runs_of(client, "run")
    folds = runs_of(client, "fold")
    assert sorted(f.data.tags["kfold.fold"] for f in folds) == ["0", "1", "2"]
    assert {f.data.tags["mlflow.parentRunId"] for f in folds} == {parent.info.run_id}
    backend.close()
