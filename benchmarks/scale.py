#!/usr/bin/env python
"""Scale benchmark of the scoring half: validate, leaderboard, vote/mean, the report, at 50 and 200 inputs.

    python benchmarks/scale.py [--data DIR] [--work DIR] [--inputs 50,200] [--repeats 3] [--mix-files 50] [--record]

Inputs (regenerated into ``--work``, default a temporary folder): a 10,000-row solution made from the
official KMNIST test labels (``DATA/kmnist/t10k-labels-idx1-ubyte.gz``; Ids 0..9999, a seeded 30% Public /
70% Private split; ``--rows 3000`` uses ``DATA/kmnist-comp/solution.csv`` as it is), and N variant
submissions of it: 8 families of models (shared errors inside a family, own errors per member, error rates
0.6%..3%), every 25th input a byte-identical copy of the one before, each also as a ``.npz`` probability
file (10 classes). ``--mix-files`` synthetic MNIST-MIX-sized probability files (120,000 x 100 float32).

The report is timed as ``ensemble.py --report`` writes it by default (its tables: agreement.csv, inputs.csv,
report.md) and with ``--plot`` (also the heatmap agreement.png, drawn with matplotlib).

Every command runs as a subprocess (``python -m kfold ...``, as a user runs it) and is timed with its
*read floor* in the same repeat, interleaved: a subprocess that imports numpy and pandas and only reads the
same files (``pandas.read_csv`` for CSVs, ``numpy.load`` of the probabilities for ``.npz``). Both include
the interpreter's start-up, which every command pays. Peak memory is the command's maximum resident set size
as GNU time (``/usr/bin/time -f %M``) reports it. Cells are medians over ``--repeats`` runs (min-max in brackets). ``--record`` adds the
Markdown table to BENCHMARKS.md under ``SECTION_TITLE``.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kfold.files.atomic import write_text  # noqa: E402
from kfold.files.probs import write_probs  # noqa: E402

SECTION_TITLE = "## Scale: the scoring half at 50 and 200 inputs (benchmarks/scale.py, issue 16)"
FAMILIES = 8
CLASSES = 10
MIX_SHAPE = (120_000, 100)
TIME = "/usr/bin/time"  # GNU time, for the peak memory of each command
META = {"kind": "test", "task": "kmnist-scale-bench", "fingerprint": "bench0000000000"}

FLOOR_CODE = """
import sys, numpy as np, pandas as pd
for path in open(sys.argv[1]).read().split():
    if path.endswith('.npz'):
        with np.load(path) as data:
            data['probs']
    else:
        pd.read_csv(path)
"""


def default_data() -> Path:
    return Path(os.environ.get("KFOLD_SHARED_DATA", REPO.parent / "shared" / "data"))


def solution_frame(data: Path, rows: int) -> pd.DataFrame:
    if rows == 3000:
        return pd.read_csv(data / "kmnist-comp" / "solution.csv")
    with gzip.open(data / "kmnist" / "t10k-labels-idx1-ubyte.gz", "rb") as fh:
        labels = np.frombuffer(fh.read(), dtype=np.uint8, offset=8).astype(np.int64)[:rows]
    usage = np.full(len(labels), "Private", dtype=object)
    usage[np.random.default_rng(0).permutation(len(labels))[: int(round(0.3 * len(labels)))]] = "Public"
    return pd.DataFrame({"Id": np.arange(len(labels)), "Category": labels, "Usage": usage})


def variant_predictions(truth: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """(n, rows) predicted classes: FAMILIES families with shared errors, each member its own errors too."""
    rng = np.random.default_rng(seed)
    rows = len(truth)
    rates = np.linspace(0.006, 0.03, FAMILIES)
    family_wrong = [(rng.random(rows) < 0.8 * r, rng.integers(1, CLASSES, rows)) for r in rates]
    out = np.empty((n, rows), dtype=np.int64)
    for k in range(n):
        if k % 25 == 24:  # a byte-identical copy of the one before
            out[k] = out[k - 1]
            continue
        f = k % FAMILIES
        shared, shift = family_wrong[f]
        own = rng.random(rows) < 0.4 * rates[f]
        wrong = (shared & (rng.random(rows) < 0.9)) | own
        shift = np.where(own & ~shared, rng.integers(1, CLASSES, rows), shift)
        out[k] = np.where(wrong, (truth + shift) % CLASSES, truth)
    return out


def probs_for(predicted: np.ndarray, rng: np.random.Generator, classes: int) -> np.ndarray:
    logits = rng.standard_normal((len(predicted), classes), dtype=np.float32)
    logits[np.arange(len(predicted)), predicted] = logits.max(axis=1) + 1.0 + 4.0 * rng.random(len(predicted), dtype=np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def generate(work: Path, data: Path, n_max: int, rows: int, mix_files: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    frame = solution_frame(data, rows)
    frame.to_csv(work / "solution.csv", index=False)
    pd.DataFrame({"Id": frame["Id"], "Category": 0}).to_csv(work / "sample.csv", index=False)
    truth = frame["Category"].to_numpy()
    preds = variant_predictions(truth, n_max)
    rng = np.random.default_rng(1)
    subs, npzs = [], []
    for k in range(n_max):
        csv = work / f"sub{k:03d}.csv"
        npz = work / f"sub{k:03d}_p.npz"
        if k % 25 == 24:
            shutil.copyfile(subs[-1], csv)
            shutil.copyfile(npzs[-1], npz)
        else:
            pd.DataFrame({"Id": frame["Id"], "Category": preds[k]}).to_csv(csv, index=False)
            write_probs(npz, frame["Id"], probs_for(preds[k], rng, CLASSES), [str(c) for c in range(CLASSES)], META)
        subs.append(csv)
        npzs.append(npz)
    mix = []
    if mix_files:
        mix_dir = work / "mix"
        mix_dir.mkdir(exist_ok=True)
        mix_truth = np.random.default_rng(2).integers(0, MIX_SHAPE[1], MIX_SHAPE[0])
        np.save(mix_dir / "labels.npy", mix_truth)
        for k in range(mix_files):
            path = mix_dir / f"mix{k:02d}.npz"
            if not path.exists():
                r = np.random.default_rng(100 + k)
                wrong = r.random(MIX_SHAPE[0]) < 0.04 + 0.002 * k
                predicted = np.where(wrong, r.integers(0, MIX_SHAPE[1], MIX_SHAPE[0]), mix_truth)
                write_probs(path, np.arange(MIX_SHAPE[0]), probs_for(predicted, r, MIX_SHAPE[1]).astype(np.float32),
                            [str(c) for c in range(MIX_SHAPE[1])], {"kind": "test", "task": "mix-bench"})
            mix.append(path)
    return {"subs": subs, "npzs": npzs, "mix": mix, "solution": work / "solution.csv", "sample": work / "sample.csv"}


def run_measured(argv: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one subprocess.

    The peak comes from GNU time (``/usr/bin/time -f %M``): Linux carries a forked child's maxrss over from
    its parent across exec, so ``os.wait4`` here would report this benchmark's own memory."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *argv], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(map(str, argv))}\n{proc.stderr}")
        peak_kb = float(rss.read().split()[-1])
    return wall, peak_kb / 1024.0, proc.returncode


def cases(files: dict, n: int, work: Path) -> list[tuple[str, list[str], list[Path]]]:
    """(name, kfold arguments, files its floor reads) per command at ``n`` inputs."""
    subs = [str(p) for p in files["subs"][:n]]
    npzs = [str(p) for p in files["npzs"][:n]]
    sol, sample = str(files["solution"]), str(files["sample"])
    out = work / f"out{n}"
    return [
        ("validate", ["validate", *subs, "--sample", sample], [*subs, sample]),
        ("leaderboard", ["leaderboard", "--solution", sol, "--out", str(out / "board"), *subs], [*subs, sol]),
        ("leaderboard --plot", ["leaderboard", "--solution", sol, "--out", str(out / "board_png"), "--plot", *subs],
         [*subs, sol]),
        ("vote", ["ensemble", *subs, "--method", "vote", "--out", str(out / "vote.csv"), "--sample", sample],
         [*subs, sample]),
        ("vote + report + solution", ["ensemble", *subs, "--method", "vote", "--out", str(out / "vote_r.csv"), "--sample",
                                      sample, "--solution", sol, "--report", str(out / "report")], [*subs, sample, sol]),
        ("vote + report --plot + solution", ["ensemble", *subs, "--method", "vote", "--out", str(out / "vote_p.csv"),
                                             "--sample", sample, "--solution", sol, "--report", str(out / "report_png"),
                                             "--plot"], [*subs, sample, sol]),
        ("mean of .npz", ["ensemble", *npzs, "--method", "mean", "--out", str(out / "mean.csv")], npzs),
        ("leaderboard of .npz", ["leaderboard", "--solution", sol, "--out", str(out / "board_npz"), *npzs], [*npzs, sol]),
    ]


def median_cell(values: list[float], fmt: str) -> str:
    return f"{np.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def time_case(name: str, argv: list[str], floor_files: list, repeats: int, work: Path) -> dict:
    listing = work / f"floor-{abs(hash(name)) % 10**8}-{len(floor_files)}.txt"
    listing.write_text("\n".join(map(str, floor_files)))
    floor_argv = [sys.executable, "-c", FLOOR_CODE, str(listing)]
    command = [sys.executable, "-m", "kfold", *argv]
    run_measured(command, work)  # warm the page cache and the .pyc files
    floors, walls, rss, floor_rss = [], [], [], []
    for _ in range(repeats):
        t, m, _ = run_measured(floor_argv, work)
        floors.append(t)
        floor_rss.append(m)
        t, m, _ = run_measured(command, work)
        walls.append(t)
        rss.append(m)
    return {"command": name, "floor_s": floors, "command_s": walls, "peak_mb": rss, "floor_peak_mb": floor_rss,
            "ratio": float(np.median(walls) / np.median(floors))}


def float16_cost(mix: list[Path], labels_path: Path, k: int = 10) -> dict:
    """Accuracy and log loss of single files and of their mean in float32 and after a float16 round trip.

    Also for the same files sharpened (p**4, renormalised) like a confident network's outputs, whose tiny
    probabilities are where float16 (smallest subnormal 6e-8) loses information."""
    from kfold.files.probs import read_probs

    labels = np.load(labels_path)
    rows = np.arange(len(labels))
    out = {}

    def scores(p):
        p = p / p.sum(axis=1, keepdims=True)
        return float((p.argmax(1) == labels).mean()), float(-np.log(np.clip(p[rows, labels], 1e-15, 1)).mean())

    for variant in ("as generated", "sharpened p**4"):
        totals = {"f32": None, "f16": None}
        for index, path in enumerate(mix[:k]):
            p32 = np.asarray(read_probs(path).probs, dtype=np.float64)
            if variant != "as generated":
                p32 = p32 ** 4
                p32 /= p32.sum(axis=1, keepdims=True)
            p32 = p32.astype(np.float32)
            versions = {"f32": p32, "f16": p32.astype(np.float16).astype(np.float32)}
            for tag, p in versions.items():
                if index == 0:
                    out[f"{variant}: one file, {tag}"] = scores(p.astype(np.float64))
                totals[tag] = p.astype(np.float64) if totals[tag] is None else totals[tag] + p
        for tag, total in totals.items():
            out[f"{variant}: mean of {k}, {tag}"] = scores(total)
    return out


def machine() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        return f"{info.get('Model name', '?').strip()}, {info.get('CPU(s)', '?').strip()} CPUs (lscpu)"
    except OSError:
        return platform.processor() or platform.machine()


def markdown(results: list[dict], meta: dict, f16: dict | None) -> str:
    lines = [f"### {meta['date']}: {meta['machine']}", "",
             f"`{meta['command']}`; {meta['repeats']} runs per cell, median [min-max]; load average at start "
             f"{meta['load_start']}, at end {meta['load_end']}; Python {meta['python']}. Solution: {meta['rows']} rows. "
             "Floor: a subprocess that imports numpy and pandas and only reads the same files; ratio = median "
             "command / median floor (target <= 3).", "",
             "| inputs | command | floor (s) | command (s) | ratio | peak RSS (MB) |", "|---:|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['inputs']} | {r['command']} | {median_cell(r['floor_s'], '.2f')} | "
                     f"{median_cell(r['command_s'], '.2f')} | {r['ratio']:.2f} | {np.median(r['peak_mb']):.0f} |")
    if f16:
        lines += ["", "float16 storage of MNIST-MIX-sized probabilities (120,000 x 100, synthetic): accuracy and log "
                  "loss before and after a float16 round trip", "", "| what | accuracy | log loss |", "|---|---:|---:|"]
        lines += [f"| {k} | {a:.5f} | {l:.5f} |" for k, (a, l) in f16.items()]
    return "\n".join(lines) + "\n"


def record(text: str) -> None:
    path = REPO / "BENCHMARKS.md"
    current = path.read_text(encoding="utf-8")
    if SECTION_TITLE not in current:
        current = current.rstrip("\n") + "\n\n" + SECTION_TITLE + "\n\n"
    head, _, tail = current.partition(SECTION_TITLE + "\n")
    write_text(path, head + SECTION_TITLE + "\n\n" + text + "\n" + tail.lstrip("\n"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/scale.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--work", type=Path, help="folder for the generated inputs (default: a temporary one)")
    parser.add_argument("--inputs", default="50,200")
    parser.add_argument("--rows", type=int, default=10_000, help="10000 (official t10k labels) or 3000 (kmnist-comp)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mix-files", type=int, default=50, help="MNIST-MIX-sized probability files (0: skip)")
    parser.add_argument("--only", help="comma-separated command names to time (default: all)")
    parser.add_argument("--record", action="store_true", help="add the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.inputs.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="kfold-scale-"))
    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    files = generate(work, args.data, max(sizes), args.rows, args.mix_files)
    only = set(args.only.split(",")) if args.only else None
    results = []
    for n in sizes:
        for name, kfold_args, floor_files in cases(files, n, work):
            if only and name not in only:
                continue
            result = time_case(name, kfold_args, floor_files, args.repeats, work)
            result["inputs"] = n
            results.append(result)
            print(f"{n:4d} {name:28s} floor {np.median(result['floor_s']):6.2f}s  command "
                  f"{np.median(result['command_s']):6.2f}s  ratio {result['ratio']:.2f}  peak {np.median(result['peak_mb']):.0f} MB",
                  flush=True)
    f16 = None
    if files["mix"]:
        mix = [str(p) for p in files["mix"]]
        result = time_case("mean of MNIST-MIX-sized .npz (120,000 x 100)",
                           ["ensemble", *mix, "--method", "mean", "--out", str(work / "mix_mean.csv")], mix, args.repeats, work)
        result["inputs"] = len(mix)
        results.append(result)
        print(f"{len(mix):4d} {'mean of MNIST-MIX-sized .npz':28s} floor {np.median(result['floor_s']):6.2f}s  command "
              f"{np.median(result['command_s']):6.2f}s  ratio {result['ratio']:.2f}  peak {np.median(result['peak_mb']):.0f} MB",
              flush=True)
        f16 = float16_cost(files["mix"], work / "mix" / "labels.npy")
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "command": "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "repeats": args.repeats, "load_start": load_start, "load_end": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "python": platform.python_version(), "rows": len(pd.read_csv(files["solution"]))}
    text = markdown(results, meta, f16)
    print(text)
    (work / "scale-results.json").write_text(json.dumps({"meta": meta, "results": results, "float16": f16}, indent=1))
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
