"""The rehearsal mounts the notebook's inputs read-only, as Kaggle mounts /kaggle/input (prevention, not only the
before/after comparison): in the network namespace, a private mount namespace bind-mounts every link target under
``input/`` read-only for the notebook alone. Where mounts are not allowed (no root, no user namespaces) the
comparison after the run remains (tests/test_code_review_fixes.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kfold.flows import rehearse as rh
from kfold.flows.sandbox import network_command, read_only_works



def _machine_mounts() -> bool:
    """Whether this machine lets a new mount namespace bind-mount a folder read-only (probed without kfold)."""
    import shutil
    import tempfile

    if not (shutil.which("unshare") and shutil.which("mount")):
        return False
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(["unshare", "-n", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
                               f"mount -o remount,bind,ro {folder} && ! touch {folder}/x 2>/dev/null"],
                              capture_output=True)
        return done.returncode == 0


MOUNTS = _machine_mounts()
needs_mounts = pytest.mark.skipif(not MOUNTS, reason="no mount namespace here (needs root or user namespaces)")


def test_kfold_finds_what_the_machine_allows():
    assert read_only_works() == MOUNTS


def _tree(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A competition folder and a package dataset elsewhere, linked into root/input as the rehearsal links them."""
    data, dataset, root = tmp_path / "comp", tmp_path / "pkg" / "dataset", tmp_path / "run" / "root"
    (data / "test").mkdir(parents=True)
    (data / "test" / "0.png").write_bytes(b"png")
    (data / "sample_submission.csv").write_text("Id,Category\n0,3\n")
    (dataset / "models").mkdir(parents=True)
    (dataset / "models" / "model.safetensors").write_bytes(b"weights")
    competition = root / "input" / "competitions" / "practice"
    competition.mkdir(parents=True)
    for entry in data.iterdir():
        (competition / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    (root / "input" / "datasets" / "alice" / "models").mkdir(parents=True)
    (root / "input" / "datasets" / "alice" / "models" / "model.safetensors").symlink_to(
        dataset / "models" / "model.safetensors")
    (root / "working").mkdir()
    before = {p: p.read_bytes() for p in (*data.rglob("*"), *dataset.rglob("*")) if p.is_file()}
    return data, root, before


def test_the_read_only_paths_are_the_link_targets_without_nesting_or_the_working_root(tmp_path):
    data, root, _ = _tree(tmp_path)
    (root / "input" / "competitions" / "practice" / "inner").symlink_to(data / "test" / "0.png")  # inside a target
    (root / "input" / "competitions" / "practice" / "up").symlink_to(tmp_path, target_is_directory=True)  # holds root
    targets = rh._input_targets(root)
    assert targets == tuple(sorted(os.path.realpath(p) for p in (
        data / "test", data / "sample_submission.csv", tmp_path / "pkg" / "dataset" / "models" / "model.safetensors")))


@needs_mounts
@pytest.mark.parametrize("write", ["append", "truncate", "new file in a linked folder", "remove", "chmod"])
def test_a_write_into_a_read_only_path_fails_and_nothing_changes(tmp_path, write):
    data, root, before = _tree(tmp_path)
    code = {"append": "open(p + '/sample_submission.csv', 'a').write('1,0\\n')",
            "truncate": "open(p + '/sample_submission.csv', 'w').close()",
            "new file in a linked folder": "open(p + '/test/cache.npy', 'wb').write(b'x')",
            "remove": "os.remove(p + '/test/0.png')",
            "chmod": "os.chmod(p + '/sample_submission.csv', 0o777)"}[write]
    p = str(root / "input" / "competitions" / "practice")
    script = f"import errno, os\np = {p!r}\ntry:\n    {code}\nexcept OSError as exc:\n    raise SystemExit(exc.errno)\n"
    done = subprocess.run(network_command("namespace", [sys.executable, "-c", script], rh._input_targets(root)),
                          capture_output=True, text=True, timeout=60)
    import errno

    assert done.returncode == errno.EROFS, done.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert not (data / "test" / "cache.npy").exists()
    (data / "test" / "after.txt").write_text("x")  # the mounts were private to the namespace: writable here


@needs_mounts
def test_a_notebook_that_writes_into_its_input_fails_in_the_rehearsal_and_the_input_is_unchanged(tmp_path):
    data, root, before = _tree(tmp_path)
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nroot = os.environ['KFOLD_KAGGLE_ROOT']\n"
                                  "open(root + '/working/submission.csv', 'w').write('Id,Category\\n0,3\\n')\n"
                                  "open(root + '/input/competitions/practice/sample_submission.csv', 'a').write('1,0\\n')")]),
        notebook)
    run = rh.execute_notebook(notebook, root, python=sys.executable, network="namespace", deadline=120)
    assert run.network == "namespace" and len(run.read_only) == 3
    assert run.error is not None and "Read-only file system" in run.error
    assert (root / "working" / "submission.csv").read_text() == "Id,Category\n0,3\n"  # working/ stays writable
    assert {p: p.read_bytes() for p in before} == before
