"""Tracking end to end, on a real MLflow store: one tiny real ``kfold run --track mlflow`` (runs, folds, epochs,
ensembles with their local scores), ``kfold submit --wait --track mlflow`` against the loopback Kaggle fake (the
public score lands on the ensemble run that made the file), a tiny real ``kfold tune --track mlflow`` (trials with
their states), and the ``mlflow server`` started on 127.0.0.1 and queried over its REST API."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from kaggle_fake import fake_kaggle  # noqa: F401  (fixture)
from test_tracking import finished_run, runs_of, store, template_db  # noqa: F401  (fixtures)

pytest.importorskip("mlflow")

from kfold.commands.main import main as kfold_main  # noqa: E402
from kfold.data.toy import make_toy_competition  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MLFLOW = Path(sys.executable).with_name("mlflow")


@pytest.mark.slow
def test_kfold_run_with_tracking_then_submit_logs_folds_epochs_ensembles_and_the_kaggle_score(
        tmp_path, store, fake_kaggle, monkeypatch, capsys):  # noqa: F811
    uri, client = store
    monkeypatch.chdir(tmp_path)
    comp = make_toy_competition(tmp_path / "comp")
    assert kfold_main(["run", "--data", str(comp), "--preset", "lenet5", "--epochs", "2", "--k", "2", "--threads", "1",
                       "--no-progress", "--out", "runs/toy", "--submissions", "subs", "--track", "mlflow"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"tracking: MLflow at {uri}") == 1 and "warning" not in out
    (run,) = runs_of(client, "run")
    summary = json.loads((tmp_path / "runs" / "toy" / "summary.json").read_text())
    assert run.info.status == "FINISHED" and run.data.metrics["oof_accuracy"] == pytest.approx(summary["oof_accuracy"])
    assert run.data.params["epochs"] == "2" and run.data.tags["kfold.competition"] == "comp"
    folds = runs_of(client, "fold")
    assert sorted(f.data.tags["kfold.fold"] for f in folds) == ["0", "1"]
    for fold in folds:
        assert fold.data.tags["mlflow.parentRunId"] == run.info.run_id
        steps = client.get_metric_history(fold.info.run_id, "val_accuracy")
        assert sorted(m.step for m in steps) == [1, 2]
        assert sorted(m.step for m in client.get_metric_history(fold.info.run_id, "lr")) == [1, 2]
        assert {"learning_curve.png", "confusion.png", "metrics.csv"} <= {
            a.path for a in client.list_artifacts(fold.info.run_id)}
    ensembles = {e.data.params["method"]: e for e in runs_of(client, "ensemble")}
    assert sorted(ensembles) == ["mean", "vote"]
    board = __import__("pandas").read_csv(tmp_path / "runs" / "toy" / "leaderboard" / "leaderboard.csv")
    mean_row = board[board["submission"] == "subs/toy-mean.csv"].iloc[0]
    assert ensembles["mean"].data.metrics["local_public"] == pytest.approx(mean_row["public"])
    assert ensembles["mean"].data.tags["kfold.input_run_ids"] == run.info.run_id

    # kfold submit --wait: Kaggle's public score goes back to the ensemble run that wrote the file
    fake_kaggle.add("comp", results=[("COMPLETE", "0.97300", "0.96100")])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "kfold", "submit", "subs/toy-mean.csv", "-c", "comp", "-m", "toy mean",
                           "--sample", str(comp / "sample_submission.csv"), "--wait", "30", "--poll-interval", "0.1",
                           "--track", "mlflow"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Kaggle's score logged to 1 tracked run(s)" in done.stdout
    scored = client.get_run(ensembles["mean"].info.run_id)
    assert scored.data.metrics["kaggle_public"] == pytest.approx(0.973)
    assert "kaggle_public" not in client.get_run(ensembles["vote"].info.run_id).data.metrics

    # a submission scored later (no --wait): kfold submissions --track mlflow logs the score when Kaggle has it
    fake_kaggle.competitions["comp"].results.append(("COMPLETE", "0.88800", ""))
    for command in (["submit", "subs/toy-vote.csv", "-c", "comp", "-m", "toy vote", "--sample",
                     str(comp / "sample_submission.csv")], ["submissions", "-c", "comp", "--track", "mlflow"]):
        done = subprocess.run([sys.executable, "-m", "kfold", *command], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr
    assert client.get_run(ensembles["vote"].info.run_id).data.metrics["kaggle_public"] == pytest.approx(0.888)
    assert client.get_run(ensembles["mean"].info.run_id).data.metrics["kaggle_public"] == pytest.approx(0.973)

    # a re-sync of the run changes nothing: no duplicated run, fold or epoch
    assert kfold_main(["track", "sync", "runs/toy"]) == 0
    assert len(runs_of(client, "run")) == 1 and len(runs_of(client, "fold")) == 2
    assert all(len(client.get_metric_history(f.info.run_id, "val_accuracy")) == 2 for f in runs_of(client, "fold"))


@pytest.mark.slow
def test_kfold_tune_with_tracking_logs_each_trial_under_the_study(tmp_path, store, monkeypatch, capsys):  # noqa: F811
    pytest.importorskip("optuna")
    uri, client = store
    monkeypatch.chdir(tmp_path)
    comp = make_toy_competition(tmp_path / "comp")
    assert kfold_main(["tune", "--data", str(comp), "--preset", "lenet5", "--epochs", "1", "--k", "2", "--trials", "2",
                       "--threads", "1", "--no-progress", "--pruner", "none", "--out", "runs/tune",
                       "--track", "mlflow"]) == 0
    assert "warning" not in capsys.readouterr().out
    (study,) = runs_of(client, "study")
    trials = {r.data.tags["kfold.trial"]: r for r in runs_of(client) if "kfold.trial" in r.data.tags}
    assert sorted(trials) == ["0", "1"]
    for trial in trials.values():
        assert trial.data.tags["mlflow.parentRunId"] == study.info.run_id
        assert trial.data.tags["kfold.state"] == "complete" and trial.info.status == "FINISHED"
        assert 0 <= trial.data.metrics["accuracy"] <= 1 and trial.data.metrics["folds_done"] == 2
        assert "lr" in trial.data.tags["kfold.sampled"].split(",")
        nested = [f for f in runs_of(client, "fold") if f.data.tags["mlflow.parentRunId"] == trial.info.run_id]
        assert len(nested) == 2
    assert "best_accuracy" in client.get_run(study.info.run_id).data.metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 directly, never a proxy
    with opener.open(request, timeout=10) as reply:
        text = reply.read().decode()
    return json.loads(text) if text.strip().startswith(("{", "[")) else {"text": text}


@pytest.fixture
def mlflow_server(tmp_path, template_db):  # noqa: F811
    """``mlflow server`` on 127.0.0.1 (a free port) with an SQLite store; stopped (its process group) at teardown."""
    if not MLFLOW.exists() and shutil.which("mlflow") is None:
        pytest.skip("the mlflow command is not installed")
    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(template_db, db)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # no job runner beside the server (MLflow 3 starts one by default: another process importing MLflow, for its
    # server-side jobs), which the REST calls below never use
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    process = subprocess.Popen([str(MLFLOW if MLFLOW.exists() else shutil.which("mlflow")), "server",
                                "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", "1", "--default-artifact-root", (tmp_path / "server" / "artifacts").as_uri()],
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # bounded: a server that does not come up fails the test
    try:
        while True:
            try:
                if "OK" in _get(f"{url}/health").get("text", ""):
                    break
            except OSError:
                pass
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def test_a_tracking_server_on_loopback_receives_the_run_and_answers_over_rest(tmp_path, mlflow_server, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    run = finished_run(tmp_path)
    assert kfold_main(["track", "sync", str(run)]) == 0
    experiments = _get(f"{mlflow_server}/api/2.0/mlflow/experiments/search", {"max_results": 100})["experiments"]
    competition = json.loads((run / "config.json").read_text())["task"]
    (experiment,) = [e for e in experiments if e["name"] == competition]
    found = _get(f"{mlflow_server}/api/2.0/mlflow/runs/search",
                 {"experiment_ids": [experiment["experiment_id"]], "filter": "tags.`kfold.kind` = 'run'"})["runs"]
    assert len(found) == 1
    metrics = {m["key"]: m["value"] for m in found[0]["data"]["metrics"]}
    assert metrics["oof_accuracy"] == pytest.approx(json.loads((run / "summary.json").read_text())["oof_accuracy"])
    folds = _get(f"{mlflow_server}/api/2.0/mlflow/runs/search",
                 {"experiment_ids": [experiment["experiment_id"]], "filter": "tags.`kfold.kind` = 'fold'"})["runs"]
    assert len(folds) == 2
    history = _get(f"{mlflow_server}/api/2.0/mlflow/metrics/get-history?run_id={folds[0]['info']['run_id']}"
                   f"&metric_key=val_accuracy")["metrics"]
    assert sorted(m["step"] for m in history) == [1, 2, 3]
