"""kfold rehearse's sandbox: the throwaway environment holds Kaggle's image and not kfold, the network block really
blocks (namespace and guard, against a control connection that works outside), kfold's wheel is built from this
source with reproducible bytes, and real competitions (the README's kmnist-comp check, an Aerial-Cactus-shaped image
file competition with probabilities) are trained, packaged and reproduced offline. The rehearsals of one shared tiny
package are ``tests/test_rehearse.py``: two files, so that pytest-xdist runs them side by side."""
from __future__ import annotations

import importlib.util
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from kfold.files import package as pk
from kfold.flows import rehearse as rh
from kfold.flows import sandbox

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.slow
NAMESPACE = sandbox.network_mode("auto") == "namespace"


def test_the_environment_holds_kaggles_image_but_not_kfold(tmp_path):
    env = sandbox.kaggle_environment(tmp_path / "env")
    sandbox.check_environment(env)

    def imports(*modules: str) -> dict[str, bool]:
        """Which of ``modules`` one interpreter of the environment imports (each tried in turn, a failure printed
        and the next tried): one start of the interpreter, torch imported once, instead of one per module."""
        code = ("import importlib, sys\nfor name in sys.argv[1:]:\n    try:\n        importlib.import_module(name)\n"
                "    except Exception as exc:\n        print('FAILED', name, type(exc).__name__, exc)\n"
                "    else:\n        print('IMPORTED', name)\n")
        probe = subprocess.run([str(env.python), "-c", code, *modules], cwd=tmp_path, env=sandbox.clean_env(),
                               capture_output=True, text=True)
        assert probe.returncode == 0, probe.stderr
        return {module: f"IMPORTED {module}" in probe.stdout.splitlines() for module in modules}

    assert importlib.util.find_spec("matplotlib_fontja") is not None  # installed here: its absence there means something
    assert imports("kfold") == {"kfold": False} and imports("matplotlib_fontja") == {"matplotlib_fontja": False}
    found = imports("torch", "numpy", "pandas", "sklearn", "albumentations", "kornia", "safetensors", "PIL", "cv2",
                    "ipykernel", "pip")
    for module, ok in found.items():
        assert ok, module
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
