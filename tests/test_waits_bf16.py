"""bf16 / channels_last = "probe" (issue 24, item 12): on the CPU a short timed probe decides, cached per machine,
recorded with every fold; a resume and a re-run never probe again and never flip. Explicit values keep working."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kfold.commands.train import main as train_main
from kfold.config import resolve_config
from kfold.errors import UsageError, run_cli
from kfold.nn import precision
from synthetic import write_kmnist_comp

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
ARGS = ["--preset", "lenet5", "--k", "2", "--epochs", "1", "--batch-size", "32", "--threads", "1", "--no-progress",
        "--device", "cpu"]
SAMPLE = np.random.default_rng(0).integers(0, 256, (32, 28, 28), dtype=np.uint8)


def seconds(float32: float, cl: float, bf16: float, both: float) -> dict[str, float]:
    return {"float32": float32, "float32+channels_last": cl, "bf16": bf16, "bf16+channels_last": both}


class Timer:
    """A probe with a forced result: the seconds per step it 'measures', and how often it ran."""

    def __init__(self, result: dict[str, float]):
        self.result, self.calls = result, 0

    def __call__(self, cfg, batch, num_classes, variants, build=None):
        self.calls += 1
        return {precision.variant_name(v): self.result[precision.variant_name(v)] for v in variants}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    # the forced probes stand for any CPU, one with native bf16 too: bf16 is timed (the CPU-flag skip has its own tests)
    monkeypatch.setattr(precision, "emulated_bf16", lambda: False)
    return tmp_path / "cache"


@pytest.fixture
def forced(monkeypatch):
    """Replace the timed probe (kfold.nn.precision.time_variants) with a forced result."""
    def force(result: dict[str, float]) -> Timer:
        timer = Timer(result)
        monkeypatch.setattr(precision, "time_variants", timer)
        return timer

    return force


def probe_cfg(**overrides):
    return resolve_config("lenet5", overrides={"bf16": "probe", "channels_last": "probe", "batch_size": 32, **overrides})


@pytest.mark.parametrize("result, expected", [
    (seconds(1.0, 0.95, 0.97, 0.93), (False, False)),  # nothing 10% faster: float32, contiguous
    (seconds(1.0, 0.5, 0.95, 0.6), (False, True)),  # channels_last only
    (seconds(1.0, 0.95, 0.5, 0.6), (True, False)),  # bf16 only (the AVX512-BF16 CPU without a channels_last gain)
    (seconds(1.0, 0.8, 0.7, 0.3), (True, True)),  # both (this session's AMX CPU)
    (seconds(1.0, 1.6, 1.3, 1.9), (False, False)),  # bf16 slower (the CPU): float32
])
def test_forced_probe_result_picks_each_branch(result, expected, forced, own_cache):
    timer = forced(result)
    chosen = precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10)
    assert (chosen.bf16, chosen.channels_last) == expected and chosen.decided_by == "probe" and timer.calls == 1
    assert chosen.seconds == result
    [cached] = (own_cache / "precision").glob("*.json")
    saved = json.loads(cached.read_text())
    assert (saved["bf16"], saved["channels_last"]) == expected and saved["key"]["threads"] == torch.get_num_threads()
    assert saved["key"]["cpu"] == precision.cpu_model() and saved["key"]["torch"] == torch.__version__


@pytest.mark.parametrize("bf16, channels_last, variants", [("probe", "off", ["float32", "bf16"]),
                                                          ("on", "probe", ["bf16", "bf16+channels_last"]),
                                                          ("probe", "probe", ["float32", "float32+channels_last", "bf16",
                                                                              "bf16+channels_last"])])
def test_only_the_probe_fields_are_timed(bf16, channels_last, variants):
    timer = Timer(seconds(1.0, 0.5, 0.5, 0.2))
    seen = []

    def spy(cfg, batch, num_classes, tried, build):
        seen.extend(precision.variant_name(v) for v in tried)
        assert batch.shape == (32, 28, 28)  # the actual batch size and image shape
        return timer(cfg, batch, num_classes, tried)

    chosen = precision.decide(probe_cfg(bf16=bf16, channels_last=channels_last), CPU, sample=SAMPLE, num_classes=10,
                              timer=spy)
    assert seen == variants
    assert chosen.bf16 == (bf16 != "off") and chosen.channels_last == (channels_last == "probe")


def test_the_choice_is_cached_per_machine_and_reused(forced, own_cache, monkeypatch):
    timer = forced(seconds(1.0, 0.9, 0.5, 0.6))
    first = precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10)
    again = precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10)
    assert timer.calls == 1 and again.decided_by == "cache" and (again.bf16, again.channels_last) == (True, False)
    assert again.seconds == first.seconds
    # another thread count, batch size or model is another question: probed again, cached beside
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10)
    finally:
        torch.set_num_threads(threads)
    precision.decide(probe_cfg(batch_size=16), CPU, sample=SAMPLE, num_classes=10)
    assert timer.calls == 3 and len(list((own_cache / "precision").glob("*.json"))) == 3
    # another CPU model string (the same home folder on another machine): probed again
    monkeypatch.setattr(precision, "cpu_model", lambda: "Another CPU")
    precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10)
    assert timer.calls == 4


def test_folds_starting_together_share_one_probe(own_cache):
    """Two folds of a run start at once on one machine (Ray, --parallel-folds): one probes, the other waits for its
    answer (a lock on the cache folder) instead of probing too and perhaps choosing otherwise."""
    import threading

    calls = []

    def slow(cfg, batch, num_classes, variants, build):
        calls.append(1)
        time.sleep(0.5)
        return seconds(1.0, 0.5, 0.95, 0.6)

    chosen = []
    threads = [threading.Thread(target=lambda: chosen.append(
        precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10, timer=slow))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(calls) == 1 and sorted(c.decided_by for c in chosen) == ["cache", "probe"]
    assert {(c.bf16, c.channels_last) for c in chosen} == {(False, True)}


def test_a_probe_on_a_busy_machine_is_used_but_not_cached(own_cache, capsys):
    """Steps of one variant that differ by more than 1.5x: another process ran; the fold keeps the choice, the
    machine's cache does not (the next run probes again)."""
    calls = []

    def busy(cfg, batch, num_classes, variants, build):
        calls.append(1)
        return {"float32": [1.0, 2.5], "float32+channels_last": [0.9, 0.95], "bf16": [0.5, 0.52],
                "bf16+channels_last": [0.6, 0.61]}

    chosen = precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10, timer=busy, echo=print)
    assert (chosen.bf16, chosen.channels_last, chosen.decided_by) == (True, False, "probe")
    assert chosen.seconds == {"float32": 1.0, "float32+channels_last": 0.9, "bf16": 0.5, "bf16+channels_last": 0.6}
    assert "the machine was busy: not cached" in capsys.readouterr().out
    assert not list(own_cache.glob("precision/*.json"))
    precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10, timer=busy)
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["", "{", "[]", '{"key": 1}', '{"key": null, "bf16": "yes"}'])
def test_a_damaged_cache_file_is_probed_again(damage, forced, own_cache):
    timer = forced(seconds(1.0, 0.5, 0.95, 0.6))
    precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10)
    [cached] = (own_cache / "precision").glob("*.json")
    cached.write_text(damage)
    chosen = precision.decide(probe_cfg(), CPU, sample=SAMPLE, num_classes=10)
    assert timer.calls == 2 and chosen.decided_by == "probe" and json.loads(cached.read_text())["channels_last"] is True


def test_cuda_and_explicit_values_keep_todays_behaviour(forced):
    timer = forced(seconds(1.0, 0.1, 0.1, 0.1))
    for setting, on_cpu, on_cuda in [("auto", False, True), ("probe", None, True), ("on", True, True), ("off", False, False)]:
        cfg = probe_cfg(bf16=setting, channels_last=setting)
        cuda = precision.decide(cfg, CUDA, sample=SAMPLE, num_classes=10)  # the rule only: no CUDA needed
        assert (cuda.bf16, cuda.channels_last, cuda.decided_by) == (on_cuda, on_cuda, "config")
        if on_cpu is not None:
            cpu = precision.decide(cfg, CPU, sample=SAMPLE, num_classes=10)
            assert (cpu.bf16, cpu.channels_last, cpu.decided_by) == (on_cpu, on_cpu, "config")
        mps = precision.decide(cfg, torch.device("mps"), sample=SAMPLE, num_classes=10)
        assert (mps.bf16, mps.channels_last) == (setting == "on", setting == "on")
    assert timer.calls == 0
    assert resolve_config("fast").bf16 == "auto" and resolve_config("speedrun").bf16 == "probe"
    assert resolve_config("speedrun").channels_last == "probe"


@pytest.mark.parametrize("field", ["bf16", "channels_last"])
@pytest.mark.parametrize("value", ["always", "yes", "", "AUTO", "Probe", True, 1, None, 0.5, ["on"]])
def test_bad_values_are_refused(field, value, tmp_path, capsys):
    with pytest.raises(UsageError, match=field):
        resolve_config("speedrun", overrides={field: value})
    config = tmp_path / "config.json"
    config.write_text(json.dumps({field: value}))
    data = write_kmnist_comp(tmp_path / "comp", n_train=40, n_test=10, seed=1)
    assert run_cli(train_main, ["--data", str(data), "--out", str(tmp_path / "run"), "--config", str(config), *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and field in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.fixture
def comp(tmp_path):
    return write_kmnist_comp(tmp_path / "comp", n_train=120, n_test=20, seed=2)


def train(comp: Path, out: Path, *extra) -> int:
    config = out.parent / "probe.json"
    config.write_text(json.dumps({"bf16": "probe", "channels_last": "probe"}))
    return run_cli(train_main, ["--data", str(comp), "--out", str(out), "--config", str(config), *ARGS, *map(str, extra)])


def fold_precision(out: Path, fold: int) -> dict:
    return json.loads((out / f"fold{fold}" / "meta.json").read_text())["precision"]


def test_a_run_records_the_choice_and_a_resume_keeps_it(comp, tmp_path, forced, monkeypatch, capsys):
    """Through train.py: fold 0 probes and records; the run's config keeps 'probe'; fold 1, trained later by a resume
    on a machine whose probe now says otherwise (and whose cache is gone), takes fold 0's choice without probing."""
    out = tmp_path / "run"
    first = forced(seconds(1.0, 0.95, 0.5, 0.6))  # bf16 only
    assert train(comp, out, "--folds", "0") == 0
    assert "fold 0: precision probe (" in capsys.readouterr().out
    assert first.calls == 1
    record = fold_precision(out, 0)
    assert (record["bf16"], record["channels_last"], record["decided_by"]) == (True, False, "probe")
    assert json.loads((out / "config.json").read_text())["config"]["bf16"] == "probe"
    from safetensors import safe_open

    with safe_open(str(out / "fold0" / "model.safetensors"), "np") as handle:  # what predict.py reads
        assert json.loads(handle.metadata()["kfold"])["precision"]["bf16"] is True

    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "another-cache"))
    flipped = forced(seconds(1.0, 0.5, 2.0, 2.0))  # channels_last only, were it asked
    assert train(comp, out, "--resume") == 0
    assert flipped.calls == 0
    record = fold_precision(out, 1)
    assert (record["bf16"], record["channels_last"], record["decided_by"]) == (True, False, "run")
    assert fold_precision(out, 0)["decided_by"] == "probe"  # the finished fold is left as it was

    # predict.py evaluates every fold as its out-of-fold rows were scored: bf16 on, contiguous
    import kfold.nn.inference as inference
    from kfold.commands.predict import main as predict_main

    real, used = inference.predict_proba, []

    def spy(model, images, mean, std, device, batch_size, views=1, channels_last=False, bf16=None, **options):
        used.append((channels_last, bf16))
        return real(model, images, mean, std, device, batch_size, views, channels_last, bf16, **options)

    monkeypatch.setattr(inference, "predict_proba", spy)
    assert run_cli(predict_main, [str(out), "--data", str(comp), "--out", str(tmp_path / "probs"), "--device", "cpu",
                                  "--threads", "1"]) == 0
    assert used and set(used) == {(False, True)}


def test_a_fold_resumed_from_its_checkpoint_keeps_its_choice(comp, tmp_path, forced, monkeypatch, capsys):
    """A fold interrupted after its first epoch, resumed where the probe now says otherwise: the checkpoint's choice."""
    from kfold.nn.engine import FoldTrainer

    out = tmp_path / "run"
    forced(seconds(1.0, 0.5, 0.95, 0.6))  # channels_last only
    real_save = FoldTrainer.save_checkpoint

    def save_then_stop(self):
        real_save(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(FoldTrainer, "save_checkpoint", save_then_stop)
    assert train(comp, out, "--folds", "0", "--epochs", "2") == 130
    assert (out / "fold0" / "checkpoint.pt").is_file() and not (out / "fold0" / "meta.json").exists()
    monkeypatch.setattr(FoldTrainer, "save_checkpoint", real_save)
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "another-cache"))
    flipped = forced(seconds(1.0, 2.0, 0.5, 2.0))  # bf16 only, were it asked
    capsys.readouterr()
    assert train(comp, out, "--folds", "0", "--epochs", "2", "--resume") == 0
    assert "fold 0: resuming after epoch 1" in capsys.readouterr().out
    assert flipped.calls == 0
    record = fold_precision(out, 0)
    assert (record["bf16"], record["channels_last"], record["decided_by"]) == (False, True, "checkpoint")


def test_predict_evaluates_as_the_fold_was_scored():
    meta = {"config": {"bf16": "probe", "channels_last": "probe"}, "device": "cpu",
            "precision": {"bf16": True, "channels_last": False, "decided_by": "probe"}}
    assert precision.for_prediction(meta, CPU) == (False, True)
    assert precision.for_prediction(meta, CUDA) == (True, True)  # another device: its own rule
    older = {"config": {"bf16": "on", "channels_last": "auto"}, "device": "cpu"}  # a fold from before the record
    assert precision.for_prediction(older, CPU) == (False, True)
    with pytest.raises(Exception, match="precision must hold true/false"):
        precision.for_prediction({**meta, "precision": {"bf16": "yes"}}, CPU, "fold0/model.safetensors")


def test_the_real_probe_is_short_and_leaves_the_random_state(monkeypatch):
    """The probe itself (no forced result): every variant timed, a few seconds at most, torch's RNG untouched."""
    cfg = probe_cfg(batch_size=32)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    start = time.perf_counter()
    from kfold.nn.engine import build_model

    measured = precision.time_variants(cfg, SAMPLE, 10, [(False, False), (False, True), (True, False), (True, True)],
                                       build_model)
    took = time.perf_counter() - start
    assert sorted(measured) == sorted(seconds(0, 0, 0, 0))
    assert all(2 <= len(steps) <= precision.PROBE_STEPS and all(0 < s < 5 for s in steps) for steps in measured.values())
    assert took < 30, took  # a few hundred milliseconds on a quiet machine (lenet5, batch 32)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("flags, emulated", [(["avx2"], True), (["avx2", "avx512f"], True),
                                             (["avx2", "avx512f", "avx512_bf16"], False), (["avx2", "amx_bf16"], False),
                                             ([], False)])  # no x86 flags read (another CPU, no /proc): timed as before
def test_bf16_counts_as_emulated_on_x86_without_native_bf16_flags(flags, emulated, monkeypatch):
    monkeypatch.undo()  # the real emulated_bf16, on these flags
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    assert precision.emulated_bf16() is emulated


@pytest.mark.parametrize("bf16, channels_last, variants", [("probe", "probe", ["float32", "float32+channels_last"]),
                                                          ("probe", "off", [])])
def test_an_x86_cpu_without_native_bf16_times_no_bf16_step(bf16, channels_last, variants, monkeypatch, own_cache):
    """bf16 steps are the slowest of the probe there (seconds each at the preset's batch) and never win."""
    monkeypatch.setattr(precision, "emulated_bf16", lambda: True)
    seen, lines = [], []

    def spy(cfg, batch, num_classes, tried, build):
        seen.extend(precision.variant_name(v) for v in tried)
        return Timer(seconds(1.0, 0.5, 0.1, 0.1))(cfg, batch, num_classes, tried)  # bf16 would win if timed

    chosen = precision.decide(probe_cfg(bf16=bf16, channels_last=channels_last), CPU, sample=SAMPLE, num_classes=10,
                              timer=spy, echo=lines.append)
    assert seen == variants and chosen.bf16 is False and chosen.decided_by == "probe"
    assert chosen.channels_last is (channels_last == "probe")
    if variants:
        assert lines and "bf16 not timed: this CPU has no native bf16" in lines[0]
    else:  # nothing left to time: no probe, no line, nothing cached
        assert lines == [] and chosen.seconds == {} and not own_cache.exists()
