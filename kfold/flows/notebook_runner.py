"""Run one notebook with nbclient in this process and report (``python -m kfold.flows.notebook_runner SPEC``).

:func:`kfold.flows.rehearse.execute_notebook` starts it as a subprocess (inside a network namespace when the
network is blocked that way), so that the Jupyter kernel it launches -- the throwaway environment's interpreter,
with a clean environment -- is its child: its peak memory is then this process's ``RUSAGE_CHILDREN``. ``SPEC`` is
a JSON object: notebook, executed (where the executed copy goes), python (the kernel's interpreter), working (the
kernel's folder), env (the kernel's environment), timeout (seconds per cell or null), result (a JSON file written
here: seconds, peak_kb, error), deadline (seconds for the whole notebook, kernel start included, or null: a
notebook past it stops with its cell interrupted and the kernel shut down), scratch (the folder that holds Jupyter's own files, removed at the end; default:
the temporary folder). Nothing here imports kfold beyond this module, nor torch.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
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
    jupyter = Path(tempfile.mkdtemp(prefix="kfold-jupyter-", dir=spec.get("scratch")))
    try:
        kernel_dir = jupyter / "kernels" / "kfold-rehearsal"
        kernel_dir.mkdir(parents=True)
        write_text(kernel_dir / "kernel.json", json.dumps({
            "argv": [spec["python"], "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "kfold rehearsal (Kaggle's image)", "language": "python"}))
        os.environ.clear()  # the kernel inherits this environment: nothing of kfold's checkout (PYTHONPATH) in it
        os.environ.update({**spec["env"], "JUPYTER_PATH": str(jupyter), "JUPYTER_PLATFORM_DIRS": "1",
                           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"), "IPYTHONDIR": str(jupyter / "ipython")})
        start, error, deadline = time.perf_counter(), None, spec.get("deadline")
        cell_timeout = spec.get("timeout")

        def timeout_func(cell) -> float | None:  # each cell waits at most what is left of the whole notebook's time
            if deadline is None:
                return cell_timeout
            left = max(deadline - (time.perf_counter() - start), 1.0)
            return left if cell_timeout is None else min(cell_timeout, left)

        client = NotebookClient(notebook, timeout=cell_timeout, timeout_func=timeout_func,
                                kernel_name="kfold-rehearsal", resources={"metadata": {"path": spec["working"]}})
        try:
            client.execute()
        except CellExecutionError:
            error = _error_line(notebook) or "a cell failed"
        except CellTimeoutError:
            if deadline is not None and time.perf_counter() - start >= deadline:
                error = f"the notebook ran past its time limit of {deadline:g} s"
            else:
                error = f"a cell ran past the timeout of {cell_timeout} s"
        except DeadKernelError as exc:
            error = f"the kernel died ({' '.join(str(exc).split())[:200]}; out of memory?)"
        seconds = time.perf_counter() - start
        nbformat.write(notebook, spec["executed"])
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        write_text(spec["result"], json.dumps({"seconds": seconds, "peak_kb": peak_kb, "error": error}))
    finally:  # Jupyter's kernel spec, runtime and IPython folders: nothing of a rehearsal stays behind
        shutil.rmtree(jupyter, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
