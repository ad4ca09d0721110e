"""What ``kfold submit --code`` has done for one package, so that a re-run continues where it stopped.

``PKG/submit-state.json`` (``STATE_FILE``, format ``kfold-submit-state/1``), rewritten atomically after each step:

=================  ==========================================================================================
format             ``kfold-submit-state/1``
competition        the competition submitted to
dataset, kernel    the package's Kaggle dataset and kernel (``OWNER/SLUG``)
content_hash       the package's content hash whose dataset version was created ('' before the upload)
dataset_ready      Kaggle reported that version ready
kernel_hash        SHA-256 over PKG/kernel/ as pushed ('' before the push)
kernel_version     the version that push created (null before)
kernel_status      its last status seen (QUEUED, RUNNING, COMPLETE, ERROR, ...)
output_sha256      the SHA-256 of its output once it was checked against the local submission ('' before)
submit_version     the kernel version a code submission was started for, recorded BEFORE the call (null before)
submit_started     when that call started (UTC, ISO 8601; '' before)
submit_message     its message ('' before)
submitted          Kaggle accepted it (recorded after the call, whatever ref Kaggle gave)
ref                the code submission's ref once known (null before, or when Kaggle gave none)
logged             the submission is in the submission log
=================  ==========================================================================================

A re-run that finds ``submit_version`` set but not ``submitted`` (a timeout or Ctrl-C after Kaggle may have
accepted it) looks the submission up in the competition's submissions instead of submitting again. The four
``submit*`` keys may be missing (a state written before them: ``submitted`` is then ``ref is not null``).

``PKG/submit-state.lock`` (``LOCK_FILE``): :func:`submit_lock` holds an exclusive ``flock`` on it for a whole
``kfold submit --code``; a second command on the same package meanwhile is refused (one line), so that two never
both push and submit.

Read strictly: a state that is not this format (another JSON, a key missing or of the wrong type, a symbolic
link) raises DataError naming the file and the key; deleting the file starts the submission over. Torch-free.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kfold.errors import DataError, UsageError
from kfold.files.atomic import write_text

__all__ = ["LOCK_FILE", "STATE_FILE", "STATE_FORMAT", "SubmitState", "read_state", "submit_lock", "write_state"]

STATE_FILE = "submit-state.json"
LOCK_FILE = "submit-state.lock"
STATE_FORMAT = "kfold-submit-state/1"
_SHA256 = re.compile(r"^([0-9a-f]{64})?$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


@dataclass
class SubmitState:
    """The steps of one code submission done so far (see the module's table)."""

    competition: str
    dataset: str
    kernel: str
    content_hash: str = ""
    dataset_ready: bool = False
    kernel_hash: str = ""
    kernel_version: int | None = None
    kernel_status: str = ""
    output_sha256: str = ""
    submit_version: int | None = None
    submit_started: str = ""
    submit_message: str = ""
    submitted: bool = False
    ref: int | None = None
    logged: bool = False

    def same_target(self, competition: str, dataset: str, kernel: str) -> bool:
        return (self.competition, self.dataset, self.kernel) == (competition, dataset, kernel)


_TYPES = {"competition": str, "dataset": str, "kernel": str, "content_hash": str, "dataset_ready": bool,
          "kernel_hash": str, "kernel_version": (int, type(None)), "kernel_status": str, "output_sha256": str,
          "ref": (int, type(None)), "logged": bool, "submit_version": (int, type(None)), "submit_started": str,
          "submit_message": str, "submitted": bool}
_OPTIONAL = ("submit_version", "submit_started", "submit_message", "submitted")  # absent from older states


def read_state(path: str | os.PathLike) -> SubmitState | None:
    """The state in ``path``; None when there is none. DataError (file and key named) for anything else."""
    path = Path(path)
    hint = "; delete it to start this package's submission over"
    if path.is_symlink():
        raise DataError(f"{path}: the submit state is a symbolic link; kfold rewrites it in place{hint}")
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a kfold submit state ({type(exc).__name__}){hint}") from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise DataError(f"{path}: not a kfold submit state (format is not {STATE_FORMAT!r}){hint}")
    data = {"submitted": data.get("ref") is not None, **data}
    for key, kind in _TYPES.items():
        value = data.get(key, KeyError)
        if value is KeyError and key in _OPTIONAL:
            continue
        if value is KeyError:
            raise DataError(f"{path}: key '{key}' missing{hint}")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool) or \
                (isinstance(value, int) and not isinstance(value, bool) and value < 1):
            raise DataError(f"{path}: key '{key}': {value!r} is not a valid value{hint}")
    for key in ("content_hash", "kernel_hash", "output_sha256"):
        if not _SHA256.match(data[key]):
            raise DataError(f"{path}: key '{key}': {data[key][:40]!r} is not a SHA-256{hint}")
    extra = sorted(set(data) - set(_TYPES) - {"format"})
    if extra:
        raise DataError(f"{path}: unknown key(s) {', '.join(extra)}{hint}")
    if data.get("submit_started") and not _TIME.match(data["submit_started"]):
        raise DataError(f"{path}: key 'submit_started': {data['submit_started'][:40]!r} is not a UTC time{hint}")
    return SubmitState(**{f.name: data[f.name] for f in fields(SubmitState) if f.name in data})


def write_state(path: str | os.PathLike, state: SubmitState) -> None:
    """Write ``state`` atomically (a temporary file renamed into place)."""
    write_text(Path(path), json.dumps({"format": STATE_FORMAT, **asdict(state)}, indent=2) + "\n")


@contextmanager
def submit_lock(pkg: str | os.PathLike):
    """Hold an exclusive lock on ``pkg``/``LOCK_FILE`` (created, never through a link) for the ``with`` block;
    UsageError at once when another process holds it. The lock goes with the process (``flock``): a killed
    command leaves no stale lock."""
    path = Path(pkg) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise DataError(f"{path}: cannot open the submit lock ({exc.strerror or exc}; a symbolic link?)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{Path(pkg)}: another kfold submit --code is working on this package (it holds {path}); "
                             f"wait until it ends, then run this command again") from None
        yield path
    finally:
        os.close(fd)
