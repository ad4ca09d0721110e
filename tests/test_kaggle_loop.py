"""The Kaggle loop driven through the REAL kaggle client (kaggle >= 2) against a loopback fake of its API.

A CLI run is a fresh ``python -m kfold`` process (``kfold``: kaggle freezes its configuration when imported) where
the process is the point (each command once, missing credentials, a shadowed dependency, the verbose switches),
otherwise the same command in this process as a fresh one would run it (``kfold_here``, ``tests/inproc.py``: the
environment, working folder, temporary folder and the client's import-time configuration set for the call);
the ``fake_kaggle`` fixture points the client at 127.0.0.1 only and checks after every test that no
request tried to leave (no CONNECT, every Host localhost).
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kaggle_fake import KEY, SERVICE, USERNAME, fake_kaggle  # noqa: F401  (fixture)

from kfold.kaggle_api import MISSING_CREDENTIALS
from kfold.files.probs import write_probs
from kfold.files.submission_log import LOG_COLUMNS, append_log

# find_spec, not importorskip: importing kaggle here would authenticate against the real HOME at collection
pytestmark = pytest.mark.skipif(importlib.util.find_spec("kaggle") is None, reason="kaggle not installed")

REPO = Path(__file__).resolve().parents[1]
BASIC = base64.b64encode(f"{USERNAME}:{KEY}".encode()).decode()


def kfold(*args, cwd, env=None, timeout=120, python_code=None):
    """Run ``python -m kfold ARGS`` (or ``python -c CODE``) with this checkout first on the path.

    ``env`` updates the environment (None removes a variable; ``_PREPEND`` lists folders put before the repo)."""
    env = dict(env or {})
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([*env.pop("_PREPEND", []), str(REPO)])}
    for name, value in env.items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    command = [sys.executable, "-c", python_code] if python_code else [sys.executable, "-m", "kfold", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def kfold_here(*args, cwd, env=None, timeout=120):
    """``kfold(*args)`` in this process (``tests/inproc.py``); imported here, where the tests look for ``kfold``."""
    from inproc import kfold as run

    return run(*args, cwd=cwd, env=env, timeout=timeout)


def one_error_line(done, *fragments):
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


@pytest.fixture
def comp(tmp_path):
    """A 3-row competition: sample and a valid submission in tmp_path."""
    (tmp_path / "sample_submission.csv").write_text("Id,Category\n0,0\n1,0\n2,0\n")
    (tmp_path / "sub.csv").write_text("Id,Category\n0,3\n1,1\n2,9\n")
    return tmp_path


def read_log(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# ---------------------------------------------------------------- submit

def test_submit_checks_limits_uploads_the_exact_bytes_and_logs(fake_kaggle, comp):
    fake_kaggle.add("kmnist", num_today=3)
    done = kfold("submit", "sub.csv", "-c", "kmnist", "-m", "mean of 5 folds", "--sample", "sample_submission.csv",
                 "--num-classes", "10", cwd=comp)
    assert done.returncode == 0, done.stderr
    assert fake_kaggle.method_names() == ["GetSubmissionLimits", "GetCompetition", "StartSubmissionUpload",
                                          "PUT /upload/blob-1", "CreateSubmission"]
    data = (comp / "sub.csv").read_bytes()
    assert fake_kaggle.uploads == {"blob-1": data}
    start, put, create = fake_kaggle.requests[2:]
    assert start.body == {"competitionName": "kmnist", "fileName": "sub.csv", "contentLength": len(data),
                          "lastModifiedEpochSeconds": int((comp / "sub.csv").stat().st_mtime)}
    assert create.body["submissionDescription"] == "mean of 5 folds" and create.body["blobFileTokens"] == "blob-1"
    assert start.auth == f"Basic {BASIC}" and put.auth == ""  # the upload URL carries no credentials
    assert done.stdout.splitlines() == [
        "ok: sub.csv: 3 rows", "Ids match sample_submission.csv", "kaggle: 3 submission(s) used today, 2 left today",
        "submitted: Successfully submitted to kmnist (ref 50000001)", "logged in submissions/log/kmnist.csv"]
    log = read_log(comp / "submissions" / "log" / "kmnist.csv")
    assert list(log.columns) == LOG_COLUMNS and len(log) == 1
    row = log.iloc[0]
    assert (row["file"], row["ref"], row["message"], row["rows"]) == ("sub.csv", "50000001", "mean of 5 folds", "3")
    assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["time"].endswith("Z")


def test_submit_finds_the_competitions_sample_in_data_comp(fake_kaggle, comp):
    fake_kaggle.add("kmnist")
    (comp / "data" / "kmnist").mkdir(parents=True)
    (comp / "data" / "kmnist" / "sample_submission.csv").write_text("Id,Category\n0,0\n1,0\n2,0\n3,0\n")
    done = kfold_here("submit", "sub.csv", "-c", "kmnist", "-m", "x", cwd=comp)
    one_error_line(done, "3 rows but the sample has 4", "data/kmnist/sample_submission.csv")
    assert fake_kaggle.requests == []  # an invalid file never reaches Kaggle, not even the limits call
    assert not (comp / "submissions").exists()


def test_submit_wait_polls_with_backoff_and_honours_retry_after(fake_kaggle, comp):
    fake_kaggle.add("kmnist", polls_to_score=2, results=[("COMPLETE", "0.98100", "")])
    fake_kaggle.rate_limited["ListSubmissions"] = 1
    fake_kaggle.retry_after = "1"
    done = kfold_here("submit", "sub.csv", "-c", "kmnist", "-m", "x", "--sample", "sample_submission.csv",
                 "--wait", "60", "--poll-interval", "0.5", cwd=comp)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "public score: 0.98100"
    assert "rate limited (429) while listing the submissions of 'kmnist'; retrying in 1 s" in done.stderr
    polls = fake_kaggle.calls("ListSubmissions")
    assert len(polls) == 4  # one 429, then PENDING, PENDING, COMPLETE
    gaps = np.diff([p.time for p in polls])
    assert gaps[0] >= 1.0  # Retry-After honoured
    assert 0.5 <= gaps[1] < gaps[2]  # the poll interval grows (0.5 s, then 0.8 s)
    assert done.stdout.count("PENDING (check") == 2


def test_submit_wait_reports_a_scoring_error_and_exits_1(fake_kaggle, comp):
    fake_kaggle.add("kmnist", polls_to_score=1, results=[("ERROR", "Submission has 3 rows, expected 10000")])
    done = kfold_here("submit", "sub.csv", "-c", "kmnist", "-m", "x", "--wait", "30", "--poll-interval", "0.1", cwd=comp)
    assert done.returncode == 1
    one_error_line(done, "kaggle: submission 50000001 failed scoring: Submission has 3 rows, expected 10000")
    assert len(read_log(comp / "submissions" / "log" / "kmnist.csv")) == 1  # the upload happened: it is logged


def test_submit_wait_gives_up_after_max_seconds(fake_kaggle, comp):
    fake_kaggle.add("kmnist", polls_to_score=10_000)
    done = kfold_here("submit", "sub.csv", "-c", "kmnist", "-m", "x", "--wait", "1", "--poll-interval", "0.3", cwd=comp)
    assert done.returncode == 1
    one_error_line(done, "submission 50000001 is still PENDING after 1 s", "kfold submissions -c kmnist")
    assert 2 <= len(fake_kaggle.calls("ListSubmissions")) <= 5


def test_no_submissions_left_is_one_line_and_nothing_is_uploaded(fake_kaggle, comp):
    fake_kaggle.add("kmnist", daily_limit=5, num_today=5)
    done = kfold_here("submit", "sub.csv", "-c", "kmnist", "-m", "x", cwd=comp)
    assert done.returncode == 1
    one_error_line(done, "kaggle: no submissions left today for 'kmnist' (5 used today); nothing uploaded")
    assert fake_kaggle.method_names() == ["GetSubmissionLimits"] and fake_kaggle.uploads == {}
    assert not (comp / "submissions").exists()


def test_verbose_in_the_environment_never_prints_credentials(fake_kaggle, comp):
    fake_kaggle.add("kmnist", results=[("COMPLETE", "0.9", "")])
    env = {"VERBOSE": "1", "VERBOSE_OUTPUT": "true"}
    done = kfold("submit", "sub.csv", "-c", "kmnist", "-m", "x", "--wait", "20", "--poll-interval", "0.1",
                 cwd=comp, env=env)
    assert done.returncode == 0, done.stderr
    bad = kfold("submit", "sub.csv", "-c", "kmnist", "-m", "x", cwd=comp, env={**env, "KAGGLE_KEY": KEY + "-wrong"})
    assert bad.returncode == 2
    for run in (done, bad):
        text = run.stdout + run.stderr
        assert KEY not in text and BASIC not in text and "Authorization" not in text
        assert "Request------" not in text  # the client's verbose dump never ran


# ---------------------------------------------------------------- one line per failure

@pytest.mark.parametrize("case", ["bad credentials", "no credentials", "unknown competition", "rules (submit)",
                                  "rules (download)", "network", "missing dependency", "upload refused",
                                  "rate limit", "bad slug", "bad run dir"])
def test_every_failure_is_one_clear_line(fake_kaggle, comp, case):
    fake_kaggle.add("kmnist")
    fake_kaggle.add("closed", rules_accepted=False, data_zip=b"PK")
    submit = ["submit", "sub.csv", "-c", "kmnist", "-m", "x"]
    env, args = {}, submit
    if case == "bad credentials":
        env = {"KAGGLE_KEY": "not-the-key"}
        expect, code = ["the credentials were rejected (401)"], 2
    elif case == "no credentials":
        env = {"KAGGLE_USERNAME": None, "KAGGLE_KEY": None}
        expect, code = [MISSING_CREDENTIALS], 2
    elif case == "unknown competition":
        args = ["submit", "sub.csv", "-c", "no-such-comp", "-m", "x"]
        expect, code = ["unknown competition 'no-such-comp' (404)"], 2
    elif case == "rules (submit)":
        args = ["submit", "sub.csv", "-c", "closed", "-m", "x"]
        expect, code = ["you have not joined this competition", "kaggle.com/competitions/closed/rules"], 1
    elif case == "rules (download)":
        args = ["download", "-c", "closed", "--data", "data"]
        expect, code = ["forbidden (403): accept the rules of 'closed'", "kaggle.com/competitions/closed/rules"], 1
    elif case == "network":
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {name: f"http://127.0.0.1:{port}" for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")}
        expect, code = ["network error, Kaggle could not be reached", "Connection refused"], 1
    elif case == "missing dependency":
        # bleach: needed by the kaggle client alone (six, once used here, is imported by pandas' dateutil first)
        shadow = comp / "shadow" / "bleach"
        shadow.mkdir(parents=True)
        (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'bleach'\", name='bleach')\n")
        env = {"_PREPEND": [str(comp / "shadow")]}
        expect, code = ["the kaggle package needs 'bleach', which is not installed: pip install bleach"], 2
    elif case == "upload refused":
        fake_kaggle.put_status = 403
        expect, code = ["Could not submit to competition (the file upload was refused)"], 1
    elif case == "bad run dir":
        args = [*submit, "--run", "runs/nope"]
        expect, code = ["--run runs/nope: not a finished run directory (no summary.json)"], 2
    elif case == "rate limit":
        fake_kaggle.rate_limited["GetSubmissionLimits"] = 99
        fake_kaggle.retry_after = "0"
        expect, code = ["rate limited by Kaggle (429) after 5 retries; try again later"], 1
    else:
        args = ["submit", "sub.csv", "-c", "../etc", "-m", "x"]
        expect, code = ["--competition '../etc': not a competition name"], 2
    fresh = case in ("no credentials", "missing dependency")  # kaggle's import without them; a shadowed package
    done = (kfold if fresh else kfold_here)(*args, cwd=comp, env=env)
    assert done.returncode == code, done.stderr
    if case == "rate limit":  # six tries, each announced on its own line, then the error line
        assert fake_kaggle.method_names() == ["GetSubmissionLimits"] * 6
        assert done.stderr.count("retrying in 0 s") == 5
        done.stderr = done.stderr.splitlines(keepends=True)[-1]
    one_error_line(done, *expect)
    assert not (comp / "submissions").exists() and not (comp / "data").exists()
    assert "CreateSubmission" not in fake_kaggle.method_names()


# ---------------------------------------------------------------- provenance, log, submissions, CV picture

def make_run(root: Path, name: str, oof_accuracy: float, rng, n_oof=40, preset="fast", seed=0) -> Path:
    run = root / "runs" / name
    (run / "probs").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"preset": preset, "seed": seed, "oof_accuracy": oof_accuracy}))
    labels = np.random.default_rng(123).integers(0, 10, n_oof)  # the same training rows in every run
    probs = rng.dirichlet(np.ones(10), n_oof)
    write_probs(run / "oof.npz", np.arange(n_oof), probs, [str(i) for i in range(10)],
                {"kind": "oof", "run": name, "fold": "all", "preset": preset, "seed": seed}, labels=labels)
    test = rng.dirichlet(np.ones(10), 3)
    write_probs(run / "probs" / f"{name}-mean.npz", np.arange(3), test, [str(i) for i in range(10)],
                {"kind": "test", "run": name, "fold": "mean", "preset": preset, "seed": seed})
    return run


def make_ensemble_submission(root: Path, out: str, inputs: list[Path], weights: list[float], method="mean"):
    """What ``kfold ensemble`` leaves: OUT.csv and OUT.probs.npz whose meta names inputs, method, weights."""
    from kfold.scoring.ensemble import combine
    from kfold.files.submission import write_submission

    ensemble = combine([str(p) for p in inputs], method=method, weights=weights)
    path = root / out
    write_submission(path, ensemble.ids, ensemble.categories)
    write_probs(path.with_name(path.stem + ".probs.npz"), ensemble.ids, ensemble.probs, ensemble.classes,
                {**ensemble.meta, "submission": str(path)})
    return path


def test_provenance_single_run_and_oof_ensemble_of_runs(tmp_path, monkeypatch):
    from kfold.scoring.ensemble import combine
    from kfold.files.probs import read_probs
    from kfold.flows.kaggle_loop import provenance

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    a = make_run(tmp_path, "alex", 0.91, rng, preset="alexnet", seed=3)
    b = make_run(tmp_path, "res", 0.95, rng, preset="resnet", seed=4)
    single = make_ensemble_submission(tmp_path, "single.csv", [Path("runs/alex/probs/alex-mean.npz")], [1.0])
    got = provenance(single)
    assert (got["runs"], got["presets"], got["seeds"], got["folds"]) == (["alex"], ["alexnet"], ["3"], ["mean"])
    assert got["local_cv"] == pytest.approx(0.91) and got["local_cv_source"] == "OOF accuracy of run alex"

    both = make_ensemble_submission(tmp_path, "both.csv", [Path("runs/alex/probs/alex-mean.npz"),
                                                           Path("runs/res/probs/res-mean.npz")], [1.0, 3.0])
    got = provenance(both)
    expected = combine([a / "oof.npz", b / "oof.npz"], method="mean", weights=[1.0, 3.0])
    labels = read_probs(a / "oof.npz").labels
    assert got["method"] == "mean" and got["weights"] == ["1", "3"] and got["runs"] == ["alex", "res"]
    assert got["local_cv"] == pytest.approx(float((expected.categories == labels).mean()))
    assert got["local_cv_source"] == "OOF mean of runs alex+res"

    plain = tmp_path / "plain.csv"  # a vote CSV has no probabilities beside it: unknown unless --run names the run
    plain.write_text("Id,Category\n0,1\n1,1\n2,1\n")
    assert provenance(plain)["local_cv"] == ""
    assert provenance(plain, [b])["local_cv"] == pytest.approx(0.95)


def test_five_submissions_then_submissions_merges_and_draws_cv_against_public(fake_kaggle, tmp_path, monkeypatch):
    """Five real uploads (one interpreter, the real client), each from a run with its own OOF accuracy;
    a sixth submission made outside kfold; then ``kfold submissions`` merges, correlates and plots."""
    from scipy.stats import pearsonr, spearmanr

    monkeypatch.chdir(tmp_path)  # the ensemble's metadata names its inputs relative to here, as kfold ensemble does
    rng = np.random.default_rng(0)
    cvs = [0.930, 0.945, 0.951, 0.962, 0.970]
    publics = ["0.92500", "0.94800", "0.94400", "0.96000", "0.96900"]
    fake_kaggle.add("kmnist", daily_limit=10, results=[("COMPLETE", p, "") for p in publics])
    (tmp_path / "sample_submission.csv").write_text("Id,Category\n0,0\n1,0\n2,0\n")
    calls = []
    for i, cv in enumerate(cvs):
        make_run(tmp_path, f"run{i}", cv, rng)
        make_ensemble_submission(tmp_path, f"sub{i}.csv", [Path(f"runs/run{i}/probs/run{i}-mean.npz")], [1.0])
        calls.append(["submit", f"sub{i}.csv", "-c", "kmnist", "-m", f"model {i}", "--sample", "sample_submission.csv"])
    code = ("import sys\nfrom kfold.commands.main import main\n"
            f"sys.exit(max(main(argv) for argv in {calls!r}))")
    done = kfold(cwd=tmp_path, python_code=code, timeout=180)
    assert done.returncode == 0, done.stderr
    assert len(fake_kaggle.calls("CreateSubmission")) == 5 and len(fake_kaggle.uploads) == 5
    log = read_log(tmp_path / "submissions" / "log" / "kmnist.csv")
    assert list(log["local_cv"].astype(float)) == pytest.approx(cvs)
    assert list(log["runs"]) == [f"run{i}" for i in range(5)] and set(log["local_cv_source"]) == {
        f"OOF accuracy of run run{i}" for i in range(5)}

    other = fake_kaggle.competitions["kmnist"]  # made on the website: on Kaggle, not in the log
    other.submissions.append({**other.submissions[-1], "ref": 777, "description": "by hand", "fileName": "web.csv",
                              "status": "PENDING", "polls_left": 0, "result": ("COMPLETE", "0.5", "")})
    fake_kaggle.submissions_page_max = 2  # Kaggle's list comes in pages: every one is read
    start = len(fake_kaggle.requests)
    done = kfold_here("submissions", "-c", "kmnist", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r.body.get("pageToken", "") for r in fake_kaggle.requests[start:]] == ["", "2", "4"]
    merged = pd.read_csv(tmp_path / "submissions" / "log" / "kmnist-submissions.csv")
    assert len(merged) == 6 and merged["status"].eq("COMPLETE").all()
    assert list(merged.loc[merged["in_log"], "public_score"]) == pytest.approx([float(p) for p in publics])
    assert merged.loc[~merged["in_log"], "message"].tolist() == ["by hand"]
    r, rho = pearsonr(cvs, [float(p) for p in publics])[0], spearmanr(cvs, [float(p) for p in publics])[0]
    assert (f"local CV against public score over 5 submissions: Pearson r = {r:.3f}, Spearman rank rho = {rho:.3f}, "
            "9/10 pairs in the same order") in done.stdout
    png = tmp_path / "submissions" / "log" / "kmnist-cv-vs-public.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "model 4" in done.stdout and "by hand" in done.stdout


# ---------------------------------------------------------------- remote leaderboard

def test_remote_leaderboard_reads_every_page_and_ranks_our_submissions(fake_kaggle, comp):
    board = [(f"team{i}", f"{0.99 - i * 0.005:.5f}") for i in range(45)]
    fake_kaggle.add("kmnist", leaderboard=board, results=[("COMPLETE", "0.96200", ""), ("COMPLETE", "0.99500", "")])
    (comp / "solution.csv").write_text("Id,Category,Usage\n0,3,Public\n1,0,Public\n2,9,Private\n")
    (comp / "sub2.csv").write_text("Id,Category\n0,3\n1,1\n2,0\n")
    first = kfold_here("submit", "sub.csv", "-c", "kmnist", "-m", "first", "--solution", "solution.csv", cwd=comp)
    assert first.returncode == 0, first.stderr
    assert kfold_here("submit", "sub2.csv", "-c", "kmnist", "-m", "second", cwd=comp).returncode == 0
    log = read_log(comp / "submissions" / "log" / "kmnist.csv")
    assert log[["local_public", "local_private", "solution"]].values.tolist() == [
        ["0.500000", "1.000000", "solution.csv"], ["", "", ""]]  # the local leaderboard score, logged at upload
    start = len(fake_kaggle.requests)
    done = kfold("leaderboard", "-c", "kmnist", "--remote", "--solution", "solution.csv", "--out", "lb", "sub.csv",
                 "sub2.csv", "--bootstrap", "10", cwd=comp)
    assert done.returncode == 0, done.stderr
    pages = [r.body.get("pageToken", "") for r in fake_kaggle.requests[start:] if r.path == SERVICE + "GetLeaderboard"]
    assert pages == ["", "20", "40"]  # every page (the fake serves at most 20 rows a page)
    saved = pd.read_csv(comp / "lb" / "kaggle-leaderboard.csv")
    assert len(saved) == 45 and saved["team"].tolist() == [team for team, _ in board]
    ranks = pd.read_csv(comp / "lb" / "kaggle-ranks.csv")
    scores = np.array([float(s) for _, s in board])
    assert ranks["ref"].tolist() == [50000002, 50000001]
    assert ranks["rank"].tolist() == [1, int((scores > 0.962).sum()) + 1] == [1, 7]
    assert ranks["of"].tolist() == [45, 45]
    # local leaderboard beside: sub.csv gets Ids 0 and 1 right on Public (0.5: 0->3 right, 1->1 wrong)
    first = ranks.set_index("ref").loc[50000001]
    assert first["local_public"] == pytest.approx(0.5) and first["local_private"] == pytest.approx(1.0)
    assert "public leaderboard of 'kmnist': 45 teams, best 0.99000" in done.stdout
    local = pd.read_csv(comp / "lb" / "leaderboard.csv")  # the local leaderboard of the SUB files, beside
    assert local.set_index("submission")["public"].to_dict() == {"sub.csv": 0.5, "sub2.csv": 0.5}


def test_leaderboard_arguments_are_checked_before_anything_runs(fake_kaggle, comp):
    fake_kaggle.add("kmnist")
    for args, message in [(["sub.csv"], "give SUB files and --solution (or -c COMP --remote)"),
                          (["-c", "kmnist", "--remote", "sub.csv"], "give SUB files and --solution"),
                          (["-c", "kmnist", "--solution", "s.csv", "sub.csv"], "-c COMP goes with --remote")]:
        done = kfold_here("leaderboard", *args, cwd=comp)
        assert done.returncode == 2
        one_error_line(done, message)
    assert fake_kaggle.requests == [] and not (comp / "kaggle-leaderboard.csv").exists()


# ---------------------------------------------------------------- download

def kaggle_npy_zip(wrapped: str = "") -> bytes:
    buffer = io.BytesIO()
    arrays = {"kmnist-train-imgs.npy": np.zeros((4, 28, 28), np.uint8), "kmnist-train-labels.npy": np.arange(4) % 2,
              "kmnist-test-imgs.npy": np.zeros((3, 28, 28), np.uint8)}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            data = io.BytesIO()
            np.save(data, array)
            zf.writestr(wrapped + name, data.getvalue())
        zf.writestr(wrapped + "sample_submission.csv", "Id,Category\n0,0\n1,0\n2,0\n")
    return buffer.getvalue()


def test_download_through_the_real_client_detects_the_layout(fake_kaggle, tmp_path):
    fake_kaggle.add("kmnist", data_zip=kaggle_npy_zip("kmnist/"))
    done = kfold("download", "-c", "kmnist", "--data", "data/km", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert fake_kaggle.method_names() == ["DownloadDataFiles", "GET /files/kmnist.zip"]
    folder = tmp_path / "data" / "km" / "kmnist"
    assert np.load(folder / "kmnist-train-labels.npy").tolist() == [0, 1, 0, 1]
    assert done.stdout.splitlines()[-1] == f"layout: Kaggle competition .npy in data/km/kmnist: use --data data/km/kmnist"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["km"]  # no temporary folders left
    # then submit finds the competition's sample there
    (tmp_path / "sub.csv").write_text("Id,Category\n0,1\n1,2\n")
    bad = kfold_here("submit", "sub.csv", "-c", "kmnist", "-m", "x", "--data", "data/km", cwd=tmp_path)
    one_error_line(bad, "2 rows but the sample has 3", "data/km/kmnist/sample_submission.csv")


def test_download_old_positional_form_and_refusals(fake_kaggle, tmp_path):
    fake_kaggle.add("kmnist", data_zip=kaggle_npy_zip())
    done = kfold_here("download", "kmnist", "--data-dir", "d", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "layout: Kaggle competition .npy in d: use --data d" in done.stdout
    again = kfold_here("download", "kmnist", "--data-dir", "d", cwd=tmp_path)  # files exist: refused without --force
    one_error_line(again, "d/kmnist-train-imgs.npy: already exists; give --force")
    assert len(kaggle_npy_zip()) < 4096
    small = kfold_here("download", "-c", "kmnist", "--data", "small", "--max-size", "4K", cwd=tmp_path)
    one_error_line(small, "kmnist.zip (downloaded): unpacks to 5.", "more than --max-size 4.0 KiB")
    assert not (tmp_path / "small").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "home"]  # nothing half-extracted anywhere


# ---------------------------------------------------------------- the top of the leaderboard, scores over time

def on_kaggle(competition, ref: int, minute: int, description: str, public: str | None) -> None:
    """A submission made earlier (scored when ``public`` is given, else still pending), as Kaggle lists it."""
    result = ("COMPLETE", public, "") if public is not None else ("COMPLETE", "0.5", "")
    competition.submissions.append({
        "ref": ref, "date": f"2024-01-01T{minute // 60:02d}:{minute % 60:02d}:00.000Z", "description": description,
        "fileName": f"{description}.csv", "totalBytes": 10, "status": "COMPLETE" if public is not None else "PENDING",
        "polls_left": 10_000, "result": result, "submittedBy": USERNAME, "teamName": "kfold team"})


def top_rows(stdout: str) -> list[list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("top "))
    rows = []
    for line in lines[start + 2:]:
        if line.startswith("our submissions") or line.startswith("none of our"):
            break
        rank, rest = line[:5].strip(), line[7:]
        team, _, score = rest.rstrip().rpartition("  ")
        rows.append([rank, team.strip(), score.strip()] if rank != "..." else ["..."])
    return rows


def test_remote_leaderboard_prints_the_top_with_our_submissions_where_they_would_rank(fake_kaggle, tmp_path):
    board = [(f"team{i}", f"{0.99 - i * 0.005:.5f}") for i in range(45)]
    competition = fake_kaggle.add("kmnist", leaderboard=board)
    for ref, minute, description, public in [(50000001, 0, "best", "0.99500"), (50000002, 1, "tie", "0.98500"),
                                             (50000003, 2, "third", "0.96200"), (50000004, 3, "waiting", None)]:
        on_kaggle(competition, ref, minute, description, public)
    done = kfold_here("leaderboard", "-c", "kmnist", "--remote", "--top", "3", "--out", "lb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "top 3 of 45 teams, and where our submissions (*) would rank:" in done.stdout
    assert top_rows(done.stdout) == [
        ["1", "* ours: best (ref 50000001)", "0.99500"], ["1", "team0", "0.99000"], ["2", "team1", "0.98500"],
        ["2", "* ours: tie (ref 50000002)", "0.98500"], ["3", "team2", "0.98000"], ["..."],
        ["7", "* ours: third (ref 50000003)", "0.96200"]]
    ranks = pd.read_csv(tmp_path / "lb" / "kaggle-ranks.csv")
    assert ranks["rank"].tolist() == [1, 2, 7] and "waiting" not in ranks["message"].tolist()
    default = kfold_here("leaderboard", "-c", "kmnist", "--remote", "--out", "lb2", cwd=tmp_path)  # --top 10
    teams = [row for row in top_rows(default.stdout) if row[0] != "..." and not row[1].startswith("* ours")]
    assert [row[1] for row in teams] == [f"team{i}" for i in range(10)]
    assert ["7", "* ours: third (ref 50000003)", "0.96200"] in top_rows(default.stdout)
    for bad in ("0", "-2", "ten"):
        refused = kfold_here("leaderboard", "-c", "kmnist", "--remote", "--top", bad, "--out", "lb3", cwd=tmp_path)
        assert refused.returncode == 2
        one_error_line(refused, f"argument --top: '{bad}' is not an integer >= 1")
    assert not (tmp_path / "lb3").exists()


def test_submissions_draws_every_public_score_over_time_with_fewer_than_two_local_cvs(fake_kaggle, tmp_path):
    competition = fake_kaggle.add("kmnist")
    for ref, minute, description, public in [(50000001, 0, "one", "0.90000"), (50000002, 60, "two", "0.93000"),
                                             (50000003, 120, "three", None)]:
        on_kaggle(competition, ref, minute, description, public)
    log = tmp_path / "submissions" / "log" / "kmnist.csv"
    append_log(log, {"time": "2024-01-01T00:00:00Z", "competition": "kmnist", "file": "one.csv", "sha256": "a" * 64,
                     "rows": 3, "message": "one", "ref": 50000001, "local_cv": 0.91})
    done = kfold_here("submissions", "-c", "kmnist", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    over_time = log.parent / "kmnist-scores-over-time.png"
    assert f"wrote {over_time.relative_to(tmp_path)}" in done.stdout
    assert over_time.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and over_time.stat().st_size > 10_000
    assert not (log.parent / "kmnist-cv-vs-public.png").exists()
    assert "no CV-vs-public picture: it needs at least 2 submissions with both" in done.stdout
    merged = pd.read_csv(log.parent / "kmnist-submissions.csv")
    assert merged["public_score"].tolist()[:2] == [0.9, 0.93] and np.isnan(merged["public_score"].iloc[2])


def test_the_scores_over_time_picture_draws_each_public_score_in_date_order(tmp_path, monkeypatch):
    from kfold import figures

    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, **kwargs: drawn.append(fig))
    table = pd.DataFrame({"date": ["2024-01-03T00:00:00", "2024-01-01T00:00:00Z", "2024-01-02T12:00:00", "not a date"],
                          "public_score": [0.95, 0.90, np.nan, 0.99], "local_cv": [np.nan, 0.92, 0.94, 0.5],
                          "message": ["c", "a", "b", "d"], "file": ["c.csv", "a.csv", "b.csv", "d.csv"]})
    try:
        assert figures.plot_scores_over_time(table, tmp_path / "t.png", "kmnist")
        ax = drawn[0].axes[0]
        assert ax.lines[0].get_ydata().tolist() == [0.90, 0.95]  # the public scores, oldest first; no date: left out
        cv = next(c for c in ax.collections if "local CV" in c.get_label())
        assert cv.get_offsets()[:, 1].tolist() == [0.92, 0.94]
        assert [line.get_ydata().tolist() for line in ax.lines[1:]] == [[0.92, 0.90]]  # CV to public, where both
        empty = table.assign(public_score=np.nan, local_cv=np.nan)
        assert not figures.plot_scores_over_time(empty, tmp_path / "e.png", "kmnist") and len(drawn) == 1
    finally:
        figures.pyplot().close("all")
