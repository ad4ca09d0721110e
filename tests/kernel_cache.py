"""The loopback fake's kernel runner (``kaggle_kernels.execute_notebook``), each distinct run executed once per test
process: ``fake_kaggle.executor = cached_executor``.

A Kaggle kernel run is a function of the notebook and the files mounted under ``input/``: the same notebook on the
same bytes gives the same outcome, log and output files. The tests of ``kfold submit --code`` push the same tiny
notebook on the same competition dozens of times (every resumed submission, every hostile case that reaches the
kernel), and each real execution starts two interpreters and a Jupyter kernel: seconds on a loaded CI machine.
Here the first run of each distinct (notebook without its cells' random ids, inputs, network isolation) is REALLY
executed offline as before; a later identical run gets that run's outcome: its completed flag, its failure message
and its log (the run's folder, which the notebook may print, replaced by this run's folder) and its output files,
written into this run's ``working/`` as the kernel would have written them. A run whose outputs name its own folder is never reused.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from kaggle_kernels import execute_notebook, isolation

_DONE: dict[str, tuple[bool, str, str, dict[str, bytes]]] = {}
_ROOT = "\0kernel-root\0"
executions: list[str] = []  # the keys really executed, in order (tests can see what ran)


@functools.lru_cache(maxsize=1)
def _isolation() -> str:
    return isolation()


def _notebook_bytes(notebook: Path) -> bytes:
    """The notebook's bytes without its cells' ids (nbformat draws a random id for every new cell; the id changes
    neither what the kernel runs nor what it prints); its raw bytes when it is not a notebook's JSON."""
    data = Path(notebook).read_bytes()
    try:
        content = json.loads(data)
        for cell in content.get("cells", []):
            cell.pop("id", None)
    except (ValueError, AttributeError, TypeError):
        return data
    return json.dumps(content, sort_keys=True).encode()


def run_key(notebook: Path, root: Path) -> str:
    """sha256 over the isolation, the notebook (``_notebook_bytes``) and every entry under ``root`` (path and
    bytes)."""
    digest = hashlib.sha256(_isolation().encode() + b"\0" + _notebook_bytes(notebook))
    for path in sorted(Path(root).rglob("*")):
        if path == Path(notebook):
            continue
        rel = path.relative_to(root).as_posix().encode()
        if path.is_symlink():
            digest.update(b"L\0" + rel + b"\0" + str(path.readlink()).encode())
        elif path.is_dir():
            digest.update(b"D\0" + rel)
        else:
            data = path.read_bytes()
            digest.update(b"F\0" + rel + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def cached_executor(notebook: Path, root: Path) -> tuple[bool, str, str]:
    """``execute_notebook(notebook, root)``, executed once per distinct run (see the module's docstring)."""
    root = Path(root)
    key = run_key(notebook, root)
    if key in _DONE:
        ok, failure, log, outputs = _DONE[key]
        working = root / "working"
        working.mkdir(parents=True, exist_ok=True)
        for name, data in outputs.items():
            (working / name).write_bytes(data)
        return ok, failure.replace(_ROOT, str(root)), log.replace(_ROOT, str(root))
    executions.append(key)
    ok, failure, log = execute_notebook(notebook, root)
    working = root / "working"
    outputs = {p.name: p.read_bytes() for p in sorted(working.iterdir()) if p.is_file()} if working.is_dir() else {}
    nested = working.is_dir() and any(p.is_dir() for p in working.iterdir())
    if not nested and not any(str(root).encode() in data for data in outputs.values()):
        _DONE[key] = (ok, failure.replace(str(root), _ROOT), log.replace(str(root), _ROOT), outputs)
    return ok, failure, log
