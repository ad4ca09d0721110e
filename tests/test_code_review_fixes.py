"""The code-competition stack's review findings, each pinned by a test that failed before its fix: a rehearsal
leaves no temporary folder behind and stops at its time limit (A, H), a code submission is never sent twice (B)
nor by two commands at once (C), the manifest is validated whole (D), the wheel cache survives races and damage
(E), ``kfold package`` resolves layout flags as training does (F), the notebook API checks its keywords (G) and
the network guard covers every lookup and send (I).

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
    message = str(caught.value)
    assert "\n" not in message and "ran past its time limit of 7200 s (time_limit 2 h)" in message, message
