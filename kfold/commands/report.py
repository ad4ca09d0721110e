"""``kfold report RUN_DIR`` (one self-contained HTML page) and ``kfold errors RUN_DIR`` (error analysis files)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.errors import ArgumentParser
from kfold.commands import args as flags

REPORT_HELP = "one self-contained HTML page for a trained run (curves, confusion, errors, folds, ensembles, leaderboard)"
ERRORS_HELP = "out-of-fold error analysis of a run: confusion matrix with class names, per-class accuracy, error gallery"


def build_report_parser(prog: str = "kfold report") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=(
        "Write one HTML file for a trained run: summary table, learning curves with the learning rate, the "
        "out-of-fold confusion matrix, per-class accuracy, the most confident out-of-fold mistakes, the fold table, "
        "and when present the ensembles' agreement (RUN_DIR/report-*) and the leaderboard. Images are embedded: "
        "the file opens offline. The error analysis files also go to RUN_DIR/analysis/."))
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--leaderboard", type=Path, metavar="DIR",
                   help="folder holding leaderboard.csv (default: RUN_DIR/leaderboard when present)")
    p.add_argument("--out", type=Path, metavar="FILE.html", help="output file (default: RUN_DIR/report.html)")
    p.add_argument("--data", help="the run's data, when it moved since training (default: the one in the run config)")
    p.add_argument("--tune", type=Path, metavar="DIR",
                   help="add a search's section (trials by state, the best trials and their parameters, the figures) "
                        "from the folder 'kfold tune --out' wrote; 'kfold report TUNE_DIR' alone gives that section")
    return p


def build_errors_parser(prog: str = "kfold errors") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=(
        "Error analysis from a run's out-of-fold predictions: confusion_oof.csv/.png (class names as labels), "
        "per_class_accuracy.csv/.md/.png, errors.csv and errors_gallery.png (misclassified images with true and "
        "predicted class and confidence)."))
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: RUN_DIR/analysis)")
    p.add_argument("--data", help="the run's data, when it moved since training (default: the one in the run config)")
    p.add_argument("--gallery", type=flags.int_at_least(1, 100_000), default=32, metavar="N", help="images in the gallery (default: %(default)s)")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold report") -> int:
    from kfold.errors import UsageError
    from kfold.scoring.errors_analysis import per_class_markdown
    from kfold.scoring.html_report import write_html_report

    args = build_report_parser(prog).parse_args(argv)
    if args.leaderboard is not None and not (args.leaderboard / "leaderboard.csv").is_file():
        raise UsageError(f"{prog}: --leaderboard {args.leaderboard}: holds no leaderboard.csv (give the folder that "
                         "'kfold leaderboard --out' or 'kfold run' wrote)")
    out, analysis = write_html_report(args.run_dir, args.out, args.leaderboard, args.data, tune_dir=args.tune)
    if analysis is None:  # a search's folder: the page of its section
        print(f"wrote {out} (the search in {args.run_dir})")
        return 0
    print(per_class_markdown(analysis))
    for note in analysis.notes:
        print(note)
    print(f"wrote {out} (and the error analysis in {args.run_dir / 'analysis'})")
    return 0


def errors_main(argv: Sequence[str] | None = None, prog: str = "kfold errors") -> int:
    from kfold.errors import DataError, UsageError
    from kfold.scoring.errors_analysis import analyze_run, guard_analysis, per_class_markdown, write_analysis

    args = build_errors_parser(prog).parse_args(argv)
    if args.gallery < 1:
        raise UsageError(f"--gallery {args.gallery}: must be at least 1")
    if not args.run_dir.is_dir():
        raise DataError(f"{args.run_dir}: no such run directory")
    guard_analysis(args.run_dir, args.out, data=args.data)  # before anything is read
    analysis = analyze_run(args.run_dir, data=args.data, gallery_size=args.gallery)
    files = write_analysis(analysis, args.out)
    if getattr(analysis, "multilabel", False):
        print(f"out-of-fold {analysis.metric} {analysis.score:.4f} on {len(analysis.labels)} images; {len(analysis.errors)} "
              f"with a missed or spurious tag\n")
    else:
        print(f"out-of-fold accuracy {analysis.accuracy:.4f} on {len(analysis.labels)} rows; {len(analysis.errors)} wrong\n")
    print(per_class_markdown(analysis))
    for note in analysis.notes:
        print(note)
    for path in files.values():
        print(f"wrote {path}")
    return 0
