"""A loopback fake of the Kaggle 2.x API, driven by the real kaggle client (kaggle >= 2, kagglesdk).

The client has no endpoint override: ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` makes it call
``http://localhost/api/v1/<Service>/<Method>`` and the standard proxy variables send every such request
here (a ThreadingHTTPServer on an ephemeral 127.0.0.1 port). ``HTTPS_PROXY`` points here as well, so a
fallback to production would arrive as a ``CONNECT``, which is refused and recorded: the fixture's
teardown asserts that none was seen and that every request named localhost.

Protocol (what kagglesdk 0.1.38 sends): every API call is a JSON ``POST`` with Basic auth (or a Bearer
token); errors are JSON ``{"code": >= 400, "message": ...}`` with the same HTTP status.

* ``StartSubmissionUpload {competitionName, contentLength, lastModifiedEpochSeconds, fileName}`` ->
  ``{token, createUrl}``; then ``PUT createUrl`` with the raw bytes and no auth;
  ``CreateSubmission {competitionName, blobFileTokens, submissionDescription}`` -> ``{message, ref}``.
* ``GetSubmissionLimits {competitionName}`` -> ``{numToday, numTotal, numAllowedNow, limitedByTotal}``
  (all zero when the user has no team in the competition, i.e. has not accepted its rules).
* ``ListSubmissions {competitionName, page, pageToken, pageSize}`` -> ``{submissions, nextPageToken}``;
  each call is one poll: a PENDING submission turns COMPLETE (or ERROR) after ``polls_to_score`` polls.
* ``GetLeaderboard {competitionName, pageToken, pageSize}`` -> ``{submissions: [{teamId, teamName,
  submissionDate, score}], nextPageToken}``, at most ``leaderboard_page_max`` rows a page.
* ``DownloadDataFiles {competitionName}`` -> 302 to ``/files/<competition>.zip`` (the client names the
  saved file after the extension of the final URL).

Failure switches: wrong credentials -> 401; unknown competition -> 404; rules not accepted -> 403 on
upload/download; ``rate_limited[method] = n`` -> the next n calls get 429 with ``Retry-After``;
``results`` queue -> COMPLETE scores or ERROR descriptions per new submission; ``put_status`` -> a failed
upload PUT; ``fail_after[method] = n`` -> every call of that method after the first n gets 500 (a run
interrupted there; ``counts`` counts the calls).

Datasets, blob uploads, kernels (their notebooks really executed offline) and code submissions:
``kaggle_fake_code.py``.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pytest
from kaggle_fake_code import CodeApi

USERNAME = "fake-user"
KEY = "fake-key-0123456789abcdef"
API = "/api/v1/"
SERVICE = API + "competitions.CompetitionApiService/"


@dataclass
class Competition:
    name: str
    rules_accepted: bool = True
    daily_limit: int = 5
    num_today: int = 0
    num_total: int = 0
    polls_to_score: int = 0           # ListSubmissions calls a new submission stays PENDING
    results: list = field(default_factory=list)  # per new submission: ("COMPLETE", public, private) | ("ERROR", text)
    default_result: tuple = ("COMPLETE", "0.95000", "0.94000")
    leaderboard: list = field(default_factory=list)  # [(team name, score string)], best first
    data_zip: bytes | None = None
    submissions: list = field(default_factory=list)  # dicts, oldest first
    code_only: bool = False           # a code competition: notebooks only, CSV uploads refused
    public_files: Path | None = None  # what a pushed kernel sees (Kaggle's editor)
    hidden_files: Path | None = None  # what a code submission's re-run sees (the whole hidden test set)
    scorer: Callable | None = None    # output file -> ("COMPLETE", public, private) | ("ERROR", description)


@dataclass
class Seen:
    method: str
    path: str
    host: str
    auth: str
    body: object
    time: float


class FakeKaggle(CodeApi):
    def __init__(self):
        CodeApi.__init__(self)
        self.competitions: dict[str, Competition] = {}
        self.requests: list[Seen] = []
        self.connects: list[str] = []
        self.uploads: dict[str, bytes] = {}
        self.upload_names: dict[str, str] = {}
        self.rate_limited: dict[str, int] = {}
        self.retry_after = "1"
        self.put_status = 200
        self.leaderboard_page_max = 20
        self.submissions_page_max = 20
        self.next_ref = 50000001
        self.lock = threading.Lock()
        self.server = None

    # ---------------------------------------------------------------- set-up helpers
    def add(self, name: str, **kwargs) -> Competition:
        competition = Competition(name, **kwargs)
        self.competitions[name] = competition
        return competition

    def calls(self, method: str | None = None) -> list[Seen]:
        return [r for r in self.requests if method is None or (r.path.startswith(API) and r.path.endswith("/" + method))]

    def method_names(self) -> list[str]:
        return [r.path.rsplit("/", 1)[-1] if r.path.startswith(API) else f"{r.method} {r.path}" for r in self.requests]

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeKaggle":
        fake = self

        class Handler(_Handler):
            owner = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.join_runs()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # ---------------------------------------------------------------- the API
    def handle(self, method: str, body: dict, auth: str, service: str = "competitions.CompetitionApiService"
               ) -> tuple[int, dict, dict]:
        """(status, JSON reply, extra headers) of one API call."""
        if not self._authorized(auth):
            return 401, {"code": 401, "message": "Unauthenticated"}, {}
        with self.lock:
            if self.rate_limited.get(method, 0) > 0:
                self.rate_limited[method] -= 1
                return 429, {"code": 429, "message": "Too Many Requests"}, {"Retry-After": self.retry_after}
            self.counts[method] = self.counts.get(method, 0) + 1
            if self.counts[method] > self.fail_after.get(method, self.counts[method]):  # an injected failure
                return 500, {"code": 500, "message": f"injected failure of {method}"}, {}
        if service != "competitions.CompetitionApiService":
            with self.lock:
                return self.handle_code(service, method, body)
        name = body.get("competitionName", "")
        competition = self.competitions.get(name)
        if competition is None:
            return 404, {"code": 404, "message": f"Competition '{name}' not found"}, {}
        handler = getattr(self, "_" + method, None)
        if handler is None:
            return 404, {"code": 404, "message": f"no such method {method}"}, {}
        with self.lock:
            return handler(competition, body)

    def _authorized(self, auth: str) -> bool:
        good = "Basic " + base64.b64encode(f"{USERNAME}:{KEY}".encode()).decode()
        return auth == good

    def _refuse_without_rules(self, competition):
        if not competition.rules_accepted:
            return 403, {"code": 403, "message": "You must accept this competition's rules before you'll be able "
                                                  "to participate"}, {}
        return None

    def _GetSubmissionLimits(self, competition, body):
        if not competition.rules_accepted:  # no team yet: everything zero
            return 200, {}, {}
        left = max(competition.daily_limit - competition.num_today, 0)
        return 200, {"numToday": competition.num_today, "numTotal": competition.num_total, "numAllowedNow": left,
                     "limitedByTotal": False}, {}

    def _StartSubmissionUpload(self, competition, body):
        refused = self._refuse_without_rules(competition) or self._refuse_csv(competition)
        if refused:
            return refused
        token = f"blob-{len(self.uploads) + 1}"
        self.uploads[token] = b""
        self.upload_names[token] = body.get("fileName", "")
        return 200, {"token": token, "createUrl": f"http://localhost/upload/{token}"}, {}

    def _CreateSubmission(self, competition, body):
        refused = self._refuse_without_rules(competition) or self._refuse_csv(competition)
        if refused:
            return refused
        token = body.get("blobFileTokens", "")
        if token not in self.uploads or not self.uploads[token]:
            return 400, {"code": 400, "message": f"unknown or empty upload token {token!r}"}, {}
        if competition.num_today >= competition.daily_limit:
            return 400, {"code": 400, "message": "Submission not allowed: Your team has used its daily Submission "
                                                  f"allowance ({competition.daily_limit}) today"}, {}
        competition.num_today += 1
        competition.num_total += 1
        ref = self.next_ref
        self.next_ref += 1
        result = competition.results.pop(0) if competition.results else competition.default_result
        date = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=len(competition.submissions))
        competition.submissions.append({
            "ref": ref, "date": date.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "description": body.get("submissionDescription", ""),
            "fileName": self.upload_names.get(token, ""), "totalBytes": len(self.uploads[token]),
            "status": "PENDING", "polls_left": competition.polls_to_score, "result": result,
            "submittedBy": USERNAME, "teamName": "kfold team"})
        return 200, {"message": "Successfully submitted to " + competition.name, "ref": ref}, {}

    def _ListSubmissions(self, competition, body):
        for sub in competition.submissions:  # one poll
            if sub["status"] == "PENDING" and sub.get("rerun") is not None:  # a code submission being re-run
                if sub["rerun"].is_alive():
                    continue
                sub["result"] = sub.pop("rerun").result
                sub["rerun"] = None
            if sub["status"] == "PENDING":
                if sub["polls_left"] > 0:
                    sub["polls_left"] -= 1
                else:
                    sub["status"] = sub["result"][0]
        newest_first = [self._public(sub) for sub in reversed(competition.submissions)]
        return self._page(newest_first, body, self.submissions_page_max)

    @staticmethod
    def _public(sub: dict) -> dict:
        out = {k: v for k, v in sub.items() if k not in ("polls_left", "result", "rerun")}
        if sub["status"] == "COMPLETE":
            out["publicScore"], out["privateScore"] = sub["result"][1], sub["result"][2]
        elif sub["status"] == "ERROR":
            out["errorDescription"] = sub["result"][1]
        return out

    def _GetLeaderboard(self, competition, body):
        rows = [{"teamId": 1000 + i, "teamName": team, "submissionDate": "2024-01-01T00:00:00.000Z", "score": score}
                for i, (team, score) in enumerate(competition.leaderboard)]
        return self._page(rows, body, self.leaderboard_page_max)

    @staticmethod
    def _page(rows: list, body: dict, page_max: int):
        size = min(int(body.get("pageSize") or 20), page_max)
        start = int(body.get("pageToken") or 0)
        end = start + size
        return 200, {"submissions": rows[start:end], "nextPageToken": str(end) if end < len(rows) else ""}, {}

    def _DownloadDataFiles(self, competition, body):
        refused = self._refuse_without_rules(competition)
        if refused:
            return refused
        if competition.data_zip is None:
            return 404, {"code": 404, "message": "no data files"}, {}
        return 302, {}, {"Location": f"http://localhost/files/{competition.name}.zip"}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeKaggle
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _record(self, body) -> Seen:
        url = urlsplit(self.path)
        seen = Seen(self.command, url.path if url.scheme else self.path,
                    url.hostname or (self.headers.get("Host") or "").split(":")[0],
                    self.headers.get("Authorization", ""), body, time.monotonic())
        with self.owner.lock:
            self.owner.requests.append(seen)
        return seen

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload: bytes, content_type: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_CONNECT(self):  # a request meant for the real (https) Kaggle: refused, recorded, fails the test
        with self.owner.lock:
            self.owner.connects.append(self.path)
        self._record(None)
        self._reply(403, b"no CONNECT here", "text/plain")
        self.close_connection = True

    def do_POST(self):
        raw = self._read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"unparsable": raw.decode("latin-1")}
        seen = self._record(body)
        parts = seen.path[len(API):].split("/")
        if not seen.path.startswith(API) or len(parts) != 2:
            return self._reply(404, json.dumps({"code": 404, "message": "not found"}).encode())
        status, reply, headers = self.owner.handle(parts[1], body, seen.auth, service=parts[0])
        self._reply(status, json.dumps(reply).encode(), headers=headers)

    def do_PUT(self):
        data = self._read_body()
        seen = self._record(len(data))
        token = seen.path.rsplit("/", 1)[-1]
        query = re.fullmatch(r"bytes \*/([0-9]+)", self.headers.get("Content-Range") or "")
        with self.owner.lock:
            known = seen.path.startswith("/upload/") and token in self.owner.uploads
            if known and query and not data:  # a resumable upload's status query (the client resuming)
                have = len(self.owner.uploads[token])
                return self._reply(200 if have == int(query.group(1)) and have else 308, b"{}",
                                   headers={"Range": f"bytes=0-{have - 1}"} if have else {})
            if known and self.owner.put_status in (200, 201):
                self.owner.uploads[token] = data
        status = self.owner.put_status if known else 404
        self._reply(status, b"{}")

    def do_GET(self):
        seen = self._record(None)
        if seen.path.startswith("/kernel-output/"):
            data = self.owner.output_bytes(seen.path)
            return self._reply(404, b"not found", "text/plain") if data is None else \
                self._reply(200, data, "application/octet-stream")
        name = seen.path.rsplit("/", 1)[-1]
        competition = self.owner.competitions.get(name[:-4]) if seen.path.startswith("/files/") else None
        if competition is None or competition.data_zip is None:
            return self._reply(404, b"not found", "text/plain")
        self._reply(200, competition.data_zip, "application/zip")


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    """A started FakeKaggle and an environment in which the real kaggle client can only reach it.

    HOME is a temporary directory (an access token in ~/.kaggle would win over everything), the client runs
    against ``localhost`` through the fake as HTTP proxy, https goes to the fake too (a CONNECT fails the test).
    Subprocesses inherit the environment. Teardown: no CONNECT, every request named localhost.
    """
    fake = FakeKaggle().start()
    fake.workdir = Path(tempfile.mkdtemp(prefix="kfold-fake-kaggle-runs-"))  # the kernel runner's /kaggle trees
    home = tmp_path / "home"
    home.mkdir()
    for name in ("NO_PROXY", "no_proxy", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME", "VERBOSE",
                 "VERBOSE_OUTPUT", "KAGGLE_KERNEL_RUN_TYPE", "REQUESTS_CA_BUNDLE", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    (home / "tmp").mkdir()  # the client keeps its resumable uploads' state in the temporary folder
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, fake.proxy)
    monkeypatch.setenv("KAGGLE_USERNAME", USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    yield fake
    fake.stop()
    shutil.rmtree(fake.workdir, ignore_errors=True)
    assert fake.connects == [], f"CONNECT requests reached the fake: {fake.connects}"
    assert all(r.host == "localhost" for r in fake.requests), sorted({r.host for r in fake.requests})
