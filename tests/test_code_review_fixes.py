"""The code-competition stack's review findings, each pinned by a test that failed before its fix: a rehearsal
leaves no temporary folder behind and stops at its time limit (A, H), a code submission is never sent twice (B)
nor by two commands at once (C), the wheel cache survives races and damage (E), ``kfold package`` resolves layout
flags as training does (F). The manifest (D), the notebook API's keywords (G), the network guard (I) and the
uploaded copies' local fields: ``test_code_review_inputs.py`` (two files: each under 600 lines).

Fast: one real notebook execution (module-scoped, the kernel run by this interpreter), the loopback fake with a
stand-in kernel runner (no notebook executed), everything else in-process.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kaggle_fake import fake_kaggle  # noqa: F401  (fixture)

from kfold.errors import DataError, UsageError

nbformat = pytest.importorskip("nbformat")


# ---------------------------------------------------------------- A, H: a rehearsal's temporary folders, its time limit

LEAK_CELL = '''# what the kernel sees, and what it writes where a leak would show
import os, tempfile
print("TMPDIR", os.environ.get("TMPDIR"))
print("KFOLD_CACHE", os.environ["KFOLD_CACHE"])
os.makedirs(os.environ["KFOLD_CACHE"], exist_ok=True)
open(os.path.join(os.environ["KFOLD_CACHE"], "decoded-test.npy"), "wb").write(b"\\0" * 64)
print("MKDTEMP", tempfile.mkdtemp(prefix="from-the-notebook-"))'''


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """One execution of a notebook whose first cell is the packaged notebook's own settings cell, then one that
    writes into its cache and temporary folder, then one that sleeps past the whole-notebook deadline; the host's
    TMPDIR is a fresh folder, inspected afterwards."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from kfold.files.notebook import _SETTINGS
    from kfold.flows import rehearse as rh

    base = tmp_path_factory.mktemp("leaks")
    host_tmp = base / "host-tmp"
    host_tmp.mkdir()
    (base / "root" / "working").mkdir(parents=True)
    cells = [_SETTINGS.format(dataset="alice/x-kfold", competition="x", output="submission.csv"), LEAK_CELL,
             "import time\ntime.sleep(120)\nprint('SLEPT')"]
    notebook = base / "leak.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), notebook)
    saved_env, saved_dir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(host_tmp), None
    try:
        started = time.perf_counter()
        run = rh.execute_notebook(notebook, base / "root", python=sys.executable, network="guard", deadline=25)
        seconds = time.perf_counter() - started
    finally:
        tempfile.tempdir = saved_dir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
    return run, seconds, host_tmp


def test_a_rehearsal_leaves_nothing_in_the_hosts_temporary_folder(executed):
    run, _, host_tmp = executed
    assert "decoded-test.npy" not in run.stdout and "MKDTEMP" in run.stdout, run.stdout
    printed = dict(line.split(" ", 1) for line in run.stdout.splitlines() if line.split(" ")[0] in
                   ("TMPDIR", "KFOLD_CACHE", "MKDTEMP"))
    for name in ("TMPDIR", "KFOLD_CACHE", "MKDTEMP"):  # all inside execute_notebook's own folder, not the host's
        assert Path(printed[name]).relative_to(host_tmp).parts[0].startswith("kfold-kernel-"), printed
    assert Path(printed["MKDTEMP"]).parent == Path(printed["TMPDIR"]), printed
    assert not Path(printed["KFOLD_CACHE"]).exists() and not Path(printed["MKDTEMP"]).exists()
    assert sorted(p.name for p in host_tmp.iterdir()) == []  # no kfold-jupyter-*, kfold-cache-*, nothing


def test_a_notebook_past_its_time_limit_stops_in_one_line(executed):
    run, seconds, _ = executed
    assert run.error == "the notebook ran past its time limit of 25 s", run.error
    assert "SLEPT" not in run.stdout and seconds < 100, seconds


def test_rehearse_gives_the_notebook_its_time_limit_and_fails_in_one_line(tmp_path, monkeypatch):
    from packages import write_fake_package

    from kfold.flows import rehearse as rh

    pkg = write_fake_package(tmp_path / "pkg")
    seen = {}

    def fake_execute(notebook, root, **kwargs):
        seen.update(kwargs)
        return rh.Execution(Path(notebook), 1.0, 1.0, "guard", "the notebook ran past its time limit of 7200 s")

    monkeypatch.setattr(rh, "execute_notebook", fake_execute)
    monkeypatch.setattr(rh, "_reference", lambda package, data, tmp, echo: (b"", "the reference"))
    monkeypatch.setattr(rh, "kaggle_tree", lambda root, package, data: None)
    with pytest.raises(DataError) as caught:
        rh.rehearse(pkg, tmp_path, time_limit=2, echo=lambda line: None)
    assert seen["deadline"] == 7200
    with pytest.raises(DataError):
        rh.rehearse(pkg, tmp_path, time_limit=0.0001, echo=lambda line: None)
    assert seen["deadline"] == rh.MIN_DEADLINE  # a tiny limit: the notebook still finishes, the projection judges
    message = str(caught.value)
    assert "\n" not in message and "ran past its time limit of 7200 s (time_limit 2 h)" in message, message


# ---------------------------------------------------------------- B: a code submission is never sent twice

def _stand_in_runner(notebook, root):
    """The fake's kernel runner without a notebook: the tiny package's rule applied to the sample it finds."""
    from code_packages import predictions

    sample = next((Path(root) / "input").rglob("sample_submission.csv"))
    ids = [int(line.split(",")[0]) for line in sample.read_text().splitlines()[1:]]
    (Path(root) / "working").mkdir(exist_ok=True)
    (Path(root) / "working" / "submission.csv").write_text(predictions(ids))
    return True, "", "[]"


@pytest.fixture
def code_fake(tmp_path):
    """The loopback fake (``kaggle_fake.fake_kaggle``) with a code competition, a stand-in kernel runner and a
    hand-made package for it; returns (fake, competition, package, log)."""
    pytest.importorskip("kaggle")
    from code_packages import make_code_competition, scorer, write_code_package
    from kaggle_fake import USERNAME

    return lambda fake: _code_setup(fake, tmp_path, make_code_competition, scorer, write_code_package, USERNAME)


def _code_setup(fake, tmp_path, make_code_competition, scorer, write_code_package, user):
    files = make_code_competition(tmp_path / "comp")
    competition = fake.add("tiny-code-comp", code_only=True, public_files=files["public"],
                           hidden_files=files["hidden"], scorer=scorer(files["solution"]))
    fake.dataset_polls_unknown = fake.dataset_polls_to_ready = fake.kernel_polls_queued = 0
    fake.executor = _stand_in_runner
    pkg = write_code_package(tmp_path / "pkg", "tiny-code-comp", user)
    return competition, pkg, tmp_path / "log.csv"


def _submit(pkg, log, lines):
    from kfold.flows.code_submission import submit_code

    return submit_code(pkg, "tiny-code-comp", "tiny first", poll_interval=0.05, log=log, echo=lines.append)


def _accepted_then_interrupted(original):
    def submit_code(self, *args, **kwargs):
        original(self, *args, **kwargs)  # Kaggle accepted it ...
        raise KeyboardInterrupt  # ... and the command stopped before it recorded that
    return submit_code


def _failed_before_kaggle(original):
    def submit_code(self, *args, **kwargs):
        raise DataError("kaggle: submitting kernel: the network is unreachable")
    return submit_code


@pytest.mark.parametrize("trouble", ["no ref in the reply", "interrupted after Kaggle accepted",
                                     "failed before reaching Kaggle"])
def test_a_code_submission_is_sent_once_whatever_stops_the_first_run(fake_kaggle, code_fake, monkeypatch, trouble):
    from kfold import kaggle_api
    from kfold.files.submission_log import read_log
    from kfold.files.submit_state import STATE_FILE, read_state

    competition, pkg, log = code_fake(fake_kaggle)
    lines: list[str] = []
    if trouble == "no ref in the reply":
        fake_kaggle.code_submission_ref = 0
        first = _submit(pkg, log, lines)
        assert first.ref == competition.submissions[0]["ref"]  # found among the submissions
    else:
        wrap = _accepted_then_interrupted if trouble.startswith("interrupted") else _failed_before_kaggle
        with monkeypatch.context() as patch:
            patch.setattr(kaggle_api.Client, "submit_code", wrap(kaggle_api.Client.submit_code))
            with pytest.raises((KeyboardInterrupt, DataError)):
                _submit(pkg, log, lines)
        state = read_state(pkg / STATE_FILE)
        assert state.submit_version == 1 and not state.submitted  # the marker was recorded before the call
    for _ in range(2):  # the same command again, twice
        again = _submit(pkg, log, lines)
        assert again.ref == competition.submissions[0]["ref"], lines
    assert len(fake_kaggle.calls("CreateCodeSubmission")) == 1
    assert len(competition.submissions) == 1, lines
    rows = read_log(log)
    assert len(rows) == 1 and int(rows["ref"].iloc[0]) == competition.submissions[0]["ref"], rows
    assert read_state(pkg / STATE_FILE).submitted and read_state(pkg / STATE_FILE).logged
    assert any(line.startswith("already submitted as ref") for line in lines), lines


def test_a_state_written_before_the_submission_marker_still_reads(tmp_path):
    from kfold.files.submit_state import read_state

    old = {"format": "kfold-submit-state/1", "competition": "c", "dataset": "a/b-kfold", "kernel": "a/b-kfold-predict",
           "content_hash": "", "dataset_ready": False, "kernel_hash": "", "kernel_version": 3, "kernel_status": "COMPLETE",
           "output_sha256": "", "ref": 7, "logged": True}
    (tmp_path / "s.json").write_text(json.dumps(old))
    state = read_state(tmp_path / "s.json")
    assert state.submitted and state.ref == 7 and state.submit_version is None
    (tmp_path / "s.json").write_text(json.dumps({**old, "ref": None, "submit_started": "yesterday"}))
    with pytest.raises(DataError, match="submit_started"):
        read_state(tmp_path / "s.json")


# ---------------------------------------------------------------- C: one kfold submit --code per package at a time

def test_a_second_submit_on_the_same_package_is_refused_while_one_runs(tmp_path):
    from code_packages import write_code_package
    from test_kaggle_loop import kfold, one_error_line

    from kfold.files.submit_state import LOCK_FILE, STATE_FILE, submit_lock
    from kfold.flows.code_submission import submit_code

    pkg = write_code_package(tmp_path / "pkg", "tiny-code-comp", "alice")
    with submit_lock(pkg):  # the first command, still running
        with pytest.raises(UsageError) as caught:
            submit_code(pkg, "tiny-code-comp", "second", log=tmp_path / "log.csv", echo=lambda line: None)
        assert "another kfold submit --code is working on this package" in str(caught.value)
        done = kfold("submit", "--code", "--package", pkg, "-c", "tiny-code-comp", "-m", "second", cwd=tmp_path,
                     env={"KAGGLE_USERNAME": "alice", "KAGGLE_KEY": "x" * 32})
        assert done.returncode == 2, done.stderr
        one_error_line(done, "another kfold submit --code is working on this package", LOCK_FILE)
    assert not (pkg / STATE_FILE).exists() and not (tmp_path / "log.csv").exists()
    with submit_lock(pkg):  # released with its holder: no stale lock
        pass


def test_the_submit_lock_is_never_taken_through_a_link(tmp_path):
    from kfold.files.submit_state import LOCK_FILE, submit_lock

    (tmp_path / "elsewhere").write_text("keep")
    (tmp_path / LOCK_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="cannot open the submit lock"):
        with submit_lock(tmp_path):
            pass
    assert (tmp_path / "elsewhere").read_text() == "keep"


# ---------------------------------------------------------------- E: the wheel cache

@pytest.fixture
def fake_pip(monkeypatch):
    """``pip wheel`` replaced by a writer of a small sound wheel (counted); every other command runs as usual."""
    import subprocess
    import zipfile

    real, builds = subprocess.run, []

    def run(command, *args, **kwargs):
        if isinstance(command, list) and command[1:4] == ["-m", "pip", "wheel"]:
            out = Path(command[command.index("-w") + 1])
            out.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(out / "kfold_kaggle-0.0-py3-none-any.whl", "w") as archive:
                archive.writestr("kfold/__init__.py", "x = 1\n")
                archive.writestr("kfold_kaggle-0.0.dist-info/RECORD", "")
            builds.append(out)
            return subprocess.CompletedProcess(command, 0, "", "")
        return real(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    return builds


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "a bad member", "empty", "an empty zip"])
def test_a_damaged_cached_wheel_is_built_again(tmp_path, fake_pip, damage):
    import zipfile

    from kfold.flows.sandbox import build_kfold_wheel

    wheel = build_kfold_wheel(tmp_path / "cache", echo=lambda line: None)
    assert build_kfold_wheel(tmp_path / "cache", echo=lambda line: None) == wheel and len(fake_pip) == 1  # reused
    data = wheel.read_bytes()
    if damage == "truncated":
        wheel.write_bytes(data[: len(data) // 2])
    elif damage == "not a zip":
        wheel.write_bytes(b"<html>proxy error</html>")
    elif damage == "a bad member":  # the directory reads, a member's bytes do not match its CRC
        wheel.write_bytes(data.replace(b"x = 1", b"x = 2"))
    elif damage == "empty":
        wheel.write_bytes(b"")
    else:
        wheel.write_bytes(b"PK\x05\x06" + bytes(18))  # a sound but empty zip: no wheel in it
    lines: list[str] = []
    again = build_kfold_wheel(tmp_path / "cache", echo=lines.append)
    assert len(fake_pip) == 2, lines  # built again
    with zipfile.ZipFile(again) as archive:
        assert archive.testzip() is None


def test_the_wheel_is_staged_under_a_unique_name_never_through_a_planted_link(tmp_path, fake_pip):
    from kfold.flows.sandbox import build_kfold_wheel

    wheel = build_kfold_wheel(tmp_path / "cache", echo=lambda line: None)
    wheel.unlink()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (wheel.parent / f".{wheel.name}.tmp").symlink_to(victim)  # the old fixed staging name, taken by someone else
    again = build_kfold_wheel(tmp_path / "cache", echo=lambda line: None)
    assert victim.read_text() == "keep me" and again.is_file() and not again.is_symlink()
    assert sorted(p.name for p in again.parent.iterdir()) == sorted([f".{wheel.name}.tmp", wheel.name])


# ---------------------------------------------------------------- F: kfold package resolves layout flags as training

@pytest.fixture
def comp_tree(tmp_path, monkeypatch):
    """The current directory holds ``comp/`` (a labels CSV, image folders) and a CSV outside it."""
    monkeypatch.chdir(tmp_path)
    comp = Path("comp")
    (comp / "imgs").mkdir(parents=True)
    (comp / "test-imgs").mkdir()
    (comp / "mytrain.csv").write_text("Id,Category\n")
    Path("outside.csv").write_text("Id,Category\n")
    return comp


@pytest.mark.parametrize("given, expected", [
    ({"train_csv": "comp/mytrain.csv", "image_dir": "comp/imgs"}, {"train_csv": "mytrain.csv", "image_dir": "imgs"}),
    ({"train_csv": "mytrain.csv", "test_dir": "test-imgs"}, {"train_csv": "mytrain.csv", "test_dir": "test-imgs"}),
    ({"train_csv": "ABS/comp/mytrain.csv"}, {"train_csv": "mytrain.csv"}),
    ({"image_dir": "./comp/imgs/", "id_column": "Id"}, {"image_dir": "imgs", "id_column": "Id"}),
])
def test_package_layout_flags_resolve_as_training_does(comp_tree, given, expected):
    from kfold.flows.package import _load_options

    given = {k: v.replace("ABS", str(Path.cwd())) for k, v in given.items()}
    assert _load_options(given, comp_tree) == expected


@pytest.mark.parametrize("given, words", [
    ({"train_csv": "outside.csv"}, "outside the competition folder"),
    ({"train_csv": "comp/../outside.csv"}, "outside the competition folder"),
    ({"train_csv": "nothing.csv"}, "train_csv='nothing.csv': no such file"),
    ({"image_dir": "comp/mytrain.csv"}, "image_dir='comp/mytrain.csv': no such folder"),
])
def test_package_layout_flags_outside_or_missing_are_one_line(comp_tree, given, words):
    from kfold.flows.package import _load_options

    with pytest.raises(UsageError) as caught:
        _load_options(given, comp_tree)
    assert words in str(caught.value) and "\n" not in str(caught.value), str(caught.value)




# ---------------------------------------------------------------- the rehearsal's input is read-only, as on Kaggle

@pytest.mark.parametrize("write", ["append to the sample", "a new file in a data folder", "a packaged model"])
def test_a_notebook_that_writes_into_its_input_fails_the_rehearsal(tmp_path, monkeypatch, write):
    from packages import write_fake_package

    from kfold.flows import rehearse as rh

    pkg = write_fake_package(tmp_path / "pkg")
    data = tmp_path / "comp"
    (data / "test").mkdir(parents=True)
    (data / "sample_submission.csv").write_text("Id,Category\n0,0\n")

    def fake_execute(notebook, root, **kwargs):
        inputs = Path(root) / "input"
        if write == "append to the sample":
            with open(inputs / "competitions/kmnist-practice/sample_submission.csv", "a") as fh:
                fh.write("1,0\n")
        elif write == "a new file in a data folder":
            (inputs / "competitions/kmnist-practice/test/cache.npy").write_bytes(b"x")
        else:
            with open(inputs / "datasets/alice/kmnist-kfold-models/models/run/config.json", "a") as fh:
                fh.write(" ")
        (Path(root) / "working" / "submission.csv").write_text("Id,Category\n0,3\n1,5\n")
        return rh.Execution(Path(notebook), 1.0, 1.0, "guard", None)

    monkeypatch.setattr(rh, "execute_notebook", fake_execute)
    monkeypatch.setattr(rh, "_reference", lambda package, data, tmp, echo: (b"Id,Category\n0,3\n1,5\n", "ref"))
    with pytest.raises(DataError) as caught:
        rh.rehearse(pkg, data, echo=lambda line: None)
    message = str(caught.value)
    assert "the notebook changed files under" in message and "read-only" in message and "\n" not in message


def test_a_notebook_that_leaves_its_input_alone_passes(tmp_path, monkeypatch):
    from packages import write_fake_package

    from kfold.flows import rehearse as rh

    pkg = write_fake_package(tmp_path / "pkg")
    data = tmp_path / "comp"
    data.mkdir()
    (data / "sample_submission.csv").write_text("Id,Category\n0,0\n")

    def fake_execute(notebook, root, **kwargs):
        (Path(root) / "working" / "submission.csv").write_text("Id,Category\n0,3\n1,5\n")
        return rh.Execution(Path(notebook), 1.0, 1.0, "guard", None)

    monkeypatch.setattr(rh, "execute_notebook", fake_execute)
    monkeypatch.setattr(rh, "_reference", lambda package, data, tmp, echo: (b"Id,Category\n0,3\n1,5\n", "ref"))
    assert rh.rehearse(pkg, data, echo=lambda line: None).identical
