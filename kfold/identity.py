"""Code identity recorded in every result: the kfold version, and the git commit (with a dirty flag) when
kfold runs from a checkout, else a hash of the package sources. Torch-free."""
from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from kfold import __version__

PACKAGE = Path(__file__).resolve().parent


def source_sha256() -> str:
    """SHA-256 over the package's .py files (path and content), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def code_identity() -> dict:
    """``{"kfold": version, "git_commit": ..., "git_dirty": ...}`` in a checkout, else ``{"kfold", "source_sha256"}``."""
    identity: dict = {"kfold": __version__}
    try:
        top = subprocess.run(["git", "-C", str(PACKAGE), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10)
        commit = subprocess.run(["git", "-C", str(PACKAGE), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if top.returncode == 0 and commit.returncode == 0 and Path(top.stdout.strip()).resolve() == PACKAGE.parent:
            status = subprocess.run(["git", "-C", str(PACKAGE.parent), "status", "--porcelain", "--untracked-files=no", "--", "kfold"],
                                    capture_output=True, text=True, timeout=10)
            identity.update(git_commit=commit.stdout.strip(), git_dirty=bool(status.stdout.strip()))
            return identity
    except (OSError, subprocess.SubprocessError):
        pass
    identity["source_sha256"] = source_sha256()
    return identity
