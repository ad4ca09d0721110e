"""``kfold submit --code`` through the REAL kaggle client against the loopback fake, whose kernel runner really
executes the pushed notebook offline: on the competition's public files when the kernel is pushed, on a larger
hidden test set when the code submission is scored (issue 30, items 3-5).

Packages are hand-made in the contract's layout (``tests/code_packages.py``: a tiny notebook, no training);
the whole loop with a trained run and ``kfold package`` is ``test_code_loop.py``.

The commands run in this process (``tests/inproc.py``: the environment, working folder and the kaggle client's
import-time configuration as a fresh ``python -m kfold`` would have them), except where the separate process is the
point: the first whole loop (``submit --code``, ``submissions``, ``leaderboard --remote``), Ctrl-C, and the
client's verbose switches. The fake executes each distinct kernel run once per test process
(``tests/kernel_cache.py``): the same notebook on the same inputs gives the same outcome and output.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from code_packages import make_code_competition, scorer, write_code_package
from inproc import kfold as kfold_here
from kaggle_fake import KEY, USERNAME, fake_kaggle  # noqa: F401  (fixture)
from kernel_cache import cached_executor
from test_kaggle_loop import REPO, kfold, one_error_line

from kfold.files.package import DATASET_METADATA, hash_files
from kfold.files.submit_state import STATE_FILE, read_state

pytestmark = pytest.mark.skipif(importlib.util.find_spec("kaggle") is None, reason="kaggle not installed")

COMP = "tiny-code-comp"
KERNEL = f"{USERNAME}/tiny-kfold-predict"
DATASET = f"{USERNAME}/tiny-kfold-models"
FAST = ["--poll-interval", "0.05"]


@pytest.fixture
def code_comp(fake_kaggle, tmp_path):
    """A code competition on the fake (public sample of 6 rows, hidden test set of 20) and a package for it."""
    files = make_code_competition(tmp_path / "comp")
    competition = fake_kaggle.add(COMP, code_only=True, public_files=files["public"], hidden_files=files["hidden"],
                                  scorer=scorer(files["solution"]))
    fake_kaggle.dataset_polls_unknown, fake_kaggle.dataset_polls_to_ready, fake_kaggle.kernel_polls_queued = 1, 2, 1
    fake_kaggle.executor = cached_executor
    work = tmp_path / "work"
    work.mkdir()
    return competition, work


def submit(work, *extra, pkg="pkg", env=None, fresh=False):
    """``kfold submit --code`` in this process (``fresh``: in a fresh ``python -m kfold``)."""
    run = kfold if fresh else kfold_here
    return run("submit", "--code", "--package", pkg, "-c", COMP, "-m", "tiny first", *FAST, *extra, cwd=work,
               env=env, timeout=300)


def successful(fake, method) -> int:
    return sum(1 for r in fake.calls(method)) - max(fake.counts.get(method, 0) - fake.fail_after.get(method, 10**9), 0)


# ---------------------------------------------------------------- the loop

def test_submit_code_uploads_runs_compares_submits_and_is_scored_on_the_hidden_set(fake_kaggle, code_comp):
    competition, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME)
    done = submit(work, "--wait", "120", fresh=True)
    assert done.returncode == 0, done.stderr + done.stdout
    names = fake_kaggle.method_names()
    order = ["GetCompetition", "GetSubmissionLimits", "GetDatasetStatus", "StartBlobUpload", "CreateDataset",
             "SaveKernel", "GetKernelSessionStatus", "ListKernelSessionOutput", "CreateCodeSubmission", "ListSubmissions"]
    assert sorted(order, key=names.index) == order, names  # first calls in this order
    # the dataset Kaggle holds is the package's dataset/: folders unpacked, the metadata file not uploaded
    dataset = fake_kaggle.datasets[DATASET]
    expected = hash_files(work / "pkg" / "dataset")
    expected.pop(DATASET_METADATA)
    import hashlib

    assert {rel: hashlib.sha256(data).hexdigest() for rel, data in dataset.versions[-1].items()} == \
        {**expected, "kfold-package.json": hashlib.sha256((work / "pkg/dataset/kfold-package.json").read_bytes()).hexdigest()}
    version = fake_kaggle.kernels[KERNEL][0]
    assert version.request["enableInternet"] is False and version.request["competitionDataSources"] == [COMP]
    assert version.request["datasetDataSources"] == [DATASET] and version.request["isPrivate"] is True
    # the push ran on the 6 public rows; the scored re-run on the 20 hidden rows (the solution has 20)
    assert version.run.outputs["submission.csv"] == (work / "pkg/local/submission.csv").read_bytes()
    sub = competition.submissions[0]
    assert sub["status"] == "COMPLETE" and sub["fileName"] == "submission.csv"
    public, private = sub["result"][1], sub["result"][2]
    assert f"public score: {float(public):.5f} (private {float(private):.5f})" in done.stdout
    assert float(public) == float(private) == 0.8  # scored on the 20 hidden rows (4 answers differ)
    assert "the kernel's output matches the local submission (6 rows)" in done.stdout
    log = pd.read_csv(work / "submissions/log" / f"{COMP}.csv", dtype=str, keep_default_na=False)
    assert log.loc[0, ["kernel", "version", "ref", "rows"]].tolist() == [KERNEL, "1", str(sub["ref"]), "6"]
    state = read_state(work / "pkg" / STATE_FILE)
    assert (state.kernel_version, state.ref, state.logged, state.dataset_ready) == (1, sub["ref"], True, True)

    again = submit(work)  # nothing left to do: no new dataset version, push or submission
    assert again.returncode == 0, again.stderr
    assert f"already submitted as ref {sub['ref']}" in again.stdout
    assert len(dataset.versions) == 1 and len(fake_kaggle.kernels[KERNEL]) == 1 and len(competition.submissions) == 1

    shown = kfold("submissions", "-c", COMP, cwd=work)
    assert shown.returncode == 0, shown.stderr
    assert f"{KERNEL}/1" in shown.stdout and str(sub["ref"]) in shown.stdout
    board = kfold("leaderboard", "-c", COMP, "--remote", "--out", "lb", cwd=work)
    assert board.returncode == 0, board.stderr
    assert f"{KERNEL}/1" in board.stdout


def test_a_new_package_content_makes_one_new_dataset_version_and_one_push(fake_kaggle, code_comp):
    competition, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME)
    assert submit(work).returncode == 0
    write_code_package(work / "pkg2", COMP, USERNAME, mode="differ", differ=0)  # same dataset bytes, same kernel?
    (work / "pkg2" / STATE_FILE).write_bytes((work / "pkg" / STATE_FILE).read_bytes())
    again = submit(work, pkg="pkg2")
    assert again.returncode == 0, again.stderr
    # the dataset content is the same: no new version; the notebook differs: pushed again, submitted again
    assert len(fake_kaggle.datasets[DATASET].versions) == 1 and len(fake_kaggle.kernels[KERNEL]) == 2
    assert len(competition.submissions) == 2


# ---------------------------------------------------------------- resuming

INTERRUPTIONS = [  # (the call that fails, after how many of its calls succeeded)
    ("StartBlobUpload", 1), ("CreateDataset", 0), ("GetDatasetStatus", 2), ("SaveKernel", 0),
    ("GetKernelSessionStatus", 1), ("ListKernelSessionOutput", 0), ("CreateCodeSubmission", 0), ("ListSubmissions", 0)]


@pytest.mark.parametrize("method, after", INTERRUPTIONS, ids=[m for m, _ in INTERRUPTIONS])
def test_an_interrupted_submit_continues_where_it_stopped(fake_kaggle, code_comp, method, after):
    competition, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME)
    fake_kaggle.fail_after[method] = after
    first = submit(work, "--wait", "60")
    assert first.returncode == 1, first.stderr + first.stdout
    one_error_line(first, "kaggle: ", "failed")
    del fake_kaggle.fail_after[method]
    again = submit(work, "--wait", "60")
    assert again.returncode == 0, again.stderr + again.stdout
    assert len(fake_kaggle.datasets[DATASET].versions) == 1  # one dataset, one version
    assert len(fake_kaggle.kernels[KERNEL]) == 1  # one push
    assert len(competition.submissions) == 1 and competition.submissions[0]["status"] == "COMPLETE"
    log = pd.read_csv(work / "submissions/log" / f"{COMP}.csv", dtype=str, keep_default_na=False)
    assert len(log) == 1 and log.loc[0, "ref"] == str(competition.submissions[0]["ref"])


def test_ctrl_c_while_the_kernel_runs_then_the_same_command_continues(fake_kaggle, code_comp, tmp_path):
    competition, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME)
    fake_kaggle.kernel_gate.clear()  # the kernel stays RUNNING
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "kfold", "submit", "--code", "--package", "pkg", "-c", COMP,
                                "-m", "x", *FAST], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # (SIGINT's default in the child even when pytest runs as a background job, which inherits SIGINT ignored: a
    # Python started with SIGINT ignored keeps ignoring it, and the command would wait for the kernel for ever)
    deadline = time.monotonic() + 120
    while len(fake_kaggle.calls("GetKernelSessionStatus")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=180)  # a loaded 2-core CI machine: 60 s was once too short
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err
    assert read_state(work / "pkg" / STATE_FILE).kernel_version == 1
    fake_kaggle.kernel_gate.set()
    again = submit(work)
    assert again.returncode == 0, again.stderr
    assert len(fake_kaggle.datasets[DATASET].versions) == 1 and len(fake_kaggle.kernels[KERNEL]) == 1
    assert "dataset tiny-kfold-models" not in again.stdout or "uploaded already" in again.stdout
    assert len(competition.submissions) == 1


# ---------------------------------------------------------------- hostile cases: one line, nothing submitted

HOSTILE = [
    # (case, package options, fake set-up, extra flags, exit code, fragments of the one error line)
    ("dataset owned by someone else", {"owner": "someone-else"}, {}, [], 2,
     ["the dataset someone-else/tiny-kfold-models belongs to 'someone-else'", f"--owner {USERNAME}"]),
    ("dataset never ready", {}, {"dataset_never_ready": True}, ["--dataset-wait", "0.5"], 1,
     [f"dataset {DATASET} is still", "run the same command again later"]),
    ("dataset processing failed", {}, {"dataset_fails": True}, [], 1, ["Kaggle failed to process it"]),
    ("kernel errors", {"mode": "error"}, {}, [], 1,
     [f"kernel {KERNEL} version 1 ended ERROR: ValueError: the model does not fit these images", "nothing submitted"]),
    ("kernel reaches for the internet", {"mode": "network"}, {}, [], 1,
     [f"kernel {KERNEL} version 1 ended ERROR", "unreachable", "nothing submitted"]),
    ("output missing", {"mode": "no-output"}, {}, [], 1,
     [f"kernel {KERNEL} version 1 wrote no submission.csv (its output: none); nothing submitted"]),
    ("output with another header", {"mode": "header"}, {}, [], 1,
     ["header 'image,label' is not the local submission's 'Id,Category'", "nothing submitted"]),
    ("output differing beyond ties", {"mode": "differ", "differ": 2}, {}, [], 1,
     ["differs from pkg/local/submission.csv in 2 of 6 rows (33.33%, more than --max-differing 0.10%)",
      "first at line 2; nothing submitted"]),
    ("local submission of another recipe", {"local_shift": 4}, {}, [], 1, ["in 6 of 6 rows"]),
    ("a CSV competition", {}, {"code_only": False}, [], 2,
     [f"'{COMP}' takes CSV uploads, not notebooks", f"kfold submit pkg/local/submission.csv -c {COMP}"]),
    ("another competition", {"competition": "other-comp"}, {}, [], 2,
     ["a package for 'other-comp', not for --competition 'tiny-code-comp'"]),
    ("no submissions left", {}, {"num_today": 5}, [], 1, [f"no submissions left for '{COMP}'"]),
    ("rules not accepted", {}, {"rules_accepted": False}, [], 1, ["you have not joined this competition"]),
]


@pytest.mark.parametrize("case, options, setup, flags, code, fragments", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_code_submissions_are_one_line_and_nothing_is_submitted(fake_kaggle, code_comp, case, options,
                                                                       setup, flags, code, fragments):
    competition, work = code_comp
    owner = options.pop("owner", USERNAME)
    write_code_package(work / "pkg", options.pop("competition", COMP), owner, **options)
    for key, value in setup.items():
        setattr(competition if hasattr(competition, key) else fake_kaggle, key, value)
    before = {p: p.read_bytes() for p in (work / "pkg").rglob("*") if p.is_file()}
    done = submit(work, *flags, "--dataset-wait", "30") if "--dataset-wait" not in flags else submit(work, *flags)
    assert done.returncode == code, done.stderr + done.stdout
    if case == "kernel errors":  # the tail of the kernel's log, its traceback included, then the error line
        assert "ValueError: the model does not fit these images" in done.stdout and "Cell In[2]" in done.stdout
        done.stdout = ""
    one_error_line(done, *fragments)
    assert "CreateCodeSubmission" not in fake_kaggle.method_names() and competition.submissions == []
    assert not (work / "submissions").exists()  # nothing logged
    assert {p: p.read_bytes() for p in before} == before  # the package's files are never changed
    if case.startswith("kernel") or case.startswith("output"):
        assert len(fake_kaggle.kernels[KERNEL]) == 1  # it did run on Kaggle
    if code == 2 or case in ("no submissions left", "rules not accepted"):
        assert not fake_kaggle.datasets and not fake_kaggle.kernels  # refused before anything was uploaded


def test_a_csv_upload_to_a_code_competition_is_refused_in_one_line(fake_kaggle, code_comp):
    competition, work = code_comp
    (work / "sub.csv").write_text("Id,Category\n0,3\n")
    done = kfold_here("submit", "sub.csv", "-c", COMP, "-m", "x", cwd=work)
    assert done.returncode == 2
    one_error_line(done, f"'{COMP}' is a code competition: it takes no CSV upload", "kfold submit --code, --package PKG")
    assert "StartSubmissionUpload" not in fake_kaggle.method_names() and competition.submissions == []


@pytest.mark.parametrize("args, fragment", [
    (["submit", "--code", "-c", COMP, "-m", "x"], "--code needs --package PKG"),
    (["submit", "sub.csv", "--code", "--package", "pkg", "-c", COMP, "-m", "x"], "--code submits the package's notebook"),
    (["submit", "--code", "--package", "pkg", "--sample", "s.csv", "-c", COMP, "-m", "x"], "--sample is for CSV uploads"),
    (["submit", "-c", COMP, "-m", "x"], "give the submission file SUB"),
    (["submit", "sub.csv", "--package", "pkg", "-c", COMP, "-m", "x"], "--package pkg goes with --code"),
    (["submit", "--code", "--package", "pkg", "-c", COMP, "-m", "x", "--max-differing", "1.5"], "--max-differing"),
    (["submit", "--code", "--package", "nowhere", "-c", COMP, "-m", "x"], "nowhere: not a package folder"),
    (["submit", "--code", "--package", "pkg", "-c", COMP, "-m", "x", "--log", "pkg/local/submission.csv"],
     "pkg/local/submission.csv"),
])
def test_code_submit_usage_is_checked_before_kaggle(fake_kaggle, code_comp, args, fragment):
    _, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME)
    done = kfold_here(*args, cwd=work)
    assert done.returncode in (1, 2)
    one_error_line(done, fragment)
    assert fake_kaggle.requests == []


def test_verbose_never_prints_the_credentials_of_a_code_submission(fake_kaggle, code_comp):
    _, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME, mode="error")
    import base64

    done = submit(work, env={"VERBOSE": "1", "VERBOSE_OUTPUT": "True"}, fresh=True)  # read when kaggle is imported
    assert done.returncode == 1
    text = done.stdout + done.stderr
    assert KEY not in text and base64.b64encode(f"{USERNAME}:{KEY}".encode()).decode() not in text
    assert "Authorization" not in text


# ---------------------------------------------------------------- the log's kernel/version columns, the state file

CSV_ROW = {"time": "2024-01-01T00:00:00Z", "competition": COMP, "file": "a.csv", "sha256": "a" * 64, "rows": 3,
           "message": "csv", "ref": 1}
CODE_ROW = {**CSV_ROW, "file": "pkg/local/submission.csv", "ref": 2, "message": "code", "kernel": KERNEL, "version": 2}


def test_the_log_gains_kernel_and_version_with_the_first_code_submission_and_old_logs_read(tmp_path):
    from kfold.files.submission_log import CODE_COLUMNS, LOG_COLUMNS, append_log, read_log

    log = tmp_path / "log.csv"
    append_log(log, CSV_ROW)
    assert log.read_text().splitlines()[0] == ",".join(LOG_COLUMNS)  # a log of CSV uploads is written as before
    append_log(log, CODE_ROW)
    append_log(log, {**CSV_ROW, "ref": 3})
    frame = read_log(log)
    assert list(frame.columns) == LOG_COLUMNS + CODE_COLUMNS
    assert frame["kernel"].tolist() == ["", KERNEL, ""] and frame["version"].tolist() == ["", "2", ""]


@pytest.mark.parametrize("column, value, fragment", [
    ("kernel", "no-slash", "'no-slash' is not a Kaggle kernel (OWNER/KERNEL_SLUG)"),
    ("kernel", "a/b/c", "'a/b/c' is not a Kaggle kernel"),
    ("version", "0", "'0' is not a kernel version"),
    ("version", "v2", "'v2' is not a kernel version"),
    ("version", "1.5", "'1.5' is not a kernel version"),
])
def test_a_damaged_kernel_or_version_cell_is_refused_with_its_line(tmp_path, column, value, fragment):
    from kfold.errors import DataError
    from kfold.files.submission_log import append_log, read_log

    log = tmp_path / "log.csv"
    append_log(log, CSV_ROW)
    append_log(log, CODE_ROW)
    lines = log.read_text().split("\n")
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index(column)] = value
    log.write_text("\n".join([lines[0], lines[1], ",".join(cells), *lines[3:]]))
    before = log.read_bytes()
    with pytest.raises(DataError, match=re.escape(f"line 3, column '{column}': {fragment}")):
        read_log(log)
    with pytest.raises(DataError):
        append_log(log, {**CSV_ROW, "ref": 9})
    assert log.read_bytes() == before


GOOD_STATE = {"format": "kfold-submit-state/1", "competition": COMP, "dataset": DATASET, "kernel": KERNEL,
              "content_hash": "a" * 64, "dataset_ready": True, "kernel_hash": "b" * 64, "kernel_version": 2,
              "kernel_status": "COMPLETE", "output_sha256": "", "ref": None, "logged": False}
BAD_STATES = [
    ("not JSON", "{", "not a kfold submit state (JSONDecodeError)"),
    ("another format", {**GOOD_STATE, "format": "kfold-submit-state/9"}, "format is not 'kfold-submit-state/1'"),
    ("a list", [], "not a kfold submit state"),
    ("a key missing", {k: v for k, v in GOOD_STATE.items() if k != "kernel_version"}, "key 'kernel_version' missing"),
    ("a version as text", {**GOOD_STATE, "kernel_version": "2"}, "key 'kernel_version': '2' is not a valid value"),
    ("a version zero", {**GOOD_STATE, "kernel_version": 0}, "key 'kernel_version': 0 is not a valid value"),
    ("a bool as ref", {**GOOD_STATE, "ref": True}, "key 'ref': True is not a valid value"),
    ("a hash that is not one", {**GOOD_STATE, "content_hash": "xyz"}, "key 'content_hash': 'xyz' is not a SHA-256"),
    ("an unknown key", {**GOOD_STATE, "extra": 1}, "unknown key(s) extra"),
    ("binary", b"\x89PNG\r\n", "not a kfold submit state (UnicodeDecodeError)"),
]


@pytest.mark.parametrize("case, content, fragment", BAD_STATES, ids=[c for c, _, _ in BAD_STATES])
def test_a_damaged_state_file_is_refused_in_one_line(tmp_path, case, content, fragment):
    from kfold.errors import DataError

    path = tmp_path / STATE_FILE
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataError) as info:
        read_state(path)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value)
    assert "delete it to start this package's submission over" in str(info.value)


def test_a_state_file_round_trips_and_a_symlink_is_refused(tmp_path):
    from kfold.errors import DataError
    from kfold.files.submit_state import SubmitState, write_state

    state = SubmitState(**{k: v for k, v in GOOD_STATE.items() if k != "format"})
    write_state(tmp_path / STATE_FILE, state)
    assert read_state(tmp_path / STATE_FILE) == state
    (tmp_path / "link.json").symlink_to(tmp_path / STATE_FILE)
    with pytest.raises(DataError, match="symbolic link"):
        read_state(tmp_path / "link.json")


def test_a_damaged_state_stops_submit_code_before_kaggle(fake_kaggle, code_comp):
    _, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME)
    (work / "pkg" / STATE_FILE).write_text("{")
    done = submit(work)
    assert done.returncode == 1
    one_error_line(done, f"pkg/{STATE_FILE}: not a kfold submit state")
    assert fake_kaggle.requests == []


def test_the_commands_defaults_are_the_flows():
    from kfold.commands import kaggle as command
    from kfold.flows import code_submission as flow

    assert (command.MAX_DIFFERING, command.DATASET_WAIT, command.KERNEL_WAIT) == \
        (flow.MAX_DIFFERING, flow.DATASET_WAIT, flow.KERNEL_WAIT)


def test_an_output_differing_within_max_differing_is_submitted_and_says_so(fake_kaggle, code_comp):
    competition, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME, mode="differ", differ=1)
    done = submit(work, "--max-differing", "0.2")
    assert done.returncode == 0, done.stderr
    assert "the kernel's output differs from the local submission in 1 of 6 rows (16.667%), first at line 2" in done.stdout
    assert len(competition.submissions) == 1


def test_the_notebook_finds_its_inputs_where_kaggle_mounted_them_before(fake_kaggle, code_comp):
    competition, work = code_comp
    fake_kaggle.mount = "legacy"  # input/<dataset slug>, input/<competition>
    write_code_package(work / "pkg", COMP, USERNAME)
    done = submit(work, "--wait", "60")
    assert done.returncode == 0, done.stderr
    assert competition.submissions[0]["status"] == "COMPLETE"
    assert "/input/tiny-kfold-models" in fake_kaggle.kernels[KERNEL][0].run.log


def test_a_code_submission_logs_kaggles_score_to_the_tracked_ensemble_it_reproduced(fake_kaggle, code_comp, tmp_path,
                                                                                    monkeypatch, mlflow_template):
    """``kfold submit --code --wait --track mlflow``: the score goes to the tracked ensemble whose submission the
    notebook reproduced (matched by the local submission's sha256), as for a CSV upload (issue 33)."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from kfold.flows.tracking import open_tracker

    competition, work = code_comp
    write_code_package(work / "pkg", COMP, USERNAME)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")  # a fresh store without re-running MLflow's migrations
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("KFOLD_TRACK", raising=False)
    tracker = open_tracker("mlflow", work / "runs", echo=lambda line: None)
    tracker.ensemble_done(work / "pkg/local/submission.csv", [], "mean")
    other = work / "other.csv"
    other.write_bytes((work / "pkg/local/submission.csv").read_bytes() + b"\n")  # another file: not scored
    tracker.ensemble_done(other, [], "vote")
    tracker.close()
    done = submit(work, "--wait", "120", "--track", "mlflow", env={"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Kaggle's score logged to 1 tracked run(s)" in done.stdout
    public = float(competition.submissions[0]["result"][1])
    client = MlflowClient(tracking_uri=uri)
    runs = {run.data.params.get("method"): run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])}
    assert runs["mean"].data.metrics["kaggle_public"] == pytest.approx(public)
    assert "kaggle_public" not in runs["vote"].data.metrics
