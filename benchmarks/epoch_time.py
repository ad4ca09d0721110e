#!/usr/bin/env python
"""Seconds per training epoch of several configs, interleaved (issue 17's speedrun ablation).

Each variant is a preset plus JSON overrides. Every variant gets its own FoldTrainer on fold 0 of 5 (seed 0) of the
data; then, round-robin for ``--rounds`` rounds, each trains one full epoch (``train_epoch``) and scores the
validation rows once (``evaluate``), so every variant sees the same machine load. Prints and writes (CSV) the median
seconds per epoch, min-max, and the ratio to the first variant. CPU times on a shared machine are noisy: read
the ratios, not the seconds.

    python benchmarks/epoch_time.py --data ../shared/data/kmnist-comp --threads 1 --rounds 3 \\
        --variant fast=fast --variant 'speedrun=speedrun' --variant 'fast+cl=fast:{"channels_last": "on"}'
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_variant(text: str) -> tuple[str, str, dict]:
    """'LABEL=PRESET' or 'LABEL=PRESET:{json overrides}'."""
    label, _, spec = text.partition("=")
    preset, _, overrides = spec.partition(":")
    if not label or not preset:
        raise SystemExit(f"error: --variant {text!r}: expected LABEL=PRESET or LABEL=PRESET:{{json}}")
    return label, preset, json.loads(overrides) if overrides else {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--variant", action="append", required=True, help="LABEL=PRESET[:{json overrides}]; the first is the reference")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="CSV of the per-round times")
    args = p.parse_args(argv)

    import numpy as np
    import pandas as pd
    import torch

    from kfold.config import resolve_config
    from kfold.data import load_task
    from kfold.nn.engine import FoldTrainer
    from kfold.files.folds import assign_folds

    torch.set_num_threads(args.threads)
    task = load_task(args.data, progress=False)
    folds = assign_folds(task.train_labels, 5, 0)
    train_rows, val_rows = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    trainers = {}
    for label, preset, overrides in map(parse_variant, args.variant):
        cfg = resolve_config(preset, None, overrides)
        trainers[label] = FoldTrainer(cfg, task.train_images, task.train_labels, task.num_classes, train_rows, val_rows,
                                      torch.device("cpu"), seed=0, work_dir=Path("."), progress=False)
    rows = []
    for round_ in range(args.rounds):
        order = list(trainers) if round_ % 2 == 0 else list(reversed(trainers))  # alternate who goes first
        for label in order:
            trainer = trainers[label]
            start = time.perf_counter()
            trainer.train_epoch()
            trained = time.perf_counter()
            trainer.evaluate()
            trainer.state["epoch"] += 1
            done = time.perf_counter()
            rows.append(dict(variant=label, round=round_, train_s=trained - start, eval_s=done - trained, epoch_s=done - start))
            print(f"round {round_} {label}: train {trained - start:.2f}s eval {done - trained:.2f}s", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    reference = table[table.variant == next(iter(trainers))]["epoch_s"].median()
    print(f"\n| variant | s/epoch (median, train + eval) | min - max | train s | eval s | ratio to {next(iter(trainers))} | n |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label in trainers:
        part = table[table.variant == label]
        print(f"| {label} | {part.epoch_s.median():.2f} | {part.epoch_s.min():.2f} - {part.epoch_s.max():.2f} | "
              f"{part.train_s.median():.2f} | {part.eval_s.median():.2f} | {part.epoch_s.median() / reference:.2f} | {len(part)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
