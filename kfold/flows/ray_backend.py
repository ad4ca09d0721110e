"""Fold training as Ray tasks: one task per fold, on an embedded local cluster or a real one.

This module never imports torch, and imports ``ray`` only when a backend is built. The driver validates
and prepares every run (config.json, folds.csv) before Ray starts; each task calls
``kfold.nn.fold.train_fold`` on its node (the task is loaded there from its ``TaskSpec``); the driver writes
the summaries. Only lost workers and nodes are retried (``max_retries``): a task that raises is never
retried, and a kfold ``DataError``/``UsageError`` reaches the user as kfold's usual one-line error.

Nothing waits forever (``RayOptions.timeout``, ``--ray-timeout``, default 30 s): an ``--address`` that does not
answer is refused within about that time (``check_reachable``), a fold request no node can hold is refused from
the cluster's resources before anything is submitted (``check_feasible``), and a wait in which none of the
command's folds runs or finishes for that long (the cluster full of other jobs) ends with one line.
"""
from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from kfold.errors import DataError, KfoldError, UsageError, param

__all__ = ["EMBEDDED_NODE_IP", "import_ray", "INSTALL_HINT", "make_backend", "RayBackend", "RayOptions",
           "short_temp_dir"]

INSTALL_HINT = "pip install -e '.[ray]'"
# The embedded cluster's node address: loopback, so nothing leaves the machine. Not 127.0.0.1: Ray replaces that
# (and "localhost") with the machine's outward address.
EMBEDDED_NODE_IP = "127.0.0.2"


MAX_START_UP_WAITS = 4  # timeouts a fold may take to start while its resources are free (slow worker start-up)


@dataclass(frozen=True)
class RayOptions:
    """How folds are scheduled; every value is checked by ``validate`` before Ray starts."""

    address: str | None = None  # None: $RAY_ADDRESS, else an embedded cluster for the command's duration
    cpus_per_fold: float = 1.0
    gpus_per_fold: float = 0.0
    max_retries: int = 3
    concurrent: int | None = None  # embedded cluster only: this many folds at once (--parallel-folds)
    timeout: float = 30.0  # seconds: connecting to --address, and a fold task waiting to be scheduled (--ray-timeout)
    resources: dict | None = None  # custom Ray resources every fold holds ({"accelerator_x": 1}); the API only

    def validate(self) -> "RayOptions":
        def number(name: str, value, low: float) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low or value != value \
                    or value == float("inf"):
                shown = name if name.startswith("resources") else f"{param(name)}="
                raise UsageError(f"{shown}{value!r}: must be a finite number >= {low:g}" if shown.endswith("=")
                                 else f"{shown} {value!r}: must be a finite number >= {low:g}")

        check_address(self.address)
        number("cpus_per_fold", self.cpus_per_fold, 0)
        number("gpus_per_fold", self.gpus_per_fold, 0)
        if self.cpus_per_fold == 0 and self.gpus_per_fold == 0:
            raise UsageError(f"{param('cpus_per_fold')}=0 needs {param('gpus_per_fold')} > 0 (a fold must hold some resource)")
        if self.gpus_per_fold > 1 and self.gpus_per_fold != int(self.gpus_per_fold):
            raise UsageError(f"{param('gpus_per_fold')}={self.gpus_per_fold:g}: a fraction must be below 1 (0.25: four folds "
                             f"share a GPU); above 1 give a whole number")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise UsageError(f"{param('max_retries')}={self.max_retries!r}: must be an integer >= 0")
        if self.concurrent is not None:
            if isinstance(self.concurrent, bool) or not isinstance(self.concurrent, int) or self.concurrent < 1:
                raise UsageError(f"{param('parallel_folds')}={self.concurrent!r}: must be an integer >= 1")
            if self.address:
                raise UsageError(f"{param('parallel_folds')} runs an embedded local cluster: give {param('address')} or "
                                 f"{param('parallel_folds')}, not both")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not math.isfinite(self.timeout) \
                or self.timeout <= 0:
            raise UsageError(f"{param('timeout')}={self.timeout!r}: must be a finite number of seconds > 0")
        if self.resources is not None:
            if not isinstance(self.resources, dict):
                raise UsageError(f"resources {self.resources!r}: must be a dict of Ray resource name -> amount")
            for name, amount in self.resources.items():
                if not isinstance(name, str) or not name or name in ("CPU", "GPU", "memory", "object_store_memory"):
                    raise UsageError(f"resources {name!r}: must be the name of a custom Ray resource (CPUs and GPUs "
                                     f"are {param('cpus_per_fold')} and {param('gpus_per_fold')})")
                number(f"resources {name!r}", amount, 0)
        return self

    def request(self) -> dict[str, float]:
        """What one fold task asks the cluster for: ``{"CPU": 1.0}``, plus GPUs and custom resources when asked."""
        wanted = {"CPU": float(self.cpus_per_fold), "GPU": float(self.gpus_per_fold),
                  **{name: float(amount) for name, amount in (self.resources or {}).items()}}
        return {name: amount for name, amount in wanted.items() if amount > 0}

    def threads(self, threads: int | None) -> int:
        """Torch threads of every fold: explicit (recorded in meta.json), by default the fold's CPUs."""
        return threads if threads is not None else max(1, int(self.cpus_per_fold))

    def device(self, device: str) -> str:
        """A fold without a GPU share runs on the CPU (Ray leaves CUDA_VISIBLE_DEVICES unset for it)."""
        if self.gpus_per_fold == 0:
            if device == "cuda":
                raise UsageError(f"{param('device')}=cuda with {param('backend')}=ray needs {param('gpus_per_fold')} > 0 "
                                 f"(e.g. 1, or 0.25 to share a GPU between four folds)")
            return "cpu" if device == "auto" else device
        return device


_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)"


def check_address(address) -> None:
    """A Ray cluster address: HOST:PORT (or ray://HOST[:PORT], or 'auto'); anything else is a UsageError now, not a
    connection attempt that retries for minutes."""
    import re

    if address is None:
        return
    if not isinstance(address, str):
        raise UsageError(f"{param('address')} {address!r}: must be HOST:PORT")
    match = re.fullmatch(rf"(ray://)?({_HOST})(?::(\d{{1,5}}))?", address)
    if address == "auto":
        return
    if match is None or (match.group(1) is None and match.group(3) is None) or \
            (match.group(3) is not None and not 1 <= int(match.group(3)) <= 65535):
        raise UsageError(f"{param('address')} {address!r}: not a Ray cluster address; give HOST:PORT (e.g. 10.0.0.5:6379), "
                         "ray://HOST:PORT or auto")


def import_ray(remote: bool = False):
    """``import ray`` with kfold's settings; without Ray installed, one line saying what to install.

    For a cluster (``remote``) with a token at hand (``$RAY_AUTH_TOKEN``, ``~/.ray/auth_token``) and no
    ``$RAY_AUTH_MODE``, token authentication is switched on, as ``ray start`` does for the nodes."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # every fold's epoch lines stay visible
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if remote and "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules and (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise UsageError(f"{param('backend')}=ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def short_temp_dir() -> str:
    """Ray's socket paths must stay under 107 bytes: a short per-command directory (KFOLD_RAY_TMPDIR to choose)."""
    chosen = os.environ.get("KFOLD_RAY_TMPDIR")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return str(Path(chosen).resolve())
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="kfr", dir=base)


def _unwrap(exc: BaseException) -> BaseException:
    """The kfold error inside a Ray error (``RayTaskError.cause``), or the error itself."""
    seen = 0
    while seen < 10 and isinstance(getattr(exc, "cause", None), BaseException):  # RayTaskError(DataError) -> DataError
        exc, seen = exc.cause, seen + 1
    return exc.with_traceback(None) if isinstance(exc, KfoldError) else exc


def _amount(value: float) -> str:
    return f"{value:g}"


# A child process asks the address for the cluster id with Ray's own GCS client: a port that accepts connections
# but never answers (not Ray, a firewall, a hung head) is found without Ray's minutes of retries in this process,
# and without its C++ log lines on this process's stderr. Exit 3: this Ray has no such client (the TCP check stays).
_GCS_PROBE = """
import sys
try:
    from ray._raylet import InnerGcsClient
except ImportError:
    sys.exit(3)
try:
    InnerGcsClient.standalone(sys.argv[1], None, max(1, int(float(sys.argv[2]) * 1000)))
except Exception as exc:
    print((str(exc).strip().splitlines() or [type(exc).__name__])[0][:200])
    sys.exit(1)
"""
PROBE_MIN_SECONDS = 5.0  # the child needs about this long to import Ray on a loaded machine


def check_reachable(address: str, timeout: float) -> None:
    """One ``UsageError`` line, within about ``timeout`` seconds, unless a Ray cluster answers at ``address``.

    ``ray.init`` alone retries an address that does not answer for minutes. First a TCP connection (an unknown
    host, a closed port, a host that drops packets), then the cluster's id from its GCS (a port that accepts
    connections but does not speak Ray), in a child process that is killed when the time is up."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        target = canonicalize_bootstrap_address(address) or address  # 127.0.0.1 -> this machine's address, as ray.init
    except ImportError:
        target = address
    except (ValueError, OSError) as exc:
        raise UsageError(f"{param('address')} {address}: not a Ray cluster address HOST:PORT ({str(exc).strip()[:120]})") from None
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{param('address')} {address}: not a Ray cluster address HOST:PORT")
    start = time.monotonic()
    hint = "check the address (ray status on the head node prints it)"
    longer = f"{hint}, or wait longer with {param('timeout')}=SECONDS"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise UsageError(f"{param('address')} {address}: unknown host {host!r} ({exc.strerror or exc})") from None
    except (socket.timeout, TimeoutError):
        raise UsageError(f"{param('address')} {address}: no answer from {target} within {timeout:g}s; {longer}") from None
    except OSError as exc:
        raise UsageError(f"{param('address')} {address}: cannot connect to {target} ({exc.strerror or exc}); {hint}") from None
    left = max(timeout - (time.monotonic() - start), PROBE_MIN_SECONDS)
    try:
        done = subprocess.run([sys.executable, "-c", _GCS_PROBE, target, str(left)], capture_output=True, text=True,
                              timeout=left, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UsageError(f"{param('address')} {address}: {target} accepts connections but no Ray cluster answered within "
                         f"{timeout:g}s; {longer}") from None
    if done.returncode == 1:
        detail = (done.stdout.strip().splitlines() or ["no answer"])[-1]
        raise UsageError(f"{param('address')} {address}: no Ray cluster answered at {target} within {timeout:g}s ({detail}); {longer}")


# ---- the task bodies (run on the workers) -------------------------------------------------------------------

def _node() -> str:
    try:
        from ray._private.worker import global_worker

        return global_worker.node_ip_address  # this node's address in the cluster (127.0.0.x on loopback nodes)
    except Exception:  # noqa: BLE001 - outside a Ray worker
        import platform

        return platform.node()


def _first_attempt(token: str) -> bool:
    """True the first time a task with this token starts; a retry (worker or node lost) gets False."""
    from ray.experimental import internal_kv

    if not internal_kv._internal_kv_initialized():
        return True
    return not internal_kv._internal_kv_put(f"kfold-attempt:{token}", b"1", overwrite=False)  # True: existed


def _run_fold(job, token: str) -> dict:
    retry = not _first_attempt(token)  # first: the driver sees the fold started (its scheduling wait is over)
    from kfold.nn.fold import train_fold

    if retry:  # a lost worker's fold continues from its last checkpoint
        job = dataclasses.replace(job, resume=True)
    start = time.perf_counter()
    meta = train_fold(job)
    return {"fold": job.fold, "run_dir": job.run_dir, "node": _node(), "seconds": time.perf_counter() - start,
            "val_accuracy": meta.get("val_accuracy"), "retry": retry, "device": meta.get("device"),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _run_predict(run_dir: str, spec, probs_dir: str, tta, device: str, threads, *folds_done, fmt: str = "npz") -> list[str]:
    """Predict one run once its folds (the arguments ``folds_done``, Ray object refs) have finished."""
    from kfold.nn.predict import predict_run

    task = spec.load(progress=False)
    return [str(p) for p in predict_run([run_dir], task, probs_dir, tta=tta, device=device, threads=threads, fmt=fmt)]


def _path_state(path: str) -> tuple[str, bool]:
    return _node(), os.path.exists(path)


# ---- the driver ---------------------------------------------------------------------------------------------

class RayBackend:
    """The ``kfold.flows.backend.Backend`` that trains folds and predicts runs as Ray tasks; also ``submit``/``wait``
    for flows that keep many runs in flight (compare, tune). Starts (or connects to) Ray on first use; ``close`` ends
    an embedded cluster it started. Use as a context manager."""

    def __init__(self, options: RayOptions | None = None, *, echo: Callable[[str], None] = print, progress: bool = True):
        self.options = (options or RayOptions()).validate()
        self.ray = import_ray(remote=bool(self.options.concurrent is None
                                          and (self.options.address or os.environ.get("RAY_ADDRESS"))))
        self.echo, self.progress = echo, progress
        self.started = False  # this backend called ray.init (and shuts it down)
        self.connected = False
        self.remote_cluster = False
        self._checked_paths: set[str] = set()
        self._remote_fold = self._remote_predict = None
        self._temp: str | None = None  # the embedded cluster's temp dir (removed by close unless KFOLD_RAY_TMPDIR)
        self._tokens: dict = {}  # fold task ref -> the token its task records when it starts (see _first_attempt)
        self.on_fold: Callable[[Any], None] | None = None  # told each finished fold, here on the driver (a tracker)

    # -- lifetime
    def __enter__(self) -> "RayBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        if self.connected:
            return
        ray = self.ray
        address = self.options.address or os.environ.get("RAY_ADDRESS") or None
        if self.options.concurrent is not None:
            address = None
        if ray.is_initialized():  # a notebook (or test) that started Ray itself: use it, leave it running
            self.remote_cluster = False
        elif address:
            self.echo(f"ray: connecting to the cluster at {address}")
            check_reachable(address, self.options.timeout)  # a host that does not answer: one line within the timeout
            try:
                ray.init(address=address, log_to_driver=True, logging_level="WARNING")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"{param('address')}={address}: cannot connect to a Ray cluster "
                                 f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
            self.started, self.remote_cluster = True, True
        else:
            cpus = None
            if self.options.concurrent is not None:
                cpus = max(1, int(round(self.options.concurrent * max(self.options.cpus_per_fold, 1e-9))))
            temp = self._temp = short_temp_dir()
            self.echo(f"ray: starting an embedded local cluster ({cpus or os.cpu_count()} CPUs) for this command")
            from kfold.flows.ray_logging import quiet_token_notice
            quiet_token_notice()
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, _temp_dir=temp, log_to_driver=True,
                     logging_level="WARNING", configure_logging=True, _node_ip_address=EMBEDDED_NODE_IP)
            self.started = True
        self.connected = True
        try:
            self.check_feasible()
        except BaseException:
            self.close()
            raise
        self._remote_fold, self._remote_predict = self.remote(_run_fold), self.remote(_run_predict)

    def remote(self, function: Callable) -> Any:
        """``function`` as a Ray remote function with a fold's resources and retry policy (starts Ray if needed).

        ``num_gpus`` in the decorator (not ``.options``) gives a fresh process per GPU fold, so its GPU memory is
        released; exceptions raised by the function are never retried, only lost workers and nodes."""
        self.connect()
        gpus = self.options.gpus_per_fold
        extra = {"max_calls": 1} if gpus > 0 else {}
        if self.options.resources:
            extra["resources"] = dict(self.options.resources)
        return self.ray.remote(num_cpus=self.options.cpus_per_fold, num_gpus=gpus, max_retries=self.options.max_retries,
                               retry_exceptions=False, **extra)(function)

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        if self._temp is not None and not os.environ.get("KFOLD_RAY_TMPDIR"):
            import shutil

            shutil.rmtree(self._temp, ignore_errors=True)
        self.started = self.connected = False
        self._temp = None

    # -- checks
    def check_feasible(self) -> None:
        """Refuse, before anything is submitted, a fold that no node of the cluster could ever run (Ray would wait
        for it forever: "No available node types can fulfill resource request")."""
        wanted = self.options.request()
        nodes = [node.get("Resources") or {} for node in self.ray.nodes() if node.get("Alive")]
        if any(all(node.get(name, 0.0) >= amount - 1e-9 for name, amount in wanted.items()) for node in nodes):
            return
        totals = self.ray.cluster_resources()
        flags = {"CPU": "--cpus-per-fold", "GPU": "--gpus-per-fold"}
        where = "the embedded local cluster" if not self.remote_cluster else "the Ray cluster"
        have = ", ".join(f"{_amount(totals.get(name, 0.0))} {name}" for name in wanted)
        for name, amount in wanted.items():
            largest = max((node.get(name, 0.0) for node in nodes), default=0.0)
            if largest < amount - 1e-9:
                asked = f"{flags[name]} {_amount(amount)}" if name in flags else f"resources {name!r}: {_amount(amount)}"
                raise UsageError(f"{asked}: no node of {where} has {_amount(amount)} {name} for a fold (its largest "
                                 f"node has {_amount(largest)}; the cluster: {have}); ask for at most "
                                 f"{_amount(largest)} or use a cluster that has more")
        raise UsageError(f"a fold asks for {', '.join(f'{_amount(a)} {n}' for n, a in wanted.items())} on one node, "
                         f"but no node of {where} has all of them (the cluster: {have}); lower {param('cpus_per_fold')} or "
                         f"{param('gpus_per_fold')}")

    def check_visible(self, path: str | Path) -> None:
        """On a remote cluster every node must see ``path`` (shared storage at the same path); one line if not."""
        path = str(path)
        if not self.remote_cluster or path in self._checked_paths:
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = self.ray.remote(num_cpus=0, max_retries=0)(_path_state)
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(path)
                for n in nodes]
        for node, (ip, exists) in zip(nodes, self.ray.get(refs)):
            if not exists:
                raise UsageError(f"{path}: not visible on the Ray node {ip or node.get('NodeManagerAddress')}: the run "
                                 f"directory must be on storage every node mounts at the same path (e.g. NFS); "
                                 f"give such an {param('out')}")
        self._checked_paths.add(path)

    # -- jobs
    def prepare_job(self, job):
        """The job as a task runs it: absolute paths, CPU device without a GPU share, threads explicit, no bars."""
        spec = job.task
        if spec.data not in ("kmnist",) and not os.path.isabs(spec.data):
            spec = dataclasses.replace(spec, data=os.path.abspath(spec.data))
        if spec.cache_dir is not None:
            spec = dataclasses.replace(spec, cache_dir=os.path.abspath(spec.cache_dir))
        return dataclasses.replace(job, run_dir=os.path.abspath(job.run_dir), task=spec,
                                   device=self.options.device(job.device), threads=self.options.threads(job.threads),
                                   progress=False)

    def submit(self, jobs) -> list:
        self.connect()
        jobs = [self.prepare_job(job) for job in jobs]
        for run_dir in sorted({job.run_dir for job in jobs}):
            self.check_visible(run_dir)
        refs = []
        for job in jobs:
            token = uuid.uuid4().hex
            refs.append(self._remote_fold.remote(job, token))
            self._tokens[refs[-1]] = token
        return refs

    def submit_predict(self, run_dir: str, spec, probs_dir: str, *, tta, device: str, threads, after: Sequence = (),
                       fmt: str = "npz"):
        self.connect()
        if spec.data != "kmnist" and not os.path.isabs(spec.data):
            spec = dataclasses.replace(spec, data=os.path.abspath(spec.data))
        extra = {} if fmt == "npz" else {"fmt": fmt}
        return self._remote_predict.remote(os.path.abspath(run_dir), spec, os.path.abspath(probs_dir), tta,
                                           self.options.device(device), self.options.threads(threads), *after, **extra)

    def get(self, ref) -> Any:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> BaseException:
        cause = _unwrap(exc)
        if isinstance(cause, KfoldError):
            return cause
        ray = self.ray
        if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            getattr(ray.exceptions, "TaskUnschedulableError", ()), ray.exceptions.ObjectLostError)):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return DataError(f"a fold's Ray worker or node was lost {self.options.max_retries + 1} time(s) "
                             f"({type(exc).__name__}: {first[:200]}); rerun the command with {param('resume')}=True to continue")
        return exc

    def wait(self, refs: Sequence, *, labels: Sequence[str] | None = None, on_done: Callable[[int, dict], None] | None = None) -> list:
        """Results of ``refs`` in order; one line per finished fold and an overall bar as they complete."""
        from tqdm.auto import tqdm

        refs = list(refs)
        labels = list(labels) if labels is not None else [""] * len(refs)
        index = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        bar = tqdm(total=len(refs), desc="folds", unit="fold", disable=not self.progress, file=sys.stderr)
        timeout = self.options.timeout
        deadline = time.monotonic() + timeout
        start_up_waits = 0
        try:
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1, timeout=min(max(deadline - time.monotonic(), 0.05), 5.0))
                if not done:
                    if time.monotonic() >= deadline:  # nothing finished for a while: is any fold running at all?
                        if not self._any_started(pending):
                            if self._room_for_a_fold() and start_up_waits < MAX_START_UP_WAITS:
                                start_up_waits += 1  # resources are free: a worker is starting (imports on a busy host)
                            else:
                                raise self._unscheduled(timeout)
                        deadline = time.monotonic() + timeout
                    continue
                deadline = time.monotonic() + timeout  # a fold finished: the next one has its own time to start
                for ref in done:
                    i = index[ref]
                    result = self.get(ref)
                    results[i] = result
                    acc = result.get("val_accuracy")
                    line = (f"{labels[i]}fold {result['fold']} finished on {result['node']} in {result['seconds']:.1f}s"
                            + ("" if acc is None else f", val accuracy {acc:.4f}")
                            + (" (retried after a lost worker)" if result.get("retry") else ""))
                    (bar.write if self.progress else self.echo)(line)
                    bar.update(1)
                    if on_done is not None:
                        on_done(i, result)
        except BaseException:
            for ref in pending:  # a failed fold ends the command: the others stop too (rerun with --resume)
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
            raise
        finally:
            bar.close()
        return results

    def _any_started(self, refs: Sequence) -> bool:
        """Whether a task of ``refs`` has started (or is not a fold task, whose start kfold cannot see)."""
        from ray.experimental import internal_kv

        if internal_kv._internal_kv_initialized():
            exists = internal_kv._internal_kv_exists
        else:  # the module's client was reset (ray.cluster_utils does that) while this driver stays connected
            client = getattr(getattr(self.ray._private.worker, "global_worker", None), "gcs_client", None)
            if client is None:
                return True  # cannot tell: never end a wait on a guess
            exists = lambda key: client.internal_kv_exists(key.encode(), None)  # noqa: E731
        for ref in refs:
            token = self._tokens.get(ref)
            if token is None or exists(f"kfold-attempt:{token}"):
                return True
        return False

    def _room_for_a_fold(self) -> bool:
        """True when the cluster has the resources of one fold free right now (a fold not started yet is then
        waiting for its worker to start, not for room)."""
        try:
            free = self.ray.available_resources()
        except Exception:  # noqa: BLE001 - unknown: treat as no room (the bounded wait applies)
            return False
        return all(free.get(name, 0.0) >= amount for name, amount in self.options.request().items())

    def _unscheduled(self, timeout: float) -> KfoldError:
        try:
            free = self.ray.available_resources()
        except Exception:  # noqa: BLE001 - the message without it
            free = {}
        wanted = self.options.request()
        have = ", ".join(f"{_amount(free.get(name, 0.0))} {name}" for name in wanted)
        return DataError(f"no fold task could start within {timeout:g}s: each asks for "
                         f"{', '.join(f'{_amount(a)} {n}' for n, a in wanted.items())} and the Ray cluster has {have} "
                         f"free (other jobs hold the rest?); finished folds are kept: rerun with {param('resume')}=True when the "
                         f"cluster has room, or wait longer with {param('timeout')}=SECONDS")

    # -- the Backend protocol (kfold.flows.backend)
    def train_folds(self, jobs, task=None) -> None:
        """Every job as a Ray task (each loads its task from ``job.task``); returns when all finished."""
        jobs = list(jobs)
        if jobs:
            on_fold = self.on_fold
            self.wait(self.submit(jobs), on_done=None if on_fold is None else lambda i, _result: on_fold(jobs[i].fold))

    def predict(self, runs, task, out, *, spec=None, tta: int | None = None, device: str = "auto",
                threads: int | None = None, fmt: str = "npz", echo: Callable[[str], None] | None = None) -> list[Path]:
        """Every run predicted as a Ray task (the driver stays torch-free); returns the paths written."""
        if spec is None:
            raise UsageError("a Ray prediction needs the task's spec (spec=TaskSpec(...)) to load the data on its node")
        refs = [self.submit_predict(str(getattr(run, "path", run)), spec, str(out), tta=tta, device=device,
                                    threads=threads, fmt=fmt) for run in runs]
        written = [Path(p) for ref in refs for p in self.get(ref)]
        (self.echo if echo is None else echo)(f"wrote {len(written)} probability files to {out}")
        return written

    def threads(self, requested: int | None) -> int:
        """Torch threads of every fold: ``RayOptions.threads`` (explicit, else the fold's CPUs)."""
        return self.options.threads(requested)

    def check(self, cfg, task, spec, device: str) -> None:
        """Connect (or start the embedded cluster) and check its resources (``check_feasible``) now, before the run
        directory's first file: an ``--address`` with nothing listening, or ``--gpus-per-fold 1`` on a cluster
        without GPUs, leaves no ``config.json`` or ``folds.csv`` behind. The folds build their models on the workers
        (``device`` was checked by ``RayOptions``)."""
        self.connect()

    def __call__(self, jobs, task=None) -> None:
        """``train_folds`` (the earlier callable form of a backend)."""
        self.train_folds(jobs, task)


def make_backend(name: str = "ray", *, address: str | None = None, cpus_per_fold: float = 1.0,
                 gpus_per_fold: float = 0.0, max_retries: int = 3, parallel_folds: int | None = None,
                 device: str = "auto", progress: bool = True, echo: Callable[[str], None] = print,
                 ray_timeout: float = 30.0, resources: dict | None = None) -> RayBackend | None:
    """``None`` for the local backend, else a validated ``RayBackend`` (Ray imported, not started)."""
    if name == "local" and parallel_folds is None:
        if address:
            raise UsageError(f"{param('address')} needs {param('backend')}=ray")
        return None
    if name not in ("local", "ray"):
        raise UsageError(f"{param('backend')}={name!r}: must be local or ray")
    options = RayOptions(address=address, cpus_per_fold=cpus_per_fold, gpus_per_fold=gpus_per_fold,
                         max_retries=max_retries, concurrent=parallel_folds, timeout=ray_timeout,
                         resources=resources).validate()
    options.device(device)  # --device cuda without a GPU share: a usage error now
    return RayBackend(options, progress=progress, echo=echo)
