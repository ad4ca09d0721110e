"""The loopback fake's kernel runner: execute a pushed notebook as Kaggle does, offline.

``execute_notebook(notebook, root)`` runs the notebook with nbclient in a fresh process whose network is cut:
a new network namespace with only its own loopback up (``unshare -n`` + ``ip link set lo up``) where this
machine allows it (root), otherwise a socket guard that refuses every internet connection from the kernel
(a ``sitecustomize`` on the kernel's path). The kernel sees ``KFOLD_KAGGLE_ROOT=root`` and runs in
``root/working``, without the caller's proxies or Kaggle credentials. It returns what Kaggle reports: whether
the run completed, the failure message (the exception's last line) and the log (Kaggle's JSON list of
``{"stream_name", "time", "data"}``).

Run as a script (``python kaggle_kernels.py NOTEBOOK ROOT TIMEOUT RESULT``) it is the process inside the
namespace.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GUARD = '''import socket
_connect = socket.socket.connect
def _offline(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise OSError(101, "Network is unreachable (kfold's socket guard: the internet is off)")
    return _connect(self, address)
socket.socket.connect = _offline
socket.socket.connect_ex = lambda self, address: 101 if self.family in (socket.AF_INET, socket.AF_INET6) else \\
    _connect(self, address)
'''
SCRUBBED = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "KAGGLE_USERNAME",
            "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_API_ENVIRONMENT", "KAGGLE_CONFIG_DIR")


def isolation() -> str:
    """How the network is cut here: 'namespace' (root with unshare and ip) or 'socket guard'."""
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            return "namespace"
    return "socket guard"


def execute_notebook(notebook: Path, root: Path, timeout: float = 600.0) -> tuple[bool, str, str]:
    """Run ``notebook`` offline under the Kaggle-shaped tree ``root``; (completed, failure message, log JSON)."""
    root = Path(root)
    (root / "working").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["KFOLD_KAGGLE_ROOT"] = str(root)
    with tempfile.TemporaryDirectory(prefix="kfold-kernel-") as scratch:
        result = Path(scratch) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), str(notebook), str(root), str(timeout), str(result)]
        if isolation() == "namespace":
            command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
        else:
            (Path(scratch) / "sitecustomize.py").write_text(GUARD)
            env["PYTHONPATH"] = os.pathsep.join([scratch, *filter(None, [env.get("PYTHONPATH")])])
        done = subprocess.run(command, cwd=root / "working", env=env, capture_output=True, text=True,
                              timeout=timeout + 60)
        if not result.is_file():
            return False, f"the runner failed: {done.stderr.strip()[-500:]}", "[]"
        outcome = json.loads(result.read_text())
    return outcome["ok"], outcome["failure"], outcome["log"]


def _run(notebook: str, root: str, timeout: str, result: str) -> None:
    """Inside the isolated process: execute, then write the outcome for the caller."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=float(timeout), kernel_name="python3",
                            resources={"metadata": {"path": str(Path(root) / "working")}})
    ok, failure = True, ""
    try:
        client.execute()
    except CellTimeoutError:
        ok, failure = False, "Notebook Timeout"
    except CellExecutionError as exc:
        ok, failure = False, f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # the kernel died, could not start, ...
        ok, failure = False, f"{type(exc).__name__}: {exc}"
    log = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                log.append({"stream_name": output["name"], "time": 0.0, "data": output["text"]})
            elif output.get("output_type") == "error":
                log.append({"stream_name": "stderr", "time": 0.0,
                            "data": re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.get("traceback", []))) + "\n"})
    Path(result).write_text(json.dumps({"ok": ok, "failure": failure, "log": json.dumps(log)}))


if __name__ == "__main__":
    _run(*sys.argv[1:5])
