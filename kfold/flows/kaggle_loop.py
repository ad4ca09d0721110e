"""The Kaggle loop under ``kfold submit``, ``kfold submissions``, ``kfold leaderboard -c COMP --remote`` and
``kfold download``: the typed functions the commands call.

* ``submit``: validate the submission, the log and the local scores, check the limits, upload, log, wait.
* ``submissions``: the log merged with Kaggle's list (``merge``), the agreement of local CV and public score
  (``agreement``), a CSV and the figures.
* ``remote_leaderboard``: Kaggle's public leaderboard and where each of our submissions would rank.
* ``download``: download and unpack all or nothing, then find the data layout (``detect_layout``).
* ``provenance``: where a submission came from and its local CV (the run's OOF accuracy, or the same ensemble
  of several runs' out-of-fold predictions), read from metadata only, never guessed from file names.

The kaggle client is reached only through ``kfold.kaggle_api``; the log's format is ``kfold.files.submission_log``.
Every input (the log included) is read and checked, and an output that is one of the inputs is refused, before
anything is uploaded or written; a command's files appear together. Progress lines go to ``echo``. Torch-free.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from kfold.errors import DataError, KfoldError, UsageError, check_list, param
from kfold.files.rundir import RunDir, probs_path
from kfold.flows.kaggle_download import DATA_ROOT, Downloaded, detect_layout, download  # noqa: F401  (re-exported)
from kfold.flows.kaggle_polling import wait_for_score  # noqa: F401  (re-exported)

__all__ = ["Downloaded", "RemoteLeaderboard", "SubmissionsReport", "Submitted", "agreement", "agreement_line",
           "board_with_ours", "detect_layout", "download", "find_sample", "local_scores", "merge", "provenance",
           "remote_leaderboard", "submissions", "submissions_outputs", "submit", "wait_for_score", "would_rank"]

LEADERBOARD_FILE = "kaggle-leaderboard.csv"
RANKS_FILE = "kaggle-ranks.csv"

Echo = Callable[[str], None]


# ---------------------------------------------------------------- provenance and local scores

def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-") or "run"


def _read_meta(path: Path) -> dict | None:
    from kfold.files.probs import read_probs

    try:
        return read_probs(path).meta
    except (KfoldError, OSError, ValueError):
        return None


def _find_run_dir(run: str, prob_file: Path | None, given: Sequence[Path]) -> Path | None:
    """The directory of run ``run``: a given run directory of that name, else beside its probability files, else runs/."""
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
    """Where ``submission`` came from and its local CV, from metadata; fields of LOG_COLUMNS, '' when unknown.

    ``run_dirs`` names run directories when the files' metadata does not."""
    submission = Path(submission)
    given = [Path(d) for d in check_list("run_dirs", run_dirs)]
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
    for directory in given:  # runs named by the caller: provenance when the metadata has none
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
        try:
            accuracy = float(accuracy)
        except (TypeError, ValueError):
            return "", f"run {run}: oof_accuracy in its summary is not a number"
        if not np.isfinite(accuracy):
            return "", f"run {run}: oof_accuracy in its summary is not finite"
        return accuracy, f"OOF accuracy of run {run}"
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


# ---------------------------------------------------------------- submit

def find_sample(competition: str, data: str | os.PathLike | None = None) -> Path | None:
    """The competition's ``sample_submission.csv``: in ``data`` (or ``data/COMP``), or in the data layout found
    below it; None when there is none."""
    from kfold.kaggle_api import check_competition

    folder = Path(data) if data is not None else DATA_ROOT / check_competition(competition)
    found = detect_layout(folder) if folder.is_dir() else None
    for candidate in ([found[0]] if found else []) + [folder]:
        if (candidate / "sample_submission.csv").is_file():
            return candidate / "sample_submission.csv"
    return None


@dataclass
class Submitted:
    """One upload: Kaggle's reply and ref, the log it went into, and Kaggle's row once scored (``wait``)."""

    competition: str
    file: Path
    reply: str
    ref: int | None
    log: Path
    rows: int
    result: dict | None = None


def submit(file: str | os.PathLike, competition: str, message: str, *, sample: str | os.PathLike | None = None,
           num_classes: int | None = None, log: str | os.PathLike | None = None,
           solution: str | os.PathLike | None = None, runs: Sequence[str | os.PathLike] = (),
           wait: float | None = None, poll_interval: float = 5.0, echo: Echo = print, tracker=None) -> Submitted:
    """Validate ``file`` (against ``sample`` when given), the log and the local scores; then check the limits,
    upload, append a row to the log (``log``, default ``submissions/log/COMP.csv``) and, with ``wait`` seconds,
    poll until the submission is scored.

    Everything is checked before anything reaches Kaggle: a log that is not a clean log, or an output that is
    one of the inputs, stops here with nothing uploaded. A scoring error raises DataError (after the log row).
    ``tracker`` (``kfold.flows.tracking.open_tracker``) gets Kaggle's score for the tracked ensemble that wrote the
    file (matched by its SHA-256)."""
    runs = check_list("runs", runs)
    from kfold import kaggle_api
    from kfold.data.classes import resolve_num_classes
    from kfold.files.atomic import refuse_overwriting_inputs
    from kfold.files.submission import validate_submission
    from kfold.files.submission_log import append_log, check_append, default_log_path, now_utc, read_log, sha256_of

    file = Path(file)
    competition = kaggle_api.check_competition(competition)
    log_path = Path(log) if log is not None else default_log_path(competition)
    refuse_overwriting_inputs([p for p in (file, sample, solution) if p is not None], [log_path], UsageError)
    read_log(log_path)  # a --log that is not a clean log stops here, before anything is computed or uploaded
    from kfold.data.classes import competition_schema

    schema = competition_schema(sample) if sample is not None else None
    if schema is None:
        num_classes, _ = resolve_num_classes(num_classes, sample)  # the competition's classes when it is known
    checked = validate_submission(file, sample, num_classes=num_classes, schema=schema)
    echo(f"ok: {file}: {len(checked.ids)} rows")
    echo(f"Ids match {sample}" if sample else "no sample_submission.csv found: Ids not checked (give --sample or --data)")
    origin = provenance(file, runs)
    scores = local_scores(file, solution)  # validates the solution before anything is uploaded
    if origin["local_cv"] != "":
        echo(f"local CV {origin['local_cv']:.5f} ({origin['local_cv_source']})")
    if solution is not None:
        echo(f"local leaderboard: public {scores['local_public']:.5f}, private {scores['local_private']:.5f}")
    row = {"competition": competition, "file": str(file), "sha256": sha256_of(file), "rows": len(checked.ids),
           "message": message, **origin, **scores}
    check_append(log_path, {**row, "time": now_utc(), "ref": ""})  # the row itself would be a valid log row

    client = kaggle_api.connect()
    limits = client.limits(competition)
    if not limits.joined:
        raise DataError(f"kaggle: '{competition}': you have not joined this competition (no team, 0 submissions "
                        f"allowed); accept its rules at https://www.kaggle.com/competitions/{competition}/rules")
    what = "in total" if limits.limited_by_total else "today"
    if limits.num_allowed_now <= 0:
        raise DataError(f"kaggle: no submissions left {what} for '{competition}' ({limits.num_today} used today); "
                        "nothing uploaded" + ("" if limits.limited_by_total else ", the allowance resets at 00:00 UTC"))
    echo(f"kaggle: {limits.num_today} submission(s) used today, {limits.num_allowed_now} left {what}")
    if client.code_only(competition):
        raise UsageError(f"kaggle: '{competition}' is a code competition: it takes no CSV upload; package a run (kfold "
                         f"package RUN_DIR -c {competition} ...) and submit it with kfold submit --code, {param('package')} PKG")
    reply, ref = client.submit(file, competition, message)
    echo(f"submitted: {reply}" + (f" (ref {ref})" if ref else ""))
    try:
        append_log(log_path, {**row, "time": now_utc(), "ref": ref or ""})
    except DataError as exc:  # the log was changed by someone else since it was checked
        raise DataError(f"kaggle: submitted{f' as ref {ref}' if ref else ''}, but not logged: {exc}") from None
    echo(f"logged in {log_path}")
    done = Submitted(competition, file, reply, ref, log_path, len(checked.ids))
    if wait is None:
        return done
    if ref is None:
        raise DataError("kaggle: the server returned no submission ref; cannot wait for the score "
                        f"(see kfold submissions -c {competition})")
    done.result = wait_for_score(client, competition, ref, wait, poll_interval, say=echo)
    if done.result["status"] == "ERROR":
        raise DataError(f"kaggle: submission {ref} failed scoring: {done.result['error'] or 'no description given'}")
    if tracker:
        logged = tracker.kaggle_score(row["sha256"], done.result.get("public_score"), done.result.get("private_score"),
                                      ref=ref, competition=competition)
        echo(f"tracking: Kaggle's score logged to {len(logged or [])} tracked run(s) with this submission's sha256")
    return done


# ---------------------------------------------------------------- the log against Kaggle's list

MERGED_COLUMNS = ["ref", "date", "file", "message", "status", "local_cv", "public_score", "private_score",
                  "local_public", "local_private", "runs", "method", "sha256", "error", "in_log", "kernel"]


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
                     "error": kaggle.get("error", ""), "in_log": True, "kernel": _kernel(entry)})
    for ref, kaggle in by_ref.items():
        if ref not in seen:
            rows.append({"ref": ref, "date": kaggle.get("date", ""), "file": kaggle.get("file_name", ""),
                         "message": kaggle.get("description", ""), "status": kaggle.get("status", ""),
                         "local_cv": np.nan, "public_score": kaggle.get("public_score"),
                         "private_score": kaggle.get("private_score"), "local_public": np.nan,
                         "local_private": np.nan, "runs": "", "method": "", "sha256": "",
                         "error": kaggle.get("error", ""), "in_log": False, "kernel": ""})
    frame = pd.DataFrame(rows, columns=MERGED_COLUMNS)
    for column in ("local_cv", "public_score", "private_score", "local_public", "local_private"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


def _kernel(entry) -> str:
    """A code submission's notebook and version (``OWNER/SLUG/VERSION``), '' for a CSV upload or an older log."""
    return "/".join(str(entry.get(key, "") or "") for key in ("kernel", "version")).strip("/")


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


@dataclass
class SubmissionsReport:
    """The log merged with Kaggle's list, the agreement of local CV and public score, and the files written."""

    competition: str
    log: Path
    logged: int
    table: pd.DataFrame
    stats: dict
    csv: Path
    cv_vs_public: Path
    over_time: Path
    written: list[Path] = field(default_factory=list)


def submissions_outputs(competition: str, log: Path, out: Path | None) -> tuple[Path, Path, Path]:
    """The CSV, the CV-vs-public picture and the scores-over-time picture of ``submissions``."""
    folder = Path(out) if out is not None else log.parent
    return (folder / f"{competition}-submissions.csv", folder / f"{competition}-cv-vs-public.png",
            folder / f"{competition}-scores-over-time.png")


def submissions(competition: str, log: str | os.PathLike | None = None,
                out: str | os.PathLike | None = None, tracker=None) -> SubmissionsReport:
    """Merge the log (default ``submissions/log/COMP.csv``) with Kaggle's list of our submissions; write the
    table (``COMP-submissions.csv``), the public score of every submission over time with the local CV where
    known (``COMP-scores-over-time.png``) and, when at least two submissions have both, local CV against
    public score (``COMP-cv-vs-public.png``), into ``out`` (default: the log's folder), together.

    The log is read strictly and the outputs are checked against it before Kaggle is asked."""
    from kfold import kaggle_api
    from kfold.files.atomic import refuse_overwriting_inputs, together, write_csv
    from kfold.files.submission_log import default_log_path, read_log

    competition = kaggle_api.check_competition(competition)
    log_path = Path(log) if log is not None else default_log_path(competition)
    csv_path, cv_png, time_png = submissions_outputs(competition, log_path, out)
    refuse_overwriting_inputs([log_path], [csv_path, cv_png, time_png], UsageError)
    entries = read_log(log_path)
    table = merge(entries, kaggle_api.connect().submissions(competition))
    report = SubmissionsReport(competition, log_path, len(entries), table, agreement(table), csv_path, cv_png, time_png)
    for row in table.dropna(subset=["public_score"]).to_dict("records") if tracker else ():  # scores that came later
        if row["sha256"]:
            tracker.kaggle_score(row["sha256"], row["public_score"], row["private_score"], ref=row["ref"], competition=competition)
    if table.empty:
        return report
    from kfold.figures import plot_cv_vs_public, plot_scores_over_time  # matplotlib: only when there is a table

    with together():
        write_csv(csv_path, table, lineterminator="\n")
        report.written.append(csv_path)
        if plot_scores_over_time(table, time_png, competition):
            report.written.append(time_png)
        if plot_cv_vs_public(table, report.stats, cv_png, competition):
            report.written.append(cv_png)
    return report


# ---------------------------------------------------------------- the public leaderboard

def would_rank(scores, score: float, higher_is_better: bool) -> int:
    """1 + the number of leaderboard entries strictly better than ``score``."""
    scores = np.asarray(scores, dtype=float)
    better = scores > score if higher_is_better else scores < score
    return int(better.sum()) + 1


@dataclass
class RemoteLeaderboard:
    """Kaggle's public leaderboard (``board``: team_id, team, date, score, in Kaggle's order, best first) and our
    scored submissions with the rank each would take (``ours``; empty when none is scored yet)."""

    competition: str
    board: pd.DataFrame
    higher_is_better: bool
    ours: pd.DataFrame
    written: list[Path] = field(default_factory=list)

    @property
    def scores(self) -> np.ndarray:
        return self.board["score"].dropna().to_numpy(float)


def remote_leaderboard(competition: str, out: str | os.PathLike, *, log: str | os.PathLike | None = None,
                       solution: str | os.PathLike | None = None, public_fraction: float = 0.3, seed: int = 0,
                       inputs: Sequence[str | os.PathLike] = ()) -> RemoteLeaderboard:
    """Fetch the public leaderboard (every page) and our submissions; rank each scored one among the teams,
    with the local leaderboard's Public/Private accuracy beside it when ``solution`` is given. Writes
    ``out/kaggle-leaderboard.csv`` and (when one is scored) ``out/kaggle-ranks.csv`` together, after
    everything was read. ``inputs``: further input files of the caller that no output may replace."""
    from kfold import kaggle_api
    from kfold.files.atomic import refuse_overwriting_inputs, together, write_csv
    from kfold.files.submission_log import default_log_path, read_log, sha256_of

    competition = kaggle_api.check_competition(competition)
    inputs = check_list("inputs", inputs)
    out = Path(out)
    log_path = Path(log) if log is not None else default_log_path(competition)
    outputs = [out / LEADERBOARD_FILE, out / RANKS_FILE]
    refuse_overwriting_inputs([p for p in (log_path, solution, *inputs) if p is not None], outputs, UsageError)
    entries = read_log(log_path)
    truth = None
    if solution is not None:
        from kfold.scoring.leaderboard import read_solution

        truth = read_solution(solution, public_fraction=public_fraction, seed=seed)
    client = kaggle_api.connect()
    board = pd.DataFrame(client.leaderboard(competition), columns=["team_id", "team", "date", "score"])
    ours = merge(entries, client.submissions(competition))
    scores = board["score"].dropna().to_numpy(float)
    higher = not (len(scores) > 1 and scores[0] < scores[-1])  # Kaggle lists the best first
    scored = ours.dropna(subset=["public_score"]).copy()
    columns = ["ref", "message", "public_score", "rank", "of", "top_percent", "local_cv", "local_public",
               "local_private"] + (["kernel"] if (ours["kernel"] != "").any() else [])
    if not scored.empty:
        scored["rank"] = [would_rank(scores, s, higher) for s in scored["public_score"]]
        scored["of"] = len(scores)
        scored["top_percent"] = 100.0 * scored["rank"] / max(len(scores), 1)
        if truth is not None:
            scored[["local_public", "local_private"]] = [_local_pair(row, truth, sha256_of)
                                                         for _, row in scored.iterrows()]
    scored = scored.sort_values("rank", kind="stable")[columns] if not scored.empty else pd.DataFrame(columns=columns)
    result = RemoteLeaderboard(competition, board, higher, scored.reset_index(drop=True))
    with together():
        write_csv(outputs[0], board, lineterminator="\n")
        result.written.append(outputs[0])
        if not scored.empty:
            write_csv(outputs[1], scored, lineterminator="\n")
            result.written.append(outputs[1])
    return result


def _local_pair(row, solution, sha256_of) -> tuple[float, float]:
    """The local leaderboard's Public/Private accuracy of a logged file that is still there, unchanged."""
    from kfold.scoring.leaderboard import score_submission

    path = Path(str(row["file"]))
    if not row["in_log"] or not path.is_file() or (row["sha256"] and sha256_of(path) != row["sha256"]):
        return row["local_public"], row["local_private"]
    scores = score_submission(path, solution, n_bootstrap=1)
    return scores["public"], scores["private"]


def board_with_ours(result: RemoteLeaderboard, top: int) -> pd.DataFrame:
    """The first ``top`` teams of the public leaderboard (rank, team, score, ref, ours) with our scored
    submissions (``ours`` True, ``team`` their message) placed where they would rank, best first, after the
    teams they tie with; ours below the top come last."""
    board = result.board.head(top)
    scores = result.scores
    teams = pd.DataFrame({"rank": [would_rank(scores, s, result.higher_is_better) if pd.notna(s) else np.nan
                                   for s in board["score"]],
                          "team": board["team"].astype(str), "score": board["score"], "ref": "", "ours": False})
    mine = pd.DataFrame({"rank": result.ours["rank"], "team": result.ours["message"].astype(str),
                         "score": result.ours["public_score"], "ref": result.ours["ref"].astype(str), "ours": True})
    frame = pd.concat([teams, mine], ignore_index=True) if len(mine) else teams
    frame["rank"] = pd.to_numeric(frame["rank"], errors="coerce")
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    order = -frame["score"] if result.higher_is_better else frame["score"]  # best first; ours after equal teams
    frame = frame.assign(_order=order).sort_values(["_order", "ours"], kind="stable", na_position="last")
    return frame.drop(columns="_order").reset_index(drop=True)
