"""Ensembles to files: combine inputs, then write the submission CSV, its probabilities and the agreement report.

The typed function under ``ensemble.py`` and ``kfold run``. Everything is checked (inputs, weights, sample,
solution, output paths) before the first byte is written, and the outputs appear together. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from kfold.errors import UsageError, check_list, param
from kfold.files.rundir import REPORT_FILES, probs_path
from kfold.scoring.ensemble import Ensemble

__all__ = ["EnsembleResult", "make_submission", "REPORT_FILES"]


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
                    extra_inputs: Sequence[str | Path] = (), schema=None, plot: bool = True, tracker=None) -> EnsembleResult:
    """Combine ``inputs`` and write ``out`` (Id,Category in the sample's row order), the ensemble probabilities
    beside it (mean/geomean) and, with ``report``, the agreement report (accuracies when ``solution`` is given).

    ``fit_oof`` (one out-of-fold file per input) fits the weights by greedy forward selection first; ``ids``
    (or the sample) gives the rows of ``.npy`` inputs that carry none. The submission is written in the
    competition's schema (``schema``, else the one the probability files record, else KMNIST's): its columns,
    Id values and class values; probabilities for a probability target (a vote is refused there). ``plot``: the report's heatmap too
    (``agreement.png``; ``ensemble.py`` draws it only with ``--plot``). ``tracker``
    (``kfold.flows.tracking.open_tracker``) logs the ensemble, its inputs' runs and (with ``solution``) its scores."""
    from kfold.files.atomic import guard_outputs, together
    from kfold.files.probs import write_probs
    from kfold.files.schema import Schema
    from kfold.files.submission import align_ids, sample_ids, write_submission
    from kfold.scoring.ensemble import check_seed, combine, fit_weights

    out = Path(out)
    inputs, extra_inputs = check_list("inputs", inputs), check_list("extra_inputs", extra_inputs)
    fit_oof, weights = check_list("fit_oof", fit_oof, optional=True), check_list("weights", weights, optional=True)
    check_seed(seed)
    if out.suffix.lower() != ".csv":
        raise UsageError(f"{param('out')} must be a .csv file, got {out}")
    sources = [*inputs, *extra_inputs, *(fit_oof or []), *([sample] if sample else []), *([solution] if solution else []),
               *([ids] if ids else [])]
    targets = [out, *([probs_path(out)] if method in ("mean", "geomean") else [])]  # checked before anything is read
    guard_outputs(targets, sources, error=UsageError)
    if report:
        guard_outputs([Path(report), *(Path(report) / name for name in REPORT_FILES)], sources,
                      root=Path(report).parent, error=UsageError)
    multilabel = _multilabel_schema(schema, inputs)
    if multilabel is not None:  # tags or independent probability columns: kfold.flows.multilabel
        result = _multilabel(inputs, out, multilabel, method, seed, sample, report, fit_oof, weights)
        if tracker:
            _tell_tracker(tracker, out, inputs, method, solution, multilabel, report)
        return result
    fit = None
    if fit_oof is not None:
        if weights is not None:
            raise UsageError(f"give either {param('weights')} or {param('fit_oof')}, not both")
        if len(fit_oof) != len(inputs):
            raise UsageError(f"{param('fit_oof')} names {len(fit_oof)} out-of-fold files for {len(inputs)} inputs")
        fit = fit_weights(list(fit_oof), metric=fit_metric, method="geomean" if method == "geomean" else "mean",
                          rounds=fit_rounds)
        weights = fit.weights
    row_ids = None
    if ids:
        from kfold.files.readers import read_ids

        row_ids = read_ids(ids)
    elif sample and (schema is not None or any(Path(p).suffix.lower() == ".npy" for p in inputs)):
        from kfold.files.readers import read_ids

        row_ids = sample_ids(sample, schema) if schema is not None else read_ids(sample)
    ensemble = combine(list(inputs), method=method, weights=weights, seed=seed, tiebreak=tiebreak,
                       num_classes=num_classes, ids=row_ids, log_probs=log_probs, input_predictions=bool(report))
    if ensemble.kind == "oof" and sample:
        raise UsageError(f"the inputs are out-of-fold files; {param('sample')} applies to test predictions")
    if schema is None and isinstance(ensemble.meta.get("schema"), dict):
        schema = Schema.from_dict(ensemble.meta["schema"], f"the metadata of {ensemble.names[0]}")
    if schema is not None and schema.writes_probabilities and ensemble.probs is None:
        raise UsageError(f"method {method!r} gives one class per row, but the competition's submission holds "
                         f"probabilities ({', '.join(schema.target_columns[:5])}{', ...' if schema.num_classes > 5 else ''}; "
                         f"metric {schema.metric}): use method 'mean' or 'geomean'")
    order = slice(None)
    if sample:  # output in the sample's row order; checked before anything is written
        reference_ids = sample_ids(sample, schema)
        order = align_ids(ensemble.ids, reference_ids, f"the ensemble inputs ({ensemble.names[0]})",
                          f"the sample {sample}", first_line=None)
    labels = groups = scored = None
    if solution:
        from kfold.scoring.leaderboard import read_solution

        truth = read_solution(solution, schema=schema)
        rows = align_ids(truth.ids, ensemble.ids, str(solution), f"the ensemble inputs ({ensemble.names[0]})")
        labels = truth.categories[rows]
        groups = None if truth.groups is None else truth.groups[rows]
        scored = (truth.usage != "Ignored")[rows]  # Ignored rows are scored nowhere, as on the leaderboard

    result = EnsembleResult(ensemble, out, probs_path(out) if ensemble.probs is not None else None, fit=fit)
    with together():  # the submission, its probabilities and the report appear together
        write_submission(out, ensemble.ids[order], ensemble.categories[order], schema=schema,
                         probs=None if ensemble.probs is None else ensemble.probs[order])
        result.written.append(out)
        if ensemble.probs is not None:
            meta = {**ensemble.meta, "submission": str(out)}
            write_probs(probs_path(out), ensemble.ids[order], ensemble.probs[order], ensemble.classes, meta,
                        labels=None if ensemble.labels is None else ensemble.labels[order])
            result.written.append(probs_path(out))
        if report:
            from kfold.scoring.report import write_agreement_report

            result.report = write_agreement_report(ensemble, Path(report), labels=labels, groups=groups, scored=scored, plot=plot)
            result.written += [Path(report) / name for name in REPORT_FILES[:4] if plot or name != REPORT_FILES[3]]
            result.written += [Path(report) / REPORT_FILES[4]] if groups is not None else []
    if report and not plot:  # an earlier --plot's heatmap would no longer match the tables now in place
        (Path(report) / REPORT_FILES[3]).unlink(missing_ok=True)
    if tracker:
        _tell_tracker(tracker, out, inputs, method, solution, schema, report)
    return result


def _tell_tracker(tracker, out: Path, inputs, method: str, solution, schema, report) -> None:
    """Tell ``tracker`` the ensemble written to ``out`` with its local Public/Private scores (with ``solution``);
    never fails the command: a score it cannot compute is left out."""
    from kfold.scoring.leaderboard import read_solution, score_submission

    try:
        scores = score_submission(out, read_solution(solution, schema=schema), n_bootstrap=1) if solution else {}
    except Exception:  # noqa: BLE001 - the files are written; tracking only reports
        scores = {}
    tracker.ensemble_done(out, list(inputs), method, public=scores.get("public"), private=scores.get("private"),
                          report=report)


def _multilabel_schema(schema, inputs):
    """The multi-label schema of the ensemble: ``schema``, else the one the first probability input records."""
    if schema is not None:
        return schema if schema.multilabel else None
    from kfold.files.probs import is_multilabel, read_probs
    from kfold.files.schema import Schema

    first = Path(inputs[0]) if inputs else None
    if first is None or first.suffix.lower() != ".npz" or not first.is_file():
        return None
    from kfold.errors import KfoldError

    try:
        meta = read_probs(first).meta
        return Schema.from_dict(meta["schema"], str(first)) if is_multilabel(meta) else None
    except KfoldError:  # a damaged input: the ensemble's own reading names it
        return None


def _multilabel(inputs, out, schema, method, seed, sample, report, fit_oof, weights) -> EnsembleResult:
    from kfold.flows.multilabel import make_multilabel_submission

    if fit_oof is not None or weights is not None:
        raise UsageError(f"{param('weights')} / {param('fit_oof')}: a multi-label ensemble is an equal-weight mean or vote")
    made = make_multilabel_submission(list(inputs), out, schema=schema, method=method, seed=seed, sample=sample,
                                      report=report)
    result = EnsembleResult(made, out, None, written=made.written)  # type: ignore[arg-type]
    return result
