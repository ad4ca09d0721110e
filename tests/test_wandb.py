"""The Weights & Biases tracker, read back from W&B's OFFLINE files (``wandb/offline-run-*/run-<id>.wandb``: a
LevelDB-style log of protobuf ``Record``s; wandb 0.31 ships no Python reader: ``tests/wandb_records.py`` reads it):
runs, groups, job types, config, per-epoch history, summaries, files, trials, ensembles, scores written back,
idempotent re-syncs, failures (one warning), hostile settings, the modes, light imports, and an offline sync in a
network namespace under strace. A ``wandb.init`` after a process's first costs a fraction of a second: runs stay few."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kaggle_fake import fake_kaggle  # noqa: F401  (fixture)
from runs import finished_run, fold_probs_and_solution
from wandb_records import of, read_runs, wandb_files

pytest.importorskip("wandb", reason="the W&B tracker needs wandb (pip install -e '.[track]')")

from kfold.commands.main import main as kfold_main  # noqa: E402
from kfold.errors import UsageError  # noqa: E402
from kfold.flows.tracking import NullTracker, SafeTracker, open_tracker, sync  # noqa: E402
from kfold.flows.wandb_tracker import WandbTracker, logged_in, wandb_mode  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
W_ENV = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "KFOLD_TRACK",
         "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE")


@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path):
    """No W&B setting of the machine leaks in (no key, no netrc: offline), and no Python socket leaves loopback."""
    for name in W_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address):
        if sock.family == socket.AF_UNIX:
            return
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a connection to {address} in offline mode")

    monkeypatch.setattr(socket.socket, "connect", lambda s, a: (check(s, a), real_connect(s, a))[1])
    monkeypatch.setattr(socket.socket, "connect_ex", lambda s, a: (check(s, a), real_connect_ex(s, a))[1])


# ---------------------------------------------------------------- a run, its folds, a re-sync

def test_sync_writes_a_run_and_a_run_per_fold_with_every_epoch_and_a_resync_adds_nothing(tmp_path, capsys):
    run = finished_run(tmp_path)
    folder = run.parent / "wandb"
    assert kfold_main(["track", "sync", "--track", "wandb", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"tracking: W&B offline (not logged in) in {folder}; upload it later with: wandb sync {folder}" in out
    assert f"synced run {run} -> W&B run r-" in out and f"upload them with: wandb sync {folder}" in out
    runs = read_runs(folder)
    config = json.loads((run / "config.json").read_text())
    (parent,) = of(runs, "run")
    folds = of(runs, "fold")
    assert [f["config"]["fold"] for f in folds] == ["0", "1"] and len(runs) == 3
    assert {r["project"] for r in runs.values()} == {config["task"]}  # the competition
    assert {r["group"] for r in runs.values()} == {parent["group"]} and parent["group"].startswith("run-")
    assert parent["config"]["model_kwargs.width"] == 16 and parent["config"]["lr"] == 0.1 and parent["config"]["k"] == 2
    assert parent["config"]["kfold.folds_sha256"] == "ab" * 32 and parent["config"]["seed"] == 0
    assert "seed-0" in parent["tags"] and f"folds-{'ab' * 6}" in parent["tags"]
    summary = json.loads((run / "summary.json").read_text())
    assert parent["summary"]["oof_accuracy"] == pytest.approx(summary["oof_accuracy"])
    assert parent["summary"]["kept_epoch.1"] == 3 and parent["summary"]["folds_done"] == 2
    assert parent["exit"] == [0] and {"config.json", "summary.json", "folds.csv"} <= parent["files"]
    metrics = pd.read_csv(run / "fold0" / "metrics.csv")
    history = pd.DataFrame(folds[0]["history"])
    assert history["_step"].tolist() == metrics["epoch"].tolist() == [1, 2, 3]
    for column in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert history[column].tolist() == pytest.approx(metrics[column].tolist()), column
    assert folds[0]["summary"]["kept_epoch"] == 3 and folds[0]["summary"]["train_seconds"] == 161.9
    assert folds[0]["config"]["kfold.device"] == "cpu" and folds[0]["config"]["kfold.precision.bf16"] is False
    assert {"meta.json", "metrics.csv", "learning_curve.png", "confusion.csv"} <= folds[1]["files"]
    assert "model.safetensors" not in folds[1]["files"] and all(f["exit"] == [0] for f in folds)
    assert not any(p.is_symlink() for p in folder.rglob("files/*"))  # copies of the run's files, never links

    # a re-sync: the same W&B runs, nothing written again (no new segment, no wandb.init)
    before = wandb_files(folder)
    assert kfold_main(["track", "sync", "--track", "wandb", str(run)]) == 0
    assert wandb_files(folder) == before

    # a retrained fold (a new meta.json): a new W&B run; the old one, never uploaded, is removed
    meta = json.loads((run / "fold1" / "meta.json").read_text())
    (run / "fold1" / "meta.json").write_text(json.dumps({**meta, "seconds": 99.0}))
    sync([run], track="wandb", echo=lambda _: None)
    now = read_runs(folder)
    folds_now = {f["config"]["fold"]: f for f in of(now, "fold")}
    assert len(of(now, "fold")) == 2 and folds_now["0"]["id"] == folds[0]["id"]
    assert folds_now["1"]["id"] != folds[1]["id"] and folds_now["1"]["summary"]["train_seconds"] == 99.0

    # once uploaded (wandb sync marks the file), a superseded fold is tagged instead: it is on the server
    new = folds_now["1"]["id"]
    (next(p for p in wandb_files(folder) if p.name == f"run-{new}.wandb").parent / f"run-{new}.wandb.synced").touch()
    (run / "fold1" / "meta.json").write_text(json.dumps({**meta, "seconds": 77.0}))
    sync([run], track="wandb", echo=lambda _: None)
    last = read_runs(folder)
    assert "superseded" in last[new]["tags"] and last[new]["segments"] == 2
    assert last[new]["config"]["kfold.superseded_by"] in last and len(of(last, "fold")) == 3


def test_a_live_run_stays_open_while_its_folds_train_and_models_are_safetensors_only(tmp_path):
    """What train_run tells the tracker (``open_tracker``): the kfold run's W&B run starts with the run, each fold
    is its own W&B run as it ends, the run ends with the summary; one segment each. A run whose command fails
    before its summary ends as failed (exit code 1) when the tracker closes."""
    run = finished_run(tmp_path)
    (run / "fold0" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (run / "fold0" / "checkpoint.pt").write_bytes(b"not logged")
    lines = []
    tracker = open_tracker("wandb", tmp_path / "runs", models=True, echo=lines.append)
    assert isinstance(tracker, SafeTracker) and lines[0].startswith("tracking: W&B offline (not logged in) in ")
    tracker.run_started(run)
    tracker.fold_done(run, 0)
    tracker.fold_done(run, 1)
    tracker.fold_done(run, 1)  # told twice (a retried fold's second report): nothing new
    tracker.run_done(run)
    other = finished_run(tmp_path, "crashed")
    tracker.run_started(other)
    tracker.close()
    assert not tracker.failed and len(lines) == 1, lines
    runs = read_runs(tmp_path / "runs" / "wandb")
    by_dir = {r["config"]["kfold.dir"]: r for r in of(runs, "run")}
    parent, crashed = by_dir[str(run.resolve())], by_dir[str(other.resolve())]
    assert parent["segments"] == 1 and parent["exit"] == [0] and len(of(runs, "fold")) == 2
    assert crashed["exit"] == [1] and "oof_accuracy" not in crashed["summary"]
    fold0 = next(f for f in of(runs, "fold") if f["config"]["fold"] == "0")
    assert "model.safetensors" in fold0["files"] and not any(n.endswith((".pt", ".pkl", ".pth")) for n in fold0["files"])
    assert tracker.tracker.inits == 4


# ---------------------------------------------------------------- kfold tune

def test_a_search_is_a_group_of_trials_with_their_states_and_a_tune_run(tmp_path, capsys):
    tune = tmp_path / "tune"
    (tune / "trials").mkdir(parents=True)
    shutil.move(str(finished_run(tmp_path, "t0")), tune / "trials" / "0000")
    shutil.move(str(finished_run(tmp_path, "t1", k=2)), tune / "trials" / "0001")
    rows = [{"number": 0, "state": "complete", "accuracy": 0.81, "folds_done": 2, "seconds": 3.5, "lr": 0.1,
             "model_kwargs.width": 16, "partial_metric": None, "reason": "", "dir": str(tune / "trials" / "0000")},
            {"number": 1, "state": "pruned", "accuracy": None, "folds_done": 1, "seconds": 1.5, "lr": 0.1,
             "model_kwargs.width": 16, "partial_metric": 0.42, "reason": "", "dir": str(tune / "trials" / "0001")},
            {"number": 2, "state": "failed", "accuracy": None, "folds_done": 0, "seconds": 0.1, "lr": 3.0,
             "model_kwargs.width": 4, "partial_metric": None, "reason": "config value lr=3.0 is too large", "dir": ""}]
    # as kfold tune tells it: trial 0 as Optuna ends it (no metric name yet), then the whole table at the end
    first = WandbTracker(tmp_path, mode="offline")
    first.trial_done(tune, {"number": 0, "state": "complete", "value": 0.81, "params": {"lr": 0.1}, "folds_done": 2,
                            "seconds": 3.5, "partial_metric": None, "reason": "", "dir": str(tune / "trials" / "0000")})
    pd.DataFrame(rows).to_csv(tune / "trials.csv", index=False)
    assert kfold_main(["track", "sync", "--track", "wandb", str(tune)]) == 0
    assert f"synced search {tune} -> W&B run s-" in capsys.readouterr().out
    folder = tmp_path / "wandb"
    runs = read_runs(folder)
    (study,) = of(runs, "tune")
    trials = {t["config"]["kfold.trial"]: t for t in of(runs, "trial")}
    assert sorted(trials) == [0, 1, 2] and {t["group"] for t in trials.values()} == {study["group"]}
    assert {n: t["config"]["kfold.state"] for n, t in trials.items()} == {0: "complete", 1: "pruned", 2: "failed"}
    assert {n: t["exit"][-1] for n, t in trials.items()} == {0: 0, 1: 0, 2: 1}  # a failed trial's run failed
    assert trials[0]["summary"]["accuracy"] == 0.81 and trials[1]["summary"]["partial_accuracy"] == 0.42
    assert trials[0]["segments"] == 2 and trials[1]["segments"] == 1  # trial 0: the metric's name added once
    assert trials[1]["summary"]["state"] == "pruned" and trials[2]["config"]["trial.lr"] == 3.0
    assert trials[2]["config"]["kfold.reason"] == "config value lr=3.0 is too large"
    folds = of(runs, "fold")
    assert len(folds) == 4 and {f["group"] for f in folds} == {study["group"]}  # the trials' folds, in the search
    assert study["summary"]["best_accuracy"] == 0.81 and study["summary"]["trials_failed"] == 1
    assert "trials.csv" in study["files"]
    before = wandb_files(folder)
    sync([tune], track="wandb", echo=lambda _: None)  # again: nothing new
    assert wandb_files(folder) == before


# ---------------------------------------------------------------- ensembles, local and Kaggle scores

def test_an_ensemble_links_its_inputs_and_gets_its_local_and_kaggle_scores_by_its_bytes(tmp_path, monkeypatch):
    from kfold.files.submission_log import sha256_of

    monkeypatch.chdir(tmp_path)
    run = finished_run(tmp_path)
    files, sample, solution = fold_probs_and_solution(run, tmp_path)
    out = tmp_path / "subs" / "run-mean.csv"
    assert kfold_main(["ensemble", *files, "--method", "mean", "--out", str(out), "--sample",
                       str(sample), "--solution", str(solution), "--track", "wandb"]) == 0
    folder = tmp_path / "runs" / "wandb"
    runs = read_runs(folder)
    (ensemble,) = of(runs, "ensemble")
    (parent,) = of(runs, "run")  # the input's run, logged for the link
    assert ensemble["config"]["kfold.input_run_ids"] == [parent["id"]] and ensemble["group"] == parent["group"]
    assert ensemble["config"]["method"] == "mean" and ensemble["config"]["kfold.submission_sha256"] == sha256_of(out)
    assert 0 <= ensemble["summary"]["local_public"] <= 1 and "local_private" in ensemble["summary"]
    assert "run-mean.csv" in ensemble["files"]

    # the local leaderboard's scores go to the ensemble that wrote the file (a resumed segment of its run)
    assert kfold_main(["leaderboard", "--solution", str(solution), str(out), "--bootstrap", "10", "--out",
                       str(tmp_path / "board"), "--track", "wandb"]) == 0
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    assert read_runs(folder)[ensemble["id"]]["summary"]["local_public"] == pytest.approx(board["public"].iloc[0])

    # Kaggle's score, found by the submission's bytes (what kfold submit --wait calls), resumes the ensemble's run
    tracker = open_tracker("wandb", tmp_path / "runs", echo=lambda _: None)
    assert tracker.kaggle_score(sha256_of(out), 0.975, None, ref=5001, competition="comp") == [ensemble["id"]]
    scored = read_runs(folder)[ensemble["id"]]
    assert scored["summary"]["kaggle_public"] == 0.975 and scored["config"]["kaggle.ref"] == "5001"
    assert scored["config"]["method"] == "mean" and scored["summary"]["local_public"] == pytest.approx(
        board["public"].iloc[0])  # the merged run keeps what the earlier segments said
    segments = len(wandb_files(folder))
    assert tracker.kaggle_score(sha256_of(out), 0.975) == [ensemble["id"]]  # the same score again: nothing new
    assert tracker.kaggle_score("0" * 64, 0.5) == [] and len(wandb_files(folder)) == segments
    tracker.close()


# ---------------------------------------------------------------- a failing tracker, hostile settings

def test_a_w_and_b_failure_is_one_warning_line_and_the_run_goes_on(tmp_path, monkeypatch):
    run = finished_run(tmp_path)
    calls = {"n": 0}
    real = WandbTracker._start

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(WandbTracker, "_start", failing)
    lines = []
    tracker = open_tracker("wandb", tmp_path / "runs", echo=lines.append)
    tracker.run_started(run)
    for fold in range(2):
        tracker.fold_done(run, fold)
    tracker.run_done(run)
    tracker.close()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], lines
    assert "kfold track sync --track wandb RUN_DIR" in warnings[0] and calls["n"] == 2

    # W&B's folder broken under the tracker (a file where its folder was): one warning, the run goes on
    monkeypatch.setattr(WandbTracker, "_start", real)
    lines.clear()
    tracker = open_tracker("wandb", tmp_path / "other", echo=lines.append)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "wandb").write_text("not a folder")
    tracker.run_done(run)
    tracker.close()
    assert len(lines) == 2 and lines[1].startswith("warning: tracking: W&B (offline, "), lines


def _hostile_settings(tmp_path: Path) -> list[tuple[dict, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    return [({"WANDB_MODE": "onlin"}, "WANDB_MODE='onlin': unknown W&B mode"),
            ({"WANDB_MODE": "OFFLINE"}, "WANDB_MODE='OFFLINE': unknown W&B mode"),
            ({"WANDB_MODE": " offline"}, "unknown W&B mode"), ({"WANDB_MODE": "shared"}, "unknown W&B mode"),
            ({"WANDB_MODE": "1"}, "unknown W&B mode"), ({"WANDB_MODE": "true"}, "unknown W&B mode"),
            ({"WANDB_MODE": "online"}, "WANDB_MODE='online' but no W&B API key"),
            ({"WANDB_DIR": str(a_file)}, "is a file; W&B writes into a folder"),
            ({"WANDB_DIR": str(a_file / "deeper")}, "is a file where a folder is expected"),
            ({"WANDB_DIR": str(tmp_path / "link")}, "is a symbolic link"),
            ({"WANDB_DIR": "/dev/null"}, "is a file; W&B writes into a folder"),
            ({"WANDB_DIR": str(tmp_path / "x\n")}, "not a folder path"),
            ({"WANDB_DIR": str(tmp_path / "with-file"), "_make": "wandb-file"}, "is a file where W&B's folder is expected"),
            ({"WANDB_DIR": str(tmp_path / "with-link"), "_make": "wandb-link"}, "is a symbolic link"),
            ({"WANDB_DIR": str(tmp_path / "with-index"), "_make": "index-file"}, "is a file where W&B's folder")]


def _make(env: dict, tmp_path: Path) -> None:
    what = env.pop("_make", None)  # the planted files of a case
    if what is not None:
        wandb_dir = Path(env["WANDB_DIR"]) / "wandb"
        wandb_dir.parent.mkdir(exist_ok=True)
        if what == "wandb-link":
            wandb_dir.symlink_to(tmp_path / "elsewhere")
        elif what == "wandb-file":
            wandb_dir.write_text("x")
        else:
            wandb_dir.mkdir()
            (wandb_dir / "kfold-index").write_text("x")


def test_hostile_w_and_b_settings_are_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from synthetic import write_kmnist_comp

    data = write_kmnist_comp(tmp_path / "comp", n_train=40, n_test=10)
    cases = _hostile_settings(tmp_path)
    env, fragment = cases[0]
    done = subprocess.run([sys.executable, "-m", "kfold", "train", "--data", str(data), "--preset", "lenet5",
                           "--k", "2", "--out", str(tmp_path / "runs" / "x"), "--track", "wandb"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if k not in W_ENV}, **env,
                               "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
    for env, fragment in cases:  # the whole class in process: open_tracker is what every command calls first
        env = dict(env)
        _make(env, tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        with pytest.raises(UsageError) as refused:
            open_tracker("wandb", tmp_path / "runs")
        assert fragment in str(refused.value) and "\n" not in str(refused.value), (env, str(refused.value))
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == listing, env  # nothing written
        for name in env:
            monkeypatch.delenv(name)
    # usage errors: --uri is MLflow's (sync's tracker from KFOLD_TRACK); --track-models without a tracker names both
    monkeypatch.setenv("KFOLD_TRACK", "wandb")
    assert kfold_main(["track", "sync", "--uri", "sqlite:////tmp/x.db", str(tmp_path)]) == 2
    assert "is MLflow's tracking URI" in capsys.readouterr().err
    monkeypatch.delenv("KFOLD_TRACK")
    with pytest.raises(UsageError, match="needs track='mlflow' or 'wandb'"):
        open_tracker(None, tmp_path, models=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_w_and_b_folder_is_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    monkeypatch.setenv("WANDB_DIR", str(locked))
    try:
        with pytest.raises(UsageError, match="cannot be written"):
            open_tracker("wandb", tmp_path)
    finally:
        locked.chmod(0o755)


# ---------------------------------------------------------------- modes: offline unless logged in

def test_online_only_with_an_api_key_and_wandb_mode_is_respected(tmp_path, monkeypatch):
    assert wandb_mode() == ("offline", "not logged in") and logged_in() is None
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert logged_in() == str(netrc) and wandb_mode() == ("online", f"logged in: {netrc}")
    netrc.write_text("machine api.forge.coreweave.com\n  login user\n  password " + "k" * 40 + "\n")
    assert wandb_mode()[0] == "online"  # wandb 0.31's default server
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")  # a key for another host is not one for this
    assert wandb_mode()[0] == "offline"
    netrc.write_text("machine wandb.example.com\n  login user\n  password " + "k" * 40 + "\n")
    assert wandb_mode()[0] == "online"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password\n")  # an entry without a key: not logged in
    monkeypatch.delenv("WANDB_BASE_URL")
    assert wandb_mode()[0] == "offline"
    netrc.write_text("this is not a netrc file\n")  # unreadable: not logged in, no error
    assert wandb_mode()[0] == "offline"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_mode() == ("online", "logged in: WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode() == ("offline", "WANDB_MODE=offline")
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert wandb_mode()[0] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    lines = []
    assert isinstance(open_tracker("wandb", tmp_path / "runs", echo=lines.append), NullTracker)
    assert lines == ["tracking: W&B disabled (WANDB_MODE=disabled); nothing is logged"]
    monkeypatch.setenv("KFOLD_TRACK", "wandb")
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.delenv("WANDB_BASE_URL")
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    lines.clear()
    tracker = open_tracker(None, tmp_path / "runs", echo=lines.append)  # KFOLD_TRACK=wandb
    assert isinstance(tracker, SafeTracker) and lines[0].startswith("tracking: W&B offline")
    assert not (tmp_path / "runs").exists()  # opened at its first use, not before


@pytest.mark.parametrize("module", ["kfold.flows.wandb_tracker", "kfold.flows.track_params"])
def test_the_module_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0, result


def test_wandb_is_imported_only_when_a_w_and_b_run_starts(tmp_path):
    code = f"""
import sys
import kfold, kfold.flows.tracking, kfold.flows.wandb_tracker, kfold.commands.main
from kfold.flows.tracking import open_tracker
open_tracker(None, {str(tmp_path)!r})
tracker = open_tracker("wandb", {str(tmp_path / 'runs')!r}, echo=lambda _: None)
assert 'wandb' not in sys.modules, 'wandb imported before its first run'
assert 'torch' not in sys.modules
print('LIGHT')
"""
    env = {k: v for k, v in os.environ.items() if k not in W_ENV}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and "LIGHT" in done.stdout, done.stderr


# ---------------------------------------------------------------- offline: nothing reaches the network

def test_an_offline_sync_in_a_network_namespace_connects_to_nothing_but_w_and_b_s_own_socket(tmp_path):
    """``kfold track sync --track wandb`` inside ``unshare -n`` (no network at all, not even loopback) under
    ``strace -f``: it succeeds, writes the runs, and neither kfold, wandb nor ``wandb-core`` (a Go process)
    makes a socket or calls ``connect``/``sendto`` on anything but a Unix socket (a DNS lookup or telemetry would
    show as AF_INET)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("strace") is None:
        pytest.skip("needs root, unshare and strace")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    run = finished_run(tmp_path)
    trace = tmp_path / "trace.txt"
    env = {k: v for k, v in os.environ.items() if k not in W_ENV}
    env.update(PYTHONPATH=str(REPO), NETRC=str(tmp_path / "no-netrc"), HOME=str(tmp_path / "home"))
    done = subprocess.run(["unshare", "-n", "strace", "-f", "-qq", "-o", str(trace), "-e",
                           "trace=socket,connect,sendto,sendmsg", sys.executable, "-m", "kfold", "track", "sync", "--track",
                           "wandb", str(run)], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(read_runs(run.parent / "wandb")) == 3
    calls = [line for line in trace.read_text().splitlines() if re.search(r"\b(socket|connect|sendto|sendmsg)\(", line)]
    inet = [line for line in calls if "AF_INET" in line or "sin_port" in line or "sin6_port" in line]
    assert not inet, inet[:5]  # not even a socket of the internet's families is made
    assert any(re.search(r"connect\(\d+, \{sa_family=AF_UNIX", line) for line in calls)  # W&B's own socket: strace saw it


# ---------------------------------------------------------------- end to end: kfold run --track wandb

@pytest.mark.slow
def test_kfold_run_with_w_and_b_then_submit_logs_folds_ensembles_and_the_kaggle_score(tmp_path, monkeypatch, capsys,
                                                                                      fake_kaggle):  # noqa: F811
    """``kfold run --track wandb``, then ``kfold submit --wait --track wandb`` against the loopback Kaggle fake (whose
    proxy also fails the test on any CONNECT: wandb reaching for the internet would show there)."""
    import importlib.util

    from kfold.data.toy import make_toy_competition

    if importlib.util.find_spec("kaggle") is None:
        pytest.skip("kfold submit needs the kaggle client (pip install -e '.[kaggle]')")

    monkeypatch.chdir(tmp_path)
    comp = make_toy_competition(tmp_path / "comp")
    assert kfold_main(["run", "--data", str(comp), "--preset", "lenet5", "--epochs", "2", "--k", "2", "--threads", "1",
                       "--no-progress", "--out", "runs/toy", "--submissions", "subs", "--track", "wandb"]) == 0
    out = capsys.readouterr().out
    assert out.count("tracking: W&B offline") == 1 and "warning" not in out and "tracking: " in out
    runs = read_runs(tmp_path / "runs" / "wandb")
    (run,) = of(runs, "run")
    summary = json.loads((tmp_path / "runs" / "toy" / "summary.json").read_text())
    assert run["summary"]["oof_accuracy"] == pytest.approx(summary["oof_accuracy"]) and run["exit"] == [0]
    assert run["config"]["epochs"] == 2 and run["project"] == "comp" and run["segments"] == 1
    for fold in of(runs, "fold"):
        assert [h["_step"] for h in fold["history"]] == [1, 2] and {"learning_curve.png", "confusion.png"} <= fold["files"]
    ensembles = {e["config"]["method"]: e for e in of(runs, "ensemble")}
    assert sorted(ensembles) == ["mean", "vote"] and ensembles["mean"]["config"]["kfold.input_run_ids"] == [run["id"]]
    board = pd.read_csv(tmp_path / "runs" / "toy" / "leaderboard" / "leaderboard.csv")
    mean_row = board[board["submission"] == "subs/toy-mean.csv"].iloc[0]
    assert ensembles["mean"]["summary"]["local_public"] == pytest.approx(mean_row["public"])

    # kfold submit --wait: Kaggle's public score goes to the ensemble that wrote the file (a resumed segment)
    fake_kaggle.add("comp", results=[("COMPLETE", "0.97300", "0.96100")])
    done = subprocess.run([sys.executable, "-m", "kfold", "submit", "subs/toy-mean.csv", "-c", "comp", "-m", "toy mean",
                           "--sample", str(comp / "sample_submission.csv"), "--wait", "30", "--poll-interval", "0.1",
                           "--track", "wandb"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Kaggle's score logged to 1 tracked run(s)" in done.stdout and "warning" not in done.stdout
    scored = read_runs(tmp_path / "runs" / "wandb")
    assert scored[ensembles["mean"]["id"]]["summary"]["kaggle_public"] == pytest.approx(0.973)
    assert "kaggle_public" not in scored[ensembles["vote"]["id"]]["summary"]
    assert scored[ensembles["mean"]["id"]]["segments"] == 2 and scored[run["id"]]["segments"] == 1
