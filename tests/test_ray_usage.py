"""The Ray backend refused in one line before any fold runs (issue 24 item 6, issue 31): usage errors before Ray
starts, Ray not installed, addresses that do not answer (closed ports, a silent listener, an unknown host) within
about --ray-timeout, nothing written when the connection fails, bad wait and resource options, and a GPU fold on an
embedded cluster without GPUs. None of these needs ``tests/test_ray.py``'s shared cluster: a file of their own, so
that pytest-xdist runs them beside that file's cluster tests instead of after them."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

from kfold.errors import UsageError  # noqa: E402
from test_ray import FOLD_ARGS, REPO, _env, _one_error_line, comp, train  # noqa: E402,F401  (comp: the module fixture)


def test_usage_errors_before_ray_starts(comp, tmp_path, capsys, monkeypatch):
    from kfold.flows import ray_backend

    def started(self):
        raise AssertionError("Ray was started before the usage error")

    monkeypatch.setattr(ray_backend.RayBackend, "connect", started)
    cases = [(["--folds", "5"], "--folds"), (["--device", "cuda"], "--gpus-per-fold"),
             (["--gpus-per-fold", "1.5"], "--gpus-per-fold 1.5"), (["--cpus-per-fold", "0"], "--cpus-per-fold 0"),
             (["--parallel-folds", "2", "--address", "127.0.0.1:1"], "--parallel-folds"),
             (["--config", str(tmp_path / "missing.json")], "missing.json")]
    for extra, expected in cases:
        code = train("--data", comp, "--out", tmp_path / "run", "--backend", "ray", "--address", "127.0.0.1:1", *FOLD_ARGS, *extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert code in (1, 2) and len(err) == 1 and err[0].startswith("error:") and expected in err[0], (extra, err)
    assert not (tmp_path / "run").exists()
    assert train("--data", tmp_path / "nothing", "--out", tmp_path / "run", "--backend", "ray", *FOLD_ARGS) in (1, 2)
    assert capsys.readouterr().err.startswith("error:") and not (tmp_path / "run").exists()
    assert train("--data", comp, "--out", tmp_path / "run", "--address", "127.0.0.1:1", *FOLD_ARGS) == 2
    assert "--address needs --backend ray" in capsys.readouterr().err


def test_without_ray_one_line(comp, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    assert train("--data", comp, "--out", tmp_path / "run", "--backend", "ray", *FOLD_ARGS) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install -e '.[ray]'" in err[0]


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never says a word (not Ray, a hung head node)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))  # 127.0.0.2: Ray keeps it (127.0.0.1 it replaces with the machine's address)
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # a port just released: nothing listens there
        probe.bind(("127.0.0.2", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("case", ["closed 127.0.0.1", "closed 127.0.0.2", "silent", "unknown host"])
def test_address_that_does_not_answer_fails_within_the_timeout(case, comp, silent_port, tmp_path):
    """--address of a host that does not answer: one error line within about --ray-timeout, not minutes of retries."""
    address = {"closed 127.0.0.1": "127.0.0.1:1", "closed 127.0.0.2": f"127.0.0.2:{_closed_port()}",
               "silent": f"127.0.0.2:{silent_port}", "unknown host": "no-such-host.invalid:6379"}[case]
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "train.py"), "--data", str(comp), "--out", str(tmp_path / "run"),
                           "--backend", "ray", "--address", address, "--ray-timeout", "3", *FOLD_ARGS], env=_env(),
                          capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    assert done.returncode == 2, done.stdout + done.stderr
    _one_error_line(done.stderr, f"--address {address}")
    assert seconds < 45, f"{case}: {seconds:.0f}s"  # Ray's own retries take minutes; the check itself at most ~5 s


@pytest.mark.parametrize("command", ["run", "train", "tune"])
def test_an_address_with_nothing_listening_writes_nothing(command, comp, tmp_path):
    """Connected before config.json, folds.csv (or tune's study.db) are written: a failed connection leaves none."""
    address = f"127.0.0.2:{_closed_port()}"
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "kfold", command, "--data", str(comp), "--out", str(out), "--backend", "ray",
            "--address", address, "--ray-timeout", "3", *FOLD_ARGS, *(["--trials", "1"] if command == "tune" else [])]
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stdout + done.stderr
    _one_error_line(done.stderr, f"--address {address}")
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))


@pytest.mark.parametrize("options, needle", [  # a parameter set to True renders as the bare flag
    (dict(timeout=0), "--ray-timeout 0"), (dict(timeout=float("nan")), "--ray-timeout nan"),
    (dict(timeout="30"), "--ray-timeout '30'"), (dict(timeout=True), "--ray-timeout: must be a finite number"),
    (dict(resources=["gpu"]), "resources ['gpu']"), (dict(resources={"CPU": 1}), "resources 'CPU'"),
    (dict(resources={"x": -1}), "resources 'x' -1"), (dict(resources={"x": float("inf")}), "resources 'x' inf"),
])
def test_bad_wait_and_resource_options(options, needle):
    from kfold.flows.ray_backend import RayOptions

    with pytest.raises(UsageError, match=None) as info:
        RayOptions(**options).validate()
    assert needle in info.value.for_command()  # the library says timeout=0, the command --ray-timeout 0


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_bad_ray_timeout_flag(value, comp, tmp_path, capsys):
    assert train("--data", comp, "--out", tmp_path / "run", "--backend", "ray", "--ray-timeout", value, *FOLD_ARGS) == 2
    _one_error_line(capsys.readouterr().err, "--ray-timeout")
    assert not (tmp_path / "run").exists()
    assert train("--data", comp, "--out", tmp_path / "run", "--ray-timeout", "5", *FOLD_ARGS) == 2
    _one_error_line(capsys.readouterr().err, "need --backend ray")


def test_gpu_fold_on_an_embedded_cluster_without_gpus_is_refused(comp, tmp_path):
    """The issue's case: --gpus-per-fold 1 where the embedded cluster has no GPU (hidden from Ray here)."""
    start = time.monotonic()
    env = _env(CUDA_VISIBLE_DEVICES="")
    env.pop("RAY_AUTH_MODE", None)  # as a user's shell: Ray's notice that the new local cluster enables token
    # authentication (a WARNING line on stderr) must not stand beside kfold's one error line (kfold.flows.ray_logging)
    done = subprocess.run([sys.executable, str(REPO / "train.py"), "--data", str(comp), "--out", str(tmp_path / "run"),
                           "--backend", "ray", "--gpus-per-fold", "1", *FOLD_ARGS], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stdout + done.stderr
    _one_error_line(done.stderr, "--gpus-per-fold 1: no node of the embedded local cluster has 1 GPU")
    assert time.monotonic() - start < 120  # mostly the embedded cluster's start on a loaded machine
