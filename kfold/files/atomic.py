"""Atomic file writing: every file kfold writes goes to a temporary sibling, then os.replace.

A crash or a full disk therefore never leaves a half-written file under the final name.
Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "current_umask", "refuse_links_out_of", "refuse_overwriting_inputs", "remove_stale_temps",
           "same_file", "save_figure", "sweep_stale_temps", "together", "Transaction", "write_bytes", "write_csv",
           "write_json", "write_text"]


_MAX_PREFIX_NAME = 100  # the hidden temporary name stays short enough for any file system (255 bytes)


def _temp_stem(path: Path) -> str:
    """``.NAME.`` (NAME cut to 100 bytes): the start of every temporary file name of ``path``."""
    name = path.name
    if len(name.encode()) > _MAX_PREFIX_NAME:
        name = name.encode()[:_MAX_PREFIX_NAME].decode(errors="ignore")
    return f".{name}."


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove hidden temporary files of ``path`` left by a killed kfold process (whose pid no longer runs).

    Temporary files are named ``.NAME.PID-XXXXXXXX.SUFFIX``; only those of ``path`` whose creating
    process is gone are removed, so a concurrent writer's file is never touched."""
    import glob

    path = Path(path)
    stem = _temp_stem(path)
    removed = []
    try:
        candidates = list(path.parent.glob(glob.escape(stem) + "*-*"))
    except OSError:
        return removed
    for candidate in candidates:
        pid_text = candidate.name[len(stem):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(candidate).st_mode):
                candidate.unlink()
                removed.append(candidate)
    return removed


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]{8}")


def sweep_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove every kfold temporary file in ``directory`` whose creating process is gone (see ``atomic_path``).

    Commands call this for the directories they write, so that a run killed with SIGKILL leaves no
    hidden file behind once the same command ran again."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match or int(match["pid"]) == os.getpid() or _pid_alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def _names_temp(exc: OSError, path: Path) -> bool:
    """True when ``exc`` names no file or one of ``path``'s hidden temporary files."""
    return exc.filename is None or Path(str(exc.filename)).name.startswith(_temp_stem(path))


def _named(exc: OSError, path: Path) -> OSError:
    """The same error, naming the output file rather than the hidden temporary one."""
    return type(exc)(exc.errno, exc.strerror, str(path)) if exc.errno is not None else exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, transaction: "Transaction | None" = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only if the block succeeds.

    ``suffix`` defaults to the final file's suffix so that writers that infer the format
    from the extension (matplotlib, numpy) keep working. The temporary file is hidden
    (``.NAME.PID-XXXXXXXX.SUFFIX.tmp``); only a process killed without running its clean-up
    (SIGKILL, power loss) leaves one behind, and the next write of the same file removes it.
    Every error names ``path``, never the temporary file.
    """
    path = Path(path)
    if transaction is None:
        transaction = _CURRENT.get()  # inside together(): staged with the block's other files
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temp_stem(path)}{os.getpid()}-",
                                   suffix=suffix if suffix is not None else path.suffix + ".tmp")
    except OSError as exc:
        raise (_named(exc, path) if _names_temp(exc, path) else exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _final_mode(path))  # mkstemp makes 0600: follow the umask, or keep a replaced file's mode
        if transaction is not None:  # renamed with the transaction's other files when it ends
            transaction.staged.append((tmp_path, path))
        else:
            os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and _names_temp(exc, path):
            # a failed write (disk full, I/O error) does not say which file, or names the temporary one
            raise _named(exc, path) from exc
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


def write_bytes(path: str | os.PathLike, data: bytes, transaction: "Transaction | None" = None) -> None:
    with atomic_path(path, transaction=transaction) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str, transaction: "Transaction | None" = None) -> None:
    write_bytes(path, text.encode("utf-8"), transaction)


def write_json(path: str | os.PathLike, obj: Any, transaction: "Transaction | None" = None) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", transaction)


def write_csv(path: str | os.PathLike, frame, transaction: "Transaction | None" = None, **to_csv_kwargs) -> None:
    """Write a pandas DataFrame as CSV (index off unless asked for)."""
    to_csv_kwargs.setdefault("index", False)
    write_text(path, frame.to_csv(**to_csv_kwargs), transaction)


def save_figure(fig, path: str | os.PathLike, transaction: "Transaction | None" = None, **savefig_kwargs) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    savefig_kwargs.setdefault("dpi", 120)
    savefig_kwargs.setdefault("bbox_inches", "tight")
    suffix = Path(path).suffix
    with atomic_path(path, suffix=".tmp" + suffix, transaction=transaction) as tmp:
        fig.savefig(tmp, format=suffix.lstrip(".") or "png", **savefig_kwargs)
    plt.close(fig)


def refuse_links_out_of(root: str | os.PathLike, paths, error) -> None:
    """Raise ``error(message)`` when one of ``paths`` (files or directories a command writes under ``root``)
    is a symbolic link that leads outside ``root``: writing through it would change files elsewhere."""
    root_real = os.path.realpath(root)
    for path in map(Path, paths):
        if path.is_symlink():
            target = os.path.realpath(path)
            if os.path.commonpath([root_real, target]) != root_real:
                raise error(f"{path}: is a symbolic link to {target}, outside {root}; refusing to write through it "
                            "(remove the link or choose a new --out directory)")


class Transaction:
    """Several output files that appear together or not at all (as far as a file system allows).

    ``with Transaction() as tx:`` then writers called with ``transaction=tx`` (``atomic_path``,
    ``write_text``, ``write_csv``, ``write_probs``, ``write_submission`` ...) each write a hidden
    temporary sibling of their file; when the ``with`` block ends without an error, every file is
    renamed into place in one quick sequence of ``os.replace`` calls after all were written; on any
    error none is, and the temporary files are removed.
    """

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        done: list[tuple[Path, Path | None]] = []  # renamed: (final, hard link to its previous content or None)
        try:
            if exc_type is None:
                for tmp, final in self.staged:
                    backup = None
                    if os.path.isfile(final) and not os.path.islink(final):
                        backup = tmp.with_name(tmp.name + ".old")
                        os.link(final, backup)
                    try:
                        os.replace(tmp, final)
                    except OSError as error:
                        raise _named(error, final) from error
                    done.append((final, backup))
        except BaseException:
            for final, backup in reversed(done):  # undo the renames already done: the earlier files come back
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, final)
                    else:
                        os.unlink(final)
            raise
        finally:
            for tmp, _ in self.staged:
                for leftover in (tmp, tmp.with_name(tmp.name + ".old")):
                    with contextlib.suppress(FileNotFoundError):
                        leftover.unlink()


_CURRENT: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar("kfold_transaction", default=None)


@contextlib.contextmanager
def together() -> Iterator[Transaction]:
    """Every file written inside this block (through any kfold writer) appears when the block ends, or none does.

    The same as ``with Transaction() as tx`` with ``transaction=tx`` passed to every writer; nested blocks join
    the outer one.
    """
    current = _CURRENT.get()
    if current is not None:
        yield current
        return
    with Transaction() as transaction:
        token = _CURRENT.set(transaction)
        try:
            yield transaction
        finally:
            _CURRENT.reset(token)
