#!/usr/bin/env python
"""A code-competition package: its size, and its notebook's time against local prediction on the same images.

Each repetition runs, one right after the other so that both see the same machine load (the order alternates):

* local: ``kfold predict RUN --data DATA`` then ``kfold ensemble`` of its fold files (a fresh process each, as a
  user runs them): wall seconds;
* notebook: ``kfold.rehearse(PKG, DATA)``: the notebook offline in the throwaway Kaggle environment; the
  kernel's own total (hash check, pip install of the wheel, prediction, ensemble: the part the 1.2x goal is
  about) and the nbclient wall time (kernel start included).

    python benchmarks/code_package.py --run runs/code --data ../shared/data/kmnist-comp --package pkg/kmnist \\
        --repeats 3 --threads 1 --out benchmarks/results/code_package.csv
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def local_seconds(run: Path, data: Path, threads: int, method: str) -> float:
    from kfold.files.rundir import PredDir, RunDir

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kfold", "predict", str(run), "--data", str(data), "--out", f"{tmp}/p",
                        "--threads", str(threads), "--device", "cpu"], check=True, capture_output=True)
        k = RunDir(run).defined_folds()
        folds = [str(PredDir(f"{tmp}/p").fold(RunDir(run).name, fold)) for fold in range(k)]
        subprocess.run([sys.executable, "-m", "kfold", "ensemble", *folds, "--method", method, "--sample",
                        str(data / "sample_submission.csv"), "--out", f"{tmp}/sub.csv"], check=True,
                       capture_output=True)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--package", type=Path, required=True, help="written by kfold package (from --run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="CSV of every repetition")
    args = parser.parse_args(argv)

    import pandas as pd

    from kfold.files.package import read_package
    from kfold.flows.rehearse import rehearse

    package = read_package(args.package)
    size = sum(p.stat().st_size for p in package.dataset_dir.rglob("*") if p.is_file())
    rows = []
    for repeat in range(args.repeats):
        order = ["local", "notebook"] if repeat % 2 == 0 else ["notebook", "local"]
        row = {"repeat": repeat}
        for which in order:
            if which == "local":
                row["local_s"] = local_seconds(args.run, args.data, args.threads, package.manifest["recipe"]["method"])
            else:
                result = rehearse(args.package, args.data, echo=lambda line: None)
                assert result.identical, result.lines
                timing = result.execution.timing()
                row.update(notebook_total_s=timing["total"], notebook_install_s=timing["install"],
                           notebook_wall_s=result.execution.seconds, peak_mib=result.execution.peak_mib)
        row["ratio_total"] = row["notebook_total_s"] / row["local_s"]
        row["ratio_wall"] = row["notebook_wall_s"] / row["local_s"]
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    print(f"dataset {size / 2**20:.2f} MiB ({len(package.manifest['files'])} files), "
          f"{package.manifest['local_submission']['rows']} rows, n={len(rows)} medians:")
    for column in table.columns[1:]:
        print(f"  {column}: {statistics.median(table[column]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
