"""Run one notebook with nbclient in this process and report (``python -m kfold.flows.notebook_runner SPEC``).

:func:`kfold.flows.rehearse.execute_notebook` starts it as a subprocess (inside a network namespace when the
network is blocked that way), so that the Jupyter kernel it launches -- the throwaway environment's interpreter,
with a clean environment -- is its child: its peak memory is then this process's ``RUSAGE_CHILDREN``. ``SPEC`` is
a JSON object: notebook, executed (where the executed copy goes), python (the kernel's interpreter), working (the
kernel's folder), env (the kernel's environment), timeout (seconds per cell or null), result (a JSON file written
here: seconds, peak_kb, error). Nothing here imports kfold beyond this module, nor torch.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from kfold.files.atomic import write_text

__all__ = ["main"]


def _error_line(notebook) -> str | None:
    """The first error output of the executed notebook as one line (a SystemExit's message as it is)."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                name, value = output.get("ename", "Error"), str(output.get("evalue", "")).strip()
                line = value if name == "SystemExit" and value else f"{name}: {value}"
                return " ".join(line.split())[:500]
    return None


def main(argv: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    spec = json.loads(argv[0])
    notebook = nbformat.read(spec["notebook"], as_version=4)
    jupyter = Path(tempfile.mkdtemp(prefix="kfold-jupyter-"))
    kernel_dir = jupyter / "kernels" / "kfold-rehearsal"
    kernel_dir.mkdir(parents=True)
    write_text(kernel_dir / "kernel.json", json.dumps({
        "argv": [spec["python"], "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kfold rehearsal (Kaggle's image)", "language": "python"}))
    os.environ.clear()  # the kernel inherits this environment: nothing of kfold's checkout (PYTHONPATH) in it
    os.environ.update({**spec["env"], "JUPYTER_PATH": str(jupyter), "JUPYTER_PLATFORM_DIRS": "1",
                       "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"), "IPYTHONDIR": str(jupyter / "ipython")})
    client = NotebookClient(notebook, timeout=spec.get("timeout"), kernel_name="kfold-rehearsal",
                            resources={"metadata": {"path": spec["working"]}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError:
        error = _error_line(notebook) or "a cell failed"
    except CellTimeoutError:
        error = f"a cell ran past the timeout of {spec.get('timeout')} s"
    except DeadKernelError as exc:
        error = f"the kernel died ({' '.join(str(exc).split())[:200]}; out of memory?)"
    seconds = time.perf_counter() - start
    nbformat.write(notebook, spec["executed"])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    write_text(spec["result"], json.dumps({"seconds": seconds, "peak_kb": peak_kb, "error": error}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
