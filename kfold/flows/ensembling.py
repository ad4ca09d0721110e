"""Ensembles to files: combine inputs, then write the submission CSV, its probabilities and the agreement report.

The typed function under ``ensemble.py`` and ``kfold run``. Everything is checked (inputs, weights, sample,
solution, output paths) before the first byte is written, and the outputs appear together. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from kfold.errors import UsageError
from kfold.files.rundir import probs_path
from kfold.scoring.ensemble import Ensemble

REPORT_FILES = ("agreement.csv", "inputs.csv", "report.md", "agreement.png", "groups.csv")


@dataclass
class EnsembleResult:
    """An ensemble and the files written for it."""

    ensemble: Ensemble
    submission: Path
    probabilities: Path | None
    report: str | None = None
    written: list[Path] = field(default_factory=list)
    fit: object | None = None  # the weight fit (kfold.scoring.ensemble.fit_weights) when weights were fitted


def make_submission(inputs: Sequence[str | Path], out: str | Path, *, method: str = "mean", weights=None,
                    fit_oof: Sequence[str | Path] | None = None, fit_metric: str = "accuracy", fit_rounds: int = 25,
                    seed: int = 0, tiebreak: str = "random", num_classes: int | None = None,
                    sample: str | Path | None = None, solution: str | Path | None = None,
                    report: str | Path | None = None, ids: str | Path | None = None, log_probs: bool = False,
                    extra_inputs: Sequence[str | Path] = (), plot: bool = True) -> EnsembleResult:
    """Combine ``inputs`` and write ``out`` (Id,Category in the sample's row order), the ensemble probabilities
    beside it (mean/geomean) and, with ``report``, the agreement report (accuracies when ``solution`` is given).

    ``fit_oof`` (one out-of-fold file per input) fits the weights by greedy forward selection first; ``ids``
    (or the sample) gives the rows of ``.npy`` inputs that carry none. ``plot``: the report's heatmap too
    (``agreement.png``; ``ensemble.py`` draws it only with ``--plot``)."""
    from kfold.files.atomic import refuse_overwriting_inputs, together
    from kfold.files.probs import write_probs
    from kfold.files.submission import align_ids, read_submission, write_submission
    from kfold.scoring.ensemble import check_seed, combine, fit_weights

    out = Path(out)
    check_seed(seed)
    if out.suffix.lower() != ".csv":
        raise UsageError(f"--out must be a .csv file, got {out}")
    fit = None
    if fit_oof is not None:
        if weights is not None:
            raise UsageError("give either --weights or --fit-weights, not both")
        if len(fit_oof) != len(inputs):
            raise UsageError(f"--fit-weights names {len(fit_oof)} out-of-fold files for {len(inputs)} inputs")
        fit = fit_weights(list(fit_oof), metric=fit_metric, method="geomean" if method == "geomean" else "mean",
                          rounds=fit_rounds)
        weights = fit.weights
    row_ids = None
    if ids or sample:
        from kfold.files.readers import read_ids

        row_ids = read_ids(ids or sample)
    ensemble = combine(list(inputs), method=method, weights=weights, seed=seed, tiebreak=tiebreak,
                       num_classes=num_classes, ids=row_ids, log_probs=log_probs, input_predictions=bool(report))
    if ensemble.kind == "oof" and sample:
        raise UsageError("the inputs are out-of-fold files; --sample applies to test predictions")
    order = slice(None)
    if sample:  # output in the sample's row order; checked before anything is written
        reference = read_submission(sample)
        order = align_ids(ensemble.ids, reference.ids, f"the ensemble inputs ({ensemble.names[0]})",
                          f"the sample {sample}", first_line=None)
    labels = groups = scored = None
    if solution:
        from kfold.scoring.leaderboard import read_solution

        truth = read_solution(solution)
        rows = align_ids(truth.ids, ensemble.ids, str(solution), f"the ensemble inputs ({ensemble.names[0]})")
        labels = truth.categories[rows]
        groups = None if truth.groups is None else truth.groups[rows]
        scored = (truth.usage != "Ignored")[rows]  # Ignored rows are scored nowhere, as on the leaderboard
    sources = [*inputs, *extra_inputs, *(fit_oof or []), *([sample] if sample else []), *([solution] if solution else []),
               *([ids] if ids else [])]
    targets = [out, *([probs_path(out)] if ensemble.probs is not None else [])]
    if report:
        targets += [Path(report) / name for name in REPORT_FILES]
    refuse_overwriting_inputs(sources, targets, UsageError)

    result = EnsembleResult(ensemble, out, probs_path(out) if ensemble.probs is not None else None, fit=fit)
    with together():  # the submission, its probabilities and the report appear together
        write_submission(out, ensemble.ids[order], ensemble.categories[order])
        result.written.append(out)
        if ensemble.probs is not None:
            meta = {**ensemble.meta, "submission": str(out)}
            write_probs(probs_path(out), ensemble.ids[order], ensemble.probs[order], ensemble.classes, meta,
                        labels=None if ensemble.labels is None else ensemble.labels[order])
            result.written.append(probs_path(out))
        if report:
            from kfold.scoring.report import write_report

            result.report = write_report(ensemble, Path(report), labels=labels, groups=groups, scored=scored, plot=plot)
            result.written += [Path(report) / name for name in REPORT_FILES[:4] if plot or name != "agreement.png"]
            result.written += [Path(report) / "groups.csv"] if groups is not None else []
    if report and not plot:  # an earlier --plot's heatmap would no longer match the tables now in place
        (Path(report) / "agreement.png").unlink(missing_ok=True)
    return result
