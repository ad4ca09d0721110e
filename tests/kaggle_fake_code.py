"""The loopback fake's code-competition half: blob uploads, datasets, kernels and code submissions, as kagglesdk
0.1.38 sends them (``/api/v1/<service>/<Method>``, JSON bodies in camelCase), answered like Kaggle.

* ``blobs.BlobApiService/StartBlobUpload {type, name, contentLength, ...}`` -> ``{token, createUrl}``; the bytes
  follow as ``PUT createUrl`` (shared with the submission uploads).
* ``datasets.DatasetApiService/GetDatasetStatus {ownerSlug, datasetSlug}``: 404 for a dataset Kaggle does not
  know, also for ``dataset_polls_unknown`` calls after it was created (not indexed yet); then
  ``NOT_YET_PERSISTED``/``BLOBS_RECEIVED`` for ``dataset_polls_to_ready`` calls, then ``READY``
  (``dataset_never_ready``: never; ``dataset_fails``: ``FAILED``).
* ``CreateDataset {ownerSlug, slug, title, licenseName, isPrivate, files: [{token}]}`` and
  ``CreateDatasetVersion {ownerSlug, datasetSlug, body: {versionNotes, files}}`` -> ``{ref, url, status, error}``;
  403 for another owner's dataset. An uploaded ``X.zip`` (the client's ``--dir-mode zip`` for a folder) is
  unpacked into ``X/`` as Kaggle does; ``dataset-metadata.json`` is never uploaded by the client.
* ``kernels.KernelsApiService/SaveKernel {slug, text, language, kernelType, datasetDataSources,
  competitionDataSources, enableInternet, machineShape, ...}`` -> ``{ref, url, versionNumber, error,
  invalidDatasetSources, invalidCompetitionSources}``; each push is a new version whose run starts at once:
  the notebook is REALLY executed offline (``kaggle_kernels.execute_notebook``) on the competition's PUBLIC files
  and the dataset, mounted under ``input/competitions/<slug>`` and ``input/datasets/<owner>/<slug>``
  (``mount = "legacy"``: ``input/<slug>``).
* ``GetKernelSessionStatus {userName, kernelSlug, versionLabel: "vN"}`` -> ``{status, failureMessage}``:
  QUEUED for ``kernel_polls_queued`` calls, RUNNING while it runs (``kernel_gate`` cleared holds it), then
  COMPLETE or ERROR.
* ``ListKernelSessionOutput`` -> ``{files: [{url, fileName}], log, nextPageToken}``; ``GET`` of the url.
* ``competitions.CompetitionApiService/GetCompetition`` -> ``{ref, isKernelsSubmissionsOnly, ...}``;
  ``CreateCodeSubmission {competitionName, kernelOwner, kernelSlug, kernelVersion, fileName,
  submissionDescription}`` -> ``{message, ref}``, refused unless the competition takes notebooks, the version is
  COMPLETE, its internet was off, the competition attached and the file among its outputs; the submission is
  then re-run on the HIDDEN files (``Competition.hidden_files``) and scored by ``Competition.scorer``; it is
  dated now (``ListSubmissions`` shows it, as Kaggle does). ``code_submission_ref = 0`` answers every code
  submission with ref 0 (kagglesdk's default when Kaggle's reply carries none).
  A code competition refuses CSV uploads.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

USER = "fake-user"  # the authenticated user (kaggle_fake.USERNAME)
MACHINE_SHAPES = (None, "", "NvidiaTeslaT4", "NvidiaTeslaP100", "NvidiaL4", "NvidiaL4X1", "TpuV38", "Tpu1VmV38")


@dataclass
class Dataset:
    owner: str
    slug: str
    title: str
    versions: list = field(default_factory=list)  # {relative path: bytes} per version
    unknown_left: int = 0
    not_ready_left: int = 0


@dataclass
class KernelVersion:
    number: int
    request: dict
    run: "Run"
    queued_left: int


class Run(threading.Thread):
    """One execution of a notebook: mount the inputs, execute offline, keep the outputs and the log."""

    def __init__(self, fake, text: str, competition_files: dict, datasets: dict, output_file: str | None = None,
                 scorer=None):
        super().__init__(daemon=True)
        self.fake, self.text, self.competition_files, self.datasets = fake, text, competition_files, datasets
        self.output_file, self.scorer = output_file, scorer
        self.status, self.failure, self.log, self.outputs, self.result = "RUNNING", "", "[]", {}, None

    def run(self) -> None:
        self.fake.kernel_gate.wait()
        root = Path(tempfile.mkdtemp(prefix="run-", dir=self.fake.workdir))
        try:
            for slug, folder in self.competition_files.items():
                target = root / "input" / (slug if self.fake.mount == "legacy" else f"competitions/{slug}")
                shutil.copytree(folder, target)
            for ref, files in self.datasets.items():
                owner, slug = ref.split("/")
                base = root / "input" / (slug if self.fake.mount == "legacy" else f"datasets/{owner}/{slug}")
                for rel, data in files.items():
                    (base / rel).parent.mkdir(parents=True, exist_ok=True)
                    (base / rel).write_bytes(data)
            (root / "working").mkdir()
            notebook = root / "notebook.ipynb"
            notebook.write_text(self.text)
            ok, self.failure, self.log = self.fake.executor(notebook, root)
            working = root / "working"
            self.outputs = {p.name: p.read_bytes() for p in sorted(working.iterdir()) if p.is_file()}
            self.status = "COMPLETE" if ok else "ERROR"
            if self.scorer is not None:  # a code submission's re-run: score the output like Kaggle
                if not ok:
                    self.result = ("ERROR", "Notebook Threw Exception")
                elif self.output_file not in self.outputs:
                    self.result = ("ERROR", "Submission CSV Not Found")
                else:
                    self.result = self.scorer(working / self.output_file)
        except Exception as exc:  # a bug of the fake itself: shows in the test
            self.status, self.failure, self.result = "ERROR", f"fake runner: {exc!r}", ("ERROR", repr(exc))
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _error(status: int, message: str):
    return status, {"code": status, "message": message}, {}


class CodeApi:
    """Mixed into ``FakeKaggle``: its datasets, kernels and code submissions (called with its lock held)."""

    def __init__(self):
        self.datasets: dict[str, Dataset] = {}
        self.kernels: dict[str, list[KernelVersion]] = {}
        self.fail_after: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.dataset_polls_unknown = 1
        self.dataset_polls_to_ready = 2
        self.dataset_never_ready = False
        self.dataset_fails = False
        self.kernel_polls_queued = 1
        self.code_submission_ref: int | None = None  # 0: CreateCodeSubmission's reply carries no ref
        self.mount = "current"
        self.kernel_gate = threading.Event()
        self.kernel_gate.set()
        self.runs: list[Run] = []
        self.workdir: Path | None = None
        from kaggle_kernels import execute_notebook

        self.executor = execute_notebook

    def join_runs(self) -> None:
        self.kernel_gate.set()
        for run in self.runs:
            run.join(timeout=600)

    def _start(self, run: Run) -> Run:
        self.runs.append(run)
        run.start()
        return run

    def handle_code(self, service: str, method: str, body: dict):
        handler = getattr(self, f"_{service.split('.')[0]}_{method}", None)
        if handler is None:
            return _error(404, f"no such method {service}/{method}")
        return handler(body)

    # ------------------------------------------------------------ blobs and datasets
    def _blobs_StartBlobUpload(self, body):
        token = f"dblob-{len(self.uploads) + 1}"
        self.uploads[token] = b""
        self.upload_names[token] = body.get("name", "")
        return 200, {"token": token, "createUrl": f"http://localhost/upload/{token}"}, {}

    def _files(self, new_files: list) -> dict | tuple:
        files = {}
        for item in new_files or []:
            token = item.get("token", "")
            if not self.uploads.get(token):
                return _error(400, f"unknown or empty upload token {token!r}")
            name, data = self.upload_names[token], self.uploads[token]
            if name.endswith(".zip"):  # Kaggle unpacks an uploaded archive into a folder of its name
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    for member in archive.infolist():
                        rel = PurePosixPath(name[:-4]) / member.filename
                        if not member.is_dir() and ".." not in rel.parts:
                            files[rel.as_posix()] = archive.read(member)
            else:
                files[name] = data
        return files

    def _new_version(self, dataset: Dataset, files: dict) -> None:
        dataset.versions.append(files)
        dataset.unknown_left = self.dataset_polls_unknown
        dataset.not_ready_left = self.dataset_polls_to_ready

    def _datasets_CreateDataset(self, body):
        owner, slug = body.get("ownerSlug", ""), body.get("slug", "")
        if owner != USER:
            return _error(403, f"Permission 'datasets.create' was denied for owner '{owner}'")
        ref = f"{owner}/{slug}"
        if ref in self.datasets:
            return 200, {"status": "error", "error": f'The requested slug "{slug}" is already in use'}, {}
        if body.get("isPrivate") is not True:
            return 400, {"code": 400, "message": "the fake expects private datasets"}, {}
        files = self._files(body.get("files"))
        if isinstance(files, tuple):
            return files
        dataset = Dataset(owner, slug, body.get("title", ""))
        self._new_version(dataset, files)
        self.datasets[ref] = dataset
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}, {}

    def _datasets_CreateDatasetVersion(self, body):
        ref = f"{body.get('ownerSlug', '')}/{body.get('datasetSlug', '')}"
        if ref not in self.datasets:
            return _error(404, f"Dataset {ref} not found")
        if body.get("ownerSlug") != USER:
            return _error(403, f"Permission 'datasets.update' was denied for {ref}")
        files = self._files((body.get("body") or {}).get("files"))
        if isinstance(files, tuple):
            return files
        self._new_version(self.datasets[ref], files)
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}, {}

    def _datasets_GetDatasetStatus(self, body):
        dataset = self.datasets.get(f"{body.get('ownerSlug', '')}/{body.get('datasetSlug', '')}")
        if dataset is None or dataset.unknown_left > 0:
            if dataset is not None:
                dataset.unknown_left -= 1
            return _error(404, "Dataset not found")
        if self.dataset_fails:
            return 200, {"status": "FAILED"}, {}
        if self.dataset_never_ready or dataset.not_ready_left > 0:
            dataset.not_ready_left -= 1
            return 200, {"status": "NOT_YET_PERSISTED" if dataset.not_ready_left % 2 else "BLOBS_RECEIVED"}, {}
        return 200, {"status": "READY"}, {}

    # ------------------------------------------------------------ kernels
    def _kernels_SaveKernel(self, body):
        ref = body.get("slug", "")
        owner = ref.split("/")[0]
        if owner != USER:
            return _error(403, f"Permission 'kernels.create' was denied for owner '{owner}'")
        if body.get("language") != "python" or body.get("kernelType") != "notebook":
            return 200, {"error": "the fake runs Python notebooks only"}, {}
        if body.get("machineShape") not in MACHINE_SHAPES:
            return 200, {"error": f"Invalid machine shape {body.get('machineShape')!r}"}, {}
        try:
            json.loads(body.get("text") or "")
        except ValueError:
            return 200, {"error": "Notebook is invalid: its text is not JSON"}, {}
        bad_datasets = [d for d in body.get("datasetDataSources") or [] if d not in self.datasets]
        bad_competitions = [c for c in body.get("competitionDataSources") or [] if c not in self.competitions]
        mounts = {c: self.competitions[c].public_files for c in body.get("competitionDataSources") or []
                  if c in self.competitions and self.competitions[c].public_files is not None}
        datasets = {d: self.datasets[d].versions[-1] for d in body.get("datasetDataSources") or [] if d in self.datasets}
        versions = self.kernels.setdefault(ref, [])
        run = self._start(Run(self, body["text"], mounts, datasets))
        versions.append(KernelVersion(len(versions) + 1, dict(body), run, self.kernel_polls_queued))
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/code/{ref}", "versionNumber": len(versions),
                     "error": "", "invalidDatasetSources": bad_datasets,
                     "invalidCompetitionSources": bad_competitions}, {}

    def _version(self, body) -> KernelVersion | None:
        versions = self.kernels.get(f"{body.get('userName', '')}/{body.get('kernelSlug', '')}") or []
        label = str(body.get("versionLabel") or "")
        if not label:
            return versions[-1] if versions else None
        number = int(label[1:]) if re.fullmatch(r"v[0-9]+", label) else -1
        return versions[number - 1] if 1 <= number <= len(versions) else None

    def _kernels_GetKernelSessionStatus(self, body):
        version = self._version(body)
        if version is None:
            return _error(404, "Kernel not found")
        if version.queued_left > 0:
            version.queued_left -= 1
            return 200, {"status": "QUEUED"}, {}
        if version.run.is_alive() or not self.kernel_gate.is_set():
            return 200, {"status": "RUNNING"}, {}
        return 200, {"status": version.run.status, "failureMessage": version.run.failure}, {}

    def _kernels_ListKernelSessionOutput(self, body):
        version = self._version(body)
        if version is None:
            return _error(404, "Kernel not found")
        if version.run.is_alive():
            return 200, {"files": [], "log": "", "nextPageToken": ""}, {}
        ref = f"{body['userName']}/{body['kernelSlug']}/{version.number}"
        files = [{"url": f"http://localhost/kernel-output/{ref}/{name}", "fileName": name} for name in version.run.outputs]
        return 200, {"files": files, "log": version.run.log, "nextPageToken": ""}, {}

    def output_bytes(self, path: str) -> bytes | None:
        parts = path[len("/kernel-output/"):].split("/")
        if len(parts) != 4:
            return None
        versions = self.kernels.get(f"{parts[0]}/{parts[1]}") or []
        number = int(parts[2]) if parts[2].isdigit() else 0
        return versions[number - 1].run.outputs.get(parts[3]) if 1 <= number <= len(versions) else None

    # ------------------------------------------------------------ competitions: kind, code submissions
    def _GetCompetition(self, competition, body):
        return 200, {"ref": competition.name, "title": competition.name,
                     "isKernelsSubmissionsOnly": competition.code_only,
                     "maxDailySubmissions": competition.daily_limit}, {}

    def _refuse_csv(self, competition):
        if competition.code_only:
            return _error(400, "Submission not allowed: this competition only accepts submissions from notebooks")
        return None

    def _CreateCodeSubmission(self, competition, body):
        refused = self._refuse_without_rules(competition)
        if refused:
            return refused
        if not competition.code_only:
            return _error(400, "This competition does not accept notebook submissions; upload a file")
        ref = f"{body.get('kernelOwner', '')}/{body.get('kernelSlug', '')}"
        versions = self.kernels.get(ref) or []
        number = int(body.get("kernelVersion") or len(versions))
        if not 1 <= number <= len(versions):
            return _error(404, f"Kernel {ref} version {number} not found")
        version = versions[number - 1]
        status = "RUNNING" if version.run.is_alive() else version.run.status
        if status != "COMPLETE":
            return _error(400, f"Kernel {ref} version {number} is {status}, not COMPLETE")
        if version.request.get("enableInternet") is not False:
            return _error(400, "Notebooks with internet access enabled cannot be submitted to this competition")
        if competition.name not in (version.request.get("competitionDataSources") or []):
            return _error(400, f"The notebook must have the competition '{competition.name}' attached")
        file_name = body.get("fileName", "")
        if file_name not in version.run.outputs:
            return _error(400, f"Output file {file_name!r} not found in kernel {ref} version {number}")
        if competition.num_today >= competition.daily_limit:
            return _error(400, "Submission not allowed: Your team has used its daily Submission allowance "
                               f"({competition.daily_limit}) today")
        competition.num_today += 1
        competition.num_total += 1
        datasets = {d: self.datasets[d].versions[-1] for d in version.request.get("datasetDataSources") or []
                    if d in self.datasets}
        rerun = self._start(Run(self, version.request["text"], {competition.name: competition.hidden_files},
                                datasets, file_name, competition.scorer))
        sub_ref = self.next_ref
        self.next_ref += 1
        date = datetime.now(timezone.utc)  # Kaggle's clock: a resumed kfold submit --code looks its submission up by it
        competition.submissions.append({
            "ref": sub_ref, "date": date.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "description": body.get("submissionDescription", ""), "fileName": file_name, "totalBytes": 0,
            "status": "PENDING", "polls_left": competition.polls_to_score, "result": None, "rerun": rerun,
            "submittedBy": USER, "teamName": "kfold team"})
        return 200, {"message": "Your submission was successfully saved",
                     "ref": sub_ref if self.code_submission_ref is None else self.code_submission_ref}, {}
