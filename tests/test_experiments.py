"""The four MNIST-MIX experiments end to end on synthetic 10-language data in the real file format."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import balanced_labels, pattern_images, write_mnist_mix_components

from kfold.commands import main as cli
from kfold.data import LANGUAGES, load_mnist_mix
from kfold.errors import run_cli
from kfold.commands.mnist_mix import main as experiments_main
from kfold.nn.experiments.common import (Experiment, accuracy_by_language, model_config, new_trainer, predict_test,
                                      subsample, train_epochs)
from kfold.nn.experiments.schedules import sequential_stages

REPO = Path(__file__).resolve().parents[1]
FAST = ["--device", "cpu", "--threads", "1", "--no-progress"]
CHANCE_DIGITS = 0.1


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    return write_mnist_mix_components(tmp_path_factory.mktemp("mix"), n_train_per_lang=40, n_test_per_lang=20, seed=3)


def run(experiment: str, data: Path, out: Path, *argv) -> int:
    return run_cli(experiments_main, [experiment, "--data", str(data), "--out", str(out), *map(str, argv), *FAST])


def check_png(path: Path) -> None:
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 100 and image.std() > 0  # a drawn figure, not a blank


def test_compare(mix, tmp_path, capsys):
    out = tmp_path / "compare"
    assert run("compare", mix, out, "--models", "ff-2x100,resnet8", "--epochs", 2) == 0
    results = pd.read_csv(out / "results.csv")
    assert list(results["model"]) == ["ff-2x100", "resnet8"] and list(results["epochs"]) == [2, 2]
    languages = list(LANGUAGES)
    # 20 test images per language: the overall accuracy is the mean of the per-language ones
    np.testing.assert_allclose(results["overall"], results[languages].mean(axis=1))
    assert (results["digit_accuracy"] >= results["overall"]).all() and (results["language_accuracy"] >= results["overall"]).all()
    ff = results.iloc[0]
    assert ff["overall"] > 10 * 0.01 and ff["digit_accuracy"] > 3 * CHANCE_DIGITS  # 100 classes: chance is 0.01
    assert results.loc[1, "parameters"] > 0 and (results["train_seconds"] > 0).all()
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2, 1, 2]
    last = history.groupby("model", sort=False).tail(1).reset_index(drop=True)
    np.testing.assert_allclose(last[["overall", *languages]], results[["overall", *languages]])
    summary = (out / "summary.md").read_text()
    assert "| model | parameters | epochs | train_seconds | overall | Arabic | Bangla |" in summary
    assert "| ff-2x100 | 99100 | 2 |" in summary and "mnist_mix.py compare --data" in summary
    for name in ("accuracy.png", "history.png"):
        check_png(out / name)
    printed = capsys.readouterr().out
    assert "100-class test accuracy" in printed and f"{ff['overall']:.4f}" in printed


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI runs with --threads 1
    yield
    torch.set_num_threads(threads)


def test_transfer_matrix_is_test_by_train(mix, tmp_path, one_thread):
    out = tmp_path / "transfer"
    assert run("transfer", mix, out, "--models", "ff-2x100", "--epochs", 8, "--seed", 5) == 0
    matrix = pd.read_csv(out / "transfer_ff-2x100.csv", index_col=0)
    assert matrix.shape == (10, 10) and list(matrix.index) == list(LANGUAGES) == list(matrix.columns)
    assert matrix.index.name == "test language"
    values = matrix.to_numpy()
    assert np.diag(values).mean() > 3 * CHANCE_DIGITS and ((values >= 0) & (values <= 1)).all()
    stats = pd.read_csv(out / "transfer.csv").iloc[0]
    assert stats["within_language"] == pytest.approx(np.diag(values).mean())
    assert stats["cross_language"] == pytest.approx(values[~np.eye(10, dtype=bool)].mean())
    # Column = train language: retrain on Bangla alone with the same seed and test on every language.
    task = load_mnist_mix(mix, label_mode="agnostic")
    exp = Experiment(task, tmp_path / "again", torch.device("cpu"), seed=5, epochs=8, progress=False)
    trainer = new_trainer(exp, model_config("ff-2x100", 8), exp.train_rows("Bangla"), "Bangla")
    train_epochs(trainer, 8)
    scores = accuracy_by_language(task, predict_test(exp, trainer))
    np.testing.assert_allclose(matrix["Bangla"], [scores[name] for name in LANGUAGES])
    check_png(out / "transfer_ff-2x100.png")
    assert "| test / train | Arabic | Bangla |" in (out / "summary.md").read_text()


def test_roundrobin(mix, tmp_path):
    out = tmp_path / "rr"
    assert run("roundrobin", mix, out, "--models", "ff-2x100", "--rounds", 2) == 0
    stages = pd.read_csv(out / "stages.csv")
    robin, mixed = stages[stages["schedule"] == "roundrobin"], stages[stages["schedule"] == "mixed"]
    assert list(robin["trained_on"]) == list(LANGUAGES) * 2 and list(robin["round"]) == [1] * 10 + [2] * 10
    assert list(mixed["trained_on"]) == ["all", "all"]
    np.testing.assert_allclose(robin["data_epochs"], np.arange(1, 21) / 10)  # equal-sized languages
    np.testing.assert_allclose(mixed["data_epochs"], [1, 2])
    final = pd.read_csv(out / "final.csv")
    assert list(final["schedule"]) == ["roundrobin", "mixed"]
    np.testing.assert_allclose(final["overall"], [robin["overall"].iat[-1], mixed["overall"].iat[-1]])
    assert (final["overall"] > 3 * CHANCE_DIGITS).all()
    check_png(out / "curves_ff-2x100.png")
    summary = (out / "summary.md").read_text()
    assert "## After each round (round-robin) and each epoch (mixed)" in summary
    assert "| ff-2x100 | 2 | roundrobin |" in summary and "| ff-2x100 | 2 | mixed |" in summary


def test_sequential_on_synthetic(mix, tmp_path):
    out = tmp_path / "seq"
    assert run("sequential", mix, out, "--models", "ff-2x100", "--epochs", 2) == 0
    stages = pd.read_csv(out / "stages.csv")
    curve = stages[stages["schedule"] == "sequential"]
    assert list(curve["stage"]) == list(range(1, 11)) and list(curve["trained_on"]) == list(LANGUAGES)
    assert len(stages[stages["schedule"] == "mixed"]) == 2
    forgetting = pd.read_csv(out / "forgetting.csv")
    assert list(forgetting["language"]) == list(LANGUAGES)
    for _, row in forgetting.iterrows():
        assert row["after_own_stage"] == curve.loc[curve["trained_on"] == row["language"], row["language"]].iat[0]
        assert row["final"] == curve[row["language"]].iat[-1]
    np.testing.assert_allclose(forgetting["forgetting"], forgetting["after_own_stage"] - forgetting["final"])
    check_png(out / "forgetting_ff-2x100.png")
    assert "## ff-2x100: forgetting curve" in (out / "summary.md").read_text()


def test_sequential_stages_use_one_language_each(mix):
    task = load_mnist_mix(mix, label_mode="agnostic")
    stages = sequential_stages(Experiment(task, Path("unused"), torch.device("cpu")), epochs=3)
    assert [stage.language for stage in stages] == list(LANGUAGES) and {stage.epochs for stage in stages} == {3}
    for position, stage in enumerate(stages):
        assert len(stage.rows) == 40 and (task.train_groups[stage.rows] == position).all()


def write_conflicting_languages(directory: Path) -> Path:
    """Arabic digits as usual; Bangla images of digit d are labelled (d + 5) % 10: learning Bangla
    alone overwrites what was learned for Arabic, so sequential training must show forgetting."""
    directory.mkdir()
    rng = np.random.default_rng(0)
    for index, (language, shift) in enumerate((("Arabic", 0), ("Bangla", 5))):
        arrays = {}
        for split, n in (("train", 300), ("test", 100)):
            digits = balanced_labels(n, 10, rng)
            arrays[f"X_{split}"] = pattern_images(index * 10 + digits, rng)
            arrays[f"y_{split}"] = ((digits + shift) % 10).astype(np.int32)
        np.savez_compressed(directory / f"{language}_train_test.npz", **arrays)
    return directory


def test_sequential_shows_forgetting(tmp_path):
    data = write_conflicting_languages(tmp_path / "conflict")
    out = tmp_path / "seq"
    assert run("sequential", data, out, "--models", "ff-2x100", "--epochs", 4) == 0
    forgetting = pd.read_csv(out / "forgetting.csv").set_index("language")
    assert forgetting.loc["Arabic", "after_own_stage"] > 0.8
    assert forgetting.loc["Arabic", "final"] < 0.3 and forgetting.loc["Arabic", "forgetting"] > 0.5
    assert forgetting.loc["Bangla", "final"] > 0.8
    curve = pd.read_csv(out / "stages.csv").query("schedule == 'sequential'")
    assert len(curve) == 2 and list(curve["trained_on"]) == ["Arabic", "Bangla"]


def test_same_seed_same_numbers_and_quick(mix, tmp_path):
    tables = []
    for name in ("a", "b"):
        assert run("compare", mix, tmp_path / name, "--models", "ff-2x100", "--quick", "--seed", 7) == 0
        tables.append(pd.read_csv(tmp_path / name / "results.csv").drop(columns="train_seconds"))
    pd.testing.assert_frame_equal(*tables)
    assert tables[0].loc[0, "epochs"] == 1  # --quick: one epoch unless --epochs is given


def test_subsample_keeps_languages_and_rows(tmp_path):
    directory = write_mnist_mix_components(tmp_path, languages=["Farsi", "Urdu"], n_train_per_lang=30, n_test_per_lang=20)
    task = load_mnist_mix(directory)
    small = subsample(task, 10, 5, seed=1)
    assert small.group_names == ["Farsi", "Urdu"]
    assert [len(rows) for rows in small.group_rows("train").values()] == [10, 10]
    assert [len(rows) for rows in small.group_rows("test").values()] == [5, 5]
    np.testing.assert_array_equal(small.test_ids, np.arange(10))
    # every kept row is an original row with its label and group
    original = {img.tobytes(): (label, group) for img, label, group in zip(task.train_images, task.train_labels, task.train_groups)}
    assert all(original[img.tobytes()] == (label, group)
               for img, label, group in zip(small.train_images, small.train_labels, small.train_groups))


@pytest.mark.parametrize("argv, message, code", [
    (["compare", "--models", "ff-2x100,nope"], "--models: unknown model(s) nope; available:", 2),
    (["compare", "--epochs", "0"], "argument --epochs: '0' is not an integer >= 1", 2),
    (["roundrobin", "--rounds", "-1"], "argument --rounds: '-1' is not an integer >= 1", 2),
    (["transfer", "--languages", "Urdu"], "transfer needs at least 2 languages;", 2),
    (["sequential", "--languages", "Klingon"], "unknown MNIST-MIX language(s) 'Klingon'", 2),
    # lists are comma-separated, as on every other command
    (["compare", "--models", "ff-2x100", "resnet8"], "unrecognized arguments: resnet8", 2),
    (["compare", "--models", "ff-2x100,,resnet8"], "empty item in the comma-separated list", 2),
    (["compare", "--models", "resnet8,resnet8"], "'resnet8' is listed twice", 2),
    (["transfer", "--languages", "Arabic,"], "empty item in the comma-separated list", 2),
])
def test_errors_are_one_line_and_write_nothing(mix, tmp_path, capsys, argv, message, code):
    out = tmp_path / "out"
    assert run_cli(experiments_main, [*argv, "--data", str(mix), "--out", str(out), *FAST]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_data_is_a_data_error(tmp_path, capsys):
    assert run("compare", tmp_path / "absent", tmp_path / "out") == 1
    assert "no such MNIST-MIX file or directory" in capsys.readouterr().err


def test_kfold_mnist_mix_subcommand(mix, tmp_path, capsys):
    out = tmp_path / "via-kfold"
    assert cli.main(["mnist-mix", "compare", "--data", str(mix), "--out", str(out), "--models", "ff-2x100",
                     "--epochs", "1", *FAST]) == 0
    assert "`kfold mnist-mix compare --data" in (out / "summary.md").read_text()
    assert len(pd.read_csv(out / "results.csv")) == 1


def test_cli_module_does_not_import_torch():
    code = "import sys, kfold.commands.mnist_mix; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_real_components_quick(shared_data, tmp_path):
    data = shared_data / "mnist-mix"
    if not (data / "Arabic_train_test.npz").is_file():
        pytest.skip(f"MNIST-MIX components not available at {data}")
    out = tmp_path / "real"
    assert run("compare", data, out, "--models", "ff-2x250", "--quick", "--epochs", 2) == 0
    results = pd.read_csv(out / "results.csv").iloc[0]
    # 20 classes (chance 0.05); a two-epoch ff on 300 images per language does far better
    assert results["Arabic"] > 0.4 and results["Devanagari"] > 0.4
    assert "Arabic 300/100, Devanagari 300/100" in (out / "summary.md").read_text()
