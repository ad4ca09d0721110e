#!/usr/bin/env python
"""``kfold tune`` with and without pruning on the same budget, then the tuned recipe against its preset (issue 25).

1. Two searches from the same preset, seed and default search space, one after the other, each for
   ``--timeout`` seconds: ``--pruner median`` and ``--pruner none``. Reported per search: trials ended (complete
   and pruned), trials per hour, the best OOF score and the trial that reached it.
2. The better search's ``best.json`` and the preset itself, each as a whole ``kfold run`` (train, predict, mean
   submission) with the same k and seed, scored on the local leaderboard (Public/Private with the paired
   bootstrap interval of the difference and McNemar's test).

The issue's evidence run (about an hour of CPU per search; BENCHMARKS.md):

    python benchmarks/tune_bench.py --data ../shared/data/kmnist-comp --work /tmp/tune-bench --preset lenet5 \\
        --k 3 --timeout 3600 --threads 2 --out benchmarks/results/tune.md

A 1-2 minute smoke of the whole script (tiny data, one epoch per fold, a few trials):

    python benchmarks/tune_bench.py --data /tmp/comp --work /tmp/tune-smoke --preset lenet5 --k 2 --timeout 20 \\
        --extra '--epochs 1' --threads 1
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def start_kfold(*argv: str, log: Path) -> tuple[subprocess.Popen, float, Path]:
    """Start ``python -m kfold ARGV`` with its output in ``log``."""
    fh = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "kfold", *argv], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    fh.close()
    return proc, time.perf_counter(), log


def finish_kfold(started: tuple[subprocess.Popen, float, Path], what: str) -> float:
    """Wait for a started command; its wall seconds; stop on a failure."""
    proc, start, log = started
    code = proc.wait()
    if code != 0:
        raise SystemExit(f"error: kfold {what} failed (exit {code}); see {log}")
    return time.perf_counter() - start


def kfold(*argv: str, log: Path) -> float:
    """Run ``python -m kfold ARGV`` with its output in ``log``; the wall seconds; stop on a failure."""
    return finish_kfold(start_kfold(*argv, log=log), argv[0])


def search_row(out: Path, pruner: str, seconds: float) -> dict:
    import pandas as pd

    table = pd.read_csv(out / "trials.csv")
    metric = table.columns[2]
    complete = table[table["state"] == "complete"]
    ended = table[table["state"].isin(["complete", "pruned"])]
    best = complete.sort_values([metric, "number"], ascending=[False, True]).iloc[0] if len(complete) else None
    return {"pruner": pruner, "seconds": round(seconds, 1), "trials_ended": int(len(ended)),
            "complete": int(len(complete)), "pruned": int((table["state"] == "pruned").sum()),
            "failed": int((table["state"] == "failed").sum()),
            "trials_per_hour": round(len(ended) / seconds * 3600, 1),
            "folds_trained": int(ended["folds_done"].sum()),
            "metric": metric, "best": None if best is None else float(best[metric]),
            "best_trial": None if best is None else int(best["number"]), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="competition directory (with solution.csv for step 2)")
    p.add_argument("--work", type=Path, required=True, help="where the searches and runs go")
    p.add_argument("--preset", default="lenet5")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600, help="seconds of each search (default 3600)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--extra", default="", help="more flags for every kfold tune/run call, e.g. '--epochs 1'")
    p.add_argument("--parallel", action="store_true",
                   help="run the two searches at the same time (side by side under the same load; give each "
                        "--threads of its own, e.g. 1 each on 2 cores) instead of one after the other")
    p.add_argument("--out", type=Path, help="Markdown summary (a .json beside it)")
    args = p.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    extra = shlex.split(args.extra)
    common = ["--data", args.data, "--preset", args.preset, "--k", str(args.k), "--seed", str(args.seed),
              "--threads", str(args.threads), "--no-progress", *extra]
    rows = []
    started = {}
    for pruner in ("median", "none"):
        out = args.work / f"search-{pruner}"
        print(f"search with --pruner {pruner}: {out} ({args.timeout:g}s)", flush=True)
        started[pruner] = start_kfold("tune", *common, "--out", str(out), "--trials", "100000", "--timeout",
                                      str(args.timeout), "--pruner", pruner, log=args.work / f"search-{pruner}.log")
        if not args.parallel:
            seconds = finish_kfold(started.pop(pruner), f"tune --pruner {pruner}")
            rows.append(search_row(out, pruner, seconds))
            print(json.dumps(rows[-1]), flush=True)
    for pruner, job in started.items():
        seconds = finish_kfold(job, f"tune --pruner {pruner}")
        rows.append(search_row(args.work / f"search-{pruner}", pruner, seconds))
        print(json.dumps(rows[-1]), flush=True)
    better = max((r for r in rows if r["best"] is not None), key=lambda r: r["best"])
    best_json = Path(better["out"]) / "best.json"
    subs = args.work / "submissions"
    recipes = {"tuned": ["--config", str(best_json)], "preset": []}
    for name, flags in recipes.items():
        print(f"kfold run: {name}", flush=True)
        kfold("run", *common, *flags, "--out", str(args.work / name), "--submissions", str(subs),
              log=args.work / f"run-{name}.log")
    files = [str(subs / f"{name}-mean.csv") for name in recipes]
    solution = Path(args.data) / "solution.csv"
    board = None
    if solution.is_file():
        kfold("leaderboard", *files, "--solution", str(solution), "--seed", str(args.seed), "--out",
              str(args.work / "leaderboard"), log=args.work / "leaderboard.log")
        board = (args.work / "leaderboard" / "leaderboard.md").read_text()
    oof = {name: json.loads((args.work / name / "summary.json").read_text()).get("oof_accuracy") for name in recipes}
    how = "side by side (--parallel)" if args.parallel else "one after the other"
    lines = [f"## kfold tune: {args.preset}, k = {args.k}, {args.timeout:g} s per search, seed {args.seed}, "
             f"--threads {args.threads}, searches {how}", "",
             "| pruner | seconds | trials ended | complete | pruned | failed | trials / hour | folds trained | best OOF |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best = "-" if r["best"] is None else f"{r['best']:.4f} (trial {r['best_trial']})"
        lines.append(f"| {r['pruner']} | {r['seconds']:.0f} | {r['trials_ended']} | {r['complete']} | {r['pruned']} | "
                     f"{r['failed']} | {r['trials_per_hour']:.1f} | {r['folds_trained']} | {best} |")
    lines += ["", f"tuned config ({best_json}) against the preset, one `kfold run` each: OOF accuracy "
              f"{oof['tuned']:.4f} against {oof['preset']:.4f}"]
    if board:
        lines += ["", board.strip()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"searches": rows, "oof": oof}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
