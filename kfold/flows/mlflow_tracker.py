"""The MLflow tracker: logs kfold's run directories, searches, ensembles and Kaggle scores FROM THEIR FILES.

One MLflow experiment per competition (the run's task name); one MLflow run per kfold run (tag ``kfold.run_id``:
a hash of its ``config.json`` and its folder), a nested run per fold (tag ``kfold.fold``) with every epoch of
``metrics.csv`` as steps; a ``kfold tune`` search is a parent run (tag ``kfold.study_id``) whose trials are nested
kfold runs; an ensemble is a run holding its inputs' MLflow run ids and the submission's SHA-256, to which
``kfold submit`` logs Kaggle's score. Logging the same files again updates and never duplicates: a fold is logged
once per ``meta.json`` (a retrained fold replaces its nested run), a metric only when its value changed, a
parameter only once. MLflow is imported when the store is first used.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

from kfold.errors import DataError, UsageError
from kfold.files.rundir import FULL, REPORT_FILES, RunDir, TuneDir, model_name, read_metrics, safe_name
from kfold.flows.track_params import finite_number as _number, flatten, summary_metrics  # shared with the W&B tracker; importable from here as before

__all__ = ["MlflowTracker", "flatten", "run_key", "ui_command"]

INSTALL_HINT = "pip install -e '.[track]'"
MAX_PARAM = 6000  # MLflow 3's longest parameter value
TAG = "kfold."


def ui_command(uri: str) -> str:
    """The command that opens the store's web UI (a server URI is opened in the browser directly).

    >>> ui_command("sqlite:////tmp/runs/mlflow.db")
    'mlflow ui --backend-store-uri sqlite:////tmp/runs/mlflow.db'
    """
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_key(run: RunDir) -> str:
    """The kfold run's id: its ``config.json`` (written once) and its folder's absolute path, hashed."""
    return _sha(run.config.read_bytes() + b"\0" + str(run.path.resolve()).encode())[:20]


def _quiet() -> None:
    """MLflow's and alembic's INFO lines (database migrations ...) off; fail fast against an unreachable server.
    (Telemetry is switched off before MLflow is imported: ``MlflowTracker.client``.)"""
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


class MlflowTracker:
    """The ``kfold.flows.tracking.Tracker`` that writes to an MLflow store (``MlflowClient`` at ``uri``).

    Parameters
    ----------
    uri : str
        The tracking URI (checked by ``kfold.flows.tracking.check_uri``).
    models : bool, default False
        Also log each model's ``model.safetensors``.
    """

    def __init__(self, uri: str, *, models: bool = False):
        self.uri, self.models = uri, models
        self._client = None
        self._experiments: dict[str, str] = {}

    # ---------------------------------------------------------------- the store
    @property
    def client(self):
        if self._client is None:
            # MLflow 3 reports usage to its makers' server unless told not to (found by tests/kaggle_fake.py's proxy)
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            try:
                from mlflow.tracking import MlflowClient
            except ImportError:
                raise UsageError(f"tracking with MLflow needs MLflow, which is not installed: {INSTALL_HINT}") from None
            _quiet()
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _artifact_root(self, name: str) -> str | None:
        """Beside an SQLite store: ``mlartifacts/<experiment>`` next to the database (not the working directory)."""
        if not self.uri.startswith("sqlite:///"):
            return None
        return (Path(self.uri[len("sqlite:///"):]).resolve().parent / "mlartifacts" / safe_name(name)).as_uri()

    def experiment(self, name: str) -> str:
        """The id of the experiment ``name`` (created, or restored when deleted)."""
        if name in self._experiments:
            return self._experiments[name]
        client = self.client
        found = client.get_experiment_by_name(name)
        if found is None:
            try:  # a model-training experiment: MLflow 3's UI opens it on its runs table, not its GenAI pages
                exp_id = client.create_experiment(name, artifact_location=self._artifact_root(name),
                                                  tags={"mlflow.experimentKind": "custom_model_development"})
            except Exception:  # noqa: BLE001 - another process created it first
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise
                exp_id = found.experiment_id
        else:
            exp_id = found.experiment_id
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(exp_id)
        self._experiments[name] = exp_id
        return exp_id

    def find(self, tags: dict[str, str], experiments: Sequence[str] | None = None):
        """The live runs carrying every tag of ``tags`` (oldest first)."""
        from mlflow.entities import ViewType

        where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        ids = list(experiments) if experiments is not None else [e.experiment_id for e in self.client.search_experiments()]
        if not ids:
            return []
        runs = self.client.search_runs(ids, filter_string=where, run_view_type=ViewType.ACTIVE_ONLY,
                                       order_by=["attributes.start_time ASC"], max_results=1000)
        return list(runs)

    def _run(self, exp: str, tags: dict[str, str], name: str, parent: str | None = None, extra: dict | None = None):
        """The run carrying ``tags`` in ``exp`` (created with ``extra`` tags and its parent when missing)."""
        found = self.find(tags, [exp])
        if found:
            return found[0]
        all_tags = {**tags, **(extra or {}), **({"mlflow.parentRunId": parent} if parent else {})}
        return self.client.create_run(exp, tags=all_tags, run_name=name)

    def _log(self, run, *, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
             tags: dict[str, str] | None = None, steps: list | None = None) -> None:
        """Parameters not logged yet, metrics whose latest value differs, tags that changed; ``steps``: (key, value,
        step) history, logged as it is (only for a run created just now)."""
        from mlflow.entities import Metric, Param, RunTag

        data = run.data
        now = int(time.time() * 1000)
        new_params = [Param(k, v) for k, v in (params or {}).items() if k not in data.params]
        new_metrics = [Metric(k, v, now, 0) for k, v in (metrics or {}).items()
                       if v is not None and (k not in data.metrics or abs(data.metrics[k] - v) > 1e-12)]
        new_metrics += [Metric(k, v, now, int(step)) for k, v, step in (steps or [])]
        new_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items() if data.tags.get(k) != str(v)]
        run_id = run.info.run_id
        for start in range(0, max(len(new_params), 1), 100):
            if new_params[start:start + 100]:
                self.client.log_batch(run_id, params=new_params[start:start + 100])
        for start in range(0, len(new_metrics), 1000):
            self.client.log_batch(run_id, metrics=new_metrics[start:start + 1000])
        if new_tags:
            self.client.log_batch(run_id, tags=new_tags)

    def _artifacts(self, run_id: str, files, folder: str | None = None) -> None:
        for path in files:
            if Path(path).is_file():
                self.client.log_artifact(run_id, str(path), folder)

    def _finish(self, run, status: str = "FINISHED") -> None:
        if run.info.status != status:
            self.client.set_terminated(run.info.run_id, status)

    # ---------------------------------------------------------------- runs and folds
    @staticmethod
    def _competition(config: dict) -> str:
        return str(config.get("task") or Path(str(config.get("data", "kfold"))).name or "kfold")

    def _run_of(self, run: RunDir, parent: str | None = None, extra: dict | None = None):
        config = run.read_config()
        exp = self.experiment(self._competition(config))
        tags = {TAG + "run_id": run_key(run), TAG + "kind": "run"}
        info = {TAG + "dir": str(run.path.resolve()), TAG + "competition": self._competition(config),
                TAG + "data_fingerprint": str(config.get("fingerprint", "")),
                TAG + "folds_sha256": str(config.get("folds_sha256", "")), TAG + "seed": str(config.get("seed", "")),
                TAG + "preset": str(config.get("preset")), TAG + "data": str(config.get("data", "")),
                TAG + "schema": json.dumps(config.get("schema", "kmnist"), sort_keys=True)[:5000]}
        mlrun = self._run(exp, tags, run.path.name, parent, {**info, **(extra or {})})
        params = flatten(config.get("config") or {})
        params.update({"k": str(config.get("k")), "seed": str(config.get("seed")), "preset": str(config.get("preset")),
                       "threads": str(config.get("threads"))})
        self._log(mlrun, params=params, tags={**info, **(extra or {})})
        return self.client.get_run(mlrun.info.run_id), config

    def run_started(self, run_dir) -> str:
        """The kfold run's MLflow run (created, running) with its parameters and tags."""
        run = RunDir(run_dir)
        mlrun, _ = self._run_of(run)
        self._artifacts(mlrun.info.run_id, [run.config])
        return mlrun.info.run_id

    def fold_done(self, run_dir, fold, parent=None) -> str | None:
        """The fold's nested run from its ``meta.json`` and ``metrics.csv`` (every epoch a step), logged once."""
        run = RunDir(run_dir)
        if not run.is_done(fold):
            return None
        if parent is None:
            parent, _ = self._run_of(run)
        exp = parent.info.experiment_id
        digest = _sha(run.meta(fold).read_bytes())[:20]
        tags = {TAG + "run_id": run_key(run), TAG + "kind": "fold", TAG + "fold": str(fold)}
        for old in self.find(tags, [exp]):
            if old.data.tags.get(TAG + "meta_sha256") == digest:
                return old.info.run_id  # logged before: nothing changed
            self.client.delete_run(old.info.run_id)  # a retrained fold (or one logged half): logged again, whole
        meta = run.read_meta(fold)
        tags_more = {TAG + "device": str(meta.get("device", "")), TAG + "host": str(meta.get("host", "")),
                     **{TAG + "precision." + k: str(v) for k, v in (meta.get("precision") or {}).items()},
                     **{TAG + "versions." + k: str(v) for k, v in (meta.get("versions") or {}).items()
                        if isinstance(v, (str, int, float))}}
        child = self.client.create_run(exp, tags={**tags, "mlflow.parentRunId": parent.info.run_id, **tags_more},
                                       run_name=f"{run.path.name}/{model_name(fold)}")
        history = read_metrics(run.metrics(fold))
        steps = [(column, _number(value), epoch) for column in history.columns if column != "epoch"
                 for epoch, value in zip(history["epoch"], history[column]) if _number(value) is not None]
        metrics = {"kept_epoch": _number(meta.get("best_epoch")), "val_accuracy_kept": _number(meta.get("val_accuracy")),
                   "val_loss_kept": _number(meta.get("val_loss")), "train_seconds": _number(meta.get("seconds"))}
        self._log(child, params={"fold": str(fold), "train_rows": str(meta.get("train_rows")),
                                 "val_rows": str(meta.get("val_rows")), "threads": str(meta.get("threads"))},
                  metrics=metrics, steps=steps)
        files = [run.meta(fold), run.metrics(fold), run.learning_curve(fold), run.confusion_csv(fold),
                 run.confusion_png(fold), *([run.weights(fold)] if self.models else [])]
        self._artifacts(child.info.run_id, files)
        self.client.set_tag(child.info.run_id, TAG + "meta_sha256", digest)  # last: the fold is logged whole
        self.client.set_terminated(child.info.run_id, "FINISHED")
        return child.info.run_id

    def run_done(self, run_dir, parent_run: str | None = None, extra: dict | None = None) -> str:
        """The run's metrics and files from ``summary.json``, and every finished fold not logged yet."""
        run = RunDir(run_dir)
        mlrun, config = self._run_of(run, parent_run, extra)
        k = int(config["k"])
        for fold in (*run.finished(k), *([FULL] if run.is_done(FULL) else [])):
            self.fold_done(run, fold, parent=mlrun)
        summary = run.read_summary() if run.summary.is_file() else None
        if summary is not None:
            metrics, code = summary_metrics(summary)
            self._log(mlrun, metrics=metrics, tags={TAG + key: value for key, value in code.items()})
        self._artifacts(mlrun.info.run_id, [run.config, run.summary, run.folds_csv, run.report_html])
        if summary is not None and summary.get("folds_done") == k:
            self._finish(mlrun)
        return mlrun.info.run_id

    # ---------------------------------------------------------------- kfold tune
    def _study(self, tune: TuneDir, experiment_name: str | None = None):
        name = experiment_name
        if name is None:
            runs = sorted(d for d in tune.trials_dir.iterdir() if RunDir(d).is_run()) if tune.trials_dir.is_dir() else []
            name = self._competition(RunDir(runs[0]).read_config()) if runs else tune.path.resolve().name
        exp = self.experiment(name)
        tags = {TAG + "study_id": _sha(str(tune.path.resolve()).encode())[:20], TAG + "kind": "study"}
        return self._run(exp, tags, f"tune {tune.path.name}", extra={TAG + "dir": str(tune.path.resolve())})

    @staticmethod
    def _trial_row(trial: Any) -> dict:
        """A trials.csv row (a dict) or an Optuna trial, as one dict."""
        if isinstance(trial, dict):
            return trial
        attrs = trial.user_attrs
        state = TuneDir.STATE_WORDS.get(trial.state.name, trial.state.name.lower())
        return {"number": trial.number, "state": state, "value": trial.value if state == "complete" else None,
                "params": dict(trial.params), "folds_done": attrs.get("folds_done", 0), "seconds": attrs.get("seconds"),
                "partial_metric": attrs.get("partial_metric"), "reason": attrs.get("fail_reason", ""),
                "dir": attrs.get("dir", "")}

    def trial_done(self, tune_dir, trial, study=None, metric: str | None = None) -> str:
        """One trial: its kfold run (nested in the search's run) with its state, objective and reason."""
        tune = TuneDir(tune_dir)
        row = self._trial_row(trial)
        study = self._study(tune) if study is None else study
        state = str(row.get("state", ""))
        extra = {TAG + "trial": str(int(row["number"])), TAG + "state": state,
                 TAG + "reason": str(row.get("reason") or "")[:5000],
                 TAG + "sampled": ",".join(sorted(row.get("params", {})))}
        directory = tune.trial_run(int(row["number"]), str(row.get("dir") or ""))  # not the working directory's
        if directory is not None:
            run_id = self.run_done(directory, parent_run=study.info.run_id, extra=extra)
            mlrun = self.client.get_run(run_id)
        else:  # a trial whose config failed before it had a run directory
            tags = {TAG + "study_id": study.data.tags[TAG + "study_id"], TAG + "trial": extra[TAG + "trial"],
                    TAG + "kind": "trial"}
            mlrun = self._run(study.info.experiment_id, tags, f"trial {row['number']}", study.info.run_id, extra)
            self._log(mlrun, tags=extra)
            mlrun = self.client.get_run(mlrun.info.run_id)
        params = {name: (v if isinstance(v, str) else json.dumps(v)) for name, v in row.get("params", {}).items()
                  if v is not None and not (isinstance(v, float) and math.isnan(v))}
        name = metric or "objective"
        self._log(mlrun, params=params, metrics={name: _number(row.get("value")), "objective": _number(row.get("value")),
                                                 "partial_" + name: _number(row.get("partial_metric")),
                                                 "folds_done": _number(row.get("folds_done")),
                                                 "trial_seconds": _number(row.get("seconds"))})
        status = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}.get(state)
        if status:
            self._finish(self.client.get_run(mlrun.info.run_id), status)
        return mlrun.info.run_id

    def tune_done(self, tune_dir) -> str:
        """Every trial of ``trials.csv``, the search's best value and files."""
        tune = TuneDir(tune_dir)
        from kfold.files.tune_results import read_trials

        table = read_trials(tune)
        metric = table.attrs["metric"]
        fixed = {"number", "state", metric, "folds_done", "seconds", "partial_metric", "reason", "dir"}
        study = self._study(tune)
        for record in table.to_dict("records"):
            row = {"number": record["number"], "state": record["state"], "value": record[metric],
                   "folds_done": record["folds_done"], "seconds": record["seconds"],
                   "partial_metric": record.get("partial_metric"),
                   "reason": "" if not isinstance(record.get("reason"), str) else record["reason"],
                   "dir": "" if not isinstance(record.get("dir"), str) else record["dir"],
                   "params": {k: v for k, v in record.items() if k not in fixed}}
            self.trial_done(tune, row, study=study, metric=metric)
        done = table[table["state"] == "complete"][metric]
        counts = table["state"].value_counts().to_dict()
        self._log(self.client.get_run(study.info.run_id),
                  metrics={f"best_{safe_name(metric)}": _number(done.max() if len(done) else None),
                           **{f"trials_{state}": float(n) for state, n in counts.items()}},
                  tags={TAG + "metric": metric})
        self._artifacts(study.info.run_id, tune.inputs())
        self._finish(self.client.get_run(study.info.run_id))  # the search ended (a resumed search ends it again)
        return study.info.run_id

    # ---------------------------------------------------------------- ensembles and Kaggle
    def _input_runs(self, inputs: Sequence) -> list[RunDir]:
        """The run directories the inputs' metadata names (a run's ``probs/`` folder, or its seed runs)."""
        from kfold.files.probs import read_probs

        found: list[RunDir] = []
        for path in map(Path, inputs):
            try:
                meta = read_probs(path).meta
            except (DataError, UsageError, OSError, ValueError):
                continue
            name = str(meta.get("run", ""))
            for candidate in (path.parent.parent, path.parent.parent / name, path.parent / name):
                run = RunDir(candidate)
                if name and run.is_run() and run.name == name:
                    if all(r.path.resolve() != run.path.resolve() for r in found):
                        found.append(run)
                    break
        return found

    def ensemble_done(self, submission, inputs, method, *, public=None, private=None, report=None) -> str:
        """An ensemble run: its inputs' runs by MLflow id, the method, the submission file and its SHA-256 (the key
        ``kfold submit`` finds it by), the local Public/Private scores."""
        submission = Path(submission)
        digest = _sha(submission.read_bytes())
        runs = self._input_runs(inputs)
        linked = [self.run_done(run) for run in runs]
        competition = self._competition(runs[0].read_config()) if runs else "kfold-ensembles"
        exp = self.experiment(competition)
        tags = {TAG + "kind": "ensemble", TAG + "ensemble_id": _sha(str(submission.resolve()).encode() + digest.encode())[:20]}
        extra = {TAG + "submission_sha256": digest, TAG + "submission": str(submission.resolve()),
                 TAG + "input_run_ids": ",".join(linked), TAG + "input_runs": ",".join(str(r.path) for r in runs)}
        mlrun = self._run(exp, tags, f"ensemble {submission.stem}", extra=extra)
        self._log(mlrun, params={"method": str(method), "inputs": str(len(list(inputs))),
                                 "input_files": ",".join(Path(p).name for p in inputs)[:MAX_PARAM]},
                  metrics={"local_public": _number(public), "local_private": _number(private)}, tags=extra)
        self._artifacts(mlrun.info.run_id, [submission, *([Path(report) / REPORT_FILES[2]] if report else [])])
        self._finish(self.client.get_run(mlrun.info.run_id))
        return mlrun.info.run_id

    def scored(self, submission, public, private) -> list[str]:
        """The local leaderboard's Public/Private scores, logged to every tracked ensemble that wrote this file."""
        found = self.find({TAG + "submission_sha256": _sha(Path(submission).read_bytes())})
        for run in found:
            self._log(run, metrics={"local_public": _number(public), "local_private": _number(private)})
        return [run.info.run_id for run in found]

    def kaggle_score(self, sha256, public, private=None, *, ref=None, competition=None) -> list[str]:
        """Kaggle's score logged to every tracked ensemble whose submission has this SHA-256."""
        found = self.find({TAG + "submission_sha256": str(sha256)})
        for run in found:
            self._log(run, metrics={"kaggle_public": _number(public), "kaggle_private": _number(private)},
                      tags={"kaggle.ref": str(ref or ""), "kaggle.competition": str(competition or "")})
        return [run.info.run_id for run in found]

    def close(self) -> None:
        self._client = None
