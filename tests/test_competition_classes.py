"""Issue 18 item 5: the competition's classes (class map, data beside the sample / solution) bound the Category."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from synthetic import write_kmnist_comp, write_mnist_mix_components

from kfold.commands.main import main as kfold_main
from kfold.data.classes import competition_classes
from kfold.data.make_competition import make_competition
from kfold.data import load_task


@pytest.fixture
def comp(tmp_path):
    directory = write_kmnist_comp(tmp_path / "comp", n_train=50, n_test=20)
    sub = tmp_path / "sub11.csv"
    pd.DataFrame({"Id": range(20), "Category": [11] + [0] * 19}).to_csv(sub, index=False)
    return directory, sub


def test_validate_and_submit_refuse_category_11_on_a_10_class_competition(comp, capsys, monkeypatch):
    directory, sub = comp
    sample = str(directory / "sample_submission.csv")
    assert kfold_main(["validate", str(sub), "--sample", sample]) == 1
    assert "line 2 (Id 0), column 'Category': 11 is not in 0..9" in capsys.readouterr().err
    from kfold import kaggle_api
    monkeypatch.setattr(kaggle_api, "submit", lambda *a: pytest.fail("uploaded a bad submission"))
    assert kfold_main(["submit", str(sub), "-c", "x", "-m", "y", "--sample", sample]) == 1
    assert "11 is not in 0..9" in capsys.readouterr().err
    # a good file says where its class range came from; a contradicting --num-classes is a usage error
    assert kfold_main(["validate", sample, "--sample", sample]) == 0
    assert f"Categories in 0..9 (10 classes from {directory / 'kmnist_classmap.csv'})" in capsys.readouterr().out
    assert kfold_main(["validate", sample, "--sample", sample, "--num-classes", "12"]) == 2
    assert "--num-classes 12: the competition of" in capsys.readouterr().err


def test_without_a_class_map_the_data_beside_the_sample_counts(comp, capsys):
    directory, sub = comp
    (directory / "kmnist_classmap.csv").unlink()
    assert competition_classes(directory).count == 10  # the dataset's default KMNIST classes
    lone = directory.parent / "lone"
    lone.mkdir()
    shutil.copy(directory / "sample_submission.csv", lone)
    assert competition_classes(lone) is None  # nothing known: only non-negative is checked
    assert kfold_main(["validate", str(sub), "--sample", str(lone / "sample_submission.csv")]) == 0


def test_leaderboard_refuses_categories_outside_the_solutions_classes(comp, capsys):
    directory, sub = comp
    assert kfold_main(["leaderboard", "--solution", str(directory / "solution.csv"), str(sub), "--out",
                       str(directory.parent / "lb")]) == 1
    err = capsys.readouterr().err
    assert "11 is not in 0..9 of the competition (10 classes from" in err and not (directory.parent / "lb").exists()
    # the class map goes: the data beside the solution still says 10 classes
    (directory / "kmnist_classmap.csv").unlink()
    assert kfold_main(["leaderboard", "--solution", str(directory / "solution.csv"), str(sub), "--out",
                       str(directory.parent / "lb")]) == 1
    assert "(10 classes from the comp data in" in capsys.readouterr().err


def test_mnist_mix_competition_has_its_language_classes(tmp_path, capsys):
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic", "Bangla"), n_train_per_lang=20,
                                        n_test_per_lang=10)
    out = tmp_path / "comp"
    make_competition(load_task(source), out)
    assert competition_classes(out).count == 20
    sub = tmp_path / "s.csv"
    pd.DataFrame({"Id": range(20), "Category": np.r_[19, 20, [0] * 18]}).to_csv(sub, index=False)
    assert kfold_main(["validate", str(sub), "--sample", str(out / "sample_submission.csv")]) == 1
    assert "line 3 (Id 1), column 'Category': 20 is not in 0..19" in capsys.readouterr().err
