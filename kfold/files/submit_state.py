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
ref                the code submission's ref once submitted (null before)
logged             the submission is in the submission log
=================  ==========================================================================================

Read strictly: a state that is not this format (another JSON, a key missing or of the wrong type, a symbolic
link) raises DataError naming the file and the key; deleting the file starts the submission over. Torch-free.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kfold.errors import DataError
from kfold.files.atomic import write_text

__all__ = ["STATE_FILE", "STATE_FORMAT", "SubmitState", "read_state", "write_state"]

STATE_FILE = "submit-state.json"
STATE_FORMAT = "kfold-submit-state/1"
_SHA256 = re.compile(r"^([0-9a-f]{64})?$")


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
    ref: int | None = None
    logged: bool = False

    def same_target(self, competition: str, dataset: str, kernel: str) -> bool:
        return (self.competition, self.dataset, self.kernel) == (competition, dataset, kernel)


_TYPES = {"competition": str, "dataset": str, "kernel": str, "content_hash": str, "dataset_ready": bool,
          "kernel_hash": str, "kernel_version": (int, type(None)), "kernel_status": str, "output_sha256": str,
          "ref": (int, type(None)), "logged": bool}


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
    for key, kind in _TYPES.items():
        value = data.get(key, KeyError)
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
    return SubmitState(**{f.name: data[f.name] for f in fields(SubmitState)})


def write_state(path: str | os.PathLike, state: SubmitState) -> None:
    """Write ``state`` atomically (a temporary file renamed into place)."""
    write_text(Path(path), json.dumps({"format": STATE_FORMAT, **asdict(state)}, indent=2) + "\n")
