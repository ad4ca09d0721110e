#!/usr/bin/env python
"""Multi-label speed (issue 32): fold assignment (iterative stratification) and the out-of-fold threshold search
on N images x T tags (default 40,000 x 17, Planet's shape), with the sklearn-equal metrics. Synthetic labels with
Planet-like tag frequencies (a few common tags, several rare ones) and noisy probabilities; ``--repeats`` runs of
each, the median printed (and the min-max). Goal: under 2 s each.

    python benchmarks/multilabel_bench.py --rows 40000 --tags 17 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def planet_like(rows: int, tags: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    rates = np.geomspace(0.9, 0.003, tags)  # 'primary' on almost every image ... 'blow_down' on a few hundred
    labels = (rng.random((rows, tags)) < rates).astype(np.int64)
    labels[labels.sum(axis=1) == 0, 0] = 1
    probs = np.clip(labels * rng.uniform(0.3, 0.7, tags) + rng.random(labels.shape) * 0.5, 0, 1)
    return labels, probs


def main(argv=None) -> int:
    from kfold.files.folds import assign_folds
    from kfold.scoring.multilabel import search_thresholds

    p = argparse.ArgumentParser(prog="multilabel_bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=40_000, help="images (default: 40000)")
    p.add_argument("--tags", type=int, default=17, help="tags (default: 17)")
    p.add_argument("--k", type=int, default=5, help="folds (default: 5)")
    p.add_argument("--metric", default="f2-samples", help="the threshold search's metric (default: f2-samples)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each step (default: 3)")
    args = p.parse_args(argv)
    labels, probs = planet_like(args.rows, args.tags)
    steps = {"fold assignment (iterative stratification)": lambda: assign_folds(labels, args.k, seed=0),
             f"threshold search ({args.metric}: global + per tag)": lambda: search_thresholds(labels, probs, args.metric)}
    print(f"{args.rows} images x {args.tags} tags, k={args.k}, {args.repeats} runs each")
    for name, step in steps.items():
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
        print(f"{name}: median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, max {max(seconds):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
