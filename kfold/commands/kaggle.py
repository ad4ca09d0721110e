"""The Kaggle loop: ``kfold submit`` (limits, upload, log, --wait for the score), ``kfold submissions``
(the log against Kaggle's list: table, CSV, CV-vs-public PNG), ``kfold leaderboard -c COMP --remote``
and ``kfold download -c COMP --data DIR``.

Parsing and printing only: the work is ``kfold.flows.kaggle_loop`` (which reaches the kaggle client only
through ``kfold.kaggle_api``, validates every input before anything is uploaded or written, and writes every
file through the atomic writers). Nothing here imports torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from kfold.commands.args import finite_float, int_at_least, open_tracker
from kfold.errors import DataError, UsageError
from kfold.files.rundir import RunDir

# the flows' defaults, spelled here for the help texts without importing the flows (pandas) for --help
DEFAULT_WAIT = 3600.0
MAX_POLL_INTERVAL = 60.0
BACKOFF = 1.6
DEFAULT_TOP = 10
MAX_DIFFERING = 0.001
DATASET_WAIT = 1800.0
KERNEL_WAIT = 43200.0
CSV_ONLY = ("sample", "num_classes", "data", "solution")


# ---------------------------------------------------------------- parsers (kept here so cli.py stays small)

_positive = finite_float(0, 10 ** 7, low_open=True)  # seconds: finite and positive (inf would wait forever)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1), got {text}")
    return value


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="the competition's data folder: its sample_submission.csv checks the Ids "
                             "(default: data/COMP when it has one)")
    parser.add_argument("--wait", nargs="?", type=_positive, const=DEFAULT_WAIT, metavar="MAX_SECONDS",
                        help=f"wait for the score (default at most {DEFAULT_WAIT:.0f} s); exit 1 on a scoring error")
    parser.add_argument("--poll-interval", type=_positive, default=5.0, metavar="SECONDS",
                        help=f"first wait between status checks; it grows x{BACKOFF} up to {MAX_POLL_INTERVAL:.0f} s "
                             "(default: 5)")
    parser.add_argument("--log", type=Path, help="submission log (default: submissions/log/COMP.csv)")
    parser.add_argument("--solution", type=Path, help="local solution.csv: log the local leaderboard score too")
    parser.add_argument("--run", type=Path, action="append", default=[], metavar="RUN_DIR",
                        help="run directory behind the submission, when the files' metadata does not say (repeatable)")
    code = parser.add_argument_group("code competitions (--code)")
    code.add_argument("--code", action="store_true",
                      help="submit a package's notebook (kfold package): upload its dataset (a new version only when "
                           "its content changed), push and run the notebook, compare its output with the local "
                           "submission, submit it; a re-run continues where an interrupted one stopped")
    code.add_argument("--package", type=Path, metavar="PKG", help="with --code: the folder kfold package wrote")
    code.add_argument("--max-differing", type=_share, default=MAX_DIFFERING, metavar="SHARE",
                      help="with --code: the share of rows the notebook's output may differ in from the local "
                           f"submission (near-ties another CPU or torch flips); beyond it nothing is submitted "
                           f"(default: {MAX_DIFFERING:g})")
    code.add_argument("--dataset-wait", type=_positive, default=DATASET_WAIT, metavar="SECONDS",
                      help=f"with --code: wait at most this long for the dataset to be ready (default: {DATASET_WAIT:.0f})")
    code.add_argument("--kernel-wait", type=_positive, default=KERNEL_WAIT, metavar="SECONDS",
                      help=f"with --code: wait at most this long for the notebook's run (default: {KERNEL_WAIT:.0f})")
    code.add_argument("--kernel-timeout", type=int_at_least(1), metavar="SECONDS",
                      help="with --code: Kaggle stops the notebook's run after this long (kaggle kernels push --timeout)")


def add_submissions_parser(sub) -> None:
    parser = sub.add_parser("submissions", help="the submission log against Kaggle's list: local CV vs public score",
                            description="Merge the local submission log with Kaggle's list of submissions (scores "
                                        "filled in as they complete): print a table, write a CSV, a PNG of every "
                                        "submission's public score over time (local CV beside it where known) and, "
                                        "with two or more local CVs, a PNG of local CV against public score with the "
                                        "Pearson correlation and the rank agreement. The log is read strictly; a "
                                        "damaged log stops the command before anything is written.")
    parser.add_argument("--competition", "-c", required=True)
    parser.add_argument("--log", type=Path, help="submission log (default: submissions/log/COMP.csv)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="folder for COMP-submissions.csv, COMP-scores-over-time.png and COMP-cv-vs-public.png "
                             "(default: the log's folder)")
    from kfold.commands.args import add_track_flags

    add_track_flags(parser)  # --track mlflow: every public score logged to the tracked ensemble that made the file


def add_remote_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--competition", "-c", help="competition for --remote")
    parser.add_argument("--remote", action="store_true",
                        help="fetch Kaggle's public leaderboard (all pages) and show where each of our submissions "
                             "would rank; with --solution, beside the local leaderboard")
    parser.add_argument("--log", type=Path, help="submission log for --remote (default: submissions/log/COMP.csv)")
    parser.add_argument("--top", type=int_at_least(1), default=DEFAULT_TOP, metavar="N",
                        help=f"with --remote: show the first N teams of the public leaderboard, our submissions "
                             f"placed where they would rank (default: {DEFAULT_TOP})")


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--competition", "-c", dest="competition_opt", metavar="COMP")
    parser.add_argument("--data", "--data-dir", dest="data_dir", type=Path, metavar="DIR",
                        help="folder to unpack into (default: data/COMP)")
    parser.add_argument("--max-size", default="8G", help="refuse an archive unpacking to more (default: 8G)")
    parser.add_argument("--force", action="store_true", help="replace files already in DIR")


# ---------------------------------------------------------------- submit

def submit_command(args) -> int:
    if args.code:
        return code_submit_command(args)
    if args.file is None:
        raise UsageError("kfold submit: give the submission file SUB (or, for a code competition, --code --package PKG)")
    if args.package is not None:
        raise UsageError(f"--package {args.package} goes with --code (a code competition); a CSV is uploaded as SUB")
    from kfold.flows import kaggle_loop

    if args.num_classes is not None and args.num_classes < 2:
        raise UsageError(f"--num-classes must be at least 2, got {args.num_classes}")
    for run_dir in args.run:
        if not RunDir(run_dir).summary.is_file():
            raise UsageError(f"--run {run_dir}: not a finished run directory (no {RunDir(run_dir).summary.name})")
    sample = args.sample
    if sample is None:
        sample = kaggle_loop.find_sample(args.competition, args.data)
        if sample is None and args.data is not None:
            raise DataError(f"{args.data}: no sample_submission.csv here; give --sample")
    done = kaggle_loop.submit(args.file, args.competition, args.message, sample=sample, num_classes=args.num_classes,
                              log=args.log, solution=args.solution, runs=args.run, wait=args.wait,
                              poll_interval=args.poll_interval, echo=print,
                              tracker=open_tracker(args, Path("runs")))
    _print_score(done.result)
    return 0


def code_submit_command(args) -> int:
    from kfold.flows.code_submission import submit_code

    if args.file is not None:
        raise UsageError(f"--code submits the package's notebook, not a file: drop {args.file} and give --package PKG")
    if args.package is None:
        raise UsageError("--code needs --package PKG (the folder kfold package wrote)")
    given = [name for name in CSV_ONLY if getattr(args, name) is not None] + (["run"] if args.run else [])
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} is for CSV uploads; with --code the package holds the "
                         "competition's schema and the local submission")
    done = submit_code(args.package, args.competition, args.message, wait=args.wait, poll_interval=args.poll_interval,
                       max_differing=args.max_differing, dataset_wait=args.dataset_wait, kernel_wait=args.kernel_wait,
                       timeout=args.kernel_timeout, log=args.log, echo=print,
                       tracker=open_tracker(args, Path("runs")))
    _print_score(done.result)
    return 0


def _print_score(result: dict | None) -> None:
    """Kaggle's score of a submission waited for (``--wait``): the public one, and the private one when shown."""
    if result is not None:
        private = f" (private {result['private_score']:.5f})" if result.get("private_score") is not None else ""
        public = "none yet" if result.get("public_score") is None else f"{result['public_score']:.5f}"
        print(f"public score: {public}{private}")


# ---------------------------------------------------------------- submissions

def submissions_command(args) -> int:
    from kfold.flows import kaggle_loop

    report = kaggle_loop.submissions(args.competition, log=args.log, out=args.out,
                                     tracker=open_tracker(args, Path("runs")))
    if not report.logged:
        print(f"{report.log}: no logged submissions yet; showing Kaggle's list only")
    if report.table.empty:
        print(f"no submissions to '{report.competition}' yet")
        return 0
    print(_table_text(report.table))
    print(kaggle_loop.agreement_line(report.stats))
    for path in report.written:
        print(f"wrote {path}")
    if report.cv_vs_public not in report.written:
        print("no CV-vs-public picture: it needs at least 2 submissions with both a local CV and a public score")
    return 0


def _table_text(table) -> str:
    code = "kernel" in table and (table["kernel"].fillna("") != "").any()  # code submissions: their notebook
    shown = table[["ref", "date", "file", "message", "status", "local_cv", "public_score", "private_score",
                   "local_public"] + (["kernel"] if code else [])].copy()
    shown["file"] = shown["file"].map(lambda f: Path(str(f)).name if f else "")
    shown["message"] = shown["message"].map(lambda m: str(m)[:32])
    return shown.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.5f}")


# ---------------------------------------------------------------- remote leaderboard

def remote_leaderboard_command(args) -> int:
    import numpy as np

    from kfold.flows import kaggle_loop

    if not args.competition:
        raise UsageError("--remote needs --competition/-c COMP")
    result = kaggle_loop.remote_leaderboard(args.competition, args.out, log=args.log, solution=args.solution,
                                            public_fraction=args.public_fraction, seed=args.seed,
                                            inputs=args.submissions)
    competition, scores = result.competition, result.scores
    if len(scores):
        print(f"public leaderboard of '{competition}': {len(result.board)} teams, best {scores[0]:.5f}, "
              f"median {np.median(scores):.5f} ({'higher' if result.higher_is_better else 'lower'} is better)")
        print(_top_text(kaggle_loop.board_with_ours(result, args.top), args.top, len(result.board)))
    else:
        print(f"public leaderboard of '{competition}': empty")
    if result.ours.empty:
        print(f"none of our submissions has a public score yet (see kfold submissions -c {competition})")
    else:
        print("our submissions, where they would rank on the public leaderboard:")
        ours = result.ours
        print(ours.assign(message=ours["message"].map(lambda m: str(m)[:32])).to_string(
            index=False, na_rep="", float_format=lambda v: f"{v:.5f}", formatters={"top_percent": "{:.1f}%".format}))
    for path in reversed(result.written):
        print(f"wrote {path}")
    return 0


def _top_text(frame, top: int, teams: int) -> str:
    """The top of the leaderboard as ``kaggle competitions leaderboard --show`` prints it, with our submissions
    (``*``) where they would rank; ours below the top after a '...' line."""
    rows, gap = [], False
    for _, row in frame.iterrows():
        if row["ours"] and not gap and rows and row["rank"] > frame.loc[~frame["ours"], "rank"].max():
            rows.append(("...", "", "", ""))
            gap = True
        rank = "" if row["rank"] != row["rank"] else f"{int(row['rank'])}"
        score = "" if row["score"] != row["score"] else f"{row['score']:.5f}"
        team = f"* ours: {str(row['team'])[:32]} (ref {row['ref']})" if row["ours"] else str(row["team"])[:40]
        rows.append((rank, team, score, ""))
    width = max([len(r[1]) for r in rows] + [4])
    lines = [f"top {min(top, teams)} of {teams} teams, and where our submissions (*) would rank:",
             f"{'rank':>5}  {'team':<{width}}  score"]
    lines += [f"{rank:>5}  {team:<{width}}  {score}".rstrip() for rank, team, score, _ in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- download

def download_command(args) -> int:
    from kfold.flows import kaggle_loop

    if args.competition and args.competition_opt and args.competition != args.competition_opt:
        raise UsageError(f"two competitions given: {args.competition} and -c {args.competition_opt}")
    name = args.competition_opt or args.competition
    if not name:
        raise UsageError("kfold download: give the competition: -c COMP")
    done = kaggle_loop.download(name, args.data_dir, max_size=args.max_size, force=args.force)
    for path in done.files[:20]:
        print(f"wrote {path}")
    if len(done.files) > 20:
        print(f"... and {len(done.files) - 20} more files in {done.folder}")
    if done.layout is None:
        print(f"no layout kfold reads recognised in {done.folder} (arrays, MNIST-MIX, pixel CSVs, image files with a "
              f"labels CSV, class folders); 'kfold inspect {done.folder}' says what is missing; see README "
              "(Your own competition)")
    else:
        folder, description = done.layout
        print(f"layout: {description} in {folder}: use --data {folder}")
    return 0
