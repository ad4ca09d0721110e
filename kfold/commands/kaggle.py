"""The Kaggle loop: ``kfold submit`` (limits, upload, log, --wait for the score), ``kfold submissions``
(the log against Kaggle's list: table, CSV, CV-vs-public PNG), ``kfold leaderboard -c COMP --remote``
and ``kfold download -c COMP --data DIR``.

The kaggle client is reached only through ``kfold.kaggle_api``; nothing is written before every input
was validated; every file goes through the atomic writers. Nothing here imports torch.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from kfold.files.rundir import RunDir
from kfold.errors import DataError, UsageError

DEFAULT_WAIT = 3600.0
MAX_POLL_INTERVAL = 60.0
BACKOFF = 1.6
DATA_ROOT = Path("data")


# ---------------------------------------------------------------- parsers (kept here so cli.py stays small)

def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
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


def add_submissions_parser(sub) -> None:
    parser = sub.add_parser("submissions", help="the submission log against Kaggle's list: local CV vs public score",
                            description="Merge the local submission log with Kaggle's list of submissions (scores "
                                        "filled in as they complete): print a table, write a CSV and a PNG of local "
                                        "CV against public score with the Pearson correlation and the rank agreement.")
    parser.add_argument("--competition", "-c", required=True)
    parser.add_argument("--log", type=Path, help="submission log (default: submissions/log/COMP.csv)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="folder for COMP-submissions.csv and COMP-cv-vs-public.png (default: the log's folder)")


def add_remote_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--competition", "-c", help="competition for --remote")
    parser.add_argument("--remote", action="store_true",
                        help="fetch Kaggle's public leaderboard (all pages) and show where each of our submissions "
                             "would rank; with --solution, beside the local leaderboard")
    parser.add_argument("--log", type=Path, help="submission log for --remote (default: submissions/log/COMP.csv)")


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--competition", "-c", dest="competition_opt", metavar="COMP")
    parser.add_argument("--data", "--data-dir", dest="data_dir", type=Path, metavar="DIR",
                        help="folder to unpack into (default: data/COMP)")
    parser.add_argument("--max-size", default="8G", help="refuse an archive unpacking to more (default: 8G)")
    parser.add_argument("--force", action="store_true", help="replace files already in DIR")


# ---------------------------------------------------------------- submit

def find_sample(args) -> Path | None:
    if args.sample is not None:
        return args.sample
    folders = [args.data] if args.data is not None else [DATA_ROOT / args.competition]
    for folder in folders:
        found = detect_layout(folder) if folder.is_dir() else None
        for candidate in ([found[0]] if found else []) + [folder]:
            if (candidate / "sample_submission.csv").is_file():
                return candidate / "sample_submission.csv"
        if args.data is not None:
            raise DataError(f"{args.data}: no sample_submission.csv here; give --sample")
    return None


def submit_command(args) -> int:
    from kfold import kaggle_api
    from kfold.files.submission import validate_submission
    from kfold.files.submission_log import append_log, default_log_path, local_scores, now_utc, provenance, sha256_of

    competition = kaggle_api.check_competition(args.competition)
    if args.num_classes is not None and args.num_classes < 2:
        raise UsageError(f"--num-classes must be at least 2, got {args.num_classes}")
    for run_dir in args.run:
        if not RunDir(run_dir).summary.is_file():
            raise UsageError(f"--run {run_dir}: not a finished run directory (no {RunDir(run_dir).summary.name})")
    sample = find_sample(args)
    from kfold.data.classes import resolve_num_classes

    num_classes, _ = resolve_num_classes(args.num_classes, sample)  # the competition's classes when it is known
    submission = validate_submission(args.file, sample, num_classes=num_classes)
    print(f"ok: {args.file}: {len(submission.ids)} rows")
    print(f"Ids match {sample}" if sample else "no sample_submission.csv found: Ids not checked (give --sample or --data)")
    log_path = args.log or default_log_path(competition)
    origin = provenance(args.file, args.run)
    scores = local_scores(args.file, args.solution)  # validates the solution before anything is uploaded
    if origin["local_cv"] != "":
        print(f"local CV {origin['local_cv']:.5f} ({origin['local_cv_source']})")
    if args.solution:
        print(f"local leaderboard: public {scores['local_public']:.5f}, private {scores['local_private']:.5f}")
    digest = sha256_of(args.file)

    client = kaggle_api.connect()
    limits = client.limits(competition)
    if not limits.joined:
        raise DataError(f"kaggle: '{competition}': you have not joined this competition (no team, 0 submissions "
                        f"allowed); accept its rules at https://www.kaggle.com/competitions/{competition}/rules")
    what = "in total" if limits.limited_by_total else "today"
    if limits.num_allowed_now <= 0:
        raise DataError(f"kaggle: no submissions left {what} for '{competition}' ({limits.num_today} used today); "
                        "nothing uploaded" + ("" if limits.limited_by_total else ", the allowance resets at 00:00 UTC"))
    print(f"kaggle: {limits.num_today} submission(s) used today, {limits.num_allowed_now} left {what}")
    reply, ref = client.submit(args.file, competition, args.message)
    print(f"submitted: {reply}" + (f" (ref {ref})" if ref else ""))
    append_log(log_path, {"time": now_utc(), "competition": competition, "file": str(args.file), "sha256": digest,
                          "rows": len(submission.ids), "message": args.message, "ref": ref or "", **origin, **scores})
    print(f"logged in {log_path}")
    if args.wait is None:
        return 0
    if ref is None:
        raise DataError("kaggle: the server returned no submission ref; cannot wait for the score "
                        f"(see kfold submissions -c {competition})")
    result = wait_for_score(client, competition, ref, args.wait, args.poll_interval)
    if result["status"] == "ERROR":
        raise DataError(f"kaggle: submission {ref} failed scoring: {result['error'] or 'no description given'}")
    private = f" (private {result['private_score']:.5f})" if result.get("private_score") is not None else ""
    public = "none yet" if result.get("public_score") is None else f"{result['public_score']:.5f}"
    print(f"public score: {public}{private}")
    return 0


def wait_for_score(client, competition: str, ref: int, max_seconds: float, interval: float,
                   clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                   say: Callable[[str], None] = print) -> dict:
    """Poll Kaggle's list until submission ``ref`` is COMPLETE or ERROR; back off x1.6 up to 60 s.

    A 429 answer is retried inside the client after its ``Retry-After``. A submission not yet listed
    (eventual consistency) counts as pending. Raises DataError when ``max_seconds`` pass first.
    """
    deadline = clock() + max_seconds
    say(f"waiting for the score of {ref} (at most {max_seconds:g} s)")
    checks = 0
    while True:
        checks += 1
        row = next((r for r in client.submissions(competition, max_pages=1) if r["ref"] == ref), None)
        status = row["status"] if row else "not listed yet"
        if row and status in ("COMPLETE", "ERROR"):
            return row
        left = deadline - clock()
        if left <= 0:
            raise DataError(f"kaggle: submission {ref} is still {status} after {max_seconds:g} s; "
                            f"see its score later with: kfold submissions -c {competition}")
        wait = min(interval, left)
        say(f"  {status} (check {checks}); next check in {wait:.1f} s")
        sleep(wait)
        interval = min(interval * BACKOFF, max(MAX_POLL_INTERVAL, interval))


# ---------------------------------------------------------------- submissions

def submissions_command(args) -> int:
    from kfold import kaggle_api
    from kfold.files.atomic import write_csv
    from kfold.files.submission_log import agreement, agreement_line, default_log_path, merge, plot_cv_vs_public, read_log

    competition = kaggle_api.check_competition(args.competition)
    log_path = args.log or default_log_path(competition)
    log = read_log(log_path)
    out = args.out or log_path.parent
    if not len(log):
        print(f"{log_path}: no logged submissions yet; showing Kaggle's list only")
    remote = kaggle_api.connect().submissions(competition)
    table = merge(log, remote)
    if table.empty:
        print(f"no submissions to '{competition}' yet")
        return 0
    print(_table_text(table))
    stats = agreement(table)
    print(agreement_line(stats))
    csv_path = out / f"{competition}-submissions.csv"
    png_path = out / f"{competition}-cv-vs-public.png"
    write_csv(csv_path, table, lineterminator="\n")
    print(f"wrote {csv_path}")
    if plot_cv_vs_public(table, stats, png_path, competition):
        print(f"wrote {png_path}")
    else:
        print("no picture: it needs at least 2 submissions with both a local CV and a public score")
    return 0


def _table_text(table) -> str:
    shown = table[["ref", "date", "file", "message", "status", "local_cv", "public_score", "private_score",
                   "local_public"]].copy()
    shown["file"] = shown["file"].map(lambda f: Path(str(f)).name if f else "")
    shown["message"] = shown["message"].map(lambda m: str(m)[:32])
    return shown.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.5f}")


# ---------------------------------------------------------------- remote leaderboard

def would_rank(scores, score: float, higher_is_better: bool) -> int:
    """1 + the number of leaderboard entries strictly better than ``score``."""
    better = scores > score if higher_is_better else scores < score
    return int(better.sum()) + 1


def remote_leaderboard_command(args) -> int:
    from kfold import kaggle_api
    from kfold.files.atomic import write_csv
    import numpy as np
    import pandas as pd

    from kfold.files.submission_log import default_log_path, merge, read_log, sha256_of

    if not args.competition:
        raise UsageError("--remote needs --competition/-c COMP")
    competition = kaggle_api.check_competition(args.competition)
    log = read_log(args.log or default_log_path(competition))
    solution = None
    if args.solution is not None:
        from kfold.scoring.leaderboard import read_solution

        solution = read_solution(args.solution, public_fraction=args.public_fraction, seed=args.seed)
    client = kaggle_api.connect()
    board = pd.DataFrame(client.leaderboard(competition), columns=["team_id", "team", "date", "score"])
    ours = merge(log, client.submissions(competition))
    scores = board["score"].dropna().to_numpy(float)
    higher = not (len(scores) > 1 and scores[0] < scores[-1])  # Kaggle lists the best first
    if len(scores):
        print(f"public leaderboard of '{competition}': {len(board)} teams, best {scores[0]:.5f}, "
              f"median {np.median(scores):.5f} ({'higher' if higher else 'lower'} is better)")
    else:
        print(f"public leaderboard of '{competition}': empty")
    out = args.out
    write_csv(out / "kaggle-leaderboard.csv", board, lineterminator="\n")
    scored = ours.dropna(subset=["public_score"]).copy()
    if scored.empty:
        print(f"none of our submissions has a public score yet (see kfold submissions -c {competition})")
    else:
        scored["rank"] = [would_rank(scores, s, higher) for s in scored["public_score"]]
        scored["of"] = len(scores)
        scored["top_percent"] = 100.0 * scored["rank"] / max(len(scores), 1)
        if solution is not None:
            scored[["local_public", "local_private"]] = [_local_pair(row, solution, sha256_of)
                                                         for _, row in scored.iterrows()]
        columns = ["ref", "message", "public_score", "rank", "of", "top_percent", "local_cv", "local_public",
                   "local_private"]
        scored = scored.sort_values("rank", kind="stable")[columns]
        print("our submissions, where they would rank on the public leaderboard:")
        print(scored.assign(message=scored["message"].map(lambda m: str(m)[:32])).to_string(
            index=False, na_rep="", float_format=lambda v: f"{v:.5f}", formatters={"top_percent": "{:.1f}%".format}))
        write_csv(out / "kaggle-ranks.csv", scored, lineterminator="\n")
        print(f"wrote {out / 'kaggle-ranks.csv'}")
    print(f"wrote {out / 'kaggle-leaderboard.csv'}")
    return 0


def _local_pair(row, solution, sha256_of) -> tuple[float, float]:
    """The local leaderboard's Public/Private accuracy of a logged file that is still there, unchanged."""
    from kfold.scoring.leaderboard import score_submission

    path = Path(str(row["file"]))
    if not row["in_log"] or not path.is_file() or (row["sha256"] and sha256_of(path) != row["sha256"]):
        return row["local_public"], row["local_private"]
    scores = score_submission(path, solution, n_bootstrap=1)
    return scores["public"], scores["private"]


# ---------------------------------------------------------------- download

def detect_layout(directory: Path, depth: int = 2) -> tuple[Path, str] | None:
    """The first folder (``directory`` or below, breadth first) holding a KMNIST or MNIST-MIX layout."""
    from kfold.data.kmnist import LAYOUTS
    from kfold.data.mnist_mix import is_mnist_mix

    level = [directory]
    for _ in range(depth + 1):
        for folder in level:
            for layout in LAYOUTS:
                if all((folder / name).is_file() for name in layout.required):
                    return folder, layout.description
            if is_mnist_mix(folder):
                return folder, "MNIST-MIX"
        level = sorted(child for folder in level for child in folder.iterdir()
                       if child.is_dir() and not child.is_symlink() and not child.name.startswith("."))
    return None


def download_command(args) -> int:
    from kfold import kaggle_api
    from kfold.files.archive import check_not_symlink, extract_zip, parse_size

    if args.competition and args.competition_opt and args.competition != args.competition_opt:
        raise UsageError(f"two competitions given: {args.competition} and -c {args.competition_opt}")
    name = args.competition_opt or args.competition
    if not name:
        raise UsageError("kfold download: give the competition: -c COMP")
    competition = kaggle_api.check_competition(name)
    max_size = parse_size(args.max_size)
    data_dir = args.data_dir or DATA_ROOT / competition
    check_not_symlink(data_dir, "the data folder")
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"{data_dir}: exists and is not a folder; give a folder for --data")
    client = kaggle_api.connect()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.download-", dir=data_dir.parent))
    try:
        saved = client.download(competition, staging)
        if saved.stat().st_size > max_size:
            raise DataError(f"{saved.name} (downloaded): {saved.stat().st_size} bytes, more than --max-size {args.max_size}")
        if saved.suffix.lower() == ".zip":
            files = extract_zip(saved, data_dir, max_size=max_size, force=args.force, name=f"{saved.name} (downloaded)")
        else:  # a competition with a single non-zip file
            target = data_dir / saved.name
            check_not_symlink(target, "the downloaded file's target")
            if target.exists() and not args.force:
                raise DataError(f"{target}: already exists; give --force to replace it")
            data_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(saved), target)
            files = [target]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for path in files[:20]:
        print(f"wrote {path}")
    if len(files) > 20:
        print(f"... and {len(files) - 20} more files in {data_dir}")
    found = detect_layout(data_dir)
    if found is None:
        print(f"no KMNIST or MNIST-MIX layout recognised in {data_dir}; see README (data layouts)")
    else:
        folder, description = found
        print(f"layout: {description} in {folder}: use --data {folder}")
    return 0
