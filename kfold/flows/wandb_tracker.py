"""The Weights & Biases tracker: logs kfold's run directories, searches, ensembles and Kaggle scores FROM THEIR FILES.

W&B has no nested runs, so the nesting MLflow shows becomes W&B's own three levels: the project is the competition
(the run's task name), the group is the kfold run (or the ``kfold tune`` search), the job type says what a W&B run is
(``run``, ``fold``, ``trial``, ``tune``, ``ensemble``). Each kfold run is one W&B run (its config flattened, its
out-of-fold scores as summary metrics); each fold is one W&B run whose history holds every epoch of ``metrics.csv``
as a step. Files are copied (never linked) into the W&B run: ``config.json``, ``summary.json``, ``folds.csv``,
``report.html``, each fold's ``meta.json``, ``metrics.csv``, learning curve and confusion files, and with
``models=True`` the weights as safetensors (never a pickle).

**Idempotent.** Every W&B run id is derived from the kfold run's key (its ``config.json`` and folder), plus for a
fold its ``meta.json``'s SHA-256: a run logged again resumes its W&B run (``resume="allow"``) rather than making a
new one, and a fold is logged once (a retrained fold is a new W&B run; the old one is tagged ``superseded``, or its
unsynced offline folder removed). What was logged is written beside W&B's files, ``wandb/kfold-index/<id>.json``
(the project, group and job type of each run, a digest of what it holds, an ensemble's submission SHA-256): a run
whose files did not change is not logged again, and ``kfold submit`` finds the ensemble that wrote a file by its
bytes there (W&B, offline, has no search).

**Offline unless logged in.** ``$WANDB_MODE`` (online, offline, disabled) is respected; otherwise W&B runs online
only when an API key is available (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE`` or a netrc entry for the W&B
host), else offline under ``RUNS/wandb/`` (or ``$WANDB_DIR/wandb/``), uploaded later with ``wandb sync``. Console
capture, system metrics, machine metadata, code and git capture and W&B's error reporting are off; offline, nothing
reaches the network (``tests/test_wandb.py`` proves it in a network namespace of its own). wandb is imported at the
first W&B run.
"""
from __future__ import annotations

import hashlib
import json
import math
import netrc
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from kfold.errors import UsageError
from kfold.files.atomic import atomic_path, guard_outputs, write_json
from kfold.files.rundir import FULL, REPORT_FILES, RunDir, TuneDir, model_name, read_metrics, safe_name
from kfold.flows.mlflow_tracker import MlflowTracker, run_key
from kfold.flows.track_params import finite_number as _number, flatten, summary_metrics
from kfold.identity import version

__all__ = ["WandbTracker", "logged_in", "open_wandb", "wandb_mode", "wandb_root"]

INSTALL_HINT = "pip install -e '.[track]'"
MODES = ("online", "offline", "disabled", "dryrun")
FOLDER = "wandb"  # what wandb.init(dir=ROOT) writes into: ROOT/wandb/
INDEX = "kfold-index"  # kfold's record of what it logged, one JSON per W&B run, beside W&B's run folders
HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")  # wandb 0.31's default server and the W&B API behind it
# W&B's crash reports (Sentry) off unless the user asked for them; everything else is switched off in _settings
QUIET_ENV = {"WANDB_ERROR_REPORTING": "false", "WANDB_DISABLE_CODE": "true", "WANDB_DISABLE_GIT": "true"}
SYNC_HINT = "kfold track sync --track wandb RUN_DIR"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def logged_in(environ: dict | None = None) -> str | None:
    """Where a W&B API key is available from, without asking the network: ``WANDB_API_KEY``,
    ``WANDB_IDENTITY_TOKEN_FILE``, or the netrc file (``$NETRC``, else ``~/.netrc``) for the host of
    ``$WANDB_BASE_URL`` (unset: W&B's default server, api.forge.coreweave.com, or api.wandb.ai behind it);
    ``None`` when not logged in.

    >>> logged_in({"WANDB_API_KEY": "x" * 40}), logged_in({"NETRC": "/nonexistent/netrc"})
    ('WANDB_API_KEY', None)
    """
    env = os.environ if environ is None else environ
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        if str(env.get(name) or "").strip():
            return name
    home = Path(env.get("HOME") or Path.home())
    path = Path(env["NETRC"]).expanduser() if env.get("NETRC") else home / ".netrc"
    base = str(env.get("WANDB_BASE_URL") or "").strip()
    hosts = [urlsplit(base).netloc] if base else list(HOSTS)
    if "forge.coreweave.com" in hosts[0]:
        hosts.append("api.wandb.ai")  # as wandb looks a Forge host up
    try:
        entries = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError):
        return None
    found = [entries.authenticators(host) for host in hosts if host]
    return str(path) if any(entry and entry[2] for entry in found) else None


def wandb_mode(environ: dict | None = None) -> tuple[str, str]:
    """(mode, why): ``$WANDB_MODE`` when set (``dryrun`` is ``offline``), else ``online`` when logged in, else
    ``offline``.

    >>> wandb_mode({"WANDB_MODE": "offline"}), wandb_mode({"WANDB_API_KEY": "k" * 40})
    (('offline', 'WANDB_MODE=offline'), ('online', 'logged in: WANDB_API_KEY'))
    >>> wandb_mode({"WANDB_MODE": "onlin"})
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: WANDB_MODE='onlin': unknown W&B mode; use online, offline or disabled (unset: online when logged in, else offline)
    """
    env = os.environ if environ is None else environ
    text = env.get("WANDB_MODE")
    if text is not None and text.strip():
        if text not in MODES:
            raise UsageError(f"WANDB_MODE={text!r}: unknown W&B mode; use online, offline or disabled (unset: online "
                             f"when logged in, else offline)")
        mode = "offline" if text == "dryrun" else text
        if mode == "online" and not logged_in(env):
            raise UsageError("WANDB_MODE='online' but no W&B API key (set WANDB_API_KEY or run `wandb login`; unset "
                             "WANDB_MODE to log offline)")
        return mode, f"WANDB_MODE={text}"
    source = logged_in(env)
    return ("online", f"logged in: {source}") if source else ("offline", "not logged in")


def wandb_root(runs_folder: str | Path, environ: dict | None = None) -> Path:
    """The folder W&B writes its ``wandb/`` folder into, checked: ``$WANDB_DIR`` when set, else ``runs_folder``.
    Refused before anything is written: a file, a path through a file, a symbolic link (``$WANDB_DIR`` itself, or
    ``wandb/`` and ``wandb/kfold-index/`` below it), a folder that cannot be written, a control character.

    >>> wandb_root("/tmp/runs", {}).as_posix()
    '/tmp/runs'
    >>> wandb_root("runs", {"WANDB_DIR": "/dev/null"})
    Traceback (most recent call last):
    ...
    kfold.errors.UsageError: WANDB_DIR='/dev/null': /dev/null is a file; W&B writes into a folder
    """
    env = os.environ if environ is None else environ
    text = env.get("WANDB_DIR")
    given = text is not None and bool(text.strip())
    shown = f"WANDB_DIR={text!r}" if given else f"the runs folder {str(runs_folder)!r}"
    raw = text if given else str(runs_folder)
    if any(ord(c) < 32 for c in raw) or not raw.strip():
        raise UsageError(f"{shown}: not a folder path")
    root = Path(os.path.abspath(os.path.expanduser(raw)))
    if given and root.is_symlink():
        raise UsageError(f"{shown}: {root} is a symbolic link to {os.path.realpath(root)}; kfold writes only into real "
                         f"folders (name the folder itself)")
    if root.exists() and not root.is_dir():
        raise UsageError(f"{shown}: {root} is a file; W&B writes into a folder")
    parent = root
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{shown}: {parent} is a file where a folder is expected")
    for below in (root / FOLDER, root / FOLDER / INDEX):
        if below.is_symlink():
            raise UsageError(f"{shown}: {below} is a symbolic link to {os.path.realpath(below)}; kfold writes only "
                             f"into real folders and never through a link it did not create")
        if below.exists() and not below.is_dir():
            raise UsageError(f"{shown}: {below} is a file where W&B's folder is expected")
    deepest = next(p for p in (root / FOLDER / INDEX, root / FOLDER, root, parent) if p.exists())
    if not os.access(deepest, os.W_OK | os.X_OK):
        raise UsageError(f"{shown}: the folder {deepest} cannot be written")
    return root


def open_wandb(runs_folder: str | Path, *, models: bool = False,
               echo: Callable[[str], None] = print) -> "WandbTracker | None":
    """The W&B tracker of ``--track wandb``, its mode and folder checked (``UsageError``), with one line saying where
    the runs go (and, offline, the command that uploads them); ``None`` when ``$WANDB_MODE`` is ``disabled``.
    ``kfold.flows.tracking.open_tracker`` wraps it in ``SafeTracker``; wandb is imported at the first W&B run."""
    mode, why = wandb_mode()
    root = wandb_root(runs_folder)
    folder = root / FOLDER
    if mode == "disabled":
        echo(f"tracking: W&B disabled ({why}); nothing is logged")
        return None
    if mode == "offline":
        echo(f"tracking: W&B offline ({why}) in {folder}; upload it later with: wandb sync {folder}")
    else:
        echo(f"tracking: W&B online ({why}): one project per competition; local copies in {folder}")
    return WandbTracker(root, mode=mode, models=models)


class WandbTracker:
    """The ``kfold.flows.tracking.Tracker`` that writes W&B runs (``wandb.init`` with deterministic ids).

    Parameters
    ----------
    root : str or Path
        The folder whose ``wandb/`` folder receives W&B's files (checked by ``wandb_root``).
    mode : {"offline", "online"}, default "offline"
    models : bool, default False
        Also save each model's ``model.safetensors``.
    """

    def __init__(self, root: str | Path, *, mode: str = "offline", models: bool = False):
        self.root, self.mode, self.models = Path(root), mode, models
        self._wandb = None
        self._live: dict[str, Any] = {}  # W&B id -> the kfold run's W&B run, open from run_started to run_done
        self._started: dict[str, dict] = {}  # W&B id -> what it was started with (kept in its index entry)
        self.inits = 0  # W&B runs started (each one a wandb.init)

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    @property
    def index(self) -> Path:
        return self.folder / INDEX

    @property
    def label(self) -> str:
        """How warnings and the cost line name this tracker."""
        return f"W&B ({self.mode}, {self.folder})"

    def closing_line(self) -> str:
        """The last line of ``kfold track sync``: where the runs are and how they are uploaded."""
        if self.mode == "offline":
            return f"W&B offline runs in {self.folder}; upload them with: wandb sync {self.folder}"
        return f"W&B online; local copies in {self.folder}"

    # ---------------------------------------------------------------- W&B itself
    def _lib(self):
        if self._wandb is None:
            for name, value in QUIET_ENV.items():
                os.environ.setdefault(name, value)
            try:
                import wandb
            except ImportError:
                raise UsageError(f"tracking with W&B needs wandb, which is not installed: {INSTALL_HINT}") from None
            try:  # W&B's usage telemetry (OpenTelemetry to its server; never sent offline): off for this process
                from wandb.analytics.opentelemetry import opentelemetry_proxy

                opentelemetry_proxy.disable()
            except (ImportError, AttributeError):
                pass
            self._wandb = wandb
        return self._wandb

    def _settings(self):
        return self._lib().Settings(
            console="off", x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True, save_code=False,
            disable_code=True, disable_git=True, disable_job_creation=True, silent=True, quiet=True,
            show_info=False, show_warnings=False, symlink=False, label_disable=True, x_save_requirements=False,
            use_dot_wandb=False)

    def _start(self, wid: str, *, project: str, group: str, job_type: str, name: str, config: dict, tags: list):
        """The W&B run ``wid`` (created, or resumed: offline, a new segment of the same run)."""
        guard_outputs([self.index], root=self.root)  # the folders below root are still real ones
        self.root.mkdir(parents=True, exist_ok=True)  # here, or a failure: never W&B's fallback to the temp folder
        wandb = self._lib()
        self.inits += 1
        tags = list(dict.fromkeys(t[:64] for t in tags if t))
        run = wandb.init(id=wid, project=safe_name(project)[:128], group=group[:128], job_type=job_type,
                         name=name[:128], config=config, tags=tags, dir=str(self.root), mode=self.mode,
                         resume="allow", reinit="create_new", allow_val_change=True, settings=self._settings())
        if not Path(run.dir).resolve().is_relative_to(self.folder.resolve()):
            run.finish(exit_code=1)
            raise OSError(f"W&B wrote the run {wid} to {run.dir}, not into {self.folder}")
        self._started[wid] = {"project": project, "group": group, "job_type": job_type, "name": name, "tags": tags}
        return run

    @staticmethod
    def _files(run, files, folder: str | None = None) -> None:
        """Copies of ``files`` (not links: what the folder held now) in the W&B run, uploaded once."""
        base = Path(run.dir)
        for path in map(Path, files):
            if not path.is_file():
                continue
            target = base / folder / path.name if folder else base / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as staged:  # W&B uploads the file whole or not at all
                shutil.copyfile(path, staged)
            run.save(str(target), base_path=str(base), policy="now", glob=False)  # registers it: writes nothing

    # ---------------------------------------------------------------- kfold's index of what it logged
    def _entry_path(self, wid: str) -> Path:
        return self.index / f"{wid}.json"

    def entry(self, wid: str) -> dict | None:
        """What was logged to the W&B run ``wid`` (None: nothing yet, or an unreadable entry)."""
        try:
            entry = json.loads(self._entry_path(wid).read_text())
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get("id") == wid else None

    def entries(self) -> list[dict]:
        if not self.index.is_dir():
            return []
        found = (self.entry(p.stem) for p in sorted(self.index.glob("*.json")))
        return [e for e in found if e is not None]

    def _record(self, wid: str, **fields) -> dict:
        entry = {**(self.entry(wid) or {}), **fields, "id": wid, "mode": self.mode, "logged_at": time.time()}
        self.index.mkdir(parents=True, exist_ok=True)
        write_json(self._entry_path(wid), entry)
        return entry

    def _segments(self, wid: str) -> list[Path]:
        """W&B's local folders of the run ``wid`` (offline segments, and online runs' local copies): each holds
        ``run-<id>.wandb`` (a folder's name may end in ``-1``, ``-2`` when two started within a second)."""
        return sorted(f.parent for f in self.folder.glob(f"*/run-{wid}.wandb") if not f.parent.is_symlink())

    def _finish(self, run, wid: str, exit_code: int = 0, **fields) -> None:
        run.finish(exit_code=exit_code)
        self._live.pop(wid, None)
        self._record(wid, **self._started.pop(wid, {}), **fields)

    def _resume(self, entry: dict, config: dict, tags: Sequence[str] = ()):
        """A new segment of a W&B run logged before (its project, group, job type, name and tags kept)."""
        return self._start(entry["id"], project=entry["project"], group=entry["group"], job_type=entry["job_type"],
                           name=entry.get("name") or entry["id"], config=config,
                           tags=[*(entry.get("tags") or []), *tags])

    # ---------------------------------------------------------------- runs and folds
    @staticmethod
    def group_of(run: RunDir) -> str:
        """The W&B group of a kfold run: its folder's name and a short hash of its key (two runs named alike in two
        folders are two groups)."""
        return f"{run.path.name}-{run_key(run)[:6]}"

    def _describe(self, run: RunDir, config: dict) -> tuple[str, dict, list]:
        competition = MlflowTracker._competition(config)
        info = {"kfold.run_id": run_key(run), "kfold.dir": str(run.path.resolve()), "kfold.competition": competition,
                "kfold.data_fingerprint": str(config.get("fingerprint", "")),
                "kfold.folds_sha256": str(config.get("folds_sha256", "")), "kfold.data": str(config.get("data", "")),
                "kfold.schema": json.dumps(config.get("schema", "kmnist"), sort_keys=True)[:5000]}
        values = {**flatten(config.get("config") or {}, text=False), "k": config.get("k"), "seed": config.get("seed"),
                  "preset": config.get("preset"), "threads": config.get("threads"), **info}
        tags = [competition, f"kfold-{version()}", f"seed-{config.get('seed')}", f"preset-{config.get('preset')}",
                f"data-{str(config.get('fingerprint', ''))[:12]}" if config.get("fingerprint") else "",
                f"folds-{str(config.get('folds_sha256', ''))[:12]}" if config.get("folds_sha256") else ""]
        return competition, values, tags

    def run_started(self, run_dir) -> str:
        """The kfold run's W&B run, started (running while the folds train) with its config, tags and config file."""
        run = RunDir(run_dir)
        config = run.read_config()
        wid = f"r-{run_key(run)}"
        if wid not in self._live:
            competition, values, tags = self._describe(run, config)
            live = self._start(wid, project=competition, group=self.group_of(run), job_type="run", name=run.path.name,
                               config=values, tags=["run", *tags])
            self._files(live, [run.config])
            self._live[wid] = live
            self._record(wid, kind="run", **self._started[wid], run_key=run_key(run), dir=str(run.path.resolve()),
                         digest=None)
        return wid

    def fold_done(self, run_dir, fold, group: str | None = None) -> str | None:
        """The fold's W&B run from its ``meta.json`` and ``metrics.csv`` (every epoch a step), logged once."""
        run = RunDir(run_dir)
        if not run.is_done(fold):
            return None
        config = run.read_config()
        key, digest = run_key(run), _sha(run.meta(fold).read_bytes())[:10]
        wid = f"r-{key}-{model_name(fold)}-{digest}"
        if (self.entry(wid) or {}).get("digest") == digest:
            return wid  # logged before: nothing changed
        group = group or self.group_of(run)
        for old in self.entries():  # a retrained fold: its earlier W&B run is superseded
            if old.get("run_key") == key and old.get("fold") == str(fold) and old["id"] != wid:
                self._supersede(old, wid)
        meta = run.read_meta(fold)
        competition, values, tags = self._describe(run, config)
        values.update({"fold": str(fold), "train_rows": meta.get("train_rows"), "val_rows": meta.get("val_rows"),
                       "fold_threads": meta.get("threads"), "kfold.device": str(meta.get("device", "")),
                       "kfold.host": str(meta.get("host", "")), "kfold.meta_sha256": digest,
                       **{f"kfold.precision.{k}": v for k, v in (meta.get("precision") or {}).items()},
                       **{f"kfold.versions.{k}": v for k, v in (meta.get("versions") or {}).items()
                          if isinstance(v, (str, int, float))}})
        live = self._start(wid, project=competition, group=group, job_type="fold",
                           name=f"{run.path.name}/{model_name(fold)}", config=values,
                           tags=["fold", f"device-{meta.get('device', '')}", *tags])
        history = read_metrics(run.metrics(fold))
        columns = [c for c in history.columns if c != "epoch"]
        for row in history.to_dict("records"):
            step = {c: _number(row[c]) for c in columns if _number(row[c]) is not None}
            live.log({"epoch": int(row["epoch"]), **step}, step=int(row["epoch"]))
        live.summary.update({k: v for k, v in {
            "kept_epoch": _number(meta.get("best_epoch")), "val_accuracy_kept": _number(meta.get("val_accuracy")),
            "val_loss_kept": _number(meta.get("val_loss")), "train_seconds": _number(meta.get("seconds"))}.items()
            if v is not None})
        self._files(live, [run.meta(fold), run.metrics(fold), run.learning_curve(fold), run.confusion_csv(fold),
                           run.confusion_png(fold), *([run.weights(fold)] if self.models else [])])
        self._finish(live, wid, kind="fold", run_key=key, fold=str(fold), digest=digest, dir=str(run.path.resolve()))
        return wid

    def _supersede(self, old: dict, new_id: str) -> None:
        """A retrained fold's earlier W&B run: its offline folders removed when never uploaded, else tagged."""
        folders = self._segments(old["id"])
        if self.mode == "offline" and folders and not any(any(folder.glob("*.wandb.synced")) for folder in folders):
            for folder in folders:
                shutil.rmtree(folder)
            self._entry_path(old["id"]).unlink(missing_ok=True)
            return
        live = self._resume(old, {"kfold.superseded_by": new_id}, ["superseded"])
        self._finish(live, old["id"], superseded_by=new_id, run_key=f"superseded:{old.get('run_key')}")

    def run_done(self, run_dir, *, group: str | None = None, job_type: str = "run", extra: dict | None = None,
                 summary_extra: dict | None = None, exit_code: int = 0, identity: Any = None,
                 note: dict | None = None) -> str:
        """The run's summary metrics and files from ``summary.json``, and every finished fold not logged yet; not
        logged again when its files (and ``identity``, else ``extra`` and ``summary_extra``) did not change."""
        run = RunDir(run_dir)
        config = run.read_config()
        key = run_key(run)
        wid = f"r-{key}"
        group = group or self.group_of(run)
        k = int(config["k"])
        for fold in (*run.finished(k), *([FULL] if run.is_done(FULL) else [])):
            self.fold_done(run, fold, group=group)
        files = [run.config, run.summary, run.folds_csv, run.report_html]
        digest = _sha(b"".join(_sha(p.read_bytes()).encode() if p.is_file() else b"-" for p in files)
                      + json.dumps([group, job_type, identity if identity is not None else [extra, summary_extra],
                                    exit_code, self.models], sort_keys=True, default=str).encode())[:20]
        if wid not in self._live and (self.entry(wid) or {}).get("digest") == digest:
            return wid  # logged before, and nothing changed since
        competition, values, tags = self._describe(run, config)
        live = self._live.get(wid) or self._start(wid, project=competition, group=group, job_type=job_type,
                                                  name=run.path.name, config={**values, **(extra or {})},
                                                  tags=[job_type, *tags])
        if extra and wid in self._live:
            live.config.update(extra, allow_val_change=True)
        metrics: dict[str, Any] = {}
        summary = run.read_summary() if run.summary.is_file() else None
        if summary is not None:
            metrics, code = summary_metrics(summary)
            live.config.update({"kfold." + key: value for key, value in code.items()}, allow_val_change=True)
        metrics.update(summary_extra or {})
        live.summary.update({k: v for k, v in metrics.items() if v is not None})
        self._files(live, files)
        self._finish(live, wid, exit_code, kind="run", run_key=key, dir=str(run.path.resolve()), digest=digest,
                     **(note or {}))
        return wid

    # ---------------------------------------------------------------- kfold tune
    def _study(self, tune: TuneDir) -> tuple[str, str, str]:
        """(W&B id, project, group) of a search."""
        runs = sorted(d for d in tune.trials_dir.iterdir() if RunDir(d).is_run()) if tune.trials_dir.is_dir() else []
        project = MlflowTracker._competition(RunDir(runs[0]).read_config()) if runs else tune.path.resolve().name
        key = _sha(str(tune.path.resolve()).encode())[:20]
        return f"s-{key}", project, f"tune-{tune.path.name}-{key[:6]}"

    def trial_done(self, tune_dir, trial, metric: str | None = None) -> str:
        """One trial: its kfold run (job type ``trial``, in the search's group) with its state, objective and reason;
        a failed trial's W&B run fails (exit code 1), a pruned one finishes with ``state`` pruned."""
        tune = TuneDir(tune_dir)
        row = MlflowTracker._trial_row(trial)
        study, project, group = self._study(tune)
        state, name = str(row.get("state", "")), metric or "objective"
        params = {f"trial.{k}": v for k, v in row.get("params", {}).items()
                  if v is not None and not (isinstance(v, float) and math.isnan(v))}
        extra = {"kfold.trial": int(row["number"]), "kfold.state": state, "kfold.study": study,
                 "kfold.reason": str(row.get("reason") or "")[:5000],
                 "kfold.sampled": ",".join(sorted(row.get("params", {}))), **params}
        results = {name: _number(row.get("value")), "objective": _number(row.get("value")),
                   "partial_" + name: _number(row.get("partial_metric")), "folds_done": _number(row.get("folds_done")),
                   "trial_seconds": _number(row.get("seconds")), "state": state}
        results = {k: v for k, v in results.items() if v is not None}
        exit_code = 1 if state == "failed" else 0
        directory = tune.trial_run(int(row["number"]), str(row.get("dir") or ""))  # not the working directory's
        # what a trial is: told by Optuna as it ends, then read from trials.csv at the end (the same trial, logged once)
        identity = [state, f"{_number(row.get('value')) or 0:.10g}", _number(row.get("folds_done")),
                    str(row.get("reason") or "")]
        if directory is not None:
            wid = self.run_done(directory, group=group, job_type="trial", extra=extra, summary_extra=results,
                                exit_code=exit_code, identity=identity, note={"metric": name})
            entry = self.entry(wid) or {}
            if name != entry.get("metric", name) and name in results:  # told by Optuna first, without the metric's name
                live = self._resume(entry, {"kfold.metric": name})
                live.summary.update({name: results[name]})
                self._finish(live, wid, exit_code, metric=name)
            return wid
        wid = f"{study}-t{int(row['number'])}"  # a trial whose config failed before it had a run directory
        digest = _sha(json.dumps(identity, sort_keys=True, default=str).encode())[:20]
        if (self.entry(wid) or {}).get("digest") == digest:
            return wid
        live = self._start(wid, project=project, group=group, job_type="trial", name=f"trial {row['number']}",
                           config=extra, tags=["trial", state])
        live.summary.update(results)
        self._finish(live, wid, exit_code, kind="trial", digest=digest)
        return wid

    def tune_done(self, tune_dir) -> str:
        """Every trial of ``trials.csv``, then the search's own W&B run (job type ``tune``): its best value, the
        trials by state, its files."""
        tune = TuneDir(tune_dir)
        from kfold.files.tune_results import read_trials

        table = read_trials(tune)
        metric = table.attrs["metric"]
        fixed = {"number", "state", metric, "folds_done", "seconds", "partial_metric", "reason", "dir"}
        for record in table.to_dict("records"):
            self.trial_done(tune, {
                "number": record["number"], "state": record["state"], "value": record[metric],
                "folds_done": record["folds_done"], "seconds": record["seconds"],
                "partial_metric": record.get("partial_metric"),
                "reason": record["reason"] if isinstance(record.get("reason"), str) else "",
                "dir": record["dir"] if isinstance(record.get("dir"), str) else "",
                "params": {k: v for k, v in record.items() if k not in fixed}}, metric=metric)
        study, project, group = self._study(tune)
        done = table[table["state"] == "complete"][metric]
        counts = {f"trials_{state}": int(n) for state, n in table["state"].value_counts().items()}
        results = {f"best_{safe_name(metric)}": _number(done.max() if len(done) else None), **counts}
        files = tune.inputs()
        digest = _sha(json.dumps([results, [_sha(p.read_bytes()) for p in files if p.is_file()]], sort_keys=True,
                                 default=str).encode())[:20]
        if (self.entry(study) or {}).get("digest") == digest:
            return study
        live = self._start(study, project=project, group=group, job_type="tune", name=f"tune {tune.path.name}",
                           config={"kfold.metric": metric, "kfold.dir": str(tune.path.resolve()),
                                   "trials": int(len(table))}, tags=["tune"])
        live.summary.update({k: v for k, v in results.items() if v is not None})
        self._files(live, files)
        self._finish(live, study, kind="tune", digest=digest)
        return study

    # ---------------------------------------------------------------- ensembles and Kaggle
    def ensemble_done(self, submission, inputs, method, *, public=None, private=None, report=None) -> str:
        """An ensemble's W&B run (job type ``ensemble``, in its first input run's group): its inputs' W&B run ids,
        the method, the submission file and its SHA-256 (by which ``kfold submit`` finds it), local Public/Private."""
        submission = Path(submission)
        digest = _sha(submission.read_bytes())
        runs = MlflowTracker._input_runs(self, inputs)  # the same rule as MLflow's: the runs the inputs name
        linked = [self.run_done(run) for run in runs]
        project = MlflowTracker._competition(runs[0].read_config()) if runs else "kfold-ensembles"
        group = self.group_of(runs[0]) if runs else "ensembles"
        wid = f"e-{_sha(str(submission.resolve()).encode() + digest.encode())[:20]}"
        scores = {"local_public": _number(public), "local_private": _number(private)}
        config = {"method": str(method), "inputs": len(list(inputs)), "input_files": [Path(p).name for p in inputs],
                  "kfold.input_run_ids": linked, "kfold.input_runs": [str(r.path) for r in runs],
                  "kfold.submission": str(submission.resolve()), "kfold.submission_sha256": digest}
        files = [submission, *([Path(report) / REPORT_FILES[2]] if report else [])]
        state = _sha(json.dumps([config, scores, [_sha(p.read_bytes()) for p in files if p.is_file()]],
                                sort_keys=True).encode())[:20]
        if (self.entry(wid) or {}).get("digest") == state:
            return wid
        live = self._start(wid, project=project, group=group, job_type="ensemble", name=f"ensemble {submission.stem}",
                           config=config, tags=["ensemble", f"method-{method}"])
        live.summary.update({k: v for k, v in scores.items() if v is not None})
        self._files(live, files)
        self._finish(live, wid, kind="ensemble", digest=state, submission_sha256=digest,
                     scores={k: v for k, v in scores.items() if v is not None})
        return wid

    def _score(self, sha256: str, scores: dict, config: dict | None = None) -> list[str]:
        """``scores`` added to every ensemble whose submission has this SHA-256 (a resumed segment of its W&B run;
        nothing when those very scores were logged already)."""
        logged = []
        for entry in self.entries():
            if entry.get("kind") != "ensemble" or entry.get("submission_sha256") != str(sha256):
                continue
            new = {k: v for k, v in scores.items() if v is not None}
            before = entry.get("scores") or {}
            known = entry.get("kaggle") or {}
            config = {k: v for k, v in (config or {}).items() if v}
            if any(before.get(k) != v for k, v in new.items()) or any(known.get(k) != v for k, v in config.items()):
                live = self._resume(entry, config)
                live.summary.update(new)
                self._finish(live, entry["id"], scores={**before, **new}, kaggle={**known, **config})
            logged.append(entry["id"])
        return logged

    def scored(self, submission, public, private) -> list[str]:
        """The local leaderboard's Public/Private scores, logged to every tracked ensemble that wrote this file."""
        return self._score(_sha(Path(submission).read_bytes()), {"local_public": _number(public),
                                                                  "local_private": _number(private)})

    def kaggle_score(self, sha256, public, private=None, *, ref=None, competition=None) -> list[str]:
        """Kaggle's score logged to every tracked ensemble whose submission has this SHA-256."""
        return self._score(str(sha256), {"kaggle_public": _number(public), "kaggle_private": _number(private)},
                           {"kaggle.ref": str(ref or ""), "kaggle.competition": str(competition or "")})

    def close(self) -> None:
        """Finish the W&B runs still open: a kfold run whose ``run_done`` never came (the command failed) fails."""
        for wid, live in list(self._live.items()):
            try:
                live.finish(exit_code=1)
            finally:
                self._live.pop(wid, None)
