"""kfold rehearse: the throwaway environment holds Kaggle's image and not kfold, the network block really blocks
(namespace and guard, against a control connection that works outside), the notebook's own hash check stops a
tampered or truncated dataset, a larger hidden test set is reproduced byte for byte, and differences and time
overruns are reported."""
from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from packages import bigger_test_set, train_tiny_run

from kfold.commands.main import main as kfold_main
from kfold.errors import DataError, UsageError
from kfold.files import package as pk
from kfold.flows import rehearse as rh
from kfold.flows import sandbox

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.slow
NAMESPACE = sandbox.network_mode("auto") == "namespace"


@pytest.fixture(scope="module")
def pkg(tmp_path_factory) -> tuple[Path, Path]:
    """(package, competition) of a tiny real run, packaged without rehearsal."""
    from kfold.flows.package import package

    folder = tmp_path_factory.mktemp("rehearse")
    run, comp = train_tiny_run(folder)
    package(run and [run], "toy-practice", "alice", folder / "pkg", threads=1, rehearse=False, echo=lambda line: None)
    return folder / "pkg", comp


def test_the_environment_holds_kaggles_image_but_not_kfold(tmp_path):
    env = sandbox.kaggle_environment(tmp_path / "env")
    sandbox.check_environment(env)

    def imports(module: str) -> bool:
        probe = subprocess.run([str(env.python), "-c", f"import {module}"], cwd=tmp_path, env=sandbox.clean_env(),
                               capture_output=True)
        return probe.returncode == 0

    assert importlib.util.find_spec("matplotlib_fontja") is not None  # installed here: its absence there means something
    assert not imports("kfold") and not imports("matplotlib_fontja")
    for module in ("torch", "numpy", "pandas", "sklearn", "albumentations", "kornia", "safetensors", "PIL", "cv2",
                   "ipykernel", "pip"):
        assert imports(module), module
    assert "kfold-kaggle" not in env.distributions and "matplotlib-fontja" not in env.distributions
    assert "torch" in env.distributions and set(env.differing) <= set(pk.kaggle_image())


def _outside_address() -> str | None:
    """A non-loopback address of this machine (a control connection reaches it without the block), or None."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def _network_notebook(path: Path, address: str, port: int) -> Path:
    cell = f'''# try the network from inside: an outside address, a name lookup, and loopback
import socket
try:
    socket.create_connection(({address!r}, {port}), timeout=5).close()
    print("CONNECTED outside")
except OSError as exc:
    print("BLOCKED outside", exc)
try:
    socket.getaddrinfo("example.com", 443)
    print("RESOLVED name")
except OSError as exc:
    print("BLOCKED name", exc)
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
socket.create_connection(server.getsockname(), timeout=5).close()
print("LOOPBACK ok")'''
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), path)
    return path


@pytest.mark.parametrize("mode", ["namespace", "guard"])
def test_the_network_block_really_blocks(tmp_path, mode):
    if mode == "namespace" and not NAMESPACE:
        pytest.skip("unshare -n does not work on this machine")
    address = _outside_address()
    if address is None:
        pytest.skip("no non-loopback address to try")
    server = socket.create_server((address, 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    socket.create_connection((address, port), timeout=5).close()  # control: reachable without the block
    (tmp_path / "root" / "working").mkdir(parents=True)
    run = rh.execute_notebook(_network_notebook(tmp_path / "net.ipynb", address, port), tmp_path / "root",
                              network=mode, timeout=60)
    server.close()
    assert run.network == mode and run.error is None
    assert "BLOCKED outside" in run.stdout and "CONNECTED" not in run.stdout, run.stdout
    assert "BLOCKED name" in run.stdout and "LOOPBACK ok" in run.stdout, run.stdout
    if mode == "guard":
        assert "kfold rehearse's guard" in run.stdout


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


def test_kmnist_practice_competition_is_reproduced_offline(kmnist_comp, tmp_path):
    """The README's check: a small real run on ../shared/data/kmnist-comp, packaged, rehearsed offline."""
    import kfold

    run = kfold.train(str(kmnist_comp), "lenet5", k=2, out=str(tmp_path / "run"), epochs=1, threads=1, device="cpu",
                      progress=False)
    result = kfold.package([run.dir.path], "kmnist-practice", "alice", tmp_path / "pkg", threads=1)
    assert result.rehearsal.identical and result.rehearsal.rows == 3000, result.rehearsal.lines
    assert result.rehearsal.lines[0].startswith("network: blocked")


def test_kfolds_wheel_is_built_from_this_source_with_reproducible_bytes(tmp_path):
    import zipfile

    first = sandbox.build_kfold_wheel(tmp_path / "a", echo=lambda line: None)
    second = sandbox.build_kfold_wheel(tmp_path / "b", echo=lambda line: None)
    assert first.read_bytes() == second.read_bytes()  # the same source: the same dataset hash, no new upload
    names = zipfile.ZipFile(first).namelist()
    assert "kfold/files/kaggle-image.txt" in names and "kfold/flows/offline.py" in names
    assert not any(name.startswith("tests/") for name in names)
    assert sandbox.build_kfold_wheel(tmp_path / "a", echo=lambda line: None) == first  # cached
    assert not (Path(__file__).parents[1] / "build").exists()  # the checkout got no build folder


def test_an_image_file_competition_with_probabilities_is_reproduced_offline(tmp_path):
    """Aerial-Cactus-shaped: hex-named RGB JPEGs in test/, string Ids, a binary probability column (AUC)."""
    import io
    import zipfile

    import kfold
    from test_kaggle_shapes import aerial_cactus

    archive, _, _ = aerial_cactus()
    comp = tmp_path / "aerial-cactus"
    zipfile.ZipFile(io.BytesIO(archive)).extractall(comp)
    run = kfold.train(str(comp), "lenet5", k=2, out=str(tmp_path / "run"), epochs=1, threads=1, device="cpu",
                      progress=False)
    result = kfold.package([run.dir.path], "aerial-cactus-identification", "alice", tmp_path / "pkg", threads=1)
    assert result.rehearsal.identical, result.rehearsal.lines
    header = (tmp_path / "pkg" / "local" / "submission.csv").read_text().splitlines()[0]
    assert header == "id,has_cactus" and result.manifest["schema"]["target"] == "binary"
    assert result.manifest["input"] == {"image_size": 32, "channels": 3}
