"""train.py end to end: presets, run-directory contents, resume after a real kill, determinism."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfold.config import PRESETS
from kfold.errors import run_cli
from kfold.files.probs import read_probs
from kfold.commands.train import main as train_main
from synthetic import write_kmnist_comp

REPO = Path(__file__).resolve().parents[1]
TINY = ["--no-progress", "--device", "cpu"]


def train(*argv: str) -> int:
    return run_cli(train_main, [*TINY, *map(str, argv)])  # argv last: argparse keeps a repeated flag's last value


@pytest.fixture(scope="module")
def synthetic_comp(tmp_path_factory) -> Path:
    return write_kmnist_comp(tmp_path_factory.mktemp("comp"), n_train=200, n_test=60, seed=1)


@pytest.fixture(scope="module")
def real_subset(kmnist_comp, tmp_path_factory) -> Path:
    """200 real KMNIST images (20 of each class) in the competition layout: one epoch of every preset on 133 of them
    (k=3) shows that it trains on real images. At least 128 training rows: ``speedrun``'s precision probe then times
    its whole batch of 128, the shape whose answer this machine has cached (a new shape probes again, which under
    load takes minutes and is not cached)."""
    out = tmp_path_factory.mktemp("real")
    images = np.load(kmnist_comp / "kmnist-train-imgs.npy")
    labels = np.load(kmnist_comp / "kmnist-train-labels.npy")
    rows = np.concatenate([np.flatnonzero(labels == c)[:20] for c in range(10)])
    np.save(out / "kmnist-train-imgs.npy", images[rows])
    np.save(out / "kmnist-train-labels.npy", labels[rows])
    np.save(out / "kmnist-test-imgs.npy", np.load(kmnist_comp / "kmnist-test-imgs.npy")[:50])
    pd.DataFrame({"Id": range(50), "Category": 0}).to_csv(out / "sample_submission.csv", index=False)
    return out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_one_epoch_on_real_images(preset, real_subset, tmp_path):
    out = tmp_path / preset
    assert train("--data", real_subset, "--preset", preset, "--k", 3, "--folds", 0, "--epochs", 1, "--out", out) == 0
    meta = json.loads((out / "fold0" / "meta.json").read_text())
    assert meta["preset"] == preset and meta["best_epoch"] == 1 and 0.0 <= meta["val_accuracy"] <= 1.0
    assert meta["config"]["model"] == PRESETS[preset]["model"]


def test_run_directory_is_complete(synthetic_comp, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--epochs", 3, "--lr", 0.05, "--batch-size", 16,
                 "--aug", "none", "--out", out) == 0
    for fold in (0, 1):
        files = {p.name for p in (out / f"fold{fold}").iterdir()}
        assert {"model.safetensors", "meta.json", "metrics.csv", "learning_curve.png", "confusion.csv", "confusion.png", "oof.npz"} <= files
        assert "checkpoint.pt" not in files
        metrics = pd.read_csv(out / f"fold{fold}" / "metrics.csv")
        assert list(metrics["epoch"]) == [1, 2, 3]
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"} <= set(metrics.columns)
        meta = json.loads((out / f"fold{fold}" / "meta.json").read_text())
        assert {"normalization", "fingerprint", "versions", "config", "best_epoch", "seed"} <= set(meta)
    summary = json.loads((out / "summary.json").read_text())
    oof = read_probs(out / "oof.npz")
    assert len(oof.ids) == 200 and summary["oof_rows"] == 200
    assert summary["oof_accuracy"] == pytest.approx(float((oof.probs.argmax(1) == oof.labels).mean()))
    assert summary["oof_accuracy"] > 0.3  # chance is 0.1: the model learned the synthetic patterns
    last = [pd.read_csv(out / f"fold{f}" / "metrics.csv")["val_accuracy"].iloc[-1] for f in (0, 1)]
    val_rows = [json.loads((out / f"fold{f}" / "meta.json").read_text())["val_rows"] for f in (0, 1)]
    assert summary["oof_accuracy_last_epoch"] == pytest.approx(np.dot(last, val_rows) / 200)
    assert summary["oof_accuracy_last_epoch"] <= summary["oof_accuracy"] + 1e-12  # the best epoch is at least as good
    assert {"oof_logloss", "train_seconds", "folds"} <= set(summary)
    assert "OOF accuracy" in capsys.readouterr().out
    # --full trains on all rows for the folds' mean best epoch
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--lr", 0.05, "--batch-size", 16, "--aug", "none",
                 "--out", out, "--full") == 0
    full = json.loads((out / "full" / "meta.json").read_text())
    assert full["train_rows"] == 200 and full["config"]["epochs"] == round(np.mean([s["best_epoch"] for s in summary["folds"]]))


def test_keep_last_reports_the_last_epoch_not_the_best(synthetic_comp, tmp_path, capsys):
    """keep='last': no epoch is picked on the validation rows, so the OOF score is the last epoch's."""
    out = tmp_path / "run"
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--epochs", 3, "--lr", 0.05, "--batch-size", 16,
                 "--aug", "none", "--keep", "last", "--out", out) == 0
    for fold in (0, 1):
        meta = json.loads((out / f"fold{fold}" / "meta.json").read_text())
        last = pd.read_csv(out / f"fold{fold}" / "metrics.csv").iloc[-1]
        assert meta["best_epoch"] == 3 and meta["config"]["keep"] == "last"
        assert meta["val_accuracy"] == pytest.approx(last["val_accuracy"])
        oof = read_probs(out / f"fold{fold}" / "oof.npz")
        assert float((oof.probs.argmax(1) == oof.labels).mean()) == pytest.approx(last["val_accuracy"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["keep"] == "last" and summary["oof_accuracy"] == pytest.approx(summary["oof_accuracy_last_epoch"])
    assert "every fold keeps its last epoch" in capsys.readouterr().out


def test_existing_run_needs_resume(synthetic_comp, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--folds", 0, "--epochs", 1, "--out", out) == 0
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--folds", 1, "--epochs", 1, "--out", out) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--epochs", 2, "--out", out, "--resume") == 2
    assert "config differs" in capsys.readouterr().err


def test_run_from_before_a_config_field_existed_resumes(synthetic_comp, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--folds", 0, "--epochs", 1, "--out", out) == 0
    saved = json.loads((out / "config.json").read_text())
    del saved["config"]["pseudo_label"]  # as written by a version without pseudo-labelling
    (out / "config.json").write_text(json.dumps(saved))
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--epochs", 1, "--out", out, "--resume") == 0
    assert (out / "fold1" / "meta.json").exists()
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--epochs", 1, "--out", out, "--resume",
                 "--pseudo-label", 0.9) == 2  # a non-default value of the new field is a different setup
    assert "config differs" in capsys.readouterr().err


def test_same_seed_same_bytes_on_cpu(synthetic_comp, tmp_path):
    for name in ("a", "b"):
        assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--folds", 0, "--epochs", 2,
                     "--batch-size", 32, "--out", tmp_path / name) == 0
    a, b = read_probs(tmp_path / "a" / "fold0" / "oof.npz"), read_probs(tmp_path / "b" / "fold0" / "oof.npz")
    assert a.probs.tobytes() == b.probs.tobytes()
    assert (tmp_path / "a" / "folds.csv").read_bytes() == (tmp_path / "b" / "folds.csv").read_bytes()


def test_task_flag_checks_the_kind_of_data(synthetic_comp, tmp_path, capsys):
    assert train("--data", synthetic_comp, "--task", "mnist-mix", "--preset", "lenet5", "--out", tmp_path / "x") == 2
    assert "--task mnist-mix: --data" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_albumentations_backend_trains(synthetic_comp, tmp_path):
    out = tmp_path / "alb"
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--folds", 0, "--epochs", 1,
                 "--aug-backend", "albumentations", "--num-workers", 1, "--out", out) == 0
    assert json.loads((out / "fold0" / "meta.json").read_text())["config"]["aug_backend"] == "albumentations"


@pytest.mark.parametrize("argv, message", [
    (["--k", "1"], "argument --k: '1' is not an integer in 2..10000"),
    (["--epochs", "-3"], "argument --epochs: '-3' is not an integer >= 1"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--folds", "7"], "--folds '7': folds must be in 0..1"),
    (["--k", "two"], "train.py: argument --k: 'two' is not an integer in 2..10000"),
])
def test_nonsense_cli_values(argv, message, synthetic_comp, tmp_path, capsys):
    # argparse keeps the last value of a repeated flag, so argv overrides these defaults
    assert train("--data", synthetic_comp, "--out", tmp_path / "x", "--k", 2, "--preset", "lenet5", "--epochs", 1, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _start(args: list, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *map(str, args), *TINY], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env, cwd=REPO)


def test_resume_after_sigkill_is_bit_identical(synthetic_comp, tmp_path, capsys):
    """A real process killed mid-fold resumes with --resume to the same folds and the same probabilities.

    The killed run is a train.py process of its own; the uninterrupted reference and the resume run in this process
    (torch imported once), all with one torch thread, so that the three compute alike."""
    args = ["--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--epochs", 4, "--seed", 5, "--batch-size", 16, "--lr", 0.05,
            "--threads", 1]
    reference = tmp_path / "reference"
    assert train(*args, "--out", reference) == 0

    out = tmp_path / "killed"
    proc = _start([*args, "--out", out], tmp_path / "killed.log")
    deadline = time.time() + 240
    while not (out / "fold1" / "checkpoint.pt").exists():  # killed inside the second fold, after a checkpoint
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "killed.log").read_text()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "fold1" / "meta.json").exists()
    capsys.readouterr()
    assert train(*args, "--out", out, "--resume") == 0
    log = capsys.readouterr().out
    assert "fold 0: already finished" in log and "fold 1: resuming after epoch" in log, log
    assert (out / "folds.csv").read_bytes() == (reference / "folds.csv").read_bytes()
    assert read_probs(out / "oof.npz").probs.tobytes() == read_probs(reference / "oof.npz").probs.tobytes()
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("checkpoint.pt"))


def test_parallel_folds_train_every_fold(synthetic_comp, tmp_path):
    """--parallel-folds N: shorthand for --backend ray on an embedded local cluster running N folds at once."""
    pytest.importorskip("ray")
    out = tmp_path / "par"
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--epochs", 1, "--out", out, "--parallel-folds", 2) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds_done"] == 2 and summary["oof_rows"] == 200
    assert sorted(row["fold"] for row in summary["folds"]) == [0, 1]


def test_compile_failure_at_first_call_falls_back_to_eager(synthetic_comp, tmp_path, monkeypatch, capsys):
    import torch

    def broken_compile(model):
        def compiled(x):
            raise RuntimeError("no C compiler found\nmore detail")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    out = tmp_path / "c"
    assert train("--data", synthetic_comp, "--preset", "lenet5", "--k", 2, "--folds", 0, "--epochs", 1, "--compile", "--out", out) == 0
    assert "warning: torch.compile failed (RuntimeError: no C compiler found); running eagerly" in capsys.readouterr().out
    assert json.loads((out / "fold0" / "meta.json").read_text())["config"]["compile"] is True
