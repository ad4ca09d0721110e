"""Safe extraction of a downloaded zip archive into a data folder.

* A size limit on what the archive unpacks to: the declared sizes are checked before anything is
  written and the bytes actually written are counted too (a lying header cannot overrun it).
* Never through a symlink: the destination folder, any folder on the way to a member and any file a
  member would replace must not be symlinks; symlink members, absolute paths and '..' are refused.
* Nothing half-extracted: everything is unpacked into a temporary folder beside the destination and
  moved into place only once the whole archive was read; on any failure the temporary folder is removed
  and the destination is unchanged.

Nothing here imports torch.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from kfold.files.atomic import atomic_path, guard_outputs
from kfold.errors import DataError, UsageError, param

__all__ = ["check_not_symlink", "CHUNK", "DEFAULT_MAX_SIZE", "extract_zip", "parse_size"]

CHUNK = 1 << 20
DEFAULT_MAX_SIZE = 8 << 30
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30, "GB": 1 << 30,
          "T": 1 << 40, "TB": 1 << 40}


def parse_size(text: str) -> int:
    """'500M', '2G', '1048576' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise UsageError(f"{param('max_size')}={text!r}: give a positive size such as 500M or 2G")
    return int(float(match.group(1)) * _UNITS[unit])


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _member_path(info: zipfile.ZipInfo, archive: str) -> PurePosixPath | None:
    """The member's relative path, or DataError for anything that could escape or link; None for folders."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DataError(f"{archive}: member '{info.filename}' is a symbolic link; refusing to extract it")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise DataError(f"{archive}: member '{info.filename}' points outside the folder; refusing to extract it")
    parts = [part for part in path.parts if part not in ("", ".")]
    if info.is_dir() or not parts:
        return None
    return PurePosixPath(*parts)


_PATH_MAX = 4096


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or its nearest existing parent) allows."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def check_not_symlink(path: Path, what: str) -> None:
    if path.is_symlink():
        raise DataError(f"{path}: {what} is a symbolic link; kfold never writes through one (give the real folder)")


def extract_zip(archive: str | os.PathLike, destination: str | os.PathLike, max_size: int = DEFAULT_MAX_SIZE,
                force: bool = False, name: str | None = None) -> list[Path]:
    """Unpack ``archive`` into ``destination``; return the files written (destination paths, archive order).

    Existing files are replaced only with ``force`` (each one atomically); a file the archive does not hold
    is left alone.
    """
    archive, destination = Path(archive), Path(destination)
    label = name or str(archive)  # how messages name the archive
    check_not_symlink(destination, "the data folder")
    if destination.exists() and not destination.is_dir():
        raise DataError(f"{destination}: exists and is not a folder; give a folder for {param('data_dir')}")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(f"{label}: downloaded archive is not a valid zip file") from None
    with zf:
        members = [(info, path) for info in zf.infolist() if (path := _member_path(info, label)) is not None]
        seen = set()
        for _, path in members:
            if str(path).lower() in seen:
                raise DataError(f"{label}: member '{path}' appears twice; refusing an ambiguous archive")
            seen.add(str(path).lower())
        files = {str(path) for _, path in members}
        for info, path in members:
            folder = next((str(parent) for parent in path.parents if str(parent) in files), None)
            if folder is not None:
                raise DataError(f"{label}: member '{info.filename}' lies in '{folder}', which the archive also holds "
                                "as a file; refusing an ambiguous archive")
        declared = sum(info.file_size for info, _ in members)
        if declared > max_size:
            raise DataError(f"{label}: unpacks to {_human(declared)}, more than {param('max_size')} {_human(max_size)}")
        name_max = _name_max(destination)
        for info, path in members:  # every target checked before anything is written
            long = next((part for part in path.parts if len(part.encode()) > name_max), None)
            if long is not None:
                raise DataError(f"{label}: member '{info.filename}' has a name of {len(long.encode())} bytes, more than "
                                f"the {name_max} this file system allows; refusing to extract it")
            if len(str(destination.resolve() / str(path)).encode()) >= _PATH_MAX:
                raise DataError(f"{label}: member '{info.filename}' would have a path longer than this file system "
                                f"allows under {destination}; refusing to extract it")
            target = destination
            for index, part in enumerate(path.parts):
                target = target / part
                check_not_symlink(target, f"a path inside the data folder ({path})")
                if index < len(path.parts) - 1 and target.exists() and not target.is_dir():
                    raise DataError(f"{target}: exists and is not a folder; cannot put '{path}' there")
            if target.exists() and not force:
                raise DataError(f"{target}: already exists; give {param('force')}=True to replace the downloaded files, "
                                f"or choose an empty {param('data_dir')} folder")
            if target.exists() and not target.is_file():
                raise DataError(f"{target}: exists and is not a file; cannot put '{path}' there")
        guard_outputs([destination, *(destination.joinpath(*path.parts) for _, path in members)], [archive],
                      root=destination.parent, error=DataError)
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.extract-", dir=destination.parent))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700: the data folder follows the umask
        try:
            written = 0
            for info, path in members:
                target = staging.joinpath(*path.parts)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)  # folders follow the umask
                    with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:  # mode: the umask
                        while chunk := src.read(CHUNK):
                            written += len(chunk)
                            if written > max_size:
                                raise DataError(f"{label}: unpacks to more than {param('max_size')} {_human(max_size)}")
                            dst.write(chunk)
                        dst.flush()
                        os.fsync(dst.fileno())
                except OSError as exc:
                    if exc.errno not in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
                        raise  # disk full, I/O error: the error names the file being written
                    # a name the file system refuses: named by the member, never by the hidden staging folder
                    raise DataError(f"{label}: member '{info.filename}': cannot extract it "
                                    f"({exc.strerror or exc}); nothing was extracted") from None
            return _move_into(staging, destination, [path for _, path in members])
        except zipfile.BadZipFile as exc:
            raise DataError(f"{label}: damaged zip file ({exc})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    from kfold.files.atomic import current_umask

    return current_umask()


def _move_into(staging: Path, destination: Path, paths: list[PurePosixPath]) -> list[Path]:
    if not destination.exists():  # the common case: the whole folder appears at once
        os.replace(staging, destination)
        staging.mkdir()  # the caller's cleanup removes this empty placeholder
        return [destination.joinpath(*path.parts) for path in paths]
    out = []
    for path in paths:
        target = destination.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging.joinpath(*path.parts), target)
        out.append(target)
    return out
