"""predict.py and `kfold run` end to end on a tiny synthetic competition."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfold.commands.main import main as kfold_main
from kfold.errors import run_cli
from kfold.commands.predict import main as predict_main
from kfold.files.probs import read_probs
from kfold.commands.train import main as train_main
from synthetic import write_kmnist_comp

FAST = ["--preset", "lenet5", "--k", "2", "--epochs", "3", "--lr", "0.05", "--batch-size", "16", "--aug", "none",
        "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pred")
    data = write_kmnist_comp(root / "comp", n_train=200, n_test=60, seed=2)
    assert run_cli(train_main, ["--data", str(data), "--out", str(root / "run"), *FAST]) == 0
    return data, root / "run"


def test_predict_writes_fold_mean_and_oof_files(trained, tmp_path, capsys):
    data, run = trained
    assert run_cli(predict_main, [str(run), "--data", str(data), "--out", str(tmp_path), "--device", "cpu", "--tta", "3"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["run-fold0.npz", "run-fold1.npz", "run-mean.npz", "run-oof.npz"]
    folds = [read_probs(tmp_path / f"run-fold{i}.npz") for i in (0, 1)]
    mean = read_probs(tmp_path / "run-mean.npz")
    assert np.allclose(mean.probs, (folds[0].probs + folds[1].probs) / 2, atol=1e-6)
    assert folds[0].meta["tta"] == 3 and folds[0].meta["fold"] == 0 and folds[0].meta["kind"] == "test"
    assert list(folds[0].ids) == list(pd.read_csv(data / "sample_submission.csv")["Id"])
    oof = read_probs(tmp_path / "run-oof.npz")
    assert oof.kind == "oof" and len(oof.ids) == 200 and oof.labels is not None
    out = capsys.readouterr().out
    assert "TTA gain on out-of-fold rows" in out and "acc_tta3" in out


def test_predict_csv_format_matches_npz(trained, tmp_path):
    data, run = trained
    for fmt in ("npz", "csv"):
        assert run_cli(predict_main, [str(run), "--data", str(data), "--out", str(tmp_path / fmt), "--device", "cpu", "--format", fmt]) == 0
    a, b = read_probs(tmp_path / "npz" / "run-fold0.npz"), read_probs(tmp_path / "csv" / "run-fold0.csv")
    assert np.allclose(a.probs, b.probs, atol=1e-6) and a.classes == b.classes


def test_predict_refuses_other_data(trained, tmp_path, capsys):
    _, run = trained
    other = write_kmnist_comp(tmp_path / "other", n_train=200, n_test=60, seed=9)
    assert run_cli(predict_main, [str(run), "--data", str(other), "--out", str(tmp_path / "p"), "--device", "cpu"]) == 1
    assert "trained on different data" in capsys.readouterr().err
    assert not list((tmp_path / "p").glob("*.npz"))


def test_predict_rejects_a_directory_that_is_not_a_run(tmp_path, capsys):
    data = write_kmnist_comp(tmp_path / "comp", n_train=40, n_test=10)
    assert run_cli(predict_main, [str(tmp_path), "--data", str(data), "--out", str(tmp_path / "p")]) == 1
    assert "not a kfold run directory" in capsys.readouterr().err


def test_kfold_run_end_to_end(tmp_path, capsys, monkeypatch):
    data = write_kmnist_comp(tmp_path / "comp", n_train=200, n_test=60, seed=3)
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--data", str(data), "--preset", "lenet5", "--k", "2", "--epochs", "2", "--out", "runs/demo",
            "--device", "cpu", "--no-progress"]
    assert kfold_main(argv) == 0
    out = capsys.readouterr().out
    for step in ("== train", "== predict", "== ensemble", "== leaderboard"):
        assert step in out
    assert (tmp_path / "submissions" / "demo-mean.csv").is_file() and (tmp_path / "submissions" / "demo-vote.csv").is_file()
    board = pd.read_csv(tmp_path / "runs" / "demo" / "leaderboard" / "leaderboard.csv")
    assert {"submission", "public", "private"} <= set(board.columns) and len(board) == 4  # 2 folds + mean + vote
    assert board["private"].between(0, 1).all()
    assert json.loads((tmp_path / "runs" / "demo" / "summary.json").read_text())["folds_done"] == 2
    # running it again reuses the finished run instead of refusing or retraining
    assert kfold_main(argv) == 0
    assert "fold 0: already finished" in capsys.readouterr().out
