"""The local submission log: one CSV per competition, one row per upload, appended atomically.

Columns (``LOG_COLUMNS``):

=================  ==========================================================================================
time               UTC time of the upload (ISO 8601)
competition        the competition's slug
file               the submission CSV as given on the command line
sha256             its SHA-256 (the exact bytes uploaded)
rows               its number of rows
message            the submission message (``-m``)
ref                Kaggle's submission ref (joins the log with Kaggle's list)
method             ensemble method (mean/geomean/vote) from the ``.probs.npz`` beside the CSV, if any
inputs             the probability files the ensemble combined (``;``-separated)
weights            their weights (``;``-separated)
runs               the training runs behind those files (run names, from the files' metadata)
presets, seeds     the runs' presets and seeds
folds              the folds of the probability files (``mean``, ``0``, ``full``, ...)
local_cv           local cross-validation accuracy: OOF accuracy of the run, or of the same ensemble of the
                   runs' out-of-fold predictions when several runs made it; empty when unknown
local_cv_source    how ``local_cv`` was obtained
local_public       accuracy on the Public rows of a local solution file (``--solution``), when given
local_private      accuracy on its Private rows
solution           that solution file
=================  ==========================================================================================

Provenance is read from metadata only (never guessed from file names): the ``.probs.npz`` that
``kfold ensemble`` writes beside a mean/geomean submission names its inputs, method and weights; each
probability file names its run, fold, preset and seed; a run directory's ``summary.json`` has the OOF
accuracy and its ``oof.npz`` the out-of-fold probabilities. ``--run DIR`` names run directories when
the metadata does not. Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kfold.files.rundir import RunDir, probs_path
from kfold.files.atomic import write_text
from kfold.errors import DataError, KfoldError

LOG_COLUMNS = ["time", "competition", "file", "sha256", "rows", "message", "ref", "method", "inputs", "weights", "runs",
               "presets", "seeds", "folds", "local_cv", "local_cv_source", "local_public", "local_private", "solution"]
LOG_DIR = Path("submissions") / "log"


def default_log_path(competition: str) -> Path:
    return LOG_DIR / f"{competition}.csv"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_log(path: str | os.PathLike) -> pd.DataFrame:
    """The log as strings (missing file: empty frame with the log's columns)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=LOG_COLUMNS)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable submission log ({' '.join(str(exc).split())[:200]})") from None
    missing = [column for column in ("file", "ref") if column not in frame.columns]
    if missing:
        raise DataError(f"{path}: line 1: not a submission log, column(s) {', '.join(missing)} missing")
    for column in LOG_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    return frame


def append_log(path: str | os.PathLike, row: dict) -> None:
    """Append one row: the whole log is rewritten to a temporary file and renamed into place."""
    path = Path(path)
    frame = read_log(path)
    extra = [column for column in frame.columns if column not in LOG_COLUMNS]  # kept, never dropped
    new = pd.DataFrame([{column: _cell(row.get(column, "")) for column in LOG_COLUMNS}])
    frame = pd.concat([frame[LOG_COLUMNS + extra], new], ignore_index=True).fillna("")
    write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.6f}"
    if isinstance(value, (list, tuple)):
        return ";".join(_cell(v) for v in value)
    return str(value)


# ---------------------------------------------------------------- provenance and local CV

def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-") or "run"


def _read_meta(path: Path) -> dict | None:
    from kfold.files.probs import read_probs

    try:
        return read_probs(path).meta
    except (KfoldError, OSError, ValueError):
        return None


def _find_run_dir(run: str, prob_file: Path | None, given: Sequence[Path]) -> Path | None:
    """The directory of run ``run``: a given --run DIR of that name, else beside its probability files, else runs/."""
    candidates = [d for d in given if _safe(Path(d).resolve().name) == run]
    if prob_file is not None:
        candidates += [prob_file.parent.parent, prob_file.parent / run, prob_file.parent.parent / run]
    candidates += [Path("runs") / run]
    for directory in candidates:
        directory = Path(directory)
        if RunDir(directory).summary.is_file() and _safe(directory.resolve().name) == run:
            return directory
    return None


def _summary(run_dir: Path) -> dict:
    try:
        return json.loads(RunDir(run_dir).summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def provenance(submission: str | os.PathLike, run_dirs: Sequence[str | os.PathLike] = ()) -> dict:
    """Where ``submission`` came from and its local CV, from metadata; fields of LOG_COLUMNS, '' when unknown."""
    submission = Path(submission)
    given = [Path(d) for d in run_dirs]
    out = {key: "" for key in ("method", "inputs", "weights", "runs", "presets", "seeds", "folds", "local_cv",
                               "local_cv_source")}
    beside = probs_path(submission)
    meta = _read_meta(beside) if beside.is_file() else None
    inputs: list[tuple[Path, dict]] = []
    weights: list[float] = []
    if meta is not None and meta.get("inputs"):
        out["method"] = str(meta.get("method", ""))
        weights = [float(w) for w in meta.get("weights") or []]
        for name in meta["inputs"]:
            path = Path(name)
            if not path.is_file() and (submission.parent / name).is_file():
                path = submission.parent / name
            inputs.append((path, (_read_meta(path) if path.is_file() else None) or {}))
        out["inputs"] = [str(p) for p, _ in inputs]
        out["weights"] = [f"{w:g}" for w in weights]
    elif meta is not None and meta.get("run"):
        inputs.append((beside, meta))
    runs: dict[str, Path | None] = {}
    run_of_input: list[str | None] = []
    for path, input_meta in inputs:
        run = input_meta.get("run")
        run_of_input.append(str(run) if run else None)
        if run and str(run) not in runs:
            runs[str(run)] = _find_run_dir(str(run), path, given)
    out["folds"] = [str(m.get("fold", "")) for _, m in inputs]
    for directory in given:  # runs named on the command line: provenance when the metadata has none
        name = _safe(directory.resolve().name)
        if name not in runs and RunDir(directory).summary.is_file():
            runs[name] = directory
    summaries = {run: (_summary(d) if d is not None else {}) for run, d in runs.items()}
    out["runs"] = list(runs)
    out["presets"] = [str(summaries[r].get("preset", _from_inputs(inputs, r, "preset"))) for r in runs]
    out["seeds"] = [str(summaries[r].get("seed", _from_inputs(inputs, r, "seed"))) for r in runs]
    out["local_cv"], out["local_cv_source"] = _local_cv(runs, summaries, out["method"], weights, run_of_input)
    return out


def _from_inputs(inputs: list, run: str, key: str) -> str:
    return next((str(m.get(key, "")) for _, m in inputs if m.get("run") == run), "")


def _local_cv(runs: dict, summaries: dict, method: str, weights: list[float], run_of_input: list) -> tuple:
    if not runs:
        return "", "no run found in the files' metadata (give --run DIR)"
    if len(runs) == 1:
        run = next(iter(runs))
        accuracy = summaries[run].get("oof_accuracy")
        if accuracy is None:
            return "", f"run {run}: no run summary with oof_accuracy found"
        return float(accuracy), f"OOF accuracy of run {run}"
    missing = [run for run, d in runs.items() if d is None or not RunDir(d).oof.is_file()]
    if missing:
        return "", f"out-of-fold predictions of run(s) {', '.join(missing)} not found"
    per_run = {run: 0.0 for run in runs}
    if weights and len(weights) == len(run_of_input):
        for run, weight in zip(run_of_input, weights):
            if run in per_run:
                per_run[run] += weight
    else:
        per_run = {run: 1.0 for run in runs}
    from kfold.scoring.ensemble import combine

    try:
        ensemble = combine([RunDir(runs[run]).oof for run in runs], method=method or "mean",
                           weights=[per_run[run] for run in runs])
    except KfoldError as exc:
        return "", f"OOF ensemble of runs {'+'.join(runs)} failed: {exc}"
    if ensemble.labels is None:
        return "", "the runs' out-of-fold files carry no labels"
    accuracy = float((ensemble.categories == ensemble.labels).mean())
    return accuracy, f"OOF {method or 'mean'} of runs {'+'.join(runs)}"


def local_scores(submission: str | os.PathLike, solution: str | os.PathLike | None) -> dict:
    """Public/Private accuracy on a local solution file (empty when none is given)."""
    if solution is None:
        return {"local_public": "", "local_private": "", "solution": ""}
    from kfold.scoring.leaderboard import score_submission

    scores = score_submission(submission, solution, n_bootstrap=1)
    return {"local_public": scores["public"], "local_private": scores["private"], "solution": str(solution)}


# ---------------------------------------------------------------- merging with Kaggle and the CV picture

MERGED_COLUMNS = ["ref", "date", "file", "message", "status", "local_cv", "public_score", "private_score",
                  "local_public", "local_private", "runs", "method", "sha256", "error", "in_log"]


def merge(log: pd.DataFrame, remote: list[dict]) -> pd.DataFrame:
    """One row per submission: Kaggle's status and scores beside the log's local numbers (joined on ref)."""
    by_ref = {str(r["ref"]): r for r in remote}
    rows, seen = [], set()
    for _, entry in log.iterrows():
        ref = str(entry.get("ref", "")).strip()
        kaggle = by_ref.get(ref, {})
        seen.add(ref)
        rows.append({"ref": ref, "date": kaggle.get("date") or entry.get("time", ""), "file": entry.get("file", ""),
                     "message": entry.get("message", ""),
                     "status": kaggle.get("status", "not on Kaggle" if remote is not None else ""),
                     "local_cv": _float(entry.get("local_cv")), "public_score": kaggle.get("public_score"),
                     "private_score": kaggle.get("private_score"), "local_public": _float(entry.get("local_public")),
                     "local_private": _float(entry.get("local_private")), "runs": entry.get("runs", ""),
                     "method": entry.get("method", ""), "sha256": entry.get("sha256", ""),
                     "error": kaggle.get("error", ""), "in_log": True})
    for ref, kaggle in by_ref.items():
        if ref not in seen:
            rows.append({"ref": ref, "date": kaggle.get("date", ""), "file": kaggle.get("file_name", ""),
                         "message": kaggle.get("description", ""), "status": kaggle.get("status", ""),
                         "local_cv": np.nan, "public_score": kaggle.get("public_score"),
                         "private_score": kaggle.get("private_score"), "local_public": np.nan,
                         "local_private": np.nan, "runs": "", "method": "", "sha256": "",
                         "error": kaggle.get("error", ""), "in_log": False})
    frame = pd.DataFrame(rows, columns=MERGED_COLUMNS)
    for column in ("local_cv", "public_score", "private_score", "local_public", "local_private"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


def _float(value) -> float:
    try:
        return float(value) if str(value).strip() != "" else np.nan
    except (TypeError, ValueError):
        return np.nan


def agreement(frame: pd.DataFrame, x: str = "local_cv", y: str = "public_score") -> dict:
    """Pearson r, Spearman rho and the share of pairs both scores order the same way, over rows having both."""
    both = frame[[x, y]].dropna()
    n = len(both)
    result = {"n": n, "pearson": np.nan, "spearman": np.nan, "pairs_agree": np.nan, "pairs": 0}
    if n < 2:
        return result
    a, b = both[x].to_numpy(float), both[y].to_numpy(float)
    if np.ptp(a) > 0 and np.ptp(b) > 0:
        from scipy.stats import pearsonr, spearmanr

        result["pearson"] = float(pearsonr(a, b)[0])
        result["spearman"] = float(spearmanr(a, b)[0])
    i, j = np.triu_indices(n, 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    decided = (da != 0) & (db != 0)
    result["pairs"] = int(decided.sum())
    if decided.any():
        result["pairs_agree"] = float((da[decided] == db[decided]).mean())
    return result


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def agreement_line(stats: dict) -> str:
    if stats["n"] < 2:
        return (f"local CV against public score: {stats['n']} submission(s) with both; "
                "at least 2 are needed for a correlation")
    pairs = (f", {stats['pairs_agree'] * stats['pairs']:.0f}/{stats['pairs']} pairs in the same order"
             if stats["pairs"] else "")
    return (f"local CV against public score over {stats['n']} submissions: Pearson r = {_fmt(stats['pearson'])}, "
            f"Spearman rank rho = {_fmt(stats['spearman'])}{pairs}")


def plot_cv_vs_public(frame: pd.DataFrame, stats: dict, path: str | os.PathLike, competition: str) -> bool:
    """Scatter of local CV against public score, one labelled point per submission; False when < 2 points."""
    both = frame.dropna(subset=["local_cv", "public_score"])
    if len(both) < 2:
        return False
    from kfold.figures import pyplot

    plt = pyplot()

    from kfold.files.atomic import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ax.scatter(both["local_cv"], both["public_score"], s=36, color="tab:blue", zorder=3, label="submission")
    local = both.dropna(subset=["local_public"])
    if len(local):
        ax.scatter(local["local_cv"], local["local_public"], s=30, facecolors="none", edgecolors="tab:orange",
                   zorder=2, label="local leaderboard (Public rows)")
    for _, row in both.iterrows():
        label = str(row["message"] or row["file"])[:24]
        ax.annotate(label, (row["local_cv"], row["public_score"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    values = np.concatenate([both["local_cv"].to_numpy(float), both["public_score"].to_numpy(float),
                             local["local_public"].to_numpy(float)])
    low, high = values.min(), values.max()
    pad = max((high - low) * 0.08, 1e-3)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], ls="--", color="grey", lw=1, label="CV = public")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("local CV (out-of-fold accuracy)")
    ax.set_ylabel("Kaggle public score")
    ax.set_title(f"{competition}: local CV vs public leaderboard\nPearson r = {_fmt(stats['pearson'])}, "
                 f"Spearman rho = {_fmt(stats['spearman'])}, n = {stats['n']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    return True
