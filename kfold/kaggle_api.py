"""The single boundary to the kaggle client (kaggle >= 2): limits, submit, submissions, leaderboard, download, and
for code competitions datasets, kernels (push, status, output) and code submissions.

``kaggle`` is an optional extra (``pip install -e '.[kaggle]'`` in a clone) and is imported only inside ``_client``,
which also authenticates: kaggle 2.x authenticates when imported and prints a help text (or calls
``exit``) when no credentials are found. Both are silenced here and turned into one UsageError line.

Credentials are never printed or written by kfold: ``VERBOSE``/``VERBOSE_OUTPUT`` (which make the client
print every request, ``Authorization`` header included) are hidden from the client while it is imported
and its ``--verbose`` switch is dropped; credentials are masked in the client's replies and error messages
before kfold shows them.

Every failure is one line: not installed, a dependency of kaggle missing (named), no or rejected
credentials (401), unknown competition (404), rules not accepted (403), rate limited (429, retried first,
honouring ``Retry-After``), network error. Nothing here imports torch.
"""
from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kfold.errors import DataError, UsageError, param

MISSING_PACKAGE = "the kaggle package is not installed: pip install -e '.[kaggle]' in the kfold clone (or pip install kaggle)"
MISSING_CREDENTIALS = ("Kaggle credentials not found: put kaggle.json (or access_token) in ~/.kaggle/ "
                       "(or in $KAGGLE_CONFIG_DIR), or set KAGGLE_USERNAME/KAGGLE_KEY or KAGGLE_API_TOKEN; "
                       "tokens come from https://www.kaggle.com/settings/api")
VERBOSE_ENV = ("VERBOSE", "VERBOSE_OUTPUT")
CREDENTIAL_ENV = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_RETRIES = 5          # 429 answers retried per call
MAX_RETRY_WAIT = 300.0   # seconds: a longer Retry-After is an error line instead
PAGE_SIZE = 100
MAX_PAGES = 1000

sleep: Callable[[float], None] = time.sleep  # replaced in tests


def check_competition(name: str) -> str:
    """A competition slug as in its URL (letters, digits, '-', '_', '.'); it also names the log file."""
    if not SLUG.match(name or ""):
        raise UsageError(f"{param('competition')}={name!r}: not a competition name; use the slug from its URL, "
                         "e.g. kaggle.com/competitions/NAME")
    return name


def _import_client():
    """``KaggleApi`` imported with the verbose switches hidden; one line for a missing package or dependency."""
    saved = {name: os.environ.pop(name) for name in VERBOSE_ENV if name in os.environ}
    try:
        import kaggle
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != "kaggle":
            raise UsageError(f"the kaggle package needs '{missing}', which is not installed: pip install {missing} "
                             f"(pip install -e '.[kaggle]' in the kfold clone installs both)") from None
        raise UsageError(MISSING_PACKAGE) from None
    finally:
        os.environ.update(saved)
    version = str(getattr(kaggle, "__version__", ""))
    if version.split(".")[0].isdigit() and int(version.split(".")[0]) < 2:
        raise UsageError(f"kaggle {version} speaks Kaggle's old API; kfold needs kaggle >= 2: pip install -U 'kaggle>=2'")
    return KaggleApi


def _client():
    """Import kaggle and return an authenticated ``KaggleApi``; one clear error line otherwise."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        try:
            KaggleApi = _import_client()
        except UsageError:
            raise
        except (SystemExit, Exception):  # an old client raises or exits at import without credentials
            raise UsageError(MISSING_CREDENTIALS) from None
        api = KaggleApi()
        api.args = [arg for arg in api.args if arg not in ("--verbose", "-v")]  # it prints the Authorization header
        try:
            api.authenticate()
        except (SystemExit, Exception):
            raise UsageError(MISSING_CREDENTIALS) from None
    return api


def _secrets(api) -> list[str]:
    config = getattr(api, "config_values", None)
    values = [os.environ.get(name, "") for name in CREDENTIAL_ENV]
    if isinstance(config, dict):
        values += [str(config.get(key) or "") for key in ("username", "key", "token")]
        if config.get("username") and config.get("key"):
            values.append(base64.b64encode(f"{config['username']}:{config['key']}".encode()).decode())
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        values.append(base64.b64encode(f"{os.environ['KAGGLE_USERNAME']}:{os.environ['KAGGLE_KEY']}".encode()).decode())
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _masked(text: str, api) -> str:
    """``text`` with every credential the client knows (environment or its loaded config) replaced by ***."""
    for secret in _secrets(api):
        text = text.replace(secret, "***")
    return text


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _network_reason(exc: BaseException) -> str:
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if found:
        return found[-1].strip()
    return "timed out" if "timeout" in type(exc).__name__.lower() else type(exc).__name__


def _is_network_error(exc: BaseException) -> bool:
    try:
        import requests
    except ImportError:
        return False
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def _failed(action: str, exc: BaseException, api, competition: str | None = None, missing: str | None = None):
    """One error line for a failed call: what was tried and why it failed, credentials masked. ``missing`` names
    what a 404 means when it is not the competition (a dataset, a kernel)."""
    detail = _masked(" ".join(str(exc).split()) or type(exc).__name__, api)[:300]
    status = _status(exc)
    where = f"'{competition}'" if competition else "the competition"
    if _is_network_error(exc):
        return DataError(f"kaggle: {action} failed: network error, Kaggle could not be reached ({_network_reason(exc)}); "
                         "check the connection and any proxy settings")
    if status == 401:
        return UsageError(f"kaggle: {action} failed: the credentials were rejected (401); check KAGGLE_USERNAME/"
                          "KAGGLE_KEY or ~/.kaggle/kaggle.json (new token: https://www.kaggle.com/settings/api)")
    if status == 403:
        rules = f"https://www.kaggle.com/competitions/{competition}/rules" if competition else "the competition's rules page"
        return DataError(f"kaggle: {action} failed: forbidden (403): accept the rules of {where} at {rules} "
                         f"(server: {detail})")
    if status == 404 and missing:
        return DataError(f"kaggle: {action} failed: {missing} not found (404) (server: {detail})")
    if status == 404:
        return UsageError(f"kaggle: {action} failed: unknown competition {where} (404); use the name from its URL "
                          f"(server: {detail})")
    if status == 429:
        return DataError(f"kaggle: {action} failed: rate limited by Kaggle (429) after {MAX_RETRIES} retries; "
                         "try again later")
    return DataError(f"kaggle: {action} failed: {detail}")


def _retry_after(exc: BaseException, attempt: int) -> float:
    """Seconds to wait after a 429: the server's Retry-After (seconds), else exponential backoff."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("Retry-After")
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        return min(2.0 ** attempt, 60.0)


@dataclass
class Limits:
    num_today: int
    num_total: int
    num_allowed_now: int
    limited_by_total: bool

    @property
    def joined(self) -> bool:
        """Kaggle answers all zeros when the user has no team in the competition (rules not accepted)."""
        return bool(self.num_today or self.num_total or self.num_allowed_now)


class Client:
    """An authenticated kaggle client. Each method is one operation; failures are one error line."""

    UPLOAD_FAILED = "Could not submit to competition"

    def __init__(self, api, say: Callable[[str], None] | None = None):
        self.api = api
        self.say = say or (lambda line: print(line, file=sys.stderr))

    def _call(self, action: str, competition: str | None, func, *args, _missing: str | None = None, **kwargs):
        """``func(*args)`` with the client's output silenced, 429 retried (Retry-After), errors as one line
        (``_missing``: what a 404 means, when not the competition)."""
        for attempt in range(MAX_RETRIES + 1):
            quiet = io.StringIO()
            try:
                with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                    return func(*args, **kwargs)
            except Exception as exc:
                if _status(exc) == 429 and attempt < MAX_RETRIES:
                    wait = _retry_after(exc, attempt)
                    if wait > MAX_RETRY_WAIT:
                        raise DataError(f"kaggle: {action} failed: rate limited (429); Kaggle asks to wait "
                                        f"{wait:.0f} s, try again later") from None
                    self.say(f"kaggle: rate limited (429) while {action}; retrying in {wait:g} s")
                    sleep(wait)
                    continue
                raise _failed(action, exc, self.api, competition, _missing) from None
        raise AssertionError("unreachable")

    def _sdk(self, service_call: str, request):
        """Call ``kaggle.competitions.competition_api_client.<service_call>(request)`` on a fresh sdk client."""
        with self.api.build_kaggle_client() as kaggle:
            return getattr(kaggle.competitions.competition_api_client, service_call)(request)

    def limits(self, competition: str) -> Limits:
        reply = self._call(f"reading the submission limits of '{competition}'", competition,
                           self.api.competition_get_submission_limits, competition)
        return Limits(int(reply.num_today or 0), int(reply.num_total or 0), int(reply.num_allowed_now or 0),
                      bool(reply.limited_by_total))

    def submit(self, path: str | os.PathLike, competition: str, message: str) -> tuple[str, int | None]:
        """Upload a submission file; return the server's reply and the submission's ref."""
        action = f"submitting {path} to '{competition}'"
        response = self._call(action, competition, self.api.competition_submit, str(path), message, competition,
                              quiet=True)
        reply = _masked(str(getattr(response, "message", "") or "submitted"), self.api)
        if reply == getattr(self.api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", self.UPLOAD_FAILED):
            raise DataError(f"kaggle: {action} failed: {reply} (the file upload was refused)")
        ref = getattr(response, "ref", None)
        return reply, (int(ref) if ref else None)

    def _pages(self, action: str, competition: str, method: str, request_type, max_pages: int = MAX_PAGES) -> list:
        """Every item of a paged list call (``page_token``/``next_page_token``), at most ``max_pages`` pages."""
        items, token = [], ""
        for _ in range(max_pages):
            request = request_type()
            request.competition_name = competition
            request.page_size = PAGE_SIZE
            if token:
                request.page_token = token
            reply = self._call(action, competition, self._sdk, method, request)
            items += [item for item in reply.submissions or [] if item is not None]
            token = reply.next_page_token or ""
            if not token:
                break
        return items

    def submissions(self, competition: str, max_pages: int = MAX_PAGES) -> list[dict]:
        """Our submissions, newest first, every page (or the first ``max_pages``)."""
        from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

        return [_submission_row(s) for s in self._pages(f"listing the submissions of '{competition}'", competition,
                                                        "list_submissions", ApiListSubmissionsRequest, max_pages)]

    def leaderboard(self, competition: str) -> list[dict]:
        """The public leaderboard, best first, every page."""
        from kagglesdk.competitions.types.competition_api_service import ApiGetLeaderboardRequest

        return [{"team_id": s.team_id, "team": s.team_name or "", "date": _iso(s.submission_date), "score": _number(s.score)}
                for s in self._pages(f"reading the leaderboard of '{competition}'", competition, "get_leaderboard",
                                     ApiGetLeaderboardRequest)]

    def download(self, competition: str, directory: str | os.PathLike) -> Path:
        """Download the competition's files into ``directory``; return the saved file (normally a .zip)."""
        directory = Path(directory)
        self._call(f"downloading '{competition}'", competition, self.api.competition_download_files, competition,
                   path=str(directory), force=True, quiet=True)
        saved = sorted(p for p in directory.iterdir() if p.is_file() and p.name.startswith(competition + "."))
        if not saved:
            raise DataError(f"kaggle: downloading '{competition}' failed: the client saved no file in {directory}")
        return saved[0]

    # ------------------------------------------------------------ code competitions: datasets, kernels, code submissions

    @property
    def username(self) -> str:
        """The Kaggle user the credentials belong to ('' when the client does not say)."""
        config = getattr(self.api, "config_values", None)
        return str(config.get("username") or "") if isinstance(config, dict) else ""

    def code_only(self, competition: str) -> bool:
        """True when ``competition`` takes submissions only from notebooks (a code competition)."""
        from kagglesdk.competitions.types.competition_api_service import ApiGetCompetitionRequest

        request = ApiGetCompetitionRequest()
        request.competition_name = competition
        reply = self._call(f"reading '{competition}'", competition, self._sdk, "get_competition", request)
        return bool(reply.is_kernels_submissions_only)

    def dataset_status(self, dataset: str) -> str | None:
        """The dataset's status in lower case (``ready``, ``not_yet_persisted``, ``failed``, ...); None when Kaggle
        does not know it (yet)."""
        def status_or_none():
            try:
                return self.api.dataset_status(dataset)
            except Exception as exc:
                if _status(exc) == 404:
                    return None
                raise

        return self._call(f"reading the status of dataset {dataset}", None, status_or_none)

    def dataset_upload(self, folder: str | os.PathLike, dataset: str, notes: str, *, new: bool) -> None:
        """Create the private dataset ``dataset`` from ``folder`` (``new``) or a new version of it; folders are
        uploaded as zip archives, which Kaggle unpacks."""
        if new:
            action = f"creating dataset {dataset}"
            reply = self._call(action, None, self.api.dataset_create_new, str(folder), public=False, quiet=True,
                               dir_mode="zip", _missing=f"dataset {dataset}")
        else:
            action = f"creating a new version of dataset {dataset}"
            reply = self._call(action, None, self.api.dataset_create_version, str(folder), notes, quiet=True,
                               dir_mode="zip", _missing=f"dataset {dataset}")
        error = _masked(str(getattr(reply, "error", "") or ""), self.api)
        if error or str(getattr(reply, "status", "ok") or "ok").lower() != "ok":
            raise DataError(f"kaggle: {action} failed: {error or getattr(reply, 'status', '')}")

    def kernel_push(self, folder: str | os.PathLike, kernel: str, *, timeout: int | None = None,
                    accelerator: str | None = None) -> int:
        """Push the notebook in ``folder`` (its kernel-metadata.json) and start its run; return the new version."""
        action = f"pushing kernel {kernel}"
        reply = self._call(action, None, self.api.kernels_push, str(folder), str(timeout) if timeout else None,
                           accelerator, _missing=f"kernel {kernel}")
        if getattr(reply, "error", ""):
            raise DataError(f"kaggle: {action} failed: {_masked(str(reply.error), self.api)}")
        invalid = [f"{kind} source(s) {', '.join(map(str, names))}" for kind, names in
                   (("dataset", reply.invalid_dataset_sources), ("competition", reply.invalid_competition_sources),
                    ("kernel", reply.invalid_kernel_sources)) if names]
        if invalid:
            raise DataError(f"kaggle: {action}: Kaggle does not know the {'; '.join(invalid)} (pushed as version "
                            f"{reply.version_number}, but it cannot read its inputs)")
        if not reply.version_number:
            raise DataError(f"kaggle: {action}: the server returned no version number")
        return int(reply.version_number)

    def kernel_status(self, kernel: str, version: int) -> tuple[str, str]:
        """(status, failure message) of version ``version`` of ``kernel``: QUEUED, RUNNING, COMPLETE, ERROR, ..."""
        reply = self._call(f"reading the status of kernel {kernel} version {version}", None, self.api.kernels_status,
                           f"{kernel}/{version}", _missing=f"kernel {kernel} version {version}")
        status = getattr(reply.status, "name", str(reply.status or ""))
        return status, _masked(str(reply.failure_message or ""), self.api)

    def kernel_output(self, kernel: str, version: int, directory: str | os.PathLike,
                      file_name: str | None = None) -> tuple[list[Path], str]:
        """Download the output files of version ``version`` of ``kernel`` (only ``file_name`` when given) into
        ``directory``; return them and the kernel's log text ('' when none)."""
        pattern = f"^{re.escape(file_name)}$" if file_name else None
        files, _ = self._call(f"downloading the output of kernel {kernel} version {version}", None,
                              self.api.kernels_output, f"{kernel}/{version}", str(directory), file_pattern=pattern,
                              force=True, quiet=True, _missing=f"kernel {kernel} version {version}")
        log_name = kernel.split("/")[-1] + ".log"
        paths = [Path(f) for f in files]
        log = next((p for p in paths if p.name == log_name and p.name != file_name), None)
        text = _masked(log.read_text(encoding="utf-8", errors="replace"), self.api) if log is not None else ""
        return [p for p in paths if p is not log], text

    def submit_code(self, competition: str, kernel: str, version: int, file_name: str,
                    message: str) -> tuple[str, int | None]:
        """Submit the output ``file_name`` of version ``version`` of ``kernel``; the reply and the submission's ref."""
        reply = self._call(f"submitting kernel {kernel} version {version} to '{competition}'", competition,
                           self.api.competition_submit_code, file_name, message, competition, kernel=kernel,
                           kernel_version=version, quiet=True)
        ref = getattr(reply, "ref", None)
        return _masked(str(getattr(reply, "message", "") or "submitted"), self.api), (int(ref) if ref else None)


def _iso(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S") if hasattr(value, "strftime") else str(value or "")


def _number(text) -> float | None:
    """A score from Kaggle's reply; None when there is none, or it is not a finite number."""
    try:
        value = float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _submission_row(s) -> dict:
    status = getattr(s.status, "name", str(s.status or ""))
    return {"ref": int(s.ref), "date": _iso(s.date), "description": s.description or "", "file_name": s.file_name or "",
            "status": status, "public_score": _number(s.public_score), "private_score": _number(s.private_score),
            "error": s.error_description or ""}


def connect(say: Callable[[str], None] | None = None) -> Client:
    """An authenticated ``Client``; one error line when kaggle or the credentials are missing."""
    return Client(_client(), say=say)


def submit(path: str | os.PathLike, competition: str, message: str) -> str:
    """Upload a submission file; return the server's reply text. Validate the file before calling this."""
    return connect().submit(path, competition, message)[0]
