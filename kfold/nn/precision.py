"""bf16 autocast and the channels_last memory format: what a config's setting means on the device that trains.

``on`` / ``off``: as said, on every device. ``auto`` (every preset's default): on CUDA only; on the CPU float32 in
the contiguous format, deterministic and the same arithmetic on every CPU. ``probe`` (the ``speedrun`` preset): on
CUDA as ``auto``; on the CPU whichever of float32 / bf16 autocast and contiguous / channels_last this machine runs
fastest, found by a short timed probe: a few forward and backward steps of the actual model at the actual batch
size (images of the actual shape), each variant in turn, well under a few seconds. bf16 autocast speeds up CPUs with
native bf16 (AVX512-BF16, AMX) and slows down others (an x86 CPU without those flags is not timed in bf16);
channels_last helps oneDNN's convolutions on some CPUs only.

The probe's answer is cached per machine under the kfold cache folder (``$KFOLD_CACHE``, else ``~/.cache/kfold``:
``precision/<key>.json``, the key made of the CPU model, its bf16/AVX512 flags, torch's CPU capability and version,
the thread count, the model and the batch), so a re-run on the same machine makes the same choice without probing.
Each fold records its choice in its ``meta.json`` (``precision``) and in its checkpoint: a resumed fold continues
with the choice it started with, and a fold of a run whose other folds have finished takes theirs, so a resume never
probes again and never flips.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn

from kfold.config import PRECISION_SETTINGS, TrainConfig
from kfold.errors import DataError

MARGIN = 0.9  # bf16 / channels_last are chosen only when at least 10% faster than float32 / contiguous
PROBE_STEPS = 3  # at most this many timed steps per variant (after one warm-up step each), interleaved
PROBE_BUDGET_S = 1.5  # no third round of timed steps once two have taken this long
NOISY = 1.5  # a variant whose slowest step took 1.5x its fastest: the machine was busy; the choice is not cached
CACHE_FOLDER = "precision"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
Variant = tuple[bool, bool]  # (bf16, channels_last)


@dataclass(frozen=True)
class Precision:
    """The choice a fold trains with, and where it came from."""

    bf16: bool
    channels_last: bool
    decided_by: str = "config"  # config | probe | cache | run (another fold's) | checkpoint (this fold's, resumed)
    seconds: dict[str, float] | None = field(default=None, compare=False)  # the probe's seconds per step

    def record(self) -> dict:
        """What meta.json and the checkpoint keep."""
        return {"bf16": self.bf16, "channels_last": self.channels_last, "decided_by": self.decided_by,
                "probe_seconds": self.seconds}


def rule(setting: str, device: torch.device) -> bool:
    """A setting without the probe: ``on``; ``auto`` and ``probe`` on CUDA (today's CUDA behaviour)."""
    return setting == "on" or (setting in ("auto", "probe") and device.type == "cuda")


def probed(cfg: TrainConfig, device: torch.device) -> list[str]:
    """The fields (``bf16``, ``channels_last``) a probe decides for ``cfg`` on ``device``: ``probe`` on the CPU."""
    return [name for name in ("bf16", "channels_last") if getattr(cfg, name) == "probe" and device.type == "cpu"]


def variant_name(variant: Variant) -> str:
    bf16, channels_last = variant
    return ("bf16" if bf16 else "float32") + ("+channels_last" if channels_last else "")


def check_record(record, where: str) -> dict:
    """A recorded choice (meta.json, a checkpoint): two booleans, or a ``DataError`` naming ``where``."""
    if not isinstance(record, dict) or not all(isinstance(record.get(key), bool) for key in ("bf16", "channels_last")):
        raise DataError(f"{where}: precision must hold true/false for bf16 and channels_last, got {record!r}")
    return record


def cpu_model() -> str:
    """The CPU's model string (/proc/cpuinfo's ``model name``; else what the platform says)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list[str]:
    """The CPU flags that decide bf16 and vector speed (a virtual machine's model string can be generic)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")) and ":" in line:
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in CPU_FLAGS if flag in present]
    return []


def emulated_bf16() -> bool:
    """True on an x86 CPU (AVX2 listed) without AVX512-BF16 or AMX-BF16: bf16 autocast there is emulated, only
    ever slower than float32, and its probe steps are the slowest of all (seconds each): not worth probing."""
    flags = set(cpu_flags())
    return "avx2" in flags and not flags & {"avx512_bf16", "amx_bf16"}


def machine_key(cfg: TrainConfig, sample_shape: tuple[int, ...], num_classes: int, variants: list[Variant]) -> dict:
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "capability": capability, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "model": cfg.model, "model_kwargs": cfg.model_kwargs,
            "dropout": cfg.dropout, "batch_norm": cfg.batch_norm, "batch_size": cfg.batch_size,
            "input": list(sample_shape), "classes": num_classes, "variants": [variant_name(v) for v in variants]}


def cache_file(key: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    from kfold.data.download import cache_root

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_root(cache_dir) / CACHE_FOLDER / f"{digest}.json"


def read_cached(path: Path, key: dict) -> Precision | None:
    """The cached choice for ``key``; ``None`` when absent, for another key, or unreadable (then probed again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        check_record(data, str(path))
        seconds = data.get("probe_seconds")
        return Precision(data["bf16"], data["channels_last"], "cache", seconds if isinstance(seconds, dict) else None)
    except (OSError, ValueError, AttributeError, DataError):
        return None


@contextlib.contextmanager
def machine_lock(path: Path) -> Iterator[None]:
    """One probe at a time on this machine (folds starting together share one answer): an exclusive lock on the
    cache folder itself, so no lock file is written."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent probes may both run; each is recorded where it was used
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a cache folder that cannot be made or opened: probe without the lock (and without the cache)
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


Builder = Callable[[TrainConfig, int, int, int], torch.nn.Module]  # (cfg, num_classes, image_size, in_chans)


def time_variants(cfg: TrainConfig, sample: np.ndarray, num_classes: int, variants: list[Variant],
                  build: Builder) -> dict[str, list[float]]:
    """Seconds of forward + backward steps of ``cfg``'s model (``build(cfg, num_classes, image_size, in_chans)``,
    the trainer's own builder, for the sample's side and channel count: (B, H, W) gray or (B, H, W, C)) on
    ``sample`` (a batch of training images, uint8) per variant: one warm-up step
    each, then up to ``PROBE_STEPS`` rounds over the variants (load that moves under the probe moves under every
    variant alike), a third only within ``PROBE_BUDGET_S``: every timed step's seconds per variant. torch's random
    state is left as it was."""
    import torch.nn.functional as F

    from kfold.nn.inference import autocast, image_channels, to_unit_float

    if build is None:
        raise TypeError("the probe needs the trainer's model builder (decide(..., build=kfold.nn.engine.build_model))")

    device = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build(cfg, num_classes, int(sample.shape[1]), image_channels(sample)).train()
        x = to_unit_float(torch.from_numpy(np.array(sample)))  # a copy: the sample may be a read-only memory map
        x = (x - x.mean()) / (x.std() + 1e-8)
        y = torch.arange(len(x)) % num_classes
        times: dict[Variant, list[float]] = {v: [] for v in variants}

        def step(variant: Variant) -> float:
            bf16, channels_last = variant
            layout = torch.channels_last if channels_last else torch.contiguous_format
            net, batch = model.to(memory_format=layout), x.contiguous(memory_format=layout)
            start = time.perf_counter()
            with autocast(device, bf16):
                loss = F.cross_entropy(net(batch), y)
            loss.backward()
            seconds = time.perf_counter() - start
            net.zero_grad(set_to_none=True)
            return seconds

        for variant in variants:
            step(variant)  # warm-up: oneDNN builds its kernels for this layout and dtype
        start = time.perf_counter()
        for done in range(1, PROBE_STEPS + 1):
            for variant in variants:
                times[variant].append(step(variant))
            if done >= 2 and time.perf_counter() - start > PROBE_BUDGET_S:
                break
    return {variant_name(v): t for v, t in times.items()}


def choose(seconds: dict[str, float], variants: list[Variant]) -> Variant:
    """The fastest variant, unless it beats the plain one (float32 / contiguous where probed) by less than MARGIN."""
    plain = min(variants, key=lambda v: (v[0], v[1]))
    best = min(variants, key=lambda v: (seconds[variant_name(v)], v[0], v[1]))
    return best if seconds[variant_name(best)] < MARGIN * seconds[variant_name(plain)] else plain


def decide(cfg: TrainConfig, device: torch.device, *, sample: np.ndarray, num_classes: int,
           build: Builder | None = None, recorded: dict | None = None,
           recorded_by: str = "run", cache_dir: str | os.PathLike | None = None,
           timer: Callable[..., dict[str, float]] | None = None, echo: Callable[[str], None] | None = None) -> Precision:
    """The precision a fold trains with on ``device``.

    ``sample``: a batch of training images (the probe's input: the actual shape and batch size); ``build``: the
    trainer's model builder (``kfold.nn.engine.build_model``), needed when the probe runs; ``recorded``: a choice
    already made for this run (``recorded_by``: ``checkpoint`` for the fold's own, ``run`` for another fold's),
    used as it is for the probed fields. ``timer`` replaces ``time_variants`` (tests)."""
    for name in ("bf16", "channels_last"):
        if getattr(cfg, name) not in PRECISION_SETTINGS:
            raise DataError(f"config value {name}={getattr(cfg, name)!r} must be one of {', '.join(PRECISION_SETTINGS)}")
    fixed = {"bf16": rule(cfg.bf16, device), "channels_last": rule(cfg.channels_last, device)}
    names = probed(cfg, device)
    if not names:
        return Precision(fixed["bf16"], fixed["channels_last"], "config")
    if recorded is not None:
        chosen = {**fixed, **{name: recorded[name] for name in names}}
        return Precision(chosen["bf16"], chosen["channels_last"], recorded_by, recorded.get("probe_seconds"))
    options = {name: [False, True] if name in names else [fixed[name]] for name in fixed}
    skipped = "bf16" in names and emulated_bf16()
    if skipped:  # decided by the CPU's flags: float32
        options["bf16"] = [False]
    variants = [(b, c) for b in options["bf16"] for c in options["channels_last"]]
    if len(variants) == 1:  # nothing left to time
        return Precision(*variants[0], "probe", {})
    batch = sample[: max(1, cfg.batch_size)]
    key = machine_key(cfg, tuple(batch.shape), num_classes, variants)
    path = cache_file(key, cache_dir)
    cached = read_cached(path, key)
    if cached is not None:
        return cached
    with machine_lock(path):
        cached = read_cached(path, key)  # another fold probed while this one waited
        if cached is not None:
            return cached
        steps = {name: [float(t) for t in (v if isinstance(v, (list, tuple)) else [v])]
                 for name, v in (timer or time_variants)(cfg, batch, num_classes, variants, build).items()}
        # the fastest step of each variant: other processes only ever add time, so the minimum is the least disturbed
        seconds = {name: min(t) for name, t in steps.items()}
        noisy = any(max(t) > NOISY * min(t) for t in steps.values())
        bf16, channels_last = choose(seconds, variants)
        found = Precision(bf16, channels_last, "probe", seconds)
        if echo is not None:
            echo(f"precision probe ({', '.join(f'{k} {v * 1000:.1f} ms' for k, v in seconds.items())} per step of "
                 f"{len(batch)}): {variant_name((bf16, channels_last))}"
                 + (" (bf16 not timed: this CPU has no native bf16)" if skipped else "")
                 + (" (the machine was busy: not cached, the next run probes again)" if noisy else ""))
        if noisy:  # recorded with the fold (the run keeps it), but not taken as this machine's answer
            return found
        with contextlib.suppress(OSError):  # a read-only cache folder: the choice is still recorded with the fold
            from kfold.files.atomic import write_json

            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {"key": key, **found.record(), "probed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return found


def run_record(meta_files: list[Path]) -> dict | None:
    """The choice recorded by a finished fold of this run (its meta.json), if any fold recorded one."""
    for path in meta_files:
        try:
            meta = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        record = meta.get("precision") if isinstance(meta, dict) else None
        if record is not None and str(meta.get("device", "cpu")).startswith("cpu"):
            return check_record(record, str(path))
    return None


def for_prediction(meta: dict, device: torch.device, where: str = "the model's metadata") -> tuple[bool, bool]:
    """(channels_last, bf16) of a trained model's evaluation on ``device``: the fold's recorded choice when it
    trained on the CPU and predicts there (its out-of-fold rows were scored so), else the config's rule."""
    cfg = meta.get("config") or {}
    record = meta.get("precision")
    if record is not None and device.type == "cpu" and str(meta.get("device", "cpu")).startswith("cpu"):
        record = check_record(record, where)
        return record["channels_last"], record["bf16"]
    return rule(cfg.get("channels_last", "auto"), device), rule(cfg.get("bf16", "auto"), device)
