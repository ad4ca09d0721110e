"""``kfold learning-curve``: would more training data help, and how much would a target accuracy need?

Runs of one recipe with different ``k`` train their models on different amounts of data: a model of a
k-fold run sees (k-1)/k of the training rows. Their out-of-fold errors at the last epoch (never an epoch
picked on the validation rows) against the rows each model trained on give a learning curve. A power law
``error = a * rows ** -alpha``, fitted by least squares in log-log space, then estimates the error of a model
trained on all rows and the rows a target accuracy would need. Extrapolating a power law fitted over a
narrow range is rough: read the estimates as orders of magnitude, with the 95% (Wilson) interval of every
measured point in mind. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from kfold.files.atomic import guard_outputs, save_figure, together, write_csv, write_text
from kfold.errors import DataError, UsageError, check_list, param
from kfold.files.rundir import RunDir, check_fields
from kfold.scoring.report import markdown_table

__all__ = ["bootstrap_laws", "check_same_recipe", "curve_table", "CurvePoint", "fit_power_law", "IGNORED_CONFIG",
           "learning_curve", "plot_curve", "PowerLaw", "read_point"]

# Config fields that change neither the training rows nor the optimisation (a learning curve may mix them).
CURVE_FILES = ("learning_curve.csv", "learning_curve.md", "learning_curve.png")
IGNORED_CONFIG = {"keep", "eval_batch_size", "num_workers", "compile", "channels_last", "tta"}


@dataclass
class CurvePoint:
    run: str
    k: int
    seed: int
    train_rows: float  # mean over the folds of the rows one model trained on
    oof_rows: int
    errors: int  # out-of-fold errors at every fold's last epoch

    @property
    def error_rate(self) -> float:
        return self.errors / self.oof_rows


@dataclass
class PowerLaw:
    """``error = scale * rows ** -exponent``."""

    scale: float
    exponent: float

    def error(self, rows: float | np.ndarray) -> float | np.ndarray:
        return self.scale * np.asarray(rows, dtype=float) ** -self.exponent

    def rows_for(self, error: float) -> float:
        """Training rows at which the fitted error reaches ``error`` (inf when the curve does not fall)."""
        if self.exponent <= 0:
            return float("inf")
        log_rows = (np.log(self.scale) - np.log(error)) / self.exponent
        return float(np.exp(log_rows)) if log_rows < 700 else float("inf")


def read_point(run_dir: Path) -> tuple[CurvePoint, dict]:
    """The learning-curve point of a finished k-fold run, and its saved config (for the same-recipe check);
    every field read is checked (one DataError naming the file and the field)."""
    run = RunDir(run_dir)
    if not run.summary.is_file():
        raise DataError(f"{run.summary}: not found (is {run_dir} a finished kfold run?)")
    summary, config = run.read_summary(), run.read_config()
    check_fields(run.summary, summary, {"seed": "count", "oof_rows": "count", "oof_accuracy_last_epoch": "fraction"})
    k, done = summary["k"], summary["folds_done"]
    if done != k:
        raise DataError(f"{run.summary}: {done} of {k} folds finished; finish the run first ({param('resume')}=True)")
    if config["k"] != k:
        raise DataError(f"{run.summary}: field 'k' is {k}, but {run.config} says {config['k']}")
    if summary["oof_rows"] < 1:
        raise DataError(f"{run.summary}: field 'oof_rows' is 0: no out-of-fold rows")
    train_rows = float(np.mean([run.read_meta(f, {"train_rows": "count"})["train_rows"] for f in range(k)]))
    last_accuracy = summary["oof_accuracy_last_epoch"]
    point = CurvePoint(run=run_dir.name, k=k, seed=summary["seed"], train_rows=train_rows, oof_rows=summary["oof_rows"],
                       errors=int(round((1.0 - last_accuracy) * summary["oof_rows"])))
    return point, config


def check_same_recipe(configs: Sequence[dict], runs: Sequence[Path]) -> None:
    """Every run must train the same recipe on the same data; only k and the seed may differ."""
    first = configs[0]
    for config, run in zip(configs[1:], runs[1:]):
        if config.get("fingerprint") != first.get("fingerprint"):
            raise DataError(f"{run}: trained on other data than {runs[0]} (fingerprint {config.get('fingerprint')} "
                            f"vs {first.get('fingerprint')})")
        a, b = first.get("config", {}), config.get("config", {})
        for key in sorted((set(a) & set(b)) - IGNORED_CONFIG):
            if a[key] != b[key]:
                raise DataError(f"{run}: config {key}={b[key]!r} differs from {runs[0]} ({a[key]!r}); "
                                f"a learning curve compares one recipe on different amounts of data")


def fit_power_law(points: Sequence[CurvePoint]) -> PowerLaw:
    """Least-squares line through (log rows, log error rate); needs two distinct row counts and no zero error."""
    rows = np.array([p.train_rows for p in points])
    if len(np.unique(rows)) < 2:
        raise UsageError("a learning curve needs runs with at least two different k (different training rows per model)")
    zero = next((p for p in points if p.errors == 0), None)
    if zero is not None:
        raise DataError(f"{zero.run}: no out-of-fold error, a power law in log space cannot be fitted")
    slope, intercept = np.polyfit(np.log(rows), np.log([p.error_rate for p in points]), 1)
    return PowerLaw(scale=float(np.exp(intercept)), exponent=float(-slope))


def bootstrap_laws(points: Sequence[CurvePoint], n: int = 2000, seed: int = 0) -> list[PowerLaw]:
    """Power laws refitted on parametric bootstrap resamples: every point's errors redrawn Binomial(oof_rows, rate)."""
    rng = np.random.default_rng(seed)
    laws = []
    for _ in range(n):
        redrawn = [CurvePoint(p.run, p.k, p.seed, p.train_rows, p.oof_rows, int(rng.binomial(p.oof_rows, p.error_rate)))
                   for p in points]
        if all(p.errors for p in redrawn):
            laws.append(fit_power_law(redrawn))
    return laws


def _interval(values: Sequence[float], digits: int) -> str:
    """The central 95% of bootstrap estimates (either end may be infinite: a resample whose curve does not fall)."""
    low, high = np.percentile(values, 2.5, method="lower"), np.percentile(values, 97.5, method="higher")
    return "95% bootstrap interval " + " to ".join("unbounded" if np.isinf(v) else f"{v:,.{digits}f}" for v in (low, high))


def curve_table(points: Sequence[CurvePoint], law: PowerLaw) -> pd.DataFrame:
    rows = []
    for p in sorted(points, key=lambda p: (p.train_rows, p.seed)):
        low, high = binomtest(p.errors, p.oof_rows).proportion_ci(method="wilson")
        rows.append({"run": p.run, "k": p.k, "seed": p.seed, "train_rows": round(p.train_rows), "oof_rows": p.oof_rows,
                     "errors": p.errors, "oof_accuracy": 1 - p.error_rate, "accuracy_ci_low": 1 - high,
                     "accuracy_ci_high": 1 - low, "fitted_accuracy": 1 - float(law.error(p.train_rows))})
    return pd.DataFrame(rows)


def plot_curve(table: pd.DataFrame, law: PowerLaw, all_rows: int, target: float | None, path: Path) -> None:
    from kfold.figures import pyplot

    plt = pyplot()

    errors = 1 - table["oof_accuracy"].to_numpy()
    spread = np.vstack([errors - (1 - table["accuracy_ci_high"]), (1 - table["accuracy_ci_low"]) - errors])
    right = max(all_rows, law.rows_for(1 - target) if target else all_rows)
    right = min(right, 100 * all_rows) * 1.1
    xs = np.geomspace(table["train_rows"].min() * 0.9, right, 100)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.errorbar(table["train_rows"], errors, yerr=spread, fmt="o", capsize=3, label="out-of-fold error (95% CI)")
    ax.plot(xs, law.error(xs), "-", label=f"fit: error ∝ rows^-{law.exponent:.2f}")
    ax.axvline(all_rows, color="gray", ls=":", label=f"all training rows ({all_rows:,})")
    if target:
        ax.axhline(1 - target, color="tab:red", ls="--", label=f"target accuracy {target:.4f}")
    ax.set(xscale="log", yscale="log", xlabel="training rows per model", ylabel="error rate", title="Learning curve")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def learning_curve(runs: Sequence[str | Path], out: str | Path, target: float | None = None) -> str:
    """Fit and write the learning curve of finished runs of one recipe (different k); returns the Markdown text."""
    runs, out = [Path(run) for run in check_list("runs", runs)], Path(out)
    if target is not None and not 0 < target < 1:
        raise UsageError(f"{param('target')}={target!r}: must be an accuracy between 0 and 1")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{param('out')}={str(out)!r}: exists and is not a folder")
    inputs = [path for run in runs for path in RunDir(run).inputs()]
    guard_outputs([out, *(out / name for name in CURVE_FILES)], inputs, root=out.parent)  # before anything is read
    loaded = [read_point(run) for run in runs]
    points, configs = [p for p, _ in loaded], [c for _, c in loaded]
    check_same_recipe(configs, runs)
    law = fit_power_law(points)
    laws = bootstrap_laws(points)
    table = curve_table(points, law)
    all_rows = max(p.oof_rows for p in points)
    lines = [markdown_table(table),
             f"fit: error = {law.scale:.4g} * rows^-{law.exponent:.3f} over {len(points)} runs "
             f"({table['train_rows'].min():,.0f}-{table['train_rows'].max():,.0f} rows per model)",
             f"estimated accuracy of one model trained on all {all_rows:,} rows: {1 - float(law.error(all_rows)):.4f} "
             f"({_interval([1 - float(b.error(all_rows)) for b in laws], 4)})"]
    if target is not None:
        needed = law.rows_for(1 - target)
        lines.append(f"estimated training rows for accuracy {target:.4f}: "
                     + (f"{needed:,.0f} ({needed / all_rows:.1f}x the {all_rows:,} available; "
                        f"{_interval([b.rows_for(1 - target) for b in laws], 0)})" if np.isfinite(needed)
                        else "never (the fitted error does not fall with more rows)"))
    text = "\n".join(lines) + "\n"
    with together():  # the three files appear together
        write_csv(out / "learning_curve.csv", table)
        write_text(out / "learning_curve.md", text)
        plot_curve(table, law, all_rows, target, out / "learning_curve.png")
    return text
