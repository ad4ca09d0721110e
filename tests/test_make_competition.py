"""Issue 18 item 4: ``kfold make-competition`` turns labelled data into a competition directory that
``kfold run`` scores (sample_submission.csv, a seeded Public/Private solution.csv)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import write_kmnist_idx, write_mnist_mix_components

from kfold.commands.main import main as kfold_main
from kfold.data import load_task
from kfold.files.split import PUBLIC_FRACTION
from kfold.scoring.leaderboard import leaderboard, read_solution


def make(data, out, *extra) -> int:
    return kfold_main(["make-competition", "--data", str(data), "--out", str(out), *extra])


def check_competition(source, out, n_classes, public_fraction=PUBLIC_FRACTION):
    """The directory loads, its solution is found, and scores a perfect submission 1.0 on Public and Private."""
    task = load_task(out)
    original = load_task(source)
    assert task.solution == out / "solution.csv" and task.num_classes == n_classes
    assert np.array_equal(task.train_images, original.train_images) and np.array_equal(task.test_images, original.test_images)
    solution = pd.read_csv(out / "solution.csv")
    sample = pd.read_csv(out / "sample_submission.csv")
    assert list(sample.columns) == ["Id", "Category"] and (sample["Category"] == 0).all()
    assert np.array_equal(sample["Id"], solution["Id"]) and np.array_equal(solution["Category"], original.test_labels)
    assert (solution["Usage"] == "Public").sum() == round(public_fraction * len(solution))
    perfect = out.parent / f"{out.name}-perfect.csv"
    solution[["Id", "Category"]].to_csv(perfect, index=False)
    table = leaderboard([perfect], read_solution(task.solution), n_bootstrap=10)
    assert table.loc[0, "public"] == 1.0 and table.loc[0, "private"] == 1.0
    return task, solution


def test_mnist_mix_components_to_competition(tmp_path, capsys):
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic", "Bangla"), n_train_per_lang=30,
                                        n_test_per_lang=20)
    assert make(source, tmp_path / "comp", "--seed", "3") == 0
    assert sorted(p.name for p in (tmp_path / "comp").iterdir()) == [  # no temporary file left behind
        "MNIST_MIX_train_test.npz", "competition.json", "sample_submission.csv", "solution.csv"]
    task, solution = check_competition(source, tmp_path / "comp", 20)
    assert task.name == "mnist-mix" and task.group_names == ["Arabic", "Bangla"]
    assert list(solution.columns) == ["Id", "Category", "Usage", "Language"]
    assert sorted(set(solution["Language"])) == ["Arabic", "Bangla"]
    assert "next: kfold run --data" in capsys.readouterr().out
    # seeded: the same seed gives the same file, another seed another split
    assert make(source, tmp_path / "again", "--seed", "3") == 0 and make(source, tmp_path / "other", "--seed", "4") == 0
    assert (tmp_path / "again" / "solution.csv").read_bytes() == (tmp_path / "comp" / "solution.csv").read_bytes()
    assert (tmp_path / "other" / "solution.csv").read_bytes() != (tmp_path / "comp" / "solution.csv").read_bytes()


def test_official_kmnist_to_kaggle_layout_without_test_labels(tmp_path):
    source = write_kmnist_idx(tmp_path / "kmnist", n_train=60, n_test=40)
    assert make(source, tmp_path / "comp", "--public-fraction", "0.5") == 0
    files = sorted(p.name for p in (tmp_path / "comp").iterdir())
    assert files == ["competition.json", "kmnist-test-imgs.npy", "kmnist-train-imgs.npy", "kmnist-train-labels.npy",
                     "kmnist_classmap.csv", "sample_submission.csv", "solution.csv"]  # the test labels are only in the host's solution
    task, solution = check_competition(source, tmp_path / "comp", 10, public_fraction=0.5)
    assert (solution["Usage"] == "Public").sum() == 20
    assert task.class_names == load_task(source).class_names


def test_refusals_write_nothing(tmp_path, capsys):
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic",), n_train_per_lang=20, n_test_per_lang=10)
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    assert make(source, tmp_path / "bad", "--public-fraction", "1.5") == 2
    assert not (tmp_path / "bad").exists()
    assert make(source, source) == 0  # writing beside the components adds files, never changes one
    assert all((source / name).read_bytes() == data for name, data in before.items())
    capsys.readouterr()
    assert make(source, source) == 2  # the second time: the files exist
    assert "already holds MNIST_MIX_train_test.npz" in capsys.readouterr().err
    unlabelled = tmp_path / "unlabelled"
    (tmp_path / "kmnist").mkdir()
    write_kmnist_idx(tmp_path / "kmnist", n_train=30, n_test=20)
    (tmp_path / "kmnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert make(tmp_path / "kmnist", unlabelled) == 1
    assert "no test labels" in capsys.readouterr().err and not unlabelled.exists()


def test_real_mnist_mix(shared_data, tmp_path):
    source = shared_data / "mnist-mix"
    if not (source / "Arabic_train_test.npz").is_file():
        pytest.skip("no MNIST-MIX files in the shared data")
    assert make(source, tmp_path / "comp") == 0
    task, solution = check_competition(source, tmp_path / "comp", load_task(source).num_classes)
    assert len(solution) == len(task.test_ids) == 1200


def test_kfold_run_scores_the_made_competition(tmp_path, capsys, monkeypatch):
    """The whole flow on the written directory ends with a leaderboard (a tiny 1-epoch lenet5)."""
    pytest.importorskip("torch")
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic", "Bangla"), n_train_per_lang=30,
                                        n_test_per_lang=10)
    assert make(source, tmp_path / "comp") == 0
    monkeypatch.chdir(tmp_path)
    assert kfold_main(["run", "--data", str(tmp_path / "comp"), "--preset", "lenet5", "--k", "2", "--epochs", "1",
                       "--device", "cpu", "--no-progress", "--out", str(tmp_path / "runs" / "r")]) == 0
    board = pd.read_csv(tmp_path / "runs" / "r" / "leaderboard" / "leaderboard.csv")
    assert {"r-mean.csv", "r-vote.csv"} <= {Path(name).name for name in board["submission"]}
    assert {"accuracy_Arabic", "accuracy_Bangla"} <= set(board.columns)
