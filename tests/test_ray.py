"""The Ray backend (issue 13): fold tasks on one shared embedded cluster, byte-identical to local training.

Everything stays on 127.0.0.x. The module starts ONE embedded Ray cluster (4 CPUs and one declared, fake
GPU) from another working directory; in-process drivers reuse it (and its idle workers, which have imported torch
after the first folds) and subprocess drivers connect with ``--address``: a driver is a process of its own only where
the test is about that process (no torch in it, killed). The node-loss test, last, adds two worker nodes to it.
Folds are tiny (lenet5, synthetic data). Never runs ``ray stop`` (it kills every Ray process on the machine by name). The refusals that need no cluster (usage errors, addresses that do not answer, bad
options) are in ``tests/test_ray_usage.py``, so that pytest-xdist runs them beside this file.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from kfold.commands.train import main as train_main  # noqa: E402
from kfold.errors import DataError, run_cli  # noqa: E402
from synthetic import write_kmnist_comp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FOLD_ARGS = ["--preset", "lenet5", "--k", "2", "--epochs", "1", "--threads", "1", "--no-progress"]
KILL_ARGS = ["--preset", "lenet5", "--k", "2", "--folds", "0", "--epochs", "8", "--batch-size", "8", "--lr", "0.05",
             "--seed", "3", "--threads", "1", "--no-progress"]


def _env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0", PYTHONHASHSEED="0", **extra)
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One embedded cluster for the module, started from a directory that is neither the repo nor a test's."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    elsewhere = tmp_path_factory.mktemp("cluster-cwd")
    temp = tempfile.mkdtemp(prefix="kft", dir="/tmp")
    before = os.getcwd()
    os.chdir(elsewhere)
    try:
        ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, _temp_dir=temp,
                 _node_ip_address="127.0.0.2", logging_level="WARNING", log_to_driver=True)
    finally:
        os.chdir(before)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Path:
    return write_kmnist_comp(tmp_path_factory.mktemp("comp"), n_train=200, n_test=40, seed=1)


@pytest.fixture(scope="module")
def big_comp(tmp_path_factory) -> Path:  # enough rows that a fold runs long enough to be killed mid-way
    return write_kmnist_comp(tmp_path_factory.mktemp("bigcomp"), n_train=600, n_test=40, seed=2)


def train(*argv) -> int:
    return run_cli(train_main, [*map(str, argv)])


def weights(path: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(path))


def assert_same_run(a: Path, b: Path, folds=(0, 1), whole: bool = True) -> None:
    """folds.csv, OOF files and weights byte for byte (the weight files' metadata holds seconds and host)."""
    assert (a / "folds.csv").read_bytes() == (b / "folds.csv").read_bytes()
    if whole:
        assert (a / "oof.npz").read_bytes() == (b / "oof.npz").read_bytes()
    for fold in folds:
        assert (a / f"fold{fold}" / "oof.npz").read_bytes() == (b / f"fold{fold}" / "oof.npz").read_bytes()
        wa, wb = weights(a / f"fold{fold}" / "model.safetensors"), weights(b / f"fold{fold}" / "model.safetensors")
        assert wa.keys() == wb.keys() and all(wa[key].tobytes() == wb[key].tobytes() for key in wa)
        assert (a / f"fold{fold}" / "metrics.csv").read_text().count("\n") == (b / f"fold{fold}" / "metrics.csv").read_text().count("\n")


@pytest.fixture(scope="module")
def local_reference(comp, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    assert train("--data", comp, "--out", out, "--device", "cpu", *FOLD_ARGS) == 0
    return out


@pytest.fixture(scope="module")
def kill_reference(big_comp, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("killref") / "run"
    assert train("--data", big_comp, "--out", out, "--device", "cpu", *KILL_ARGS) == 0
    return out


def test_ray_equals_local_byte_for_byte(cluster, comp, local_reference, tmp_path, capsys):
    """Folds as Ray tasks (on a cluster that declares a GPU, --gpus-per-fold 0): the same bits as local training."""
    out = tmp_path / "run"
    assert train("--data", comp, "--out", out, "--backend", "ray", *FOLD_ARGS) == 0
    printed = capsys.readouterr().out
    assert "fold 0 finished on 127.0.0.2 in" in printed and "fold 1 finished on 127.0.0.2" in printed, [l for l in printed.splitlines() if "finished" in l]
    assert_same_run(out, local_reference)
    for fold in (0, 1):
        meta = json.loads((out / f"fold{fold}" / "meta.json").read_text())
        assert meta["threads"] == 1 and meta["device"] == "cpu"  # 0 GPUs: forced onto the CPU although one is declared
    assert json.loads((out / "config.json").read_text())["threads"] == 1


@pytest.mark.parametrize("experiment", ["compare", "transfer"])
def test_mnist_mix_models_as_ray_tasks_give_the_local_tables(experiment, cluster, tmp_path, capsys):
    """mnist_mix.py --backend ray: every model of the experiment is a Ray task; the tables equal local training's."""
    from synthetic import write_mnist_mix_components

    from kfold.commands.mnist_mix import main as mnist_mix_main

    data = write_mnist_mix_components(tmp_path / "mm", languages=("Arabic", "Bangla"), n_train_per_lang=30,
                                      n_test_per_lang=10, seed=4)
    argv = [experiment, "--data", str(data), "--models", "ff-2x100,resnet8", "--epochs", "1", "--threads", "1",
            "--device", "cpu", "--no-progress"]
    assert run_cli(mnist_mix_main, [*argv, "--out", str(tmp_path / "local")]) == 0
    assert run_cli(mnist_mix_main, [*argv, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    capsys.readouterr()
    name = {"compare": "results.csv", "transfer": "transfer.csv"}[experiment]
    local, remote = (pd.read_csv(tmp_path / side / name) for side in ("local", "ray"))
    timing = [c for c in local.columns if "seconds" in c]
    pd.testing.assert_frame_equal(local.drop(columns=timing), remote.drop(columns=timing))


def test_driver_never_imports_torch_and_relative_paths(cluster, comp, local_reference, tmp_path):
    """A driver in another directory than the cluster's, with relative --data/--out, on --address: no torch in it."""
    shutil.copytree(comp, tmp_path / comp.name)  # the same name: the task name is recorded in the OOF files
    code = ("import sys; from kfold.errors import run_cli; from kfold.commands.train import main; "
            f"code = run_cli(main, ['--data', {comp.name!r}, '--out', 'run', '--backend', 'ray', '--address', {cluster!r}, "
            f"*{FOLD_ARGS!r}]); assert 'torch' not in sys.modules, 'the driver imported torch'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ray: connecting to the cluster at" in done.stdout
    assert_same_run(tmp_path / "run", local_reference)


def test_kfold_run_on_ray_predicts_in_tasks_and_equals_local(cluster, comp, tmp_path):
    """`kfold run --backend ray`: training and prediction are Ray tasks (no torch in the driver), and every file a
    user reads (probabilities, both submissions, the leaderboard) equals the local run's."""
    from kfold.commands.main import main as kfold_main

    local = tmp_path / "local"
    assert run_cli(kfold_main, ["run", "--data", str(comp), "--out", str(local / "run"), "--submissions", str(local / "subs"),
                                "--device", "cpu", *FOLD_ARGS]) == 0
    remote = tmp_path / "ray"
    code = ("import sys; from kfold.errors import run_cli; from kfold.commands.main import main; "
            f"code = run_cli(main, ['run', '--data', {str(comp)!r}, '--out', {str(remote / 'run')!r}, '--submissions', "
            f"{str(remote / 'subs')!r}, '--backend', 'ray', '--address', {cluster!r}, *{FOLD_ARGS!r}]); "
            "assert 'torch' not in sys.modules, 'the driver imported torch'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote 4 probability files to" in done.stdout  # 2 folds, their mean, the OOF re-export
    for name in ("run-mean.csv", "run-vote.csv"):
        assert (remote / "subs" / name).read_bytes() == (local / "subs" / name).read_bytes()
    probs = sorted(p.name for p in (local / "run" / "probs").iterdir())
    assert probs == sorted(p.name for p in (remote / "run" / "probs").iterdir()) and len(probs) == 4
    from kfold.files.probs import read_probs

    for name in probs:
        a, b = read_probs(local / "run" / "probs" / name), read_probs(remote / "run" / "probs" / name)
        assert np.array_equal(a.ids, b.ids) and a.probs.tobytes() == b.probs.tobytes()
    assert (remote / "run" / "leaderboard" / "leaderboard.csv").read_text().replace(str(remote), "X") == \
        (local / "run" / "leaderboard" / "leaderboard.csv").read_text().replace(str(local), "X")


def test_fold_raising_data_error_runs_once_and_prints_one_line(cluster, tmp_path, capsys):
    from kfold.flows.ray_backend import RayBackend, RayOptions

    counter = tmp_path / "attempts"

    def failing_fold(path):
        with open(path, "a") as handle:
            handle.write("x")
        from kfold.errors import DataError

        raise DataError("train.csv row 7, column label: 'cat' is not a class")

    backend = RayBackend(RayOptions(max_retries=3), progress=False)
    ref = backend.remote(failing_fold).remote(str(counter))
    assert run_cli(lambda _: backend.get(ref)) == 1
    err = capsys.readouterr().err
    assert err == "error: train.csv row 7, column label: 'cat' is not a class\n"
    assert counter.read_text() == "x"  # ran once: an exception is never retried
    with pytest.raises(DataError):
        backend.get(backend.remote(failing_fold).remote(str(counter)))


def _raylet_pid() -> int:
    from ray._private import ray_constants
    from ray._private.worker import _global_node

    return _global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid


def _fold_workers(parents: set[int]) -> list[int]:
    """Ray workers (children of ``parents``) running a kfold fold task."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid in parents and cmdline.startswith("ray::_run_fold"):
            found.append(int(entry.name))
    return found


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.01)


def _printed_until(capsys, needles: tuple[str, ...], timeout: float = 60) -> str:
    """What this process printed so far, waiting up to ``timeout`` seconds until one of ``needles`` is in it: a line a
    Ray worker prints reaches the driver's stdout through Ray's log monitor, a moment after the worker printed it."""
    text, deadline = "", time.time() + timeout
    while True:
        captured = capsys.readouterr()
        text += captured.out + captured.err
        if any(needle in text for needle in needles) or time.time() > deadline:
            return text
        time.sleep(0.1)


def _train_then_at_first_checkpoint(comp, out: Path, act) -> tuple[int, list]:
    """Train ``KILL_ARGS`` on the cluster from this process while a thread waits (at most 240 s, while the driver
    runs) for fold 0's first checkpoint and then calls ``act()``: (the driver's exit code, [what ``act`` returned]
    or [why it was not called])."""
    seen: list = []
    driver_done = threading.Event()

    def watch():
        deadline = time.time() + 240
        while not (out / "fold0" / "checkpoint.pt").exists():
            if driver_done.is_set() or time.time() > deadline:
                seen.append("no checkpoint while the driver ran")
                return
            time.sleep(0.01)
        seen.append(act())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code = train("--data", comp, "--out", out, "--backend", "ray", *KILL_ARGS)
    finally:
        driver_done.set()
        watcher.join(timeout=60)
    return code, seen


def test_worker_sigkilled_after_checkpoint_is_retried(cluster, big_comp, kill_reference, tmp_path, capsys):
    """The worker of a running fold SIGKILLed after its first checkpoint: Ray retries the task, the fold resumes from
    the checkpoint and ends with the bits of an uninterrupted run. The driver is this process (the test is about the
    worker; the driver's own process is killed in the next test), so the fold and its retry start on idle workers
    that have imported torch already."""
    out = tmp_path / "run"

    def kill_the_fold_worker():
        workers = _fold_workers({_raylet_pid()})
        if len(workers) == 1:
            os.kill(workers[0], signal.SIGKILL)
        return workers

    code, killed = _train_then_at_first_checkpoint(big_comp, out, kill_the_fold_worker)
    assert len(killed) == 1 and isinstance(killed[0], list) and len(killed[0]) == 1, killed
    text = _printed_until(capsys, ("fold 0: resuming after epoch",), timeout=60 if code == 0 else 0)
    assert code == 0, text
    assert "retried after a lost worker" in text and "fold 0: resuming after epoch" in text, text
    assert_same_run(out, kill_reference, folds=(0,), whole=False)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def test_driver_killed_then_resume_identical_and_no_orphans(cluster, big_comp, kill_reference, tmp_path, capsys):
    """The driver of an embedded cluster SIGKILLed mid-fold: every Ray process goes with it; --resume finishes."""
    temp = tempfile.mkdtemp(prefix="kfk", dir="/tmp")
    out, log = tmp_path / "run", tmp_path / "driver.log"
    try:
        proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--data", str(big_comp), "--out", str(out),
                                 "--backend", "ray", *KILL_ARGS], env=_env(KFOLD_RAY_TMPDIR=temp), stdout=log.open("w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for(out / "fold0" / "checkpoint.pt", proc, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 60
        while _processes_mentioning(temp) and time.time() < deadline:
            time.sleep(0.5)
        assert _processes_mentioning(temp) == [], "orphaned Ray processes after the driver was killed"
        assert not (out / "fold0" / "meta.json").exists()
        capsys.readouterr()
        # the resume in this process, on the module's cluster (whose idle workers have imported torch already)
        assert train("--data", big_comp, "--out", out, "--backend", "ray", "--resume", *KILL_ARGS) == 0, capsys.readouterr()
        printed = _printed_until(capsys, ("fold 0: resuming after epoch", "fold 0: already finished"))
        # normally the fold resumes from its checkpoint; on a loaded machine the worker can complete its last
        # rename while the kill spreads, and then the fold is (completely) finished: both must give the same bits
        assert "fold 0: resuming after epoch" in printed or "fold 0: already finished" in printed, printed
        assert_same_run(out, kill_reference, folds=(0,), whole=False)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


# ---- bounded waits (issue 24, item 6) -----------------------------------------------------------------------

def _one_error_line(stderr: str, *needles: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert all(needle in lines[0] for needle in needles), (needles, lines[0])
    return lines[0]


@pytest.mark.parametrize("extra, needle", [
    (["--gpus-per-fold", "2"], "--gpus-per-fold 2: no node"),
    (["--gpus-per-fold", "64", "--cpus-per-fold", "0"], "--gpus-per-fold 64: no node"),
    (["--cpus-per-fold", "64"], "--cpus-per-fold 64: no node"),
    (["--cpus-per-fold", "4.5"], "--cpus-per-fold 4.5: no node"),
])
def test_requests_no_node_can_hold_are_refused_before_submitting(extra, needle, cluster, comp, tmp_path, capsys, monkeypatch):
    """The shared cluster has 4 CPUs and 1 GPU: a fold asking for more is refused at once (Ray would wait forever)."""
    from kfold.flows import ray_backend

    def never(self, job):
        raise AssertionError("a fold was submitted")

    monkeypatch.setattr(ray_backend.RayBackend, "prepare_job", never)  # submit connects (and checks) first
    start = time.monotonic()
    assert train("--data", comp, "--out", tmp_path / "run", "--backend", "ray", *FOLD_ARGS, *extra) == 2
    _one_error_line(capsys.readouterr().err, needle, "the cluster:")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "run").exists()  # checked before config.json and folds.csv (issue 31)


@pytest.mark.parametrize("command, extra", [("run", ["--gpus-per-fold", "2"]), ("tune", ["--gpus-per-fold", "2",
                                                                                          "--trials", "1"])])
def test_run_and_tune_check_the_cluster_before_the_first_byte(command, extra, cluster, comp, tmp_path, capsys):
    from kfold.commands.main import main

    assert main([command, "--data", str(comp), "--out", str(tmp_path / "out"), "--backend", "ray", *FOLD_ARGS,
                 *extra]) == 2
    _one_error_line(capsys.readouterr().err, "--gpus-per-fold", "no node")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("resources, needle", [({"accelerator_x": 1}, "'accelerator_x'"),
                                               ({"accelerator_x": 0.5, "fpga": 2}, "'accelerator_x'")])
def test_custom_resources_the_cluster_lacks_are_refused(resources, needle, cluster, capsys):
    from kfold.flows.ray_backend import RayBackend, RayOptions

    backend = RayBackend(RayOptions(resources=resources), progress=False)
    assert run_cli(lambda _: backend.connect()) == 2
    _one_error_line(capsys.readouterr().err, needle, "no node")
    assert backend._remote_fold is None  # refused before a remote function was made


@contextlib.contextmanager
def _every_head_cpu_held(tmp_path: Path):
    """A task holding the 4 CPUs of the module cluster's head node: started (within 120 s), cancelled at the end."""
    started = tmp_path / "blocker-started"

    @ray.remote(num_cpus=4, max_retries=0)
    def blocker(path):
        Path(path).write_text("x")
        time.sleep(600)

    held = blocker.remote(str(started))
    try:
        deadline = time.time() + 120
        while not started.exists():
            assert time.time() < deadline, "the blocking task never started"
            time.sleep(0.1)
        yield
    finally:
        ray.cancel(held, force=True)


def test_a_fold_that_cannot_be_scheduled_ends_after_the_timeout(cluster, comp, tmp_path, capsys):
    """Every CPU of the cluster held by another job: the fold waits --ray-timeout seconds, then one line."""
    with _every_head_cpu_held(tmp_path):
        start = time.monotonic()
        assert train("--data", comp, "--out", tmp_path / "run", "--backend", "ray", "--ray-timeout", "3", *FOLD_ARGS) == 1
        seconds = time.monotonic() - start
        _one_error_line(capsys.readouterr().err, "no fold task could start within 3s", "0 CPU free", "--resume")
        assert 3 <= seconds < 40


def test_folds_queued_behind_running_folds_do_not_time_out(cluster, monkeypatch):
    """Two fold tasks of 4 CPUs each on a 4-CPU cluster: the second waits for the first longer than the timeout,
    and that is no scheduling failure (a fold of this run is running)."""
    from kfold.flows import ray_backend

    def fold_like(job, token):  # a fold task's start and end, without training (its length is what matters)
        import time

        from kfold.flows.ray_backend import _first_attempt

        _first_attempt(token)
        time.sleep(job.seconds)
        return {"fold": job.fold, "node": "here", "seconds": job.seconds, "val_accuracy": None}

    @ray.remote(num_cpus=1)
    def warm():  # idle workers that have imported kfold already: a task then starts at once, even on a loaded machine
        import kfold.flows.ray_backend  # noqa: F401

    ray.get([warm.remote() for _ in range(4)])
    monkeypatch.setattr(ray_backend, "_run_fold", fold_like)
    monkeypatch.setattr(ray_backend.RayBackend, "prepare_job", lambda self, job: job)
    backend = ray_backend.RayBackend(ray_backend.RayOptions(cpus_per_fold=4, timeout=3), progress=False, echo=lambda _: None)
    start = time.monotonic()
    from types import SimpleNamespace

    jobs = [SimpleNamespace(run_dir="run", fold=0, seconds=8), SimpleNamespace(run_dir="run", fold=1, seconds=0.1)]
    results = backend.wait(backend.submit(jobs))
    assert [r["fold"] for r in results] == [0, 1]
    assert time.monotonic() - start >= 8  # the second fold waited about 8 s to be scheduled, past the 3 s timeout


# near the end: its GPU tasks (max_calls=1: a fresh process each) end the idle workers that the tests above reuse
def test_fractional_gpus_share_a_declared_gpu(cluster, tmp_path):
    """--gpus-per-fold 0.25 on a cluster with one (declared) GPU: at most four folds at once, each told its GPU."""
    from kfold.flows.ray_backend import RayBackend, RayOptions

    def probe(seconds):
        import os
        import time

        start = time.time()
        time.sleep(seconds)
        return start, time.time(), os.environ.get("CUDA_VISIBLE_DEVICES")

    backend = RayBackend(RayOptions(cpus_per_fold=0, gpus_per_fold=0.25), progress=False)
    spans = ray.get([backend.remote(probe).remote(4.0) for _ in range(5)])
    assert all(visible == "0" for _, _, visible in spans)
    starts = sorted(start for start, _, _ in spans)
    overlap = max(sum(s <= t < e for s, e, _ in spans) for t in starts)
    assert overlap <= 4
    fifth = starts[4]
    assert sum(end <= fifth + 0.05 for _, end, _ in spans) >= 1  # the fifth waited for a share to be released
    from kfold.flows.training import FoldJob, TaskSpec

    job = FoldJob("run", 0, 2, 0, None, {}, TaskSpec("data"))
    assert RayBackend(RayOptions(gpus_per_fold=0), progress=False).prepare_job(job).device == "cpu"
    assert RayBackend(RayOptions(gpus_per_fold=0.25), progress=False).prepare_job(job).device == "auto"
    assert Path(RayBackend(RayOptions(), progress=False).prepare_job(job).run_dir).is_absolute()


def _worker_node(gcs_address: str):
    """A worker node of 1 CPU on 127.0.0.3 joined to the cluster at ``gcs_address``, as ``ray.cluster_utils.Cluster``
    adds one (its raylet a child of this process)."""
    from ray._private.node import Node
    from ray._private.parameter import RayParams
    from ray._private.services import wait_for_node

    params = RayParams(num_cpus=1, num_gpus=0, object_store_memory=150 * 1024 * 1024, min_worker_port=0, max_worker_port=0,
                       node_ip_address="127.0.0.3", gcs_address=gcs_address, include_log_monitor=False, node_manager_port=0)
    params.dashboard_agent_listen_port = None  # a port of its own, not the head node's agent's
    node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    wait_for_node(node.gcs_address, node.plasma_store_socket_name, 60)
    return node


# last: two worker nodes join the module's cluster, and the one that is killed stays in its node table a while
@pytest.mark.slow
def test_node_loss_is_retried_on_another_node(cluster, big_comp, kill_reference, tmp_path, capsys):
    """Two worker nodes (127.0.0.3) join the module's cluster while a task holds every CPU of its head node (127.0.0.2),
    so the fold runs on one of them; that node is removed mid-fold (its raylet and workers killed, no graceful
    shutdown): the fold is retried on the other node and ends with the bits of an uninterrupted run."""
    from ray._private import ray_constants

    nodes: list = []
    with _every_head_cpu_held(tmp_path), contextlib.ExitStack() as stack:
        stack.callback(lambda: [node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)
                                for node in nodes])
        nodes += [_worker_node(cluster) for _ in range(2)]
        raylets = {node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid: node for node in nodes}
        out = tmp_path / "run"

        def remove_the_fold_node():
            running = _fold_workers(set(raylets))
            if len(running) == 1:
                ppid = int(Path(f"/proc/{running[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
                raylets[ppid].kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
            return running

        code, removed = _train_then_at_first_checkpoint(big_comp, out, remove_the_fold_node)
        assert len(removed) == 1 and isinstance(removed[0], list) and len(removed[0]) == 1, removed
        text = _printed_until(capsys, ("retried after a lost worker",), timeout=0)
        assert code == 0, text
        assert "retried after a lost worker" in text and "finished on 127.0.0.3" in text, text
        assert_same_run(out, kill_reference, folds=(0,), whole=False)
