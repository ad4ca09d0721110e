"""Command line of ``ensemble.py`` / ``kfold ensemble``: combine inputs, write the submission and report.

Everything is checked (inputs, weights, sample, solution) before the first file is written.
Nothing here imports torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.errors import ArgumentParser, UsageError

DESCRIPTION = """\
Combine probability files and/or submission CSVs (Id,Category) into one submission. Probability
files: kfold's .npz or .csv (first line '#kfold-probs'), other tools' CSVs 'Id,<class 0>,...,<class C-1>'
(headers 0..C-1 line up by position) and .npy arrays (rows x classes, Ids from --ids or --sample);
--log-probs when they hold natural-log probabilities. mean/geomean/rank need probability files for
every input; vote also takes hard-label submissions. rank averages each class column's rank among the
rows (for models calibrated differently). Writes OUT (Id,Category, in the sample's row order when
--sample is given) and, for mean/geomean, the ensemble probabilities next to it (OUT stem +
'.probs.npz')."""


def build_parser(prog: str = "ensemble.py") -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="probability files and/or submission CSVs")
    parser.add_argument("--method", choices=("mean", "geomean", "vote", "rank"), default="mean", help="default: mean")
    parser.add_argument("--out", required=True, type=Path, help="output submission CSV, e.g. submissions/NAME.csv")
    parser.add_argument("--weights", help="comma-separated non-negative weights, one per INPUT")
    parser.add_argument("--fit-weights", metavar="OOF1,OOF2,...",
                        help="fit weights by greedy forward selection on these out-of-fold probability files "
                             "(one per INPUT, same order) and apply them to the INPUTs")
    parser.add_argument("--fit-metric", choices=("accuracy", "logloss"), default="accuracy",
                        help="what --fit-weights optimises (default: accuracy)")
    parser.add_argument("--fit-rounds", type=int, default=25, help="selection rounds for --fit-weights (default: 25)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random vote tie-break, 0..2**32-1 (default: 0)")
    parser.add_argument("--tiebreak", choices=("random", "prob"), default="random",
                        help="vote ties: uniformly random among tied classes, or highest summed probability")
    parser.add_argument("--num-classes", type=int, help="number of classes when every input is a submission CSV")
    parser.add_argument("--sample", type=Path, help="sample_submission.csv: output row order and Id check")
    parser.add_argument("--solution", type=Path, help="solution.csv (Id,Category[,Usage]): accuracies in the report")
    parser.add_argument("--report", type=Path, metavar="DIR", help="write the agreement report into DIR")
    parser.add_argument("--ids", type=Path, metavar="FILE",
                        help="row Ids of .npy inputs (and of CSVs without an Id column): a CSV with an Id column "
                             "or a 1-D .npy; default: the --sample's Ids")
    parser.add_argument("--log-probs", action="store_true", help="probability inputs hold natural-log probabilities")
    return parser


def _parse_weights(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got '{text}'") from None


REPORT_FILES = ("agreement.csv", "inputs.csv", "report.md", "agreement.png", "groups.csv")


def probs_path(out: Path) -> Path:
    """Where the ensemble probabilities of submission ``out`` go."""
    return out.with_name(out.stem + ".probs.npz")


def main(argv: Sequence[str] | None = None, prog: str = "ensemble.py") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.scoring.ensemble import combine, fit_weights
    from kfold.files.probs import write_probs
    from kfold.files.submission import align_ids, read_submission, write_submission

    from kfold.scoring.ensemble import check_seed

    check_seed(args.seed)
    if args.weights and args.fit_weights:
        raise UsageError("give either --weights or --fit-weights, not both")
    if args.out.suffix.lower() != ".csv":
        raise UsageError(f"--out must be a .csv file, got {args.out}")
    weights = _parse_weights(args.weights) if args.weights else None
    if args.fit_weights:
        oof = [part for part in args.fit_weights.split(",") if part]
        if len(oof) != len(args.inputs):
            raise UsageError(f"--fit-weights names {len(oof)} out-of-fold files for {len(args.inputs)} inputs")
        fit = fit_weights(oof, metric=args.fit_metric, method="geomean" if args.method == "geomean" else "mean",
                          rounds=args.fit_rounds)
        weights = fit.weights
        print(f"fitted weights (OOF {fit.metric} {fit.score:.5f}; best single "
              f"{(fit.single_scores.max() if fit.metric == 'accuracy' else fit.single_scores.min()):.5f}):")
        for name, oof_name, w in zip(args.inputs, oof, weights):
            print(f"  {w:.4f}  {name}  (from {oof_name})")

    row_ids = None
    if args.ids or args.sample:
        from kfold.files.readers import read_ids

        row_ids = read_ids(args.ids or args.sample)
    ensemble = combine(args.inputs, method=args.method, weights=weights, seed=args.seed, tiebreak=args.tiebreak,
                       num_classes=args.num_classes, ids=row_ids, log_probs=args.log_probs,
                       input_predictions=bool(args.report))
    if ensemble.kind == "oof" and args.sample:
        raise UsageError("the inputs are out-of-fold files; --sample applies to test predictions")
    order = slice(None)
    if args.sample:  # output in the sample's row order; checked before anything is written
        sample = read_submission(args.sample)
        order = align_ids(ensemble.ids, sample.ids, f"the ensemble inputs ({ensemble.names[0]})",
                          f"the sample {args.sample}", first_line=None)
    labels = groups = scored = None
    if args.solution:
        from kfold.scoring.leaderboard import read_solution
        solution = read_solution(args.solution)
        rows = align_ids(solution.ids, ensemble.ids, str(args.solution), f"the ensemble inputs ({ensemble.names[0]})")
        labels = solution.categories[rows]
        groups = None if solution.groups is None else solution.groups[rows]
        scored = (solution.usage != "Ignored")[rows]  # Ignored rows are scored nowhere, as on the leaderboard

    from kfold.files.atomic import refuse_overwriting_inputs

    sources = [*args.inputs, *(oof if args.fit_weights else []), *([args.sample] if args.sample else []),
               *([args.solution] if args.solution else []), *([args.ids] if args.ids else [])]
    targets = [args.out, *([probs_path(args.out)] if ensemble.probs is not None else [])]
    if args.report:
        targets += [args.report / name for name in REPORT_FILES]
    refuse_overwriting_inputs(sources, targets, UsageError)

    write_submission(args.out, ensemble.ids[order], ensemble.categories[order])
    written = [args.out]
    if ensemble.probs is not None:
        meta = {**ensemble.meta, "submission": str(args.out)}
        write_probs(probs_path(args.out), ensemble.ids[order], ensemble.probs[order], ensemble.classes, meta,
                    labels=None if ensemble.labels is None else ensemble.labels[order])
        written.append(probs_path(args.out))
    print(f"{args.method} of {len(ensemble.names)} inputs, {len(ensemble.ids)} rows"
          + (f", {ensemble.tied_rows} tied rows broken by {args.tiebreak}" if args.method == "vote" else ""))
    if args.report:
        from kfold.scoring.report import write_report
        print(write_report(ensemble, args.report, labels=labels, groups=groups, scored=scored))
        written += [args.report / name for name in REPORT_FILES[:4]]
        written += [args.report / "groups.csv"] if groups is not None else []
    for path in written:
        print(f"wrote {path}")
    return 0

