"""Command line of ``ensemble.py`` / ``kfold ensemble``: combine inputs, write the submission and report.

Everything is checked (inputs, weights, sample, solution) before the first file is written.
Nothing here imports torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.errors import ArgumentParser, UsageError
from kfold.commands import args as flags
from kfold.files.rundir import PROBS_SUFFIX

DESCRIPTION = """\
Combine probability files and/or submission CSVs (Id,Category) into one submission. Probability
files: kfold's .npz or .csv (first line '#kfold-probs'), other tools' CSVs 'Id,<class 0>,...,<class C-1>'
(headers 0..C-1 line up by position) and .npy arrays (rows x classes, Ids from --ids or --sample);
--log-probs when they hold natural-log probabilities. mean/geomean/rank need probability files for
every input; vote also takes hard-label submissions. rank averages each class column's rank among the
rows (for models calibrated differently). Writes OUT (Id,Category, in the sample's row order when
--sample is given) and, for mean/geomean, the ensemble probabilities next to it (OUT stem +
'{suffix}').""".format(suffix=PROBS_SUFFIX)


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
    parser.add_argument("--fit-metric", choices=("accuracy", "logloss"), default=None,
                        help="what --fit-weights optimises (default: accuracy)")
    parser.add_argument("--fit-rounds", type=flags.int_at_least(1, 100_000), metavar="N", default=None, help="selection rounds for --fit-weights (default: 25)")
    parser.add_argument("--seed", type=flags.seed, default=0, help="seed of the random vote tie-break, 0..2**32-1 (default: 0)")
    parser.add_argument("--tiebreak", choices=("random", "prob"), default=None,
                        help="vote ties: uniformly random (default) among tied classes, or highest summed probability")
    parser.add_argument("--num-classes", type=flags.int_at_least(2, 1_000_000), metavar="N", help="number of classes when every input is a submission CSV")
    parser.add_argument("--sample", type=Path, help="sample_submission.csv: output row order and Id check")
    parser.add_argument("--solution", type=Path, help="solution.csv (Id,Category[,Usage]): accuracies in the report")
    parser.add_argument("--report", type=Path, metavar="DIR", help="write the agreement report into DIR "
                        "(agreement.csv, inputs.csv, report.md; groups.csv with a solution's groups)")
    parser.add_argument("--plot", action="store_true", help="with --report: also draw the agreement heatmap "
                        "(agreement.png; drawing costs more than the tables)")
    parser.add_argument("--ids", type=Path, metavar="FILE",
                        help="row Ids of .npy inputs (and of CSVs without an Id column): a CSV with an Id column "
                             "or a 1-D .npy; default: the --sample's Ids")
    parser.add_argument("--log-probs", action="store_true", help="probability inputs hold natural-log probabilities")
    from kfold.commands.args import add_track_flags

    add_track_flags(parser)
    return parser


def _parse_weights(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got '{text}'") from None




def main(argv: Sequence[str] | None = None, prog: str = "ensemble.py") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.flows.ensembling import make_submission

    if args.weights and args.fit_weights:
        raise UsageError("give either --weights or --fit-weights, not both")
    if not args.fit_weights and (args.fit_metric is not None or args.fit_rounds is not None):
        raise UsageError("--fit-metric and --fit-rounds go with --fit-weights")
    if args.tiebreak is not None and args.method != "vote":
        raise UsageError(f"--tiebreak breaks ties of --method vote; --method {args.method} has none")
    args.fit_metric = args.fit_metric or "accuracy"
    args.fit_rounds = 25 if args.fit_rounds is None else args.fit_rounds
    args.tiebreak = args.tiebreak or "random"
    if args.plot and not args.report:
        raise UsageError("--plot draws the agreement report's heatmap: it needs --report DIR")
    oof = [part for part in args.fit_weights.split(",") if part] if args.fit_weights else None
    from kfold.commands.args import open_tracker

    tracker = open_tracker(args, Path("runs"))  # checked before anything is written
    made = make_submission(args.inputs, args.out, method=args.method,
                           weights=_parse_weights(args.weights) if args.weights else None, fit_oof=oof,
                           fit_metric=args.fit_metric, fit_rounds=args.fit_rounds, seed=args.seed, tiebreak=args.tiebreak,
                           num_classes=args.num_classes, sample=args.sample, solution=args.solution, report=args.report,
                           ids=args.ids, log_probs=args.log_probs, plot=args.plot, tracker=tracker)
    # printed only once every file is in place: a closed pipe (| head) cannot leave outputs half-written
    if made.fit is not None:
        fit = made.fit
        print(f"fitted weights (OOF {fit.metric} {fit.score:.5f}; best single "
              f"{(fit.single_scores.max() if fit.metric == 'accuracy' else fit.single_scores.min()):.5f}):")
        for name, oof_name, w in zip(args.inputs, oof, fit.weights):
            print(f"  {w:.4f}  {name}  (from {oof_name})")
    ensemble = made.ensemble
    print(f"{args.method} of {len(ensemble.names)} inputs, {len(ensemble.ids)} rows"
          + (f", {ensemble.tied_rows} tied rows broken by {args.tiebreak}" if args.method == "vote" else ""))
    if made.report is not None:
        print(made.report)
    for path in made.written:
        print(f"wrote {path}")
    return 0
