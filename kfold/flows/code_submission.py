"""``kfold submit --code``: a package (``kfold package``) becomes a Kaggle dataset and a notebook that Kaggle runs
offline; its output, checked against the package's local submission, is submitted.

The steps, each recorded in ``PKG/submit-state.json`` (``kfold.files.submit_state``) as soon as it is done, so
that a re-run after Ctrl-C or a failure continues where it stopped (no second dataset version for the same
content, no second push of the same kernel, no second submission):

1. the dataset: created, or a new version only when the package's content hash changed; wait until it is ready;
2. the kernel: pushed (internet off, the competition and the dataset attached); wait for COMPLETE (on ERROR:
   the failure message and the tail of its log, nothing submitted; a re-run pushes again);
3. its output: downloaded and compared with ``PKG/local/submission.csv``: identical, or at most
   ``max_differing`` of the rows differ (near-ties another CPU or torch may flip), else nothing is submitted;
4. the code submission (``competitions submit -k OWNER/SLUG -v VERSION -f FILE``), logged with its kernel and
   version; with ``wait``, its score.

Everything that can be checked here is checked before Kaggle is asked: the package (hashes), the competition
named, the log, the state, the owner of the dataset and kernel, that the competition is a code competition.
The kaggle client is reached only through ``kfold.kaggle_api``. Torch-free.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kfold.errors import DataError, UsageError, param
from kfold.flows.kaggle_polling import poll, wait_for_score

__all__ = ["CodeSubmitted", "Comparison", "compare_output", "submit_code"]

DATASET_WAIT = 1800.0      # seconds: Kaggle unpacks and indexes a new dataset version
KERNEL_WAIT = 12 * 3600.0  # seconds: Kaggle stops a notebook after 9 to 12 hours
MAX_DIFFERING = 0.001      # share of rows the kernel's output may differ in from the local submission
LOG_TAIL = 20              # lines of the kernel's log shown on ERROR

Echo = Callable[[str], None]


@dataclass
class CodeSubmitted:
    """One code submission: the kernel version submitted, Kaggle's reply and ref, the log, the comparison."""

    competition: str
    kernel: str
    version: int
    reply: str
    ref: int | None
    log: Path
    comparison: "Comparison"
    result: dict | None = None


def submit_code(package: str | os.PathLike, competition: str, message: str, *, wait: float | None = None,
                poll_interval: float = 5.0, max_differing: float = MAX_DIFFERING, dataset_wait: float = DATASET_WAIT,
                kernel_wait: float = KERNEL_WAIT, accelerator: str | None = None, timeout: int | None = None,
                log: str | os.PathLike | None = None, echo: Echo = print, tracker=None) -> CodeSubmitted:
    """Upload the package's dataset, push and run its notebook, check its output, submit it (see the module).

    Parameters
    ----------
    package : str or os.PathLike
        The folder ``kfold package`` wrote.
    competition : str
        Its competition (the slug).
    message : str
        The submission message.
    wait : float, optional
        Seconds to wait for the score (None: return once submitted).
    poll_interval : float
        The first wait between status checks (seconds); it grows x1.6 up to 60 s.
    max_differing : float
        The share of rows the kernel's output may differ in from ``PKG/local/submission.csv``.
    dataset_wait, kernel_wait : float
        Seconds to wait for the dataset to be ready and for the kernel's run.
    accelerator : str, optional
        ``kernels push --accelerator`` (default: the package's kernel-metadata.json).
    timeout : int, optional
        ``kernels push --timeout``: Kaggle stops the run after this many seconds.
    log : str or os.PathLike, optional
        The submission log (default ``submissions/log/COMP.csv``).
    echo : callable
        Receives the progress lines.

    Returns
    -------
    CodeSubmitted
        The kernel and version submitted, Kaggle's reply and ref, the comparison, the score when waited for.

    Raises
    ------
    UsageError, DataError
        One line; what was done so far is kept in ``PKG/submit-state.json``.

    Examples
    --------
    >>> from kfold.flows.code_submission import submit_code
    >>> submit_code("no-such-package", "kmnist", "first try")
    Traceback (most recent call last):
    kfold.errors.DataError: no-such-package: not a package folder (kfold package --out writes one)
    """
    from kfold import kaggle_api
    from kfold.files.atomic import refuse_overwriting_inputs
    from kfold.files.package import read_package
    from kfold.files.submission_log import check_append, default_log_path, now_utc, read_log
    from kfold.files.submit_state import STATE_FILE, SubmitState, read_state, submit_lock

    pkg = read_package(package)
    competition = kaggle_api.check_competition(competition)
    if pkg.competition != competition:
        raise UsageError(f"{pkg.path}: a package for '{pkg.competition}', not for {param('competition')} '{competition}'")
    if not (isinstance(max_differing, (int, float)) and 0 <= max_differing < 1):
        raise UsageError(f"{param('max_differing')}={max_differing!r}: must be a share in [0, 1)")
    with submit_lock(pkg.path):  # one command per package at a time: never two pushes, never two submissions
        log_path = Path(log) if log is not None else default_log_path(competition)
        refuse_overwriting_inputs([p for p in pkg.path.rglob("*") if p.is_file()], [log_path], UsageError)
        read_log(log_path)
        local_rows = _rows(pkg.local_submission, "the package's local submission")
        state_path = pkg.path / STATE_FILE
        state = read_state(state_path)
        if state is None or not state.same_target(competition, pkg.dataset_id, pkg.kernel_id):
            state = SubmitState(competition, pkg.dataset_id, pkg.kernel_id)
        origin = _origin(pkg)
        check_append(log_path, {"competition": competition, "file": str(pkg.local_submission), "sha256": "0" * 64, "rows": 1,
                                "message": message, **origin, "time": now_utc(), "kernel": pkg.kernel_id, "version": 1})
        steps = _Steps(kaggle_api.connect(say=echo), pkg, state, state_path, echo)
        steps.check_target(competition)
        steps.dataset(dataset_wait, poll_interval)
        version = steps.kernel(_tree_hash(pkg.kernel_dir), kernel_wait, poll_interval, accelerator, timeout)
        with tempfile.TemporaryDirectory(prefix="kfold-kernel-output-") as folder:
            output, comparison = steps.output(version, Path(folder), local_rows, max_differing)
            reply, ref = steps.submit(competition, version, message, output, log_path, origin)
        done = CodeSubmitted(competition, pkg.kernel_id, version, reply, ref, log_path, comparison)
        if wait is not None and ref is not None:
            done.result = wait_for_score(steps.client, competition, ref, wait, poll_interval, say=echo)
            if done.result["status"] == "ERROR":
                raise DataError(f"kaggle: submission {ref} failed scoring: {done.result['error'] or 'no description given'}")
            if tracker:  # the tracked ensemble whose submission the notebook reproduced (by sha256) gets Kaggle's score
                logged = [run for digest in dict.fromkeys((_sha256(pkg.local_submission), steps.state.output_sha256))
                          for run in tracker.kaggle_score(digest, done.result.get("public_score"),
                                                          done.result.get("private_score"), ref=ref,
                                                          competition=competition) or []]
                echo(f"tracking: Kaggle's score logged to {len(logged)} tracked run(s) with this submission's sha256")
        return done


class _Steps:
    """The steps of ``submit_code``, each skipped when the state says it is done, each saving the state."""

    def __init__(self, client, pkg, state, state_path: Path, echo: Echo):
        self.client, self.pkg, self.state, self.state_path, self.echo = client, pkg, state, state_path, echo

    def record(self, **changes) -> None:
        from kfold.files.submit_state import write_state

        for key, value in changes.items():
            setattr(self.state, key, value)
        write_state(self.state_path, self.state)

    def check_target(self, competition: str) -> None:
        user = self.client.username
        for what, ref in (("dataset", self.pkg.dataset_id), ("kernel", self.pkg.kernel_id)):
            owner = ref.split("/")[0]
            if user and owner.lower() != user.lower():
                raise UsageError(f"{self.pkg.path}: the {what} {ref} belongs to '{owner}', but the Kaggle credentials are "
                                 f"'{user}'; package again with {param('owner')} {user}")
        if not self.client.code_only(competition):
            raise UsageError(f"kaggle: '{competition}' takes CSV uploads, not notebooks: submit the local submission "
                             f"with kfold submit {self.pkg.local_submission} -c {competition} -m MESSAGE")
        if not self.state.submitted:
            limits = self.client.limits(competition)
            if not limits.joined or limits.num_allowed_now <= 0:
                raise DataError(f"kaggle: no submissions left for '{competition}' ({limits.num_today} used today)"
                                if limits.joined else
                                f"kaggle: '{competition}': you have not joined this competition; accept its rules at "
                                f"https://www.kaggle.com/competitions/{competition}/rules")

    def dataset(self, max_seconds: float, interval: float) -> None:
        pkg, client = self.pkg, self.client
        if self.state.content_hash == pkg.content_hash:
            self.echo(f"dataset {pkg.dataset_id}: this content was uploaded already")
        else:
            new = client.dataset_status(pkg.dataset_id) is None
            self.echo(f"dataset {pkg.dataset_id}: {'creating it' if new else 'uploading a new version'}")
            client.dataset_upload(pkg.dataset_dir, pkg.dataset_id, f"kfold package {pkg.content_hash[:12]}", new=new)
            self.record(content_hash=pkg.content_hash, dataset_ready=False, kernel_version=None, kernel_status="",
                        output_sha256="", **_NOT_SUBMITTED)
        if not self.state.dataset_ready:
            def check():
                status = client.dataset_status(pkg.dataset_id) or "unknown"
                if status == "failed":
                    raise DataError(f"kaggle: dataset {pkg.dataset_id}: Kaggle failed to process it; run the same "
                                    "command again to upload it again")
                return status == "ready", status
            poll(check, max_seconds, interval, lambda status: (
                f"kaggle: dataset {pkg.dataset_id} is still {status} after {max_seconds:g} s; run the same command "
                "again later, it continues here"), say=self.echo)
            self.record(dataset_ready=True)
        self.echo(f"dataset {pkg.dataset_id}: ready")

    def kernel(self, kernel_hash: str, max_seconds: float, interval: float, accelerator, timeout) -> int:
        pkg, client, kernel = self.pkg, self.client, self.pkg.kernel_id
        if self.state.kernel_version is None or self.state.kernel_hash != kernel_hash:
            version = client.kernel_push(pkg.kernel_dir, kernel, timeout=timeout, accelerator=accelerator)
            self.record(kernel_hash=kernel_hash, kernel_version=version, kernel_status="", output_sha256="",
                        **_NOT_SUBMITTED)
            self.echo(f"kernel {kernel}: pushed version {version}")
        version = self.state.kernel_version
        failure = {}

        def check():
            status, failure["message"] = client.kernel_status(kernel, version)
            return status in ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"), status
        if self.state.kernel_status != "COMPLETE":
            status = poll(check, max_seconds, interval, lambda status: (
                f"kaggle: kernel {kernel} version {version} is still {status} after {max_seconds:g} s; run the same "
                "command again later, it continues here"), say=self.echo)
            if status != "COMPLETE":
                self._failed(version, status, failure.get("message", ""))
            self.record(kernel_status="COMPLETE")
        self.echo(f"kernel {kernel}: version {version} COMPLETE")
        return version

    def _failed(self, version: int, status: str, message: str) -> None:
        kernel = self.pkg.kernel_id
        with tempfile.TemporaryDirectory(prefix="kfold-kernel-log-") as folder:
            _, log = self.client.kernel_output(kernel, version, folder, file_name=self.pkg.output_file)
        lines = _log_lines(log)
        if lines:
            self.echo(f"the last {min(len(lines), LOG_TAIL)} lines of its log:")
            for line in lines[-LOG_TAIL:]:
                self.echo(f"  {line}")
        self.record(kernel_version=None, kernel_status=status)  # a re-run pushes again
        raise DataError(f"kaggle: kernel {kernel} version {version} ended {status}: {message or 'no failure message'}; "
                        "nothing submitted")

    def output(self, version: int, folder: Path, local_rows: list, max_differing: float) -> tuple[Path, "Comparison"]:
        pkg = self.pkg
        files, _ = self.client.kernel_output(pkg.kernel_id, version, folder, file_name=pkg.output_file)
        output = folder / pkg.output_file
        if output not in files or not output.is_file():
            raise DataError(f"kaggle: kernel {pkg.kernel_id} version {version} wrote no {pkg.output_file} "
                            f"(its output: {', '.join(p.name for p in files) or 'none'}); nothing submitted")
        comparison = compare_output(output, local_rows, pkg.local_submission)
        self.echo(comparison.line())
        if comparison.differing > max_differing * comparison.rows:
            raise DataError(f"kaggle: the output of kernel {pkg.kernel_id} version {version} differs from "
                            f"{pkg.local_submission} in {comparison.differing} of {comparison.rows} rows "
                            f"({comparison.share:.2%}, more than {param('max_differing')} {max_differing:.2%}); first "
                            f"at line {comparison.first_line}; nothing submitted")
        self.record(output_sha256=_sha256(output))
        return output, comparison

    def submit(self, competition, version, message, output: Path, log_path: Path, origin: dict):
        from kfold.files.submission_log import append_log, now_utc

        pkg, state = self.pkg, self.state
        if state.submitted:
            self.echo(f"already submitted as {f'ref {state.ref}' if state.ref else 'a submission Kaggle gave no ref'} "
                      f"({self.state_path}; delete it to submit this package again)")
            reply = "already submitted"
        elif state.submit_version == version and state.submit_started and self._look_up(competition) is not None:
            reply = "already submitted"  # the call before went through, its run stopped before it recorded that
            self.echo(f"found the submission of kernel version {version} started {state.submit_started} on Kaggle: ref "
                      f"{state.ref}; not submitting it again")
        else:
            # the marker first: a timeout or Ctrl-C after Kaggle accepted is found on the next run, not resubmitted
            self.record(submit_version=version, submit_started=now_utc(), submit_message=message, submitted=False,
                        ref=None, logged=False)
            reply, ref = self.client.submit_code(competition, pkg.kernel_id, version, pkg.output_file, message)
            self.record(submitted=True, ref=ref)
            if ref is None:  # kagglesdk reads a reply without a ref as 0: find it among the submissions
                self._look_up(competition)
            self.echo(f"submitted: {reply}" + (f" (ref {state.ref})" if state.ref else ""))
        if not state.logged:
            row = {"competition": competition, "file": str(pkg.local_submission), "sha256": state.output_sha256,
                   "rows": len(_rows(output, "the kernel's output")) - 1, "message": state.submit_message or message,
                   **origin, "time": now_utc(), "ref": state.ref or "", "kernel": pkg.kernel_id, "version": version}
            try:
                append_log(log_path, row)
            except DataError as exc:
                raise DataError(f"kaggle: submitted as ref {state.ref}, but not logged: {exc}") from None
            self.record(logged=True)
            self.echo(f"logged in {log_path}")
        return reply, state.ref

    def _look_up(self, competition: str) -> int | None:
        """The ref of this state's submission among Kaggle's (its message and output file, started no earlier than
        ``submit_started`` less ten minutes of clock skew), recorded with ``submitted``; None when Kaggle has none."""
        from datetime import datetime, timedelta

        state = self.state
        since = datetime.strptime(state.submit_started[:19], "%Y-%m-%dT%H:%M:%S") - timedelta(minutes=10)
        found = [row["ref"] for row in self.client.submissions(competition)
                 if row["description"] == state.submit_message and row["file_name"] in ("", self.pkg.output_file)
                 and _when(row["date"]) >= since]
        if found:
            self.record(submitted=True, ref=min(found))
            return min(found)
        return None


def _when(text: str):
    """A Kaggle date (``2024-01-01T00:00:00``, perhaps with fractions and a zone) as a naive UTC datetime."""
    from datetime import datetime

    try:
        return datetime.strptime(str(text)[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return datetime.min


_NOT_SUBMITTED = {"submit_version": None, "submit_started": "", "submit_message": "", "submitted": False, "ref": None,
                  "logged": False}


@dataclass
class Comparison:
    """The kernel's output against the local submission: rows compared, rows differing, the first one."""

    rows: int
    differing: int
    first_line: int | None

    @property
    def share(self) -> float:
        return self.differing / max(self.rows, 1)

    def line(self) -> str:
        if not self.differing:
            return f"the kernel's output matches the local submission ({self.rows} rows)"
        return (f"the kernel's output differs from the local submission in {self.differing} of {self.rows} rows "
                f"({self.share:.3%}), first at line {self.first_line}")


def compare_output(output: Path, local_rows: list, local: Path) -> Comparison:
    """Compare the kernel's output with the local submission's rows (header first): the same header, the same
    number of rows, then the rows whose cells differ (numbers within 1e-6, or 1e-4 relative, are equal)."""
    rows = _rows(output, "the kernel's output")
    if rows[0] != local_rows[0]:
        raise DataError(f"{output.name} (the kernel's output): header {','.join(rows[0])!r} is not the local "
                        f"submission's {','.join(local_rows[0])!r} ({local}); nothing submitted")
    if len(rows) != len(local_rows):
        raise DataError(f"{output.name} (the kernel's output): {len(rows) - 1} rows, the local submission {local} has "
                        f"{len(local_rows) - 1}; nothing submitted")
    differing = [i for i, (a, b) in enumerate(zip(rows[1:], local_rows[1:])) if not _same_row(a, b)]
    return Comparison(len(rows) - 1, len(differing), differing[0] + 2 if differing else None)


def _same_row(a: list, b: list) -> bool:
    return a == b or (len(a) == len(b) and all(x == y or _close(x, y) for x, y in zip(a, b)))


def _close(x: str, y: str) -> bool:
    try:
        fx, fy = float(x), float(y)
    except ValueError:
        return False
    return math.isfinite(fx) and math.isfinite(fy) and math.isclose(fx, fy, rel_tol=1e-4, abs_tol=1e-6)


def _rows(path: Path, what: str) -> list[list[str]]:
    """The header and the rows of a CSV, read strictly."""
    from kfold.files.csvtext import read_csv_frame

    frame = read_csv_frame(path, what, pad_short=False)
    return [[str(c) for c in frame.columns]] + frame.astype(str).values.tolist()


def _origin(pkg) -> dict:
    """Provenance of the local submission (method, runs, local CV) when its metadata says."""
    from kfold.flows.kaggle_loop import provenance

    return provenance(pkg.local_submission)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_hash(folder: Path) -> str:
    """SHA-256 over the relative paths and contents of every file below ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + _sha256(path).encode() + b"\n")
    return digest.hexdigest()


def _log_lines(log: str) -> list[str]:
    """The lines of a kernel's log: Kaggle's JSON list of ``{"stream_name", "time", "data"}``, or plain text."""
    import json

    try:
        entries = json.loads(log)
        text = "".join(str(e.get("data", "")) for e in entries if isinstance(e, dict))
    except (ValueError, TypeError, AttributeError):
        text = log
    return [line for line in text.splitlines() if line.strip()]
