"""The rehearsal's throwaway Kaggle-like environment, its network block, and kfold's wheel.

**Environment.** Installing torch into a fresh virtual environment per rehearsal would take minutes, so
:func:`kaggle_environment` makes a fresh ``python -m venv --without-pip`` whose site-packages holds one ``.pth``
line pointing at a *filtered view*: a temporary folder of symbolic links to the top-level packages (and
``.dist-info`` folders) of only the distributions on Kaggle's pinned list (``kfold/files/kaggle-image.txt``) and
what they require, as installed here. kfold and matplotlib-fontja are not in it (:func:`check_environment`
proves ``import kfold`` and ``import matplotlib_fontja`` fail there), so the notebook must install kfold from the
package's wheel as on Kaggle. An approximation: a namespace folder shared by several distributions is seen whole.

**Network.** :func:`network_mode` picks ``namespace`` (``unshare -n``: a new network namespace holding only
``lo``, brought up because the Jupyter kernel talks to nbclient over loopback ZMQ) where the machine allows it
(root, or unprivileged user namespaces), else ``guard``: a ``sitecustomize`` in the environment refusing every
Python connection (``connect``, ``connect_ex``), datagram (``sendto``, ``sendmsg``) and name lookup
(``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr``, ``getnameinfo``) that is not
loopback (C code that opens its own sockets is not covered).

**Wheel.** :func:`build_kfold_wheel` builds kfold's wheel from the installed source (a copy of it, so that the
checkout gets no ``build/`` folder) with ``pip wheel --no-deps --no-build-isolation``, cached by source hash; a
cached wheel is used only when its zip checks (else it is built again), and a new one is staged under a unique name.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kfold.errors import DataError, UsageError
from kfold.files.atomic import write_bytes, write_text

__all__ = ["Environment", "EXCLUDED", "build_kfold_wheel", "check_environment", "kaggle_environment",
           "network_mode", "NETWORK_MODES", "network_command", "read_only_works", "GUARD"]

EXCLUDED = ("kfold-kaggle", "matplotlib-fontja")  # never in the view, whatever requires them
NETWORK_MODES = ("auto", "namespace", "guard")

GUARD = '''\
"""kfold rehearse: the network guard. Python connections, datagrams (sendto, sendmsg) and name lookups
(getaddrinfo, gethostbyname, gethostbyname_ex, gethostbyaddr, getnameinfo) to anything but loopback fail."""
import errno, ipaddress, socket

def _loopback(host):
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False

def _refuse(what):
    raise OSError(errno.ENETUNREACH, f"network blocked by kfold rehearse's guard: {what}")

def _name(host):
    return host.decode() if isinstance(host, (bytes, bytearray)) else host

def _lookup(original, what):
    def lookup(host, *args, **kwargs):
        if not _loopback(_name(host)):
            raise socket.gaierror(socket.EAI_NONAME, f"network blocked by kfold rehearse's guard: {what} {host}")
        return original(host, *args, **kwargs)
    return lookup

def _outside(sock, address):
    return (sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
            and not _loopback(_name(address[0])))

_connect, _connect_ex, _sendto, _sendmsg = (socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto,
                                            socket.socket.sendmsg)
_getnameinfo = socket.getnameinfo

def connect(self, address):
    if _outside(self, address):
        _refuse(address)
    return _connect(self, address)

def connect_ex(self, address):
    if _outside(self, address):
        return errno.ENETUNREACH
    return _connect_ex(self, address)

def sendto(self, data, *args):  # sendto(data, address) or sendto(data, flags, address)
    if args and _outside(self, args[-1]):
        _refuse(args[-1])
    return _sendto(self, data, *args)

def sendmsg(self, buffers, *args):  # sendmsg(buffers[, ancdata[, flags[, address]]])
    if len(args) >= 3 and args[2] is not None and _outside(self, args[2]):
        _refuse(args[2])
    return _sendmsg(self, buffers, *args)

def getnameinfo(sockaddr, flags):
    if not _loopback(_name(sockaddr[0])):
        raise socket.gaierror(socket.EAI_NONAME, f"network blocked by kfold rehearse's guard: getnameinfo {sockaddr}")
    return _getnameinfo(sockaddr, flags)

socket.getaddrinfo = _lookup(socket.getaddrinfo, "getaddrinfo")
socket.gethostbyname = _lookup(socket.gethostbyname, "gethostbyname")
socket.gethostbyname_ex = _lookup(socket.gethostbyname_ex, "gethostbyname_ex")
socket.gethostbyaddr = _lookup(socket.gethostbyaddr, "gethostbyaddr")
socket.getnameinfo = getnameinfo
socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto, socket.socket.sendmsg = (
    connect, connect_ex, sendto, sendmsg)
'''


@dataclass
class Environment:
    """A throwaway environment: its interpreter, its view, which network block it carries, what it holds."""

    folder: Path
    python: Path
    view: Path
    distributions: dict[str, str]                 # name -> local version
    missing: list[str] = field(default_factory=list)             # listed for Kaggle, not installed here
    differing: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (local, Kaggle's)
    guard: bool = False


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _closure(names) -> tuple[dict, list[str]]:
    """The installed distributions of ``names`` and of everything they require (extras aside), by name."""
    from importlib import metadata

    found, missing, todo = {}, [], [_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found or name in EXCLUDED:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found[name] = dist
        for requirement in dist.requires or []:
            if "extra ==" not in requirement.replace("extra==", "extra =="):
                match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
                if match:
                    todo.append(_name(match.group(1)))
    return found, sorted(set(missing) - set(found))


def _top_level(dist) -> set[str]:
    """The top-level entries (packages, modules, .dist-info, .libs) a distribution installed in site-packages."""
    entries = set()
    for entry in dist.files or []:
        first = entry.parts[0] if entry.parts else ""
        if first and first not in ("..", "__pycache__") and not first.endswith(".pth"):
            entries.add(first)
    if not entries and dist.read_text("top_level.txt"):
        entries = {line.strip() for line in dist.read_text("top_level.txt").splitlines() if line.strip()}
    return entries


def kaggle_environment(folder: str | os.PathLike, *, guard: bool = False) -> Environment:
    """A fresh venv in ``folder`` seeing only the distributions of Kaggle's pinned list (see the module's text);
    with ``guard`` the network guard is its ``sitecustomize``."""
    from kfold.files.package import kaggle_image

    folder = Path(folder)
    image = kaggle_image()
    found, missing = _closure(image)
    view = folder / "view"
    view.mkdir(parents=True)
    for dist in found.values():
        base = Path(dist.locate_file(""))
        for entry in _top_level(dist):
            source, target = base / entry, view / entry
            if (source.exists() or source.with_suffix(".py").exists()) and not os.path.lexists(target):
                target.symlink_to(source if source.exists() else source.with_suffix(".py"))
    env = folder / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, capture_output=True)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=clean_env()).stdout.strip()
    write_text(Path(site) / "_kfold_kaggle_view.pth", f"{view}\n")
    if guard:
        write_text(Path(site) / "sitecustomize.py", GUARD)
    versions = {name: dist.version for name, dist in found.items()}
    differing = {name: (versions[name], image[name]) for name in image
                 if name in versions and versions[name].split("+")[0] != image[name]}
    return Environment(folder, python, view, versions, sorted(set(missing) & set(image)), differing, guard)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment variables a throwaway interpreter runs with: no PYTHONPATH, no user site, offline pip."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM")
            if name in os.environ}
    return {**keep, "PYTHONNOUSERSITE": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "NO_ALBUMENTATIONS_UPDATE": "1", "MPLBACKEND": "Agg", **extra}


def check_environment(env: Environment) -> None:
    """kfold and matplotlib-fontja are NOT importable in ``env`` (else the rehearsal would prove nothing), and
    the kernel's needs (ipykernel, pip) are."""
    for module in ("kfold", "matplotlib_fontja"):
        probe = subprocess.run([str(env.python), "-c", f"import {module}; print({module}.__file__)"],
                               capture_output=True, text=True, env=clean_env(), cwd=env.folder)
        if probe.returncode == 0:
            raise DataError(f"{env.python}: the throwaway environment imports {module} from {probe.stdout.strip()}; "
                            f"it must hold only Kaggle's image")
    probe = subprocess.run([str(env.python), "-c", "import ipykernel, pip"], capture_output=True, text=True,
                           env=clean_env(), cwd=env.folder)
    if probe.returncode != 0:
        raise DataError(f"the throwaway environment cannot run a notebook kernel ({probe.stderr.strip()[-200:]}): "
                        f"install the 'code' extra (pip install -e '.[code]')")


def _namespace_works() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    try:
        probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def network_mode(requested: str = "auto") -> str:
    """``namespace`` where ``unshare -n`` works here, else ``guard``; an explicit ``namespace`` must work."""
    if requested not in NETWORK_MODES:
        raise UsageError(f"network={requested!r}: one of {', '.join(NETWORK_MODES)}")
    if requested == "guard":
        return "guard"
    if _namespace_works():
        return "namespace"
    if requested == "namespace":
        raise UsageError("network='namespace': 'unshare -n' does not work on this machine (needs root or user "
                         "namespaces, and 'ip'); use the guard")
    return "guard"


_READ_ONLY = ('ip link set lo up || exit 125; n=$1; shift; while [ "$n" -gt 0 ]; do '
              'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 125; shift; n=$((n - 1)); done; '
              'exec "$@"')


def read_only_works() -> bool:
    """Whether a network namespace with its own mount namespace can bind-mount a folder read-only here (root, or
    user namespaces that allow it)."""
    if not _namespace_works():
        return False
    with tempfile.TemporaryDirectory(prefix="kfold-ro-probe-") as folder:
        probe = subprocess.run(network_command("namespace", ["sh", "-c", f"! touch '{folder}/x' 2>/dev/null"],
                                               read_only=[folder]), capture_output=True, timeout=30)
        return probe.returncode == 0 and not os.path.exists(os.path.join(folder, "x"))


def network_command(mode: str, command: list[str], read_only=()) -> list[str]:
    """``command`` run with the network blocked by ``mode`` (the guard lives in the environment itself); in a
    namespace, ``read_only`` paths (folders or files) are bind-mounted read-only for it alone (a private mount
    namespace: nothing changes outside), as Kaggle mounts ``/kaggle/input``."""
    if mode == "namespace" and read_only:
        return ["unshare", "-n", "-m", "--propagation", "private", "sh", "-c", _READ_ONLY, "sh",
                str(len(read_only)), *map(str, read_only), *command]
    if mode == "namespace":
        return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
    return command


def _source_root() -> Path:
    from kfold.identity import DISTRIBUTION, PACKAGE, source_version

    root = PACKAGE.parent
    if source_version(root / "pyproject.toml") == "0+unknown" or not (root / "pyproject.toml").is_file():
        raise UsageError(f"kfold at {PACKAGE} was not installed from its source ({DISTRIBUTION}'s pyproject.toml is "
                         f"not beside it): kfold package builds the notebook's wheel from the source; install kfold "
                         f"with pip install -e . from a checkout")
    return root


def build_kfold_wheel(cache: str | os.PathLike | None = None, echo=print) -> Path:
    """kfold's wheel built from the installed source, cached (``<cache>/wheels/<source sha256>/``) by the hash of
    its package files, pyproject.toml and the pinned list."""
    import hashlib

    from kfold.data.download import cache_root
    from kfold.identity import source_sha256

    root = _source_root()
    key = hashlib.sha256((source_sha256() + (root / "pyproject.toml").read_text()
                          + (root / "kfold/files/kaggle-image.txt").read_text()).encode()).hexdigest()[:24]
    folder = cache_root(cache) / "wheels" / key
    for cached in sorted(folder.glob("kfold_kaggle-*.whl")):
        if _sound_wheel(cached):
            return cached
        echo(f"{cached}: a damaged cached wheel (not a sound zip): building it again")
        cached.unlink()
    echo(f"building kfold's wheel from {root}")
    with tempfile.TemporaryDirectory(prefix="kfold-wheel-") as tmp:
        source = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        shutil.copytree(root / "kfold", source / "kfold", ignore=ignore)
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, source / name)
        run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                              "--quiet", "-w", str(Path(tmp) / "out"), str(source)], capture_output=True, text=True,
                             env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})  # the same source, the same bytes
        wheels = sorted((Path(tmp) / "out").glob("kfold_kaggle-*.whl"))
        if run.returncode != 0 or not wheels:
            raise DataError(f"building kfold's wheel failed: {(run.stderr or run.stdout).strip()[-300:]}")
        folder.mkdir(parents=True, exist_ok=True)
        # staged under a unique name (mkstemp) and renamed: two builds at once never share a staging file
        write_bytes(folder / wheels[0].name, wheels[0].read_bytes())
    return folder / wheels[0].name


def _sound_wheel(path: Path) -> bool:
    """``path`` is a regular file and a zip archive whose every member's CRC checks (``ZipFile.testzip``)."""
    import zipfile

    if path.is_symlink() or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None and any(n.endswith(".dist-info/RECORD") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False
