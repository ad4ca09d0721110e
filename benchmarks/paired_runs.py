#!/usr/bin/env python
"""Two training recipes side by side: every (seed, fold) trains both, one right after the other (issue 17).

The units (seed, fold) go through a queue to ``--workers`` worker threads; each unit runs ``train.py --folds F``
for the reference and for the candidate on the same core, alternating which goes first, so both see the same
machine load. The per-unit ratio (candidate / reference wall seconds of the fold's ``train.py`` call) is paired;
its median over all units is the speed figure. Each recipe's run directory per seed ends as a whole k-fold run:
its OOF accuracy at the last epoch (``summary.json``) is the accuracy figure, median over seeds.

    python benchmarks/paired_runs.py --data ../shared/data/kmnist-comp --work /tmp/paired --seeds 0,1,2 \\
        --reference fast --candidate speedrun --workers 2 --threads 1 --out benchmarks/results/paired.csv

A recipe is a preset name, optionally with train.py flags after it: ``--candidate 'speedrun --epochs 16'``.
"""
from __future__ import annotations

import argparse
import json
import queue
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def recipe_args(text: str) -> tuple[str, list[str]]:
    """'PRESET [train.py flags...]' -> (label-safe preset, argv)."""
    parts = shlex.split(text)
    if not parts:
        raise SystemExit("error: an empty recipe")
    return parts[0], ["--preset", parts[0], *parts[1:]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--work", type=Path, required=True, help="where the run directories go")
    p.add_argument("--reference", default="fast")
    p.add_argument("--candidate", default="speedrun")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="CSV of the per-unit times (a .md table is written beside it)")
    args = p.parse_args(argv)

    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = {"reference": recipe_args(args.reference), "candidate": recipe_args(args.candidate)}
    labels = {role: f"{role}-{name}" for role, (name, _) in recipes.items()}
    units: queue.Queue = queue.Queue()
    for index, (seed, fold) in enumerate((s, f) for s in seeds for f in range(args.k)):
        units.put((index, seed, fold))
    rows, errors, lock = [], [], threading.Lock()

    from kfold.files.rundir import RunDir

    def train(role: str, seed: int, fold: int) -> tuple[float, float]:
        """(wall seconds of the train.py call, the fold's training seconds from its meta.json)"""
        out = args.work / f"{labels[role]}-s{seed}"
        cmd = [sys.executable, str(REPO / "train.py"), "--data", args.data, *recipes[role][1], "--k", str(args.k),
               "--seed", str(seed), "--folds", str(fold), "--out", str(out), "--threads", str(args.threads),
               "--resume", "--no-progress"]
        start = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - start
        (args.work / "logs").mkdir(parents=True, exist_ok=True)
        (args.work / "logs" / f"{labels[role]}-s{seed}-f{fold}.log").write_text(done.stdout)
        if done.returncode:
            raise RuntimeError(f"{shlex.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}")
        run = RunDir(out)
        return seconds, float(run.read_json(run.meta(fold))["seconds"])

    def worker(name: int) -> None:
        while True:
            try:
                index, seed, fold = units.get_nowait()
            except queue.Empty:
                return
            order = ["reference", "candidate"] if index % 2 == 0 else ["candidate", "reference"]
            try:
                times = {role: train(role, seed, fold) for role in order}
            except RuntimeError as exc:  # one failed fold stops this worker; the others finish their units
                with lock:
                    errors.append(str(exc))
                return
            (ref_wall, ref_train), (cand_wall, cand_train) = times["reference"], times["candidate"]
            row = dict(seed=seed, fold=fold, worker=name, first=order[0], reference_s=round(ref_wall, 2),
                       candidate_s=round(cand_wall, 2), ratio=round(cand_wall / ref_wall, 4),
                       reference_train_s=round(ref_train, 2), candidate_train_s=round(cand_train, 2),
                       train_ratio=round(cand_train / ref_train, 4))
            with lock:
                rows.append(row)
                print(f"seed {seed} fold {fold} (worker {name}, {order[0]} first): reference {ref_wall:.1f}s "
                      f"candidate {cand_wall:.1f}s ratio {row['ratio']:.3f} (epochs only {row['train_ratio']:.3f})", flush=True)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors or len(rows) != len(seeds) * args.k:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 1

    import pandas as pd

    table = pd.DataFrame(rows).sort_values(["seed", "fold"])
    per_seed = []
    for seed in seeds:
        entry = {"seed": seed}
        for role in recipes:
            run = args.work / f"{labels[role]}-s{seed}"
            # every fold is finished: --resume only re-reads them and writes the whole run's summary
            subprocess.run([sys.executable, str(REPO / "train.py"), "--data", args.data, *recipes[role][1], "--k", str(args.k),
                            "--seed", str(seed), "--out", str(run), "--threads", str(args.threads), "--resume", "--no-progress"],
                           check=True, stdout=subprocess.DEVNULL)
            summary = json.loads((run / "summary.json").read_text())
            entry[f"{role}_oof_last"] = summary["oof_accuracy_last_epoch"]
            entry[f"{role}_train_s"] = round(summary["train_seconds"], 1)
        seconds = table[table.seed == seed]
        entry["wall_ratio"] = round(seconds.candidate_s.sum() / seconds.reference_s.sum(), 4)
        per_seed.append(entry)
    seeds_table = pd.DataFrame(per_seed)
    lines = [f"reference: {args.reference}; candidate: {args.candidate}; k={args.k}, seeds {args.seeds}, "
             f"{args.workers} workers, --threads {args.threads}", "",
             "| seed | fold | worker | first | reference s | candidate s | ratio | reference epochs s | candidate epochs s | ratio |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.seed} | {r.fold} | {r.worker} | {r.first} | {r.reference_s:.1f} | {r.candidate_s:.1f} | {r.ratio:.3f} | "
              f"{r.reference_train_s:.1f} | {r.candidate_train_s:.1f} | {r.train_ratio:.3f} |"
              for r in table.itertuples()]
    lines += ["", "| seed | reference OOF (last epoch) | candidate OOF (last epoch) | reference train s | candidate train s | "
              "wall ratio (sum of folds) |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.seed} | {r.reference_oof_last:.4f} | {r.candidate_oof_last:.4f} | {r.reference_train_s:.1f} | "
              f"{r.candidate_train_s:.1f} | {r.wall_ratio:.3f} |" for r in seeds_table.itertuples()]
    lines += ["", f"median per-unit ratio {statistics.median(table.ratio):.3f} (n={len(table)} units, "
              f"range {table.ratio.min():.3f}-{table.ratio.max():.3f}; epochs only {statistics.median(table.train_ratio):.3f}); "
              f"median per-seed wall ratio "
              f"{statistics.median(seeds_table.wall_ratio):.3f}; OOF median reference "
              f"{statistics.median(seeds_table.reference_oof_last):.4f}, candidate "
              f"{statistics.median(seeds_table.candidate_oof_last):.4f} (n={len(seeds)} seeds)"]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        seeds_table.to_csv(args.out.with_name(args.out.stem + "-seeds.csv"), index=False)
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
