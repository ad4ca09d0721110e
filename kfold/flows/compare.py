"""``compare.py`` / ``kfold compare``: presets side by side on the same data and folds, over several seeds.

For every seed and preset: train a k-fold run (every preset of a seed gets the same ``folds.csv``)
and predict the test set. Then, per seed, these entries become submissions:

* each preset's fold mean;
* ``report-vote4``: the KMNIST report's majority vote of its four AlexNet setups (seeded tie-break);
* ``report-avg2``: the report's average of its two AlexNet7 setups;
* ``fitted``: a mean of all presets with weights fitted (greedy forward selection, log loss) on
  their out-of-fold predictions only;

every preset's probabilities temperature-scaled first (``kfold.scoring.calibration``, fitted on its OOF);

and, across seeds, ``<preset>-seeds`` (the mean of that preset's calibrated fold means over all seeds; by
default for the preset ``best``). The solution file is read only at the end, for scoring: a
leaderboard per seed and a comparison of the mean over seeds per entry.

Output layout::

    OUT/seed{s}/{preset}/                  train.py run directory
    OUT/seed{s}/probs/                     predict.py files: {preset}-fold{i}.npz, -mean.npz, -oof.npz
    OUT/seed{s}/submissions/{entry}.csv    submission (+ {entry}.probs.npz unless it is a vote)
    OUT/seed{s}/leaderboard.csv, .md       that seed's entries on the Public/Private rows
    OUT/submissions/{preset}-seeds.csv     multi-seed ensembles (+ .probs.npz)
    OUT/leaderboard.csv, .md               the multi-seed ensembles on the Public/Private rows
    OUT/comparison.csv, .md, .png          mean over seeds per entry, sorted by Private accuracy

Re-running the same command continues an interrupted comparison (finished folds are skipped).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kfold.files.atomic import save_figure, write_csv, write_text
from kfold.scoring.calibration import calibrated, fit_temperature
from kfold.config import PRESETS, preset_names, resolve_config
from kfold.scoring.ensemble import Ensemble, combine, fit_weights
from kfold.errors import DataError, UsageError, check_list, param
from kfold.files.rundir import PredDir, RunDir, probs_path
from kfold.files.probs import ProbFile, read_probs, write_probs
from kfold.scoring.report import markdown_table
from kfold.files.submission import write_submission

__all__ = ["BEST_PRESET", "calibrated_pair", "check_same_folds", "compare", "comparison_markdown",
           "comparison_table", "DEFAULT_PRESETS", "Entry", "FIT_METRIC", "mean_file", "NOT_AVAILABLE", "oof_file",
           "parse_presets", "plot_comparison", "REPORT_AVG_PRESETS", "REPORT_PRESETS", "score", "seed_entries",
           "train_and_predict", "train_and_predict_at_once", "train_seconds", "with_na", "write_board",
           "write_entry"]

REPORT_PRESETS = ("alexnet5-sgd", "alexnet5-adam", "alexnet7-sgd", "alexnet7-adam")  # the KMNIST report's setups
REPORT_AVG_PRESETS = ("alexnet7-sgd", "alexnet7-adam")
BEST_PRESET = "best"
DEFAULT_PRESETS = (*REPORT_PRESETS, BEST_PRESET)
VOTE_ENTRY, AVG_ENTRY, FITTED_ENTRY, SEEDS_SUFFIX = "report-vote4", "report-avg2", "fitted", "-seeds"
FIT_METRIC = "logloss"
NOT_AVAILABLE = "n/a"


def _split_list(text: str, name: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if not all(items):
        raise UsageError(f"{param(name)}={text!r}: empty item in the comma-separated list")
    duplicated = next((item for i, item in enumerate(items) if item in items[:i]), None)
    if duplicated is not None:
        raise UsageError(f"{param(name)}={text!r}: {duplicated!r} is listed twice")
    return items


def parse_presets(text: str, name: str = "presets", allowed: Sequence[str] | None = None) -> list[str]:
    """Preset names, each known (to ``allowed`` when given, else to kfold.config) and not an entry name;
    errors name the parameter ``name``."""
    presets = _split_list(text, name)
    where = param(name)
    for preset in presets:
        if allowed is not None and preset not in allowed:
            raise UsageError(f"{where}: {preset!r} is not one of {param('presets')} ({', '.join(allowed)})")
        if preset not in PRESETS:
            raise UsageError(f"{where}: unknown preset {preset!r}; available: {', '.join(preset_names())}")
        if preset in (VOTE_ENTRY, AVG_ENTRY, FITTED_ENTRY) or preset.endswith(SEEDS_SUFFIX):
            raise UsageError(f"{where}: preset {preset!r} clashes with a comparison entry name")
    return presets


@dataclass
class Entry:
    """One comparison entry: its ensemble and the presets (models) behind it."""

    name: str
    ensemble: Ensemble
    members: list[str]


def mean_file(probs_dir: Path, preset: str) -> Path:
    return PredDir(probs_dir).mean(preset)


def oof_file(probs_dir: Path, preset: str) -> Path:
    return PredDir(probs_dir).oof(preset)


def calibrated_pair(probs_dir: Path, preset: str) -> tuple[ProbFile, ProbFile]:
    """A preset's out-of-fold and fold-mean test probabilities, scaled by the temperature fitted on the former."""
    oof = read_probs(oof_file(probs_dir, preset))
    temperature = fit_temperature(oof)
    return calibrated(oof, temperature), calibrated(read_probs(mean_file(probs_dir, preset)), temperature)


def seed_entries(probs_dir: Path, presets: Sequence[str], seed: int) -> list[Entry]:
    """The entries of one seed from predict.py's files in ``probs_dir``; reads no labels of the test set.

    Every preset's probabilities are first temperature-scaled with a temperature fitted on its own
    out-of-fold predictions (accuracy unchanged; log loss and the fitted weights use calibrated members)."""
    oofs, means = {}, {}
    for preset in presets:
        oofs[preset], means[preset] = calibrated_pair(probs_dir, preset)
    print(f"seed {seed}: temperatures fitted on OOF log loss: " + ", ".join(f"{p} {means[p].meta['temperature']:.3f}" for p in presets))
    entries = [Entry(preset, combine([means[preset]]), [preset]) for preset in presets]
    for name, members, method in ((VOTE_ENTRY, REPORT_PRESETS, "vote"), (AVG_ENTRY, REPORT_AVG_PRESETS, "mean")):
        if set(members) <= set(presets):
            entries.append(Entry(name, combine([means[p] for p in members], method=method, seed=seed), list(members)))
    if len(presets) > 1:
        fit = fit_weights([oofs[preset] for preset in presets], metric=FIT_METRIC)
        fitted = combine([means[p] for p in presets], method="mean", weights=fit.weights)
        fitted.meta.update(fit_metric=FIT_METRIC, fit_oof_score=fit.score, fit_presets=list(presets))
        print(f"seed {seed}: fitted weights (OOF {FIT_METRIC} {fit.score:.5f}): "
              + ", ".join(f"{p} {w:.2f}" for p, w in zip(presets, fit.weights)))
        entries.append(Entry(FITTED_ENTRY, fitted, list(presets)))
    return entries


def write_entry(entry: Entry, directory: Path, sample: Path | None) -> Path:
    """Write ``{name}.csv`` (in the sample's row order) and, when it has probabilities, ``{name}.probs.npz``.

    Returns the file to score: the probabilities when there are any (accuracy and log loss), else the CSV.
    """
    ensemble = entry.ensemble
    csv = directory / f"{entry.name}.csv"
    write_submission(csv, ensemble.ids, ensemble.categories, sample_path=sample)
    if ensemble.probs is None:
        return csv
    write_probs(probs_path(csv), ensemble.ids, ensemble.probs, ensemble.classes, {**ensemble.meta, "submission": str(csv)})
    return probs_path(csv)


def check_same_folds(reference: Path, other: Path) -> None:
    """Every preset of a seed must be trained and validated on the same rows."""
    from kfold.files.folds import read_folds

    first, second = read_folds(reference), read_folds(other)
    if first.shape != second.shape or not np.array_equal(first, second):
        row = int(np.argmax(first != second)) if first.shape == second.shape else min(len(first), len(second))
        raise DataError(f"{other}: folds differ from {reference} (first at Id {row}); these runs are not comparable, "
                        f"use a new {param('out')} directory")


def train_and_predict(task, spec, out: Path, seed: int, preset: str, *, k: int, epochs: int | None, device: str,
                      tta: int | None, progress: bool, threads: int | None = None, backend=None, tracker=None) -> RunDir:
    """Train (or resume) the run OUT/seed{seed}/{preset} and write its probability files; return the run.

    ``backend`` (a ``kfold.flows.backend.Backend``; default a ``LocalBackend``) trains the folds and predicts;
    ``tracker`` logs the run as it starts and each fold as it finishes (``train_run``)."""
    from kfold.flows.backend import LocalBackend
    from kfold.flows.training import RunRequest, format_summary, train_run

    backend = LocalBackend() if backend is None else backend
    seed_dir = out / f"seed{seed}"
    run = RunDir(seed_dir / preset)
    cfg = resolve_config(preset, None, {} if epochs is None else {"epochs": epochs})
    print(f"\n== seed {seed}, {preset}: train {run.path}", flush=True)
    request = RunRequest(cfg, spec, preset=preset, k=k, seed=seed, device=device, threads=threads, resume=run.is_run(),
                         progress=progress, tta=tta)
    summary = train_run(request, task, run, backend=backend, tracker=tracker)
    print(format_summary(summary.values))
    print(f"== seed {seed}, {preset}: predict into {seed_dir / 'probs'}", flush=True)
    backend.predict([run], task, seed_dir / "probs", spec=spec, tta=tta, device=device,
                    threads=backend.threads(threads), echo=print)
    return run


def train_and_predict_at_once(backend, task, spec, out: Path, seeds: Sequence[int], presets: Sequence[str], *, k: int,
                              epochs: int | None, device: str, tta: int | None, threads: int | None) -> dict:
    """Every run of the comparison through a Ray backend: all folds submitted together, each run's prediction
    waiting only on its own folds. Returns (seed, preset) -> RunDir; the files are those of ``train_and_predict``."""
    from kfold.flows.ray_runs import RunPlan, train_runs
    from kfold.flows.training import format_summary

    plans = []
    for seed in seeds:
        for preset in presets:
            run = RunDir(out / f"seed{seed}" / preset)
            cfg = resolve_config(preset, None, {} if epochs is None else {"epochs": epochs})
            plans.append(RunPlan((seed, preset), run, cfg, preset, k, seed, run.is_run(), out / f"seed{seed}" / "probs"))
    summaries = train_runs(backend, plans, task, spec, device=device, threads=threads, tta=tta)
    for plan in plans:
        print(f"\n== seed {plan.seed}, {plan.preset}: {plan.run.path}\n{format_summary(summaries[plan.key])}")
    return {plan.key: plan.run for plan in plans}


def train_seconds(run_dir: Path) -> float:
    path = RunDir(run_dir).summary
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: no readable train_seconds ({exc})") from None


def score(files: dict[str, Path], solution) -> pd.DataFrame:
    """Leaderboard of ``files`` (entry name -> file), with entry names in the ``submission`` column."""
    from kfold.scoring.leaderboard import leaderboard

    table = leaderboard(list(files.values()), solution)
    names = {str(path): name for name, path in files.items()}
    table["submission"] = [names[path] for path in table["submission"]]
    return table


def with_na(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` with missing values shown as 'n/a' (a vote has no probabilities, hence no log loss)."""
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), NOT_AVAILABLE)
    return frame


def write_board(table: pd.DataFrame, directory: Path) -> str:
    from kfold.scoring.leaderboard import leaderboard_markdown

    text = leaderboard_markdown(with_na(table, ["public_logloss", "private_logloss"]))
    write_csv(directory / "leaderboard.csv", table)
    write_text(directory / "leaderboard.md", text)
    return text


def comparison_table(per_seed: pd.DataFrame, pooled: pd.DataFrame, members: dict[str, list[str]],
                     seconds: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per entry, sorted by Private accuracy.

    ``per_seed``/``pooled``: leaderboard rows (``submission`` = entry) of the per-seed entries (with a
    ``seed`` column) and of the multi-seed ensembles; ``seconds``: columns seed, preset, train_seconds.
    ``train_seconds`` of an entry is the training time of the models behind it: summed over its presets
    (mean over seeds), and for a multi-seed ensemble summed over the seeds as well. ``n_seeds`` is the
    number of seeds averaged over, or pooled into a multi-seed ensemble (which has no std).
    """
    grouped = per_seed.groupby("submission", sort=False)
    table = pd.DataFrame({
        "public": grouped["public"].mean(), "private": grouped["private"].mean(), "private_std": grouped["private"].std(),
        "private_logloss": grouped["private_logloss"].mean(), "n_seeds": grouped["seed"].nunique(),
    })
    per_preset = seconds.groupby("preset")["train_seconds"]
    table["train_seconds"] = [per_preset.mean()[members[name]].sum() for name in table.index]
    if not pooled.empty:
        n_seeds = seconds["seed"].nunique()
        extra = pooled.set_index("submission")[["public", "private", "private_logloss"]]
        extra["private_std"], extra["n_seeds"] = np.nan, n_seeds
        extra["train_seconds"] = [per_preset.sum()[members[name]].sum() for name in extra.index]
        table = pd.concat([table, extra[table.columns]])
    table.insert(0, "members", ["+".join(members[name]) for name in table.index])
    table = table.rename_axis("entry").reset_index()
    return table.sort_values(["private", "public", "entry"], ascending=[False, False, True], kind="stable").reset_index(drop=True)


def comparison_markdown(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "entry": table["entry"], "members": table["members"],
        "public": table["public"].map("{:.4f}".format),
        "private (mean ± std)": [f"{m:.4f}" + ("" if np.isnan(s) else f" ± {s:.4f}")
                                 for m, s in zip(table["private"], table["private_std"])],
        "private logloss": [NOT_AVAILABLE if np.isnan(v) else f"{v:.4f}" for v in table["private_logloss"]],
        "seeds": table["n_seeds"], "train time (s)": table["train_seconds"].map("{:,.1f}".format),
    })
    return markdown_table(shown)


def plot_comparison(table: pd.DataFrame, path: Path) -> None:
    """Private accuracy per entry (best on top) as points with one std over seeds as error bars: points, not bars,
    because the axis is zoomed to the values (a bar's length from a zoomed origin exaggerates differences)."""
    from kfold.figures import pyplot

    plt = pyplot()
    rows = table.iloc[::-1]
    std = rows["private_std"].fillna(0.0).to_numpy()
    values = rows["private"].to_numpy()
    single = rows["entry"].isin(PRESETS).to_numpy()
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.4 * len(rows)))
    for color, mask in (("tab:blue", single), ("tab:orange", ~single)):
        ax.errorbar(values[mask], np.flatnonzero(mask), xerr=std[mask], fmt="o", capsize=3, color=color)
    ax.set_yticks(range(len(rows)), [f"{name}  {value:.4f}" for name, value in zip(rows["entry"], values)])
    low, high = float((values - std).min()), float((values + std).max())
    margin = max(0.1 * (high - low), 0.002)
    ax.set_xlim(max(0.0, low - margin), min(1.0, high + margin))
    ax.set(xlabel="Private accuracy (mean ± std over seeds; axis zoomed, not from 0)",
           title="Comparison (blue: one preset, orange: ensemble)")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def guard_comparison(out: Path, data: str, seeds: Sequence[int], presets: Sequence[str], k: int) -> None:
    """The output guard of a comparison: no output is a data file, no folder on the way is a planted link."""
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs
    from kfold.flows.training import run_outputs

    if out.exists() and not out.is_dir():
        raise UsageError(f"{param('out')} {out}: exists and is not a directory")
    outputs = [out, out / "submissions", *(out / name for name in ("comparison.csv", "comparison.md", "comparison.png",
                                                                     "leaderboard.csv", "leaderboard.md"))]
    for seed in seeds:
        seed_dir = out / f"seed{seed}"
        outputs += [seed_dir, seed_dir / "probs", seed_dir / "submissions", seed_dir / "leaderboard.csv"]
        for preset in presets:
            outputs += run_outputs(RunDir(seed_dir / preset), k)
    guard_outputs(outputs, data_inputs(data), root=out.parent, error=DataError)


def compare(data: str, out: str | Path, *, presets: Sequence[str] = DEFAULT_PRESETS, seeds: Sequence[int] = (0, 1, 2),
            k: int = 5, seed_ensembles: Sequence[str] | None = None, epochs: int | None = None, device: str = "auto",
            tta: int | None = None, threads: int | None = None, progress: bool = True, backend=None,
            tracker=None) -> pd.DataFrame | None:
    """Presets side by side over seeds (see the module docstring); returns the comparison table (None: no solution).
    ``tracker`` (``kfold.flows.tracking.open_tracker``) logs every run and each fold as it finishes (on Ray: each
    run once it is trained), from their files."""
    from kfold.flows.training import TaskSpec

    out = Path(out)
    seeds, presets = check_list("seeds", seeds), check_list("presets", presets)
    for preset in presets:
        parse_presets(preset)
    if seed_ensembles is None:
        pooled_presets = [BEST_PRESET] if BEST_PRESET in presets else []
    else:
        pooled_presets = check_list("seed_ensembles", seed_ensembles)
        for preset in pooled_presets:
            parse_presets(preset, "seed_ensembles", allowed=presets)
    pooled_presets = pooled_presets if len(seeds) > 1 else []  # one seed: the same as the preset's own entry
    from kfold.files.folds import check_k

    check_k(k)
    if tta is not None and tta < 1:
        raise UsageError(f"{param('tta')}={tta}: needs at least 1 view")
    for preset in presets:  # every config error before the first run starts
        resolve_config(preset, None, {} if epochs is None else {"epochs": epochs})
    guard_comparison(out, data, seeds, presets, k)
    spec = TaskSpec(str(data))
    task = spec.load(progress=progress)  # loaded once for every preset and seed
    if not task.has_test:
        raise DataError(f"{data}: no test set (training data alone), and compare ranks submissions of the test set; "
                        "kfold run or kfold tune score training data alone out of fold")

    from kfold.flows.ray_backend import RayBackend

    trained = None
    if isinstance(backend, RayBackend):  # Ray: every preset x seed x fold at once
        trained = train_and_predict_at_once(backend, task, spec, out, seeds, presets, k=k, epochs=epochs, device=device,
                                            tta=tta, threads=threads)
    seconds, entry_files, members = [], {}, {}
    for seed in seeds:
        seed_dir = out / f"seed{seed}"
        runs = [trained[seed, preset] if trained is not None else
                train_and_predict(task, spec, out, seed, preset, k=k, epochs=epochs, device=device, tta=tta,
                                  progress=progress, threads=threads, backend=backend, tracker=tracker)
                for preset in presets]
        for preset, run in zip(presets, runs):
            if tracker and trained is not None:  # Ray: folds trained on the workers, logged from their files here
                tracker.run_done(run)
            check_same_folds(runs[0].folds_csv, run.folds_csv)
            seconds.append({"seed": seed, "preset": preset, "train_seconds": train_seconds(run.path)})
        entry_files[seed] = {}
        for entry in seed_entries(seed_dir / "probs", presets, seed):
            entry_files[seed][entry.name] = write_entry(entry, seed_dir / "submissions", task.sample_submission)
            members[entry.name] = entry.members
        print(f"seed {seed}: wrote {len(entry_files[seed])} submissions to {seed_dir / 'submissions'}")
    pooled_files = {}
    for preset in pooled_presets:
        name = preset + SEEDS_SUFFIX
        entry = Entry(name, combine([calibrated_pair(out / f"seed{s}" / "probs", preset)[1] for s in seeds]), [preset])
        pooled_files[name] = write_entry(entry, out / "submissions", task.sample_submission)
        members[name] = [preset]
        print(f"wrote {pooled_files[name]} (mean of {preset} over seeds {','.join(map(str, seeds))})")

    if task.solution is None:
        print(f"\n{data} has no solution.csv: nothing to score; submissions are in {out}/seed*/submissions")
        return None
    from kfold.scoring.leaderboard import read_solution

    solution = read_solution(task.solution)  # first and only use of the solution: the final scoring
    boards = []
    for seed in seeds:
        board = score(entry_files[seed], solution)
        print(f"\n## seed {seed}\n\n{write_board(board, out / f'seed{seed}')}")
        boards.append(board.assign(seed=seed))
    pooled = score(pooled_files, solution) if pooled_files else pd.DataFrame()
    if pooled_files:
        print(f"\n## multi-seed ensembles\n\n{write_board(pooled, out)}")
    table = comparison_table(pd.concat(boards, ignore_index=True), pooled, members, pd.DataFrame(seconds))
    text = comparison_markdown(table)
    write_csv(out / "comparison.csv", table)
    write_text(out / "comparison.md", text)
    plot_comparison(table, out / "comparison.png")
    print(f"\n## comparison: mean over seeds {','.join(map(str, seeds))}, sorted by Private accuracy\n\n{text}")
    print(f"wrote {out / 'comparison.csv'}, {out / 'comparison.md'}, {out / 'comparison.png'}")
    return table
