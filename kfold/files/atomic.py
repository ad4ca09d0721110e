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


def _input_files(inputs) -> list[Path]:
    """The input paths, a folder standing for every file below it (a data folder read as a whole)."""
    files: list[Path] = []
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        if source.is_dir():
            for folder, _, names in os.walk(source):
                files += [Path(folder) / name for name in names]
                if len(files) > 100_000:
                    break
        else:
            files.append(source)
    return files


def _links_below(root: Path, path: Path) -> Path | None:
    """The first symbolic link among the existing folders from below ``root`` down to ``path`` (None: none)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:  # not spelled below root: nothing between them to check
        return None
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            return current
        if not current.exists():
            return None
    return None


def guard_outputs(outputs, inputs=(), *, root=None, error=None, links: str = "folders") -> None:
    """The one output guard: every command calls it with its outputs and inputs before it computes anything.

    Raises ``error(message)`` (default ``UsageError``), one line naming the output, when

    * an output is, or resolves to, one of the ``inputs`` (the same path after symbolic links and '..', or the same
      file through a hard link; a folder among the inputs stands for every file below it);
    * an output lies under a folder that is a symbolic link: every existing folder below ``root`` (the folder the
      user named: a run directory, or the parent of a named output folder) on the way to an output must be a real
      folder; an output that is itself a link to a folder is refused too. kfold creates no links, so any link
      there was planted;
    * with ``links="all"`` (a run directory, whose files are also its inputs), an output file that is itself a
      symbolic link is refused as well. Otherwise a link to a file is replaced by the new file, never written through.
    """
    from kfold.errors import UsageError

    error = error or UsageError
    outputs = [Path(out) for out in outputs if out is not None]
    root = None if root is None else Path(root)
    sources = _input_files(inputs)
    real_sources = {}
    for source in sources:
        real_sources.setdefault(os.path.realpath(source), source)
    inodes = {}
    for source in sources:
        with contextlib.suppress(OSError):
            st = os.stat(source)
            inodes.setdefault((st.st_dev, st.st_ino), source)
    for out in outputs:
        source = real_sources.get(os.path.realpath(out))
        if source is None:
            with contextlib.suppress(OSError):
                st = os.stat(out)
                if stat.S_ISREG(st.st_mode):
                    source = inodes.get((st.st_dev, st.st_ino))
        if source is not None:
            raise error(f"{out}: output would overwrite the input {source}; choose another output path")
    for out in outputs:
        link = _links_below(root, out) if root is not None else None
        if link is None and out.is_symlink() and (links == "all" or out.is_dir()):
            link = out
        if link is not None:
            target = os.path.realpath(link)
            where = f", outside {root}" if root is not None and not _inside(target, root) else ""
            raise error(f"{link}: is a symbolic link to {target}{where}; kfold writes only into real folders and never "
                        f"through a link it did not create (remove the link or choose another output)")


def _inside(path: str, root: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def refuse_overwriting_inputs(inputs, outputs, error) -> None:
    """Raise ``error(message)`` when an output path would replace one of the inputs (``guard_outputs``' first rule)."""
    guard_outputs(outputs, inputs, error=error, root=None, links="none")


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
    is, or lies under, a symbolic link (``guard_outputs`` with ``links="all"``)."""
    guard_outputs(paths, (), root=root, error=error, links="all")


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
