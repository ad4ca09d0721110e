"""Every preset takes its first step on an RGB and on a non-28 competition (issue 32, item 5).

The `speedrun` preset once crashed on every RGB competition: its precision probe built the model for one channel.
Here each preset trains fold 0 of 2 for one epoch through the real training flow (``train_run``: the backend's
model check, the precision probe of ``train_fold``, the trainer) on two competitions written in Kaggle's formats
(class folders of RGB 32x32 PNGs; a pixel CSV of gray 20x20 images), and a static check finds every place in
``kfold/`` and ``benchmarks/`` that builds a model and makes sure it names the task's channels and image size.
"""
from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import rgb_shapes_task

from kfold.config import preset_names, resolve_config
from kfold.data.make_competition import MakeOptions, make_competition
from kfold.flows.training import RunRequest, TaskSpec, train_run

ROOT = Path(__file__).resolve().parents[1]

# (layout, options): RGB 32x32 class folders (RGB and not 28), gray 20x20 pixel CSV (one channel, not 28)
SHAPES = {
    "rgb-32": dict(layout="class-folders", class_values="names"),
    "gray-20": dict(layout="pixel-csv", resize=20),
}


@pytest.fixture(scope="module")
def competitions(tmp_path_factory):
    """The two competitions on disk, loaded as ``kfold run`` loads them: name -> (TaskSpec, Task)."""
    root = tmp_path_factory.mktemp("shapes")
    cache = tmp_path_factory.mktemp("cache")
    source = rgb_shapes_task(n_train=24, n_test=6, size=32, seed=0)
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KFOLD_CACHE", str(cache))
        for name, options in SHAPES.items():
            task = source if name.startswith("rgb") else dataclasses.replace(
                source, train_images=source.train_images.mean(axis=3).round().astype(np.uint8),
                test_images=source.test_images.mean(axis=3).round().astype(np.uint8))
            make_competition(task, root / name, options=MakeOptions(**options))
            spec = TaskSpec(str(root / name))
            out[name] = (spec, spec.load(progress=False))
    assert out["rgb-32"][1].channels == 3 and out["rgb-32"][1].image_shape == (32, 32)
    assert out["gray-20"][1].channels == 1 and out["gray-20"][1].image_shape == (20, 20)
    return out


@pytest.mark.parametrize("preset", preset_names())
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_preset_trains_its_first_step(preset, shape, competitions, tmp_path, monkeypatch):
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))  # the speedrun probe's answer: not ~/.cache/kfold
    spec, task = competitions[shape]
    cfg = resolve_config(preset, None, {"epochs": 1})
    request = RunRequest(cfg, spec, preset=preset, k=2, seed=0, folds=[0], device="cpu", threads=1, progress=False)
    lines: list[str] = []
    summary = train_run(request, task, tmp_path / "run", echo=lines.append)
    meta = json.loads((tmp_path / "run" / "fold0" / "meta.json").read_text())
    assert (meta["channels"], meta["image_size"]) == (task.channels, task.image_shape[0])
    assert summary["folds_done"] == 1 and 0.0 <= summary["folds"][0]["val_accuracy"] <= 1.0
    if cfg.bf16 == "probe":  # the timed probe ran on the task's own images: its cache key holds their shape
        assert meta["precision"]["decided_by"] == "probe"
        assert any("precision probe" in line for line in lines)
        from kfold.nn import precision

        timed = {"float32", "float32+channels_last"} | (set() if precision.emulated_bf16() else {"bf16", "bf16+channels_last"})
        assert set(meta["precision"]["probe_seconds"]) == timed  # bf16 is timed where the CPU has it natively
        for cached in (tmp_path / "cache" / "precision").glob("*.json"):  # not cached when the machine was busy
            assert json.loads(cached.read_text())["key"]["input"][1:] == list(task.train_images.shape[1:])


BUILDERS = {  # function -> (positional index of the image size, of the channel count; None: keyword only)
    "create_model": (None, None),
    "build_model": (2, 3),
    "meta_model": (2, None),
    "check_model_fits": (2, None),
}
SIZE_WORDS, CHANNEL_WORDS = ("image_size", "image_shape"), ("in_chans", "channels")


def model_constructions(paths) -> list[str]:
    """Calls of a model builder that leave the image size or the channel count to a default: 'file:line: name'."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name not in BUILDERS:
                continue
            size_at, channels_at = BUILDERS[name]
            words = {k.arg for k in node.keywords}
            has_size = bool(words & set(SIZE_WORDS)) or (size_at is not None and len(node.args) > size_at)
            has_channels = bool(words & set(CHANNEL_WORDS)) or (channels_at is not None and len(node.args) > channels_at)
            if not (has_size and has_channels):  # **kwargs may hold them, but they must be spelled out
                spread = "(**...)" if any(k.arg is None for k in node.keywords) else ""
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}{spread}")
    return found


def test_every_model_built_outside_the_fold_names_the_tasks_channels_and_size():
    paths = [p for p in sorted((ROOT / "kfold").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
             if p.name != "models.py" or p.parent.name != "nn"]  # the builders' own definitions
    assert model_constructions(paths) == []


def test_the_model_construction_check_finds_a_planted_default(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("create_model('lenet5', 10)\nbuild_model(cfg, 10, 28)\n"
                       "check_model_fits(cfg, 10, (28, 28), 'x', channels=3)\nmeta_model('x', 2, 28, 'w', **kw)\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        found = model_constructions([planted])
    finally:
        ROOT = old
    assert found == ["planted.py:1: create_model", "planted.py:2: build_model", "planted.py:4: meta_model(**...)"]
