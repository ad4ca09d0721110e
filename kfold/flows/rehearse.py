"""``kfold rehearse``: run a package's notebook here as Kaggle will -- offline, in an environment holding only
Kaggle's image -- and prove that its output is byte-identical to the local submission.

:func:`rehearse` lays out a Kaggle-shaped tree in a temporary folder (``input/competitions/<slug>``: the
competition's files without the test set's labels; ``input/datasets/<owner>/<slug>``: the dataset as Kaggle
mounts it, without its metadata file; an empty ``working``), builds the throwaway environment
(:mod:`kfold.flows.sandbox`), executes the notebook with nbclient with the network blocked
(:func:`execute_notebook`, which the loopback fake's kernel runner reuses), and compares the output byte for byte
with the local submission: the package's own when the data is the data it was packaged with, else a local
prediction on the same images with the same function (a larger, hidden test set: Kaggle's scoring re-run). It
reports wall time and peak memory, projected to the hidden test set's rows against the time limit. Nothing is
written into the package; a notebook that changes its input (linked here, read-only on Kaggle) fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kfold.errors import DataError, UsageError, param
from kfold.files import package as pk

__all__ = ["Execution", "Rehearsal", "compare_outputs", "execute_notebook", "kaggle_tree", "rehearse"]

MIN_DEADLINE = 600.0  # seconds: a shorter --time-limit still lets the notebook finish and be judged by projection
LABEL_FILES = re.compile(r"(?i)^(solution.*|.*test.*labels?.*|.*labels?.*test.*)$")  # the host's answers


@dataclass
class Execution:
    """One notebook run: its executed copy, seconds, the kernel's peak memory, the network block, the error line."""

    notebook: Path
    seconds: float
    peak_mib: float
    network: str
    error: str | None
    stdout: str = ""
    differing: dict = field(default_factory=dict)  # distribution -> (here, Kaggle's pinned) of a throwaway env
    read_only: tuple = ()  # the input paths mounted read-only for the notebook (a namespace where mounts work)

    def timing(self) -> dict:
        """The notebook's own timing line (``kfold-timing {...}``), or {}."""
        from kfold.files.notebook import TIMING_PREFIX

        for line in self.stdout.splitlines():
            if line.startswith(TIMING_PREFIX):
                return json.loads(line[len(TIMING_PREFIX):])
        return {}


@dataclass
class Rehearsal:
    """A rehearsal's verdict and numbers; ``lines`` is what the command prints."""

    identical: bool
    reference: str
    rows: int
    differing_rows: int
    first_difference: str | None
    execution: Execution
    projected_seconds: float
    projected_mib: float
    hidden_rows: int
    time_limit: float
    lines: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.projected_seconds <= self.time_limit * 3600

    @property
    def ok(self) -> bool:
        return self.identical and self.fits


def execute_notebook(notebook: str | os.PathLike, root: str | os.PathLike, *, python: str | os.PathLike | None = None,
                     network: str = "auto", timeout: float | None = None, deadline: float | None = None) -> Execution:
    """Execute ``notebook`` with nbclient, its kernel run by ``python`` (default: a fresh throwaway Kaggle
    environment, see :mod:`kfold.flows.sandbox`) with ``KFOLD_KAGGLE_ROOT=root`` and the network blocked
    (``network``: auto, namespace or guard; with an own ``python`` in guard mode, that environment must carry the
    guard). The executed copy is written beside ``root``; ``timeout`` bounds each cell, ``deadline`` the whole
    notebook (seconds; past it the execution stops with the error ``the notebook ran past its time limit``).
    Everything else the kernel and Jupyter write (``$TMPDIR``, ``$KFOLD_CACHE``: the notebook's decoded images,
    ``$HOME``) lives in one temporary folder removed at the end."""
    from kfold.flows.sandbox import (check_environment, clean_env, kaggle_environment, network_command, network_mode,
                                     read_only_works)

    mode = network_mode(network)
    root = Path(root)
    read_only = _input_targets(root) if mode == "namespace" and read_only_works() else ()
    differing = {}
    with tempfile.TemporaryDirectory(prefix="kfold-kernel-") as tmp:
        if python is None:
            env = kaggle_environment(Path(tmp) / "kaggle", guard=mode == "guard")
            check_environment(env)
            python, differing = env.python, env.differing
        scratch = Path(tmp) / "tmp"  # the kernel's and the runner's temporary folder: inside this one
        scratch.mkdir()
        executed = root.parent / f"executed-{Path(notebook).name}"
        spec = {"notebook": str(notebook), "executed": str(executed), "python": str(python), "timeout": timeout,
                "deadline": deadline, "working": str(root / "working"), "result": str(Path(tmp) / "result.json"),
                "scratch": str(scratch),
                "env": clean_env(KFOLD_KAGGLE_ROOT=str(root), HOME=str(Path(tmp)), TMPDIR=str(scratch),
                                 KFOLD_CACHE=str(Path(tmp) / "cache"))}
        runner = Path(__file__).with_name("notebook_runner.py")
        try:
            run = subprocess.run(network_command(mode, [sys.executable, str(runner), json.dumps(spec)], read_only),
                                 capture_output=True, text=True, env={**os.environ, "TMPDIR": str(scratch)},
                                 timeout=None if deadline is None else deadline + 300)
        except subprocess.TimeoutExpired:
            raise DataError(f"{notebook}: the notebook runner did not stop within {deadline:g} s (+300 s)") from None
        if run.returncode != 0 or not Path(spec["result"]).is_file():
            raise DataError(f"{notebook}: the notebook runner failed ({(run.stderr or run.stdout).strip()[-300:]})")
        result = json.loads(Path(spec["result"]).read_text())
    import nbformat

    done = nbformat.read(executed, as_version=4)
    stdout = "".join(out.get("text", "") for cell in done.cells for out in cell.get("outputs", [])
                     if out.get("output_type") == "stream")
    return Execution(executed, result["seconds"], result["peak_kb"] / 1024, mode, result["error"], stdout, differing,
                     read_only)


def _input_targets(root: Path) -> tuple[str, ...]:
    """What the links under ``root``/input point to (the competition's entries, folders linked whole; the package
    dataset's files), without those inside another target or holding ``root`` (which the notebook writes)."""
    targets = {os.path.realpath(os.path.join(folder, name)) for folder, dirs, names in os.walk(root / "input")
               for name in dirs + names if os.path.islink(os.path.join(folder, name))}
    own = os.path.realpath(root)
    targets = {t for t in targets if not own.startswith(t.rstrip(os.sep) + os.sep) and t != own}
    return tuple(sorted(t for t in targets if not any(t.startswith(o.rstrip(os.sep) + os.sep) for o in targets if o != t)))


def _link_tree(source: Path, target: Path, skip) -> None:
    """Real folders and symbolic links to ``source``'s files (those ``skip`` refuses left out): a dataset as
    Kaggle mounts it, its own files verified by sha256 in the notebook."""
    for folder, _, names in os.walk(source):
        rel = Path(folder).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in names:
            if not skip(rel / name):
                (target / rel / name).symlink_to(Path(folder, name).resolve())


def kaggle_tree(root: Path, package: pk.Package, data: Path) -> None:
    """``root``/input and an empty ``root``/working as Kaggle mounts a code competition's notebook inputs."""
    owner, slug = package.dataset_id.split("/")
    competition = root / "input" / "competitions" / package.competition
    competition.mkdir(parents=True)
    for entry in sorted(data.iterdir()):  # folders linked whole: image loaders read no file through a lone link
        if not LABEL_FILES.match(entry.name):
            (competition / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    _link_tree(package.dataset_dir, root / "input" / "datasets" / owner / slug,
               lambda rel: rel.as_posix() in (pk.DATASET_METADATA,))
    (root / "working").mkdir()


def _snapshot(folder: Path) -> dict:
    """Every entry below ``folder`` (links not followed) with its size and modification time: what a notebook
    that writes into its read-only input would change."""
    seen = {}
    for parent, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            seen[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return seen


def compare_outputs(expected: bytes, got: bytes) -> tuple[int, str | None]:
    """(differing rows, the first differing line shown) of two CSV texts; (0, None) when byte-identical."""
    if expected == got:
        return 0, None
    a, b = expected.decode("utf-8", "replace").splitlines(), got.decode("utf-8", "replace").splitlines()
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    shown = (f"line {first + 1}: expected {a[first][:80]!r}" if first < len(a) else f"line {first + 1}: expected none")
    shown += f", got {b[first][:80]!r}" if first < len(b) else ", got none"
    if first == min(len(a), len(b)) and len(a) == len(b):
        shown = "the same lines, other bytes (line endings or a final newline)"
    differing = sum(x != y for x, y in zip(a[1:], b[1:])) + abs(len(a) - len(b))
    return differing, shown


def _reference(package: pk.Package, data: Path, tmp: Path, echo) -> tuple[bytes, str]:
    """The local submission to compare with: the package's own on the data it was packaged with, else a local
    prediction on ``data``'s images through the same function (the hidden, larger test set)."""
    from kfold.flows.offline import competition_task, predict_offline

    task = competition_task(data, package.manifest)
    if task.fingerprint() == package.manifest.get("data_fingerprint"):
        return package.local_submission.read_bytes(), str(package.local_submission)
    echo(f"{data}: not the data packaged with: the local submission is predicted here on its images")
    local = predict_offline(package.dataset_dir, data, tmp / "reference.csv", echo=lambda line: None)
    return local.output.read_bytes(), f"a local prediction on {data}"


def rehearse(pkg: str | os.PathLike, data: str | os.PathLike | None = None, *, time_limit: float = 9.0,
             hidden_rows: int | None = None, network: str = "auto", timeout: float | None = None,
             echo=print) -> Rehearsal:
    """Rehearse a package offline; ``kfold.rehearse`` documents the parameters."""
    package = pk.read_package(pkg)
    if data is None and package.local_data is None:
        raise UsageError(f"{param('data')}: {package.path} does not say which competition folder it was made from "
                         f"(no {pk.LOCAL}/{pk.LOCAL_INFO}); give the competition's files")
    data = Path(data if data is not None else package.local_data)
    if not data.is_dir():
        raise UsageError(f"{param('data')}={str(data)!r}: not a competition folder; give the competition's files")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not 0 < time_limit <= 72:
        raise UsageError(f"{param('time_limit')}={time_limit!r}: hours in (0, 72]")
    if hidden_rows is not None and (isinstance(hidden_rows, bool) or not isinstance(hidden_rows, int) or hidden_rows < 1):
        raise UsageError(f"{param('hidden_rows')}={hidden_rows!r}: a positive number of rows")
    with tempfile.TemporaryDirectory(prefix="kfold-rehearse-") as tmp:
        tmp = Path(tmp)
        expected, reference = _reference(package, data, tmp, echo)
        kaggle_tree(tmp / "kaggle", package, data)
        inputs = {folder: _snapshot(folder) for folder in (data, package.dataset_dir)}
        echo(f"rehearsing {package.notebook.name} offline (Kaggle's image only, network blocked)")
        run = execute_notebook(package.notebook, tmp / "kaggle", network=network, timeout=timeout,
                               deadline=max(float(time_limit) * 3600, MIN_DEADLINE))  # Kaggle stops it there
        changed = [folder for folder, seen in inputs.items() if _snapshot(folder) != seen]
        if changed:  # linked here, read-only on Kaggle: a notebook that writes there fails on Kaggle
            raise DataError(f"{package.notebook}: the notebook changed files under {changed[0]}, its input (Kaggle "
                            f"mounts /kaggle/input read-only: write only under /kaggle/working)")
        output = tmp / "kaggle" / "working" / package.output_file
        if run.error is not None or not output.is_file():
            limit = f" ({param('time_limit')} {time_limit:g} h)" if "ran past its time limit" in (run.error or "") else ""
            raise DataError(f"{package.notebook}: the notebook failed offline: "
                            f"{run.error or 'it wrote no ' + package.output_file}{limit}")
        got = output.read_bytes()
    differing, first = compare_outputs(expected, got)
    rows = got.count(b"\n") - 1
    timing = run.timing()
    hidden = hidden_rows or rows
    scale = hidden / max(rows, 1)
    scaled = sum(v for k, v in timing.items() if k in ("predict.load", "predict.predict", "predict.ensemble"))
    projected = run.seconds + scaled * (scale - 1)
    bytes_per_row = 4 * len(package.manifest["classes"]) + _image_bytes(package)
    projected_mib = run.peak_mib + max(hidden - rows, 0) * bytes_per_row / 2**20
    result = Rehearsal(differing == 0, reference, rows, differing, first, run, projected, projected_mib, hidden,
                       float(time_limit))
    verdict = (f"byte-identical to {reference} ({rows} rows, sha256 {hashlib.sha256(got).hexdigest()[:16]})"
               if result.identical else f"DIFFERS from {reference}: {differing} row{' differs' if differing == 1 else 's differ'}; "
                                        f"first {first}")
    duration = f"{projected / 3600:.1f} h" if projected >= 3600 else f"{projected / 60:.1f} min"
    result.lines = [f"network: blocked ({'network namespace: unshare -n, loopback only' if run.network == 'namespace' else 'socket guard in the environment'})",
                    f"output: {verdict}",
                    f"notebook: {run.seconds:.1f} s wall (install {timing.get('install', 0):.1f} s, predict "
                    f"{timing.get('predict', 0):.1f} s), peak memory {run.peak_mib:.0f} MiB",
                    _versions_line(run.differing),
                    f"projected to {hidden:,} hidden rows: {duration}, {projected_mib:.0f} MiB, against a "
                    f"limit of {time_limit:g} h: {'fits' if result.fits else 'EXCEEDS the limit'}",
                    f"inputs: {len(run.read_only)} paths mounted read-only for the notebook, as on Kaggle" if run.read_only
                    else "inputs: compared before and after the notebook (no mount namespace here to make them read-only)"]
    return result


def _versions_line(differing: dict) -> str:
    """Where this machine's versions differ from Kaggle's pinned ones: byte-identity here is not a promise there."""
    if not differing:
        return "versions: as Kaggle's pinned image (kfold/files/kaggle-image.txt)"
    shown = ", ".join(f"{name} {here} (Kaggle {kaggle})" for name, (here, kaggle) in sorted(differing.items())
                      if name in ("torch", "numpy", "pillow", "opencv-python-headless", "albumentations"))
    return (f"versions: {len(differing)} distributions here differ from Kaggle's pinned image{': ' + shown if shown else ''}"
            f"; on Kaggle near-ties may flip (kfold submit --code compares)")


def _image_bytes(package: pk.Package) -> int:
    """uint8 bytes of one test image of the packaged models' input."""
    size = package.manifest.get("input", {}).get("image_size", 28)
    return int(size) ** 2 * int(package.manifest.get("input", {}).get("channels", 1))
