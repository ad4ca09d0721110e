"""``--task mnist-mix`` through train.py -> predict.py -> ensemble.py -> kfold leaderboard, like KMNIST,
with per-language accuracy from a solution file's ``Language`` column."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import write_mnist_mix_components

from kfold.commands import main as cli
from kfold.data import LANGUAGES, load_task
from kfold.commands.ensemble import main as ensemble_main
from kfold.errors import DataError, run_cli
from kfold.nn.inference import load_model, predict_proba
from kfold.scoring.leaderboard import leaderboard, make_solution, read_solution
from kfold.commands.predict import main as predict_main
from kfold.files.probs import read_probs
from kfold.files.submission import read_submission
from kfold.commands.train import main as train_main

CPU = ["--device", "cpu"]


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    """10 languages as component files, with the host's solution.csv (Id,Category,Usage,Language) beside them."""
    directory = write_mnist_mix_components(tmp_path_factory.mktemp("mix"), n_train_per_lang=60, n_test_per_lang=20, seed=11)
    task = load_task(directory)
    solution = make_solution(task.test_ids, task.test_labels, seed=0)
    solution["Language"] = np.asarray(task.group_names)[task.test_groups]
    solution.to_csv(directory / "solution.csv", index=False)
    return directory


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread of the shared 2-core machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(data: Path, out: Path, *argv) -> None:
    assert run_cli(train_main, ["--data", str(data), "--task", "mnist-mix", "--preset", "ff-2x250", "--k", "2",
                                "--out", str(out), "--no-progress", *CPU, *map(str, argv)]) == 0


def test_train_predict_ensemble_leaderboard(mix, tmp_path, capsys, one_thread):
    task = load_task(mix)
    assert task.solution == mix / "solution.csv" and task.num_classes == 100
    runs = tmp_path / "runs"
    train(mix, runs / "ff100", "--model", "ff-2x100", "--epochs", 4)
    train(mix, runs / "ff250", "--epochs", 3, "--seed", 1)
    summary = json.loads((runs / "ff100" / "summary.json").read_text())
    assert list(summary["oof_accuracy_by_group"]) == list(LANGUAGES) and summary["oof_accuracy"] > 0.1  # chance 0.01

    probs = tmp_path / "probs"
    capsys.readouterr()
    assert run_cli(predict_main, [str(runs / "ff100"), str(runs / "ff250"), "--data", str(mix), "--task", "mnist-mix",
                                  "--out", str(probs), "--tta", "2", *CPU]) == 0
    tta_header = next(line for line in capsys.readouterr().out.splitlines() if "acc_tta1" in line).split()
    assert {f"acc_tta{n}_{language}" for language in LANGUAGES for n in (1, 2)} <= set(tta_header)  # per-language TTA gain
    assert {p.name for p in probs.iterdir()} == {f"{run}-{part}.npz" for run in ("ff100", "ff250")
                                                 for part in ("fold0", "fold1", "mean", "oof")}
    fold0 = read_probs(probs / "ff100-fold0.npz")
    assert fold0.classes == task.class_names and fold0.classes[:2] == ["Arabic-0", "Arabic-1"]
    np.testing.assert_array_equal(fold0.ids, np.arange(200))  # test Id = row of X_test
    model, meta = load_model(runs / "ff100" / "fold0" / "model.safetensors", torch.device("cpu"))
    norm = meta["normalization"]
    np.testing.assert_allclose(fold0.probs, predict_proba(model, task.test_images, norm["mean"], norm["std"],
                                                          torch.device("cpu"), tta=2), rtol=1e-6)

    submission = tmp_path / "submissions" / "ens.csv"
    report = tmp_path / "report"
    assert run_cli(ensemble_main, [str(probs / "ff100-mean.npz"), str(probs / "ff250-mean.npz"), "--out", str(submission),
                                   "--solution", str(mix / "solution.csv"), "--report", str(report)]) == 0
    ensemble = read_submission(submission)
    np.testing.assert_array_equal(ensemble.ids, np.arange(200))
    by_language = pd.read_csv(report / "groups.csv").set_index("group")  # the report's accuracy per language
    assert list(by_language.index) == list(LANGUAGES) and (by_language["rows"] == 20).all()
    for language, rows in task.group_rows("test").items():
        assert by_language.loc[language, "ensemble"] == pytest.approx(np.mean(ensemble.categories[rows] == task.test_labels[rows]))
        ff100 = read_probs(probs / "ff100-mean.npz").predictions()
        assert by_language.loc[language, "ff100-mean.npz"] == pytest.approx(np.mean(ff100[rows] == task.test_labels[rows]))
    assert "## Accuracy by group" in (report / "report.md").read_text()

    board = tmp_path / "board"
    capsys.readouterr()
    assert cli.main(["leaderboard", "--solution", str(mix / "solution.csv"), "--bootstrap", "50", "--out", str(board),
                     str(submission), str(probs / "ff100-mean.npz"), str(probs / "ff250-mean.npz")]) == 0
    table = pd.read_csv(board / "leaderboard.csv").set_index("submission")
    assert [c for c in table.columns if c.startswith("accuracy_")] == [f"accuracy_{name}" for name in LANGUAGES]
    row = table.loc[[name for name in table.index if name.endswith("ens.csv")][0]]
    for language, rows in task.group_rows("test").items():
        expected = np.mean(ensemble.categories[rows] == task.test_labels[rows])
        assert row[f"accuracy_{language}"] == pytest.approx(expected)
    assert (row["public"] * row["n_public"] + row["private"] * row["n_private"]) / 200 == pytest.approx(
        np.mean([row[f"accuracy_{language}"] for language in LANGUAGES]))  # 20 test rows per language
    header = (board / "leaderboard.md").read_text().splitlines()[0]
    assert header.endswith("| Arabic | Bangla | Devanagari | English | Farsi | Kannada | Swedish | Telugu | Tibetan | Urdu |")
    assert header in capsys.readouterr().out


def test_task_flag_guards_the_dataset(mix, tmp_path, capsys):
    assert run_cli(train_main, ["--data", str(mix), "--task", "kmnist", "--out", str(tmp_path / "r"), *CPU]) == 2
    assert "holds a mnist-mix dataset" in capsys.readouterr().err


def test_language_column_scores_only_scored_rows(tmp_path):
    path = tmp_path / "solution.csv"
    path.write_text("Id,Category,Usage,Language\n0,1,Public,A\n1,1,Private,A\n2,0,Ignored,B\n3,0,Private,B\n4,2,Public,B\n")
    submission = tmp_path / "s.csv"
    submission.write_text("Id,Category\n0,1\n1,0\n2,0\n3,0\n4,1\n")
    table = leaderboard([submission], read_solution(path), n_bootstrap=10)
    assert table.loc[0, "accuracy_A"] == 0.5 and table.loc[0, "accuracy_B"] == 0.5  # Id 2 (Ignored) not counted


def test_language_column_without_usage(tmp_path):
    path = tmp_path / "solution.csv"
    pd.DataFrame({"Id": range(10), "Category": 0, "Language": ["x", "y"] * 5}).to_csv(path, index=False)
    solution = read_solution(path)
    assert solution.split_generated and list(solution.groups) == ["x", "y"] * 5


@pytest.mark.parametrize("text, message", [
    ("Id,Category,Usage,Language\n0,1,Public,A\n1,1,Private, \n", "line 3 (Id 1), column 'Language': empty"),
    ("Id,Category,Language,Usage\n0,1,A,Public\n", "line 1: header 'Id,Category,Language,Usage' must be"),
])
def test_malformed_language_column(tmp_path, text, message):
    path = tmp_path / "solution.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_solution(path)
    assert message in str(err.value)
