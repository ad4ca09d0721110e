"""``safe_extract(zip_path, dest_dir, max_bytes)``: unpack a downloaded archive without surprises.

* Every member is checked first: absolute paths and ``..`` are dropped (as ``zipfile.extract`` does), no member may land on (or under)
  a symbolic link planted in ``dest_dir``, no member that would replace a directory; the declared
  total size must stay within ``max_bytes`` (and within the free disk space).
* Members are extracted into a hidden temporary directory inside ``dest_dir`` while the bytes
  actually written are counted (a lying size field cannot exceed ``max_bytes`` either); only when
  all are complete are they renamed into place. A failure (disk full, a damaged member) removes the
  temporary directory: nothing half-extracted is left, and the error names the file.

Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from kfold.errors import DataError
from kfold.files.atomic import atomic_path

DEFAULT_MAX_BYTES = 20 * 1024**3  # 20 GiB: above every image competition's data; raise with --max-extract-bytes
_CHUNK = 1 << 20


def _member_path(name: str, archive: Path) -> PurePosixPath:
    """Where a member goes below the destination: like ``zipfile.extract``, an absolute path, a drive and
    ``..`` or ``.`` components are dropped, so nothing can land outside the destination."""
    parts = [part for part in PurePosixPath(name.replace("\\", "/")).parts
             if part not in ("", ".", "..", "/") and not (len(part) == 2 and part[1] == ":")]
    if not parts:
        raise DataError(f"{archive}: member '{name}' has no usable file name; refusing to extract")
    return PurePosixPath(*parts)


def _refuse_links(dest: Path, relative: PurePosixPath, archive: Path) -> None:
    """No component of ``dest/relative`` below ``dest`` may be a symbolic link (or a directory for the file)."""
    current = dest
    for index, part in enumerate(relative.parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise DataError(f"{current}: is a symbolic link; refusing to extract {archive.name} through it "
                            "(remove the link first)")
        last = index == len(relative.parts) - 1
        if last and stat.S_ISDIR(mode):
            raise DataError(f"{current}: is a directory; {archive.name} has a file of that name")
        if not last and not stat.S_ISDIR(mode):
            raise DataError(f"{current}: is a file; {archive.name} needs a directory of that name")


def safe_extract(zip_path: str | os.PathLike, dest_dir: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Path]:
    """Extract every file of ``zip_path`` into ``dest_dir``; return the final paths (see the module docstring)."""
    archive, dest = Path(zip_path), Path(dest_dir)
    if max_bytes < 0:
        raise DataError(f"max_bytes must be non-negative, got {max_bytes}")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(f"{archive}: downloaded archive is not a valid zip file") from None
    with zf:
        members = [(info, _member_path(info.filename, archive)) for info in zf.infolist() if not info.is_dir()]
        declared = sum(info.file_size for info, _ in members)
        if declared > max_bytes:
            raise DataError(f"{archive}: expands to {declared:,} bytes, more than the limit of {max_bytes:,} "
                            "(raise it with --max-extract-bytes if this is expected)")
        for _, relative in members:
            _refuse_links(dest, relative, archive)
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(dest).free
            if declared > free:
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({archive.name} needs {declared:,} bytes, "
                                            f"{free:,} free)", str(dest))
        staging = Path(tempfile.mkdtemp(dir=dest, prefix=f".{archive.name[:100]}.{os.getpid()}-extract-"))
        try:
            written = 0
            for info, relative in members:
                target = staging.joinpath(*relative.parts)
                final = dest.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as source, atomic_path(target) as partial, open(partial, "wb") as sink:
                        while chunk := source.read(_CHUNK):
                            written += len(chunk)
                            if written > max_bytes:
                                raise DataError(f"{archive}: expands to more than the limit of {max_bytes:,} bytes "
                                                "(raise it with --max-extract-bytes if this is expected)")
                            sink.write(chunk)
                        sink.flush()
                        os.fsync(sink.fileno())
                except OSError as exc:
                    raise type(exc)(exc.errno, exc.strerror, str(final)) from None
                except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
                    raise DataError(f"{archive}: member '{info.filename}' is damaged ({exc})") from None
            finals = []
            for info, relative in members:  # every member is complete: move them into place
                final = dest.joinpath(*relative.parts)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging.joinpath(*relative.parts), final)
                finals.append(final)
            return finals
        finally:
            shutil.rmtree(staging, ignore_errors=True)
