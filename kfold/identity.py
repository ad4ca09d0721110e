"""Code identity recorded in every result: the kfold version, and the git commit (with a dirty flag) when
kfold runs from a checkout, else a hash of the package sources. Torch-free.

The version is written in one place, ``pyproject.toml``: ``version()`` asks the installed distribution
(``importlib.metadata``), and in a source tree that is not installed reads ``pyproject.toml`` beside the
package. ``kfold.__version__`` is the same value."""
from __future__ import annotations

import functools
import hashlib
import re
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DISTRIBUTION = "kfold-kaggle"  # the name on PyPI ("kfold" there is an unrelated package)
UNKNOWN_VERSION = "0+unknown"


@functools.lru_cache(maxsize=1)
def version() -> str:
    """kfold's version: the installed distribution's, else (a source tree) ``pyproject.toml``'s."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return source_version()


def source_version(pyproject: Path | None = None) -> str:
    """The ``[project] version`` of ``pyproject.toml`` beside the package, when it is kfold's; else UNKNOWN_VERSION."""
    path = pyproject or PACKAGE.parent / "pyproject.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return UNKNOWN_VERSION
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # Python 3.10: the two keys of the [project] table, read plainly
        table = re.search(r"(?ms)^\[project\]\s*$(.*?)(?=^\[|\Z)", text)
        body = table.group(1) if table else ""
        name = re.search(r'(?m)^name\s*=\s*"([^"]*)"', body)
        found = re.search(r'(?m)^version\s*=\s*"([^"]*)"', body)
        project = {"name": name and name.group(1), "version": found and found.group(1)}
    else:
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError:
            return UNKNOWN_VERSION
    if project.get("name") != DISTRIBUTION or not project.get("version"):
        return UNKNOWN_VERSION
    return str(project["version"])


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
    identity: dict = {"kfold": version()}
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
