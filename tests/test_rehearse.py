"""kfold rehearse on one tiny real package: the notebook's own hash check stops a tampered or truncated dataset, a
larger hidden test set is reproduced byte for byte (also behind the socket guard), differences and time overruns are
reported, and hostile arguments and packages are refused. The throwaway environment, the network block, kfold's wheel
and real competitions rehearsed offline are ``tests/test_rehearse_sandbox.py``."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packages import bigger_test_set, train_tiny_run

from kfold.commands.main import main as kfold_main
from kfold.errors import DataError, UsageError
from kfold.files import package as pk
from kfold.flows import rehearse as rh

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pkg(tmp_path_factory) -> tuple[Path, Path]:
    """(package, competition) of a tiny real run, packaged without rehearsal."""
    from kfold.flows.package import package

    folder = tmp_path_factory.mktemp("rehearse")
    run, comp = train_tiny_run(folder)
    package(run and [run], "toy-practice", "alice", folder / "pkg", threads=1, rehearse=False, echo=lambda line: None)
    return folder / "pkg", comp


def _tamper(link: Path) -> None:
    data = bytearray(link.read_bytes())
    data[-1] ^= 1
    link.unlink()
    link.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, words", [(_tamper, "sha256 differs from the manifest (a tampered dataset)"),
                                           (Path.unlink, "missing (a truncated dataset")])
def test_the_notebook_stops_a_tampered_or_truncated_dataset_in_one_line(pkg, tmp_path, damage, words):
    package = pk.read_package(pkg[0])
    rh.kaggle_tree(tmp_path / "kaggle", package, pkg[1])
    weights = tmp_path / "kaggle/input/datasets/alice/toy-practice-kfold/models/run/fold1/model.safetensors"
    damage(weights)
    run = rh.execute_notebook(package.notebook, tmp_path / "kaggle", timeout=120)
    assert run.error == f"error: {weights}: {words}" or (run.error.startswith("error: ") and words in run.error), run.error
    assert not (tmp_path / "kaggle/working/submission.csv").exists()
    assert "installed from" not in run.stdout  # stopped before pip ran


def test_a_larger_hidden_test_set_is_reproduced_byte_for_byte(pkg, tmp_path):
    hidden = bigger_test_set(pkg[1], tmp_path / "hidden", 45)
    result = rh.rehearse(pkg[0], hidden, hidden_rows=4500, echo=lambda line: None)
    assert result.identical and result.rows == 45 and result.reference == f"a local prediction on {hidden}"
    assert result.hidden_rows == 4500 and result.projected_seconds > result.execution.seconds
    assert "projected to 4,500 hidden rows" in result.lines[4]
    assert result.lines[3].startswith("versions: ") and "torch" in result.lines[3]


def test_the_guard_rehearsal_is_byte_identical_too(pkg):
    result = rh.rehearse(pkg[0], network="guard", echo=lambda line: None)
    assert result.identical and result.ok and result.lines[0] == "network: blocked (socket guard in the environment)"


def test_the_command_reports_a_difference_and_an_overrun_and_exits_1(pkg, monkeypatch, capsys):
    local = (pkg[0] / "local" / "submission.csv").read_bytes().decode()
    lines = local.splitlines(keepends=True)
    changed = lines[:2] + [lines[2].rsplit(",", 1)[0] + ",99\n"] + lines[3:]
    monkeypatch.setattr(rh, "_reference", lambda *a: ("".join(changed).encode(), "the test's reference"))
    code = kfold_main(["rehearse", str(pkg[0]), "--time-limit", "0.0001", "--hidden-rows", "2000000"])
    out = capsys.readouterr().out
    assert code == 1
    assert "DIFFERS from the test's reference: 1 row differs; first line 3: expected '1,99', got '1," in out, out
    assert "EXCEEDS the limit" in out


@pytest.mark.parametrize("expected, got, count, first", [
    (b"Id,C\n0,1\n1,2\n", b"Id,C\n0,1\n1,2\n", 0, None),
    (b"Id,C\n0,1\n1,2\n", b"Id,C\n0,1\n1,3\n", 1, "line 3: expected '1,2', got '1,3'"),
    (b"Id,C\n0,1\n1,2\n", b"Id,C\n0,2\n1,3\n", 2, "line 2: expected '0,1', got '0,2'"),
    (b"Id,C\n0,1\n1,2\n", b"Id,C\n0,1\n", 1, "line 3: expected '1,2', got none"),
    (b"Id,C\n0,1\n", b"Id,C\r\n0,1\r\n", 0, "the same lines, other bytes (line endings or a final newline)"),
    (b"Id,C\n0,1\n", b"ImageId,C\n0,1\n", 0, "line 1: expected 'Id,C', got 'ImageId,C'"),
])
def test_compare_outputs(expected, got, count, first):
    assert rh.compare_outputs(expected, got) == (count, first)


@pytest.mark.parametrize("kwargs, words", [
    ({"time_limit": 0}, "time_limit=0"), ({"time_limit": -1}, "time_limit=-1"), ({"time_limit": 100}, "time_limit=100"),
    ({"time_limit": float("nan")}, "time_limit=nan"), ({"time_limit": True}, "time_limit=True"),
    ({"hidden_rows": 0}, "hidden_rows=0"), ({"hidden_rows": 2.5}, "hidden_rows=2.5"),
    ({"network": "off"}, "network='off'"), ({"data": "/nonexistent"}, "not a competition folder"),
])
def test_hostile_rehearsal_arguments(pkg, kwargs, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(".", r"\.")):
        rh.rehearse(pkg[0], **{"data": pkg[1], **kwargs})


def test_a_package_without_its_local_data_needs_data(pkg, tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(pkg[0], copy)
    (copy / "local" / pk.LOCAL_INFO).unlink()
    with pytest.raises(UsageError, match="does not say which competition folder"):
        rh.rehearse(copy)


def test_a_tampered_package_is_refused_before_anything_runs(pkg, tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(pkg[0], copy)
    (copy / "dataset/models/run/fold0/model.safetensors").write_bytes(b"x")
    with pytest.raises(DataError, match="model.safetensors: sha256"):
        rh.rehearse(copy, pkg[1])
