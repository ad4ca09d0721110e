#!/usr/bin/env python
"""Speed and memory of kfold's competition readers (issue 22 item 8), side by side with their baselines.

    python benchmarks/layouts_bench.py [--repeats 3] [--quick] [--workdir DIR] [--data ../shared/data]

* ``pixel-csv``: ``kfold.data.pixel_csv.read_pixel_csv`` of a 42,000 x 785 ``label,pixel0..pixel783`` CSV
  against ``pandas.read_csv(path, dtype=uint8)`` (C engine) of the same file (target: within 1.5x).
* ``decode``: ``kfold.data.decode.decode_images`` of 10,000 PNGs (28x28 gray; 128x128 RGB) into a fresh cache
  against Pillow's own loop (``np.asarray(Image.open(p))`` per file, one process) divided by the worker
  processes kfold used (target: within 1.5x); and, as a reference, against Pillow's loop split over the same
  number of forked processes (what the cores give Pillow itself).
  A third reference row: kfold's decoder with OpenCV's PNG path turned off (Pillow decodes every file).
* ``cached``: the second ``decode_images`` of the same 10,000 files (opens the cache; target: under 0.5 s),
  and the second ``load_task`` of an image-files competition of them.
* ``memory``: peak memory of one decode against the size of its uint8 cache (target: at most 1.2x): the peak
  resident set growth of a decode in this process (``workers=1``; the memory-mapped cache's pages count),
  and the peak of Python allocations (tracemalloc) in the main process with the pool.

Variants of one comparison run interleaved (A B A B ...); every cell is a median of ``--repeats`` runs with
their min and max, and the 1-minute load average at the end. Images are the real KMNIST images of
``--data`` (``kmnist-comp``) when present, else seeded random patterns. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from kfold.data import decode  # noqa: E402
from kfold.data.decode import _workers, decode_images  # noqa: E402
from kfold.data.pixel_csv import read_pixel_csv  # noqa: E402


def source_images(data: Path, n: int) -> np.ndarray:
    path = data / "kmnist-comp" / "kmnist-train-imgs.npy"
    if path.is_file():
        base = np.concatenate([np.load(path), np.load(data / "kmnist-comp" / "kmnist-test-imgs.npy")])
    else:
        base = np.random.default_rng(0).integers(0, 256, size=(10_000, 28, 28), dtype=np.uint8)
    return base[np.arange(n) % len(base)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(variants: dict, repeats: int, before=None) -> dict[str, list[float]]:
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if before is not None:
                before(name)
            times[name].append(timed(fn))
    return times


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s (n={len(values)}, {min(values):.3f}-{max(values):.3f})"


def write_pixel_csv(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from kfold.data.make_competition import pixel_csv_bytes

    path.write_bytes(pixel_csv_bytes(images, [("label", [str(v) for v in labels])]))


def write_pngs(folder: Path, images: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def pillow_loop(paths: list[Path]) -> None:
    for path in paths:
        with Image.open(path) as img:
            np.asarray(img)


def _loop_count(paths: list[Path]) -> int:
    pillow_loop(paths)
    return len(paths)


def pillow_processes(paths: list[Path], workers: int) -> None:
    """Pillow's own loop split into ``workers`` equal parts in forked processes: what the cores give Pillow itself
    (on a VM two vCPUs rarely give twice one)."""
    import multiprocessing

    parts = [paths[i::workers] for i in range(workers)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        assert sum(pool.map(_loop_count, parts)) == len(paths)


def peak_rss_growth(fn) -> tuple[float, float]:
    """(seconds, peak resident set growth in bytes) of fn() in this process (Linux: VmHWM reset by clear_refs)."""
    def status(key):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return 0
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = status("VmRSS:")
    seconds = timed(fn)
    return seconds, status("VmHWM:") - base


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="layouts_bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs per variant (default 3)")
    p.add_argument("--quick", action="store_true", help="small sizes, a smoke test (numbers meaningless)")
    p.add_argument("--workdir", type=Path, help="folder for the generated files (default: a temporary one)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="real data folder")
    args = p.parse_args(argv)
    n_csv, n_png, big = (2_000, 600, 32) if args.quick else (42_000, 10_000, 128)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="layouts-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        images = source_images(args.data, max(n_csv, n_png))
        labels = np.arange(len(images)) % 10

        # -- pixel CSV ---------------------------------------------------------------------------------
        csv_path = work / "train.csv"
        write_pixel_csv(csv_path, images[:n_csv], labels[:n_csv])
        t = interleaved({"kfold": lambda: read_pixel_csv(csv_path, ["label"]),
                         "pandas": lambda: pd.read_csv(csv_path, dtype=np.uint8, engine="c")}, args.repeats)
        rows.append((f"pixel CSV {n_csv:,} x 785 ({csv_path.stat().st_size / 1e6:.0f} MB)", "read_pixel_csv",
                     cell(t["kfold"]), "pandas.read_csv(dtype=uint8)", cell(t["pandas"]),
                     statistics.median(t["kfold"]) / statistics.median(t["pandas"]), "<= 1.5"))

        # -- decoding ----------------------------------------------------------------------------------
        gray = images[:n_png]
        tint = np.random.default_rng(1).uniform(0.4, 1.0, size=(n_png, 1, 1, 3))
        rgb = np.stack([np.asarray(Image.fromarray(im).resize((big, big), Image.Resampling.BILINEAR)) for im in gray])
        rgb = np.round(rgb[..., None] * tint).astype(np.uint8)
        for name, arrays in ((f"{n_png:,} PNGs 28x28 gray", gray), (f"{n_png:,} PNGs {big}x{big} RGB", rgb)):
            folder = work / name.split()[2]
            paths = write_pngs(folder, arrays)
            workers = _workers(len(paths), None)
            caches = iter(range(10_000))

            def fresh(variant):
                if variant == "kfold":
                    fresh.cache = work / f"cache-{next(caches)}"
            fresh.cache = work / "cache-x"

            def pillow_only():  # kfold's decoder with OpenCV's PNG path off: what it gains
                saved, decode.FAST_PNG_MIN_ROWS = decode.FAST_PNG_MIN_ROWS, 10**12
                try:
                    decode_images(paths, cache_dir=work / f"cache-p{next(caches)}", progress=False)
                finally:
                    decode.FAST_PNG_MIN_ROWS = saved

            t = interleaved({"kfold": lambda: decode_images(paths, cache_dir=fresh.cache, progress=False),
                             "kfold-pillow": pillow_only,
                             "pillow": lambda: pillow_loop(paths),
                             "pillow-pool": lambda: pillow_processes(paths, workers)}, args.repeats, before=fresh)
            per_core = [v / workers for v in t["pillow"]]
            rows.append((f"decode {name}", f"decode_images ({workers} workers)", cell(t["kfold"]),
                         f"Pillow loop / {workers} cores", cell(per_core),
                         statistics.median(t["kfold"]) / statistics.median(per_core), "<= 1.5"))
            rows.append((f"decode {name}, against Pillow's loop in {workers} processes", f"decode_images ({workers} "
                         "workers)", cell(t["kfold"]), f"Pillow loop split over {workers} forked processes",
                         cell(t["pillow-pool"]), statistics.median(t["kfold"]) / statistics.median(t["pillow-pool"]),
                         "(reference: what the cores give Pillow itself)"))
            rows.append((f"decode {name}, OpenCV's PNG path against Pillow's in kfold", f"decode_images ({workers} "
                         "workers)", cell(t["kfold"]), "the same, Pillow only", cell(t["kfold-pillow"]),
                         statistics.median(t["kfold"]) / statistics.median(t["kfold-pillow"]),
                         "(reference: what OpenCV's libpng gives)"))
            out = decode_images(paths, cache_dir=fresh.cache, progress=False)
            assert np.array_equal(out, arrays)
            cached = interleaved({"cached": lambda: decode_images(paths, cache_dir=fresh.cache, progress=False)},
                                 args.repeats)
            rows.append((f"cached second load, {name}", "decode_images (cache)", cell(cached["cached"]),
                         "target", "0.5 s", statistics.median(cached["cached"]) / 0.5, "<= 1 (of 0.5 s)"))

            # memory: one decode in this process (the memmap's pages count) and the pool's main process
            cache_bytes = arrays.nbytes
            mem_dir = work / f"cache-mem-{name.split()[2]}"
            _, growth = peak_rss_growth(lambda: decode_images(paths, cache_dir=mem_dir, progress=False, workers=1))
            rows.append((f"memory, decode {name} (1 process)", "peak RSS growth", f"{growth / 1e6:.1f} MB",
                         "uint8 cache", f"{cache_bytes / 1e6:.1f} MB", growth / cache_bytes, "<= 1.2"))
            shutil.rmtree(mem_dir)
            tracemalloc.start()
            decode_images(paths, cache_dir=mem_dir, progress=False)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append((f"memory, decode {name} (pool, main process)", "tracemalloc peak", f"{peak / 1e6:.1f} MB",
                         "uint8 cache", f"{cache_bytes / 1e6:.1f} MB", peak / cache_bytes, "<= 1.2"))

        # -- a whole image-files competition, second load -------------------------------------------------
        from kfold.data import load_task

        comp = work / "comp"
        (comp / "test").mkdir(parents=True, exist_ok=True)
        os.symlink(work / "28x28", comp / "train")
        test_paths = write_pngs(comp / "test", gray[:1000])
        pd.DataFrame({"id": [f"{i:05d}" for i in range(n_png)], "label": labels[:n_png]}).to_csv(comp / "train.csv", index=False)
        pd.DataFrame({"id": [p.stem for p in test_paths], "label": 0}).to_csv(comp / "sample_submission.csv", index=False)
        os.environ["KFOLD_CACHE"] = str(work / "cache-task")
        load_task(comp, progress=False)
        t = interleaved({"second": lambda: load_task(comp, progress=False)}, args.repeats)
        rows.append((f"load_task, image-files, {n_png:,} + 1,000 PNGs, second load", "load_task (cache)",
                     cell(t["second"]), "target", "0.5 s", statistics.median(t["second"]) / 0.5, "<= 1 (of 0.5 s)"))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()[0]
    print(f"kfold layouts benchmark: {os.cpu_count()} CPUs, load average {load:.1f} at the end, "
          f"{args.repeats} repeats{' (quick: numbers meaningless)' if args.quick else ''}\n")
    print("| what | kfold | time / size | baseline | time / size | ratio | target |")
    print("|---|---|---|---|---|---|---|")
    for what, a, a_cell, b, b_cell, ratio, target in rows:
        print(f"| {what} | {a} | {a_cell} | {b} | {b_cell} | {ratio:.2f} | {target} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
