"""Issue 22, end to end from real images: a competition of every layout, target and schema, made by ``kfold
make-competition`` from the real MNIST-MIX Arabic digits (2,400 training / 600 test images), then ``kfold run``.

The submission's header, Ids and their order must equal the sample's, ``kfold validate --sample`` must accept it,
and the local leaderboard's score must clear a threshold set from a measured run (2 folds of ``lenet5``, 2 epochs,
1 thread: Private accuracy 0.73 for both label layouts and log loss 1.45 measured on 2026-12-07; chance is 0.10 and
ln 10 = 2.30). What is checked is that every layout, target and schema flows through ``kfold run`` and learns, not a
recipe: ``lenet5`` learns these digits in a fraction of ``fast``'s seconds (``fast``, the default preset, measured
Private accuracy 0.40-0.42 and log loss 1.99 at 2 epochs on 2026-12-03, under the thresholds of 0.25 and 2.2 then).
"""
from __future__ import annotations

import pandas as pd
import pytest

from kfold.commands.main import main as kfold_main

EPOCHS = 2
CASES = {
    # name: (make-competition flags, metric, threshold: accuracy at least / log loss at most)
    "pixel-csv-string-classes": (["--layout", "pixel-csv", "--id-column", "ImageId", "--label-column", "Label",
                                  "--class-values", "names"], "accuracy", 0.5),
    "image-files-string-ids": (["--layout", "image-files", "--string-ids"], "accuracy", 0.5),
    "class-folders-rgb-32-probs": (["--layout", "class-folders", "--target", "probs", "--string-ids", "--class-values",
                                    "names", "--rgb", "--resize", "32"], "logloss", 1.9),
}


@pytest.fixture(scope="module")
def arabic(shared_data):
    path = shared_data / "mnist-mix" / "Arabic_train_test.npz"
    if not path.is_file():
        pytest.skip(f"{path} not in the shared data")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_kfold_run_on_a_competition_of_every_shape(case, arabic, tmp_path, monkeypatch, capsys):
    flags, metric, threshold = CASES[case]
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    comp = tmp_path / "comp"
    assert kfold_main(["make-competition", "--data", str(arabic), "--out", str(comp), *flags]) == 0
    before = {p: p.read_bytes() for p in comp.rglob("*") if p.is_file()}
    assert kfold_main(["run", "--data", str(comp), "--out", "runs/e2e", "--preset", "lenet5", "--k", "2", "--epochs",
                       str(EPOCHS), "--threads", "1", "--no-progress", "--submissions", "subs"]) == 0
    out = capsys.readouterr().out
    assert {p: p.read_bytes() for p in comp.rglob("*") if p.is_file()} == before  # no input changed

    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str, keep_default_na=False)
    submission = pd.read_csv(tmp_path / "subs" / "e2e-mean.csv", dtype=str, keep_default_na=False)
    assert list(submission.columns) == list(sample.columns)
    assert submission.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()  # the sample's Ids, in its order, as written
    if metric == "logloss":
        probs = submission.iloc[:, 1:].astype(float)
        assert ((probs > 0) & (probs < 1)).all().all() and (probs.sum(axis=1) - 1).abs().max() < 1e-6
        assert not (tmp_path / "subs" / "e2e-vote.csv").exists()  # a vote holds no probabilities
    else:
        assert set(submission.iloc[:, 1]) <= set(pd.read_csv(comp / "solution.csv", dtype=str).iloc[:, 1])

    board = pd.read_csv(tmp_path / "runs" / "e2e" / "leaderboard" / "leaderboard.csv")
    mean = board[board["submission"].str.endswith("e2e-mean.csv")].iloc[0]
    if metric == "logloss":
        assert mean["private"] <= threshold
    else:
        assert mean["private"] >= threshold
    assert f"out-of-fold {metric}" in out
    assert kfold_main(["validate", str(tmp_path / "subs" / "e2e-mean.csv"), "--sample",
                       str(comp / "sample_submission.csv")]) == 0
    assert "ok:" in capsys.readouterr().out
