"""Atomic file writing: every file kfold writes goes to a temporary sibling, then os.replace.

A crash or a full disk therefore never leaves a half-written file under the final name.
Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator


_STAGED: contextvars.ContextVar[list | None] = contextvars.ContextVar("kfold_atomic_staged", default=None)


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Files written inside this block appear together when it ends, or not at all.

    Every ``atomic_path`` write in the block goes to its hidden temporary sibling; the renames happen only
    after the block succeeded (a kill during those few renames can leave some of them undone).
    """
    if _STAGED.get() is not None:  # nested: the outer block decides
        yield
        return
    staged: list = []
    token = _STAGED.set(staged)
    try:
        yield
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise
    finally:
        _STAGED.reset(token)
    for tmp, path in staged:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only if the block succeeds.

    ``suffix`` defaults to the final file's suffix so that writers that infer the format
    from the extension (matplotlib, numpy) keep working.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix + ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _final_mode(path))  # mkstemp makes 0600: follow the umask, or keep a replaced file's mode
        staged = _STAGED.get()
        if staged is not None:  # inside together(): renamed when the whole block has succeeded
            staged.append((tmp_path, path))
            return
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            # a failed write (disk full, I/O error) does not say which file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """The mode a new file gets from the umask; a replaced regular file keeps its own (a symlink is not followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0o666 & ~current_umask()
    if stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode)
    return 0o666 & ~current_umask()


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: the same resolved path, or (existing) the same inode (hard links)."""
    a, b = Path(a), Path(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(inputs, outputs, error) -> None:
    """Raise ``error(message)`` when an output path would replace one of the inputs (symlinks and hard links included)."""
    for out in outputs:
        for source in inputs:
            if same_file(out, source):
                raise error(f"{out}: output would overwrite the input {source}; choose another output path")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame, **to_csv_kwargs) -> None:
    """Write a pandas DataFrame as CSV (index off unless asked for)."""
    to_csv_kwargs.setdefault("index", False)
    write_text(path, frame.to_csv(**to_csv_kwargs))


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    savefig_kwargs.setdefault("dpi", 120)
    savefig_kwargs.setdefault("bbox_inches", "tight")
    suffix = Path(path).suffix
    with atomic_path(path, suffix=".tmp" + suffix) as tmp:
        fig.savefig(tmp, format=suffix.lstrip(".") or "png", **savefig_kwargs)
    plt.close(fig)
