"""Issue 14, data loss: outputs never replace inputs; files follow the umask; a replaced file keeps its mode."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from kfold.commands import ensemble as ensemble_cli
from kfold.files.atomic import write_text
from kfold.errors import run_cli
from kfold.files.probs import write_probs

CLASSES = ["a", "b", "c"]


def _probs(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    p = rng.random((20, 3))
    write_probs(path, np.arange(20), p / p.sum(1, keepdims=True), CLASSES, {"kind": "test", "run": "r", "fold": 0})
    return path


def _snapshot(paths):
    return {p: (p.read_bytes() if p.is_file() else None) for p in paths}


@pytest.mark.parametrize("case", ["side_file_is_input", "out_is_input", "out_symlink_to_input", "out_hardlink_to_input",
                                  "side_file_hardlink", "report_file_is_input", "relative_spelling"])
def test_ensemble_refuses_to_overwrite_an_input(tmp_path, capsys, case, monkeypatch):
    a = _probs(tmp_path / "a.npz", 0)
    b = _probs(tmp_path / "b.npz", 1)
    inputs = [a, b]
    out = tmp_path / "sub.csv"
    extra = []
    if case == "side_file_is_input":  # ensembling an earlier ensemble's .probs.npz into a submission of the same stem
        inputs = [_probs(tmp_path / "sub.probs.npz", 2), a]
    elif case == "out_is_input":
        sub = tmp_path / "in.csv"
        sub.write_text("Id,Category\n" + "".join(f"{i},{i % 3}\n" for i in range(20)))
        inputs, out = [sub, sub], sub
        extra = ["--method", "vote", "--num-classes", "3"]
    elif case == "out_symlink_to_input":
        out = tmp_path / "link.csv"
        sub = tmp_path / "in.csv"
        sub.write_text("Id,Category\n" + "".join(f"{i},{i % 3}\n" for i in range(20)))
        out.symlink_to(sub)
        inputs = [sub, a]
        extra = ["--method", "vote"]
    elif case == "out_hardlink_to_input":
        sub = tmp_path / "in.csv"
        sub.write_text("Id,Category\n" + "".join(f"{i},{i % 3}\n" for i in range(20)))
        os.link(sub, tmp_path / "hard.csv")
        out = tmp_path / "hard.csv"
        inputs = [sub, a]
        extra = ["--method", "vote"]
    elif case == "side_file_hardlink":
        os.link(a, tmp_path / "sub.probs.npz")
    elif case == "report_file_is_input":
        report = tmp_path / "rep"
        report.mkdir()
        inputs = [_probs(report / "inputs.csv.npz", 3), a]
        (report / "inputs.csv").write_bytes(b"keep me")
        inputs.append(report / "inputs.csv")
        extra = ["--report", str(report), "--method", "vote", "--num-classes", "3"]
        # inputs.csv is not a valid input: the run fails either way, and nothing may be replaced
    elif case == "relative_spelling":
        monkeypatch.chdir(tmp_path)
        inputs = [Path("sub.probs.npz"), a]
        _probs(tmp_path / "sub.probs.npz", 4)
        out = Path(".") / "x" / ".." / "sub.csv"
    watched = [Path(p) for p in inputs] + [tmp_path / "sub.probs.npz"]
    before = _snapshot(watched)
    code = run_cli(ensemble_cli.main, [*map(str, inputs), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert _snapshot(watched) == before


def test_ensemble_chain_of_ensembles_to_a_new_name_works(tmp_path, capsys):
    a, b = _probs(tmp_path / "a.npz", 0), _probs(tmp_path / "b.npz", 1)
    assert run_cli(ensemble_cli.main, [str(a), str(b), "--out", str(tmp_path / "e1.csv")]) == 0
    assert run_cli(ensemble_cli.main, [str(tmp_path / "e1.probs.npz"), str(a), "--out", str(tmp_path / "e2.csv")]) == 0
    assert (tmp_path / "e2.probs.npz").is_file()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077, 0o027])
def test_new_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "f.txt", "x")
        _probs(tmp_path / "p.npz", 0)
    finally:
        os.umask(old)
    for name in ("f.txt", "p.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600, 0o640])
def test_replaced_file_keeps_its_mode(tmp_path, mode):
    path = tmp_path / "f.csv"
    path.write_text("old")
    os.chmod(path, mode)
    old = os.umask(0o077)
    try:
        write_text(path, "new")
    finally:
        os.umask(old)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_replacing_a_symlink_does_not_write_through_it(tmp_path):
    target = tmp_path / "outside.txt"
    target.write_text("precious")
    link = tmp_path / "out.txt"
    link.symlink_to(target)
    write_text(link, "new")
    assert target.read_text() == "precious"
    assert not link.is_symlink() and link.read_text() == "new"
