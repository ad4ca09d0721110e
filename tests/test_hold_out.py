"""make-competition --test-fraction: a competition kfold reads, without test labels (as Kaggle ships it), becomes a
practice competition whose labelled test set is a seeded, stratified share of its training images."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from synthetic import write_mnist_mix_components
from test_layouts import digit_recognizer

from kfold.commands.main import main as kfold_main
from kfold.data import load_task
from kfold.data.make_competition import hold_out
from kfold.errors import DataError, UsageError


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def row_keys(images: np.ndarray) -> list[bytes]:
    return [image.tobytes() for image in images]


@pytest.mark.parametrize("fraction", [0.2, 0.25, 0.5, 0.7])
def test_held_out_split_is_stratified_disjoint_complete_and_seeded(fraction, tmp_path):
    source, truth = digit_recognizer(tmp_path / "dr", n_train=80, n_test=12)
    task = load_task(source, progress=False)
    assert task.test_labels is None  # as Kaggle ships it: nobody has the test labels
    held = hold_out(task, fraction, seed=3)
    n_test = math.ceil(fraction * 80)
    assert len(held.test_ids) == len(held.test_labels) == len(held.test_images) == n_test
    assert len(held.train_labels) == len(held.train_images) == 80 - n_test
    assert held.test_ids.tolist() == list(range(n_test))
    # every training image lands on exactly one side, with its own label
    label_of = dict(zip(row_keys(task.train_images), task.train_labels.tolist()))
    sides = row_keys(held.train_images) + row_keys(held.test_images)
    assert sorted(sides) == sorted(row_keys(task.train_images))
    assert [label_of[k] for k in row_keys(held.test_images)] == held.test_labels.tolist()
    assert [label_of[k] for k in row_keys(held.train_images)] == held.train_labels.tolist()
    # stratified: each class's share of the test set is within one image of the fraction of its images
    for c in range(task.num_classes):
        assert abs(int((held.test_labels == c).sum()) - fraction * int((task.train_labels == c).sum())) <= 1
    again, other = hold_out(task, fraction, seed=3), hold_out(task, fraction, seed=4)
    assert np.array_equal(again.test_images, held.test_images) and np.array_equal(again.train_labels, held.train_labels)
    assert not np.array_equal(other.test_images, held.test_images)
    assert held.schema == task.schema and held.sample_submission is None and "held out" in held.source


def test_groups_are_held_out_with_their_rows(tmp_path):
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic", "Bangla"), n_train_per_lang=40,
                                        n_test_per_lang=10)
    task = load_task(source, progress=False)
    held = hold_out(task, 0.25, seed=0)
    assert len(held.test_groups) == len(held.test_labels) and len(held.train_groups) == len(held.train_labels)
    for g in range(len(task.group_names)):  # each language keeps its share
        assert (held.test_groups == g).sum() == pytest.approx(0.25 * (task.train_groups == g).sum(), abs=1)


def test_command_makes_a_practice_competition_from_a_kaggle_shaped_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    source, truth = digit_recognizer(tmp_path / "dr", n_train=60, n_test=12, label_values=["cat", "dog", "eel", "fox"])
    before = tree(source)
    out = tmp_path / "practice"
    assert kfold_main(["make-competition", "--data", str(source), "--out", str(out), "--test-fraction", "0.25",
                       "--layout", "image-files", "--string-ids", "--class-values", "names"]) == 0
    printed = capsys.readouterr().out
    assert "45 training / 15 test images" in printed
    assert tree(source) == before  # the input is never changed
    practice = load_task(out, progress=False)
    solution = pd.read_csv(out / "solution.csv", dtype=str)
    sample = pd.read_csv(out / "sample_submission.csv", dtype=str)
    assert list(sample.columns) == ["id", "label"] and list(solution["id"]) == list(sample["id"])
    # each test image's solution label is the label its image had in the original training data
    original = dict(zip(row_keys(truth["train"]), list(truth["labels"])))
    answers = dict(zip(solution["id"], solution["label"]))
    assert [original[k] for k in row_keys(practice.test_images)] == [answers[i] for i in sample["id"]]
    assert sorted(row_keys(practice.train_images) + row_keys(practice.test_images)) == sorted(original)
    assert kfold_main(["inspect", str(out), "--no-progress"]) == 0
    assert "rows: 45 training, 15 test" in capsys.readouterr().out


BAD_FRACTIONS = ["0", "1", "-0.25", "1.5", "nan", "inf", "-inf", "1e-9", "0.999999", "abc", "", "0x1p-1", "1/4"]


@pytest.mark.parametrize("value", BAD_FRACTIONS)
def test_a_bad_test_fraction_is_one_usage_line_and_writes_nothing(value, tmp_path, capsys):
    source, _ = digit_recognizer(tmp_path / "dr", n_train=40, n_test=8)
    before = tree(source)
    code = kfold_main(["make-competition", "--data", str(source), "--out", str(tmp_path / "out"),
                       "--test-fraction", value, "--layout", "pixel-csv"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "--test-fraction" in err[0], err
    assert "Traceback" not in err[0] and not (tmp_path / "out").exists() and tree(source) == before


@pytest.mark.parametrize("value", [0, 1, -1, 2.0, float("nan"), float("inf"), True, "0.5", None, 1e-12])
def test_the_library_refuses_the_same_fractions_in_its_own_words(value, tmp_path):
    task = load_task(digit_recognizer(tmp_path / "dr", n_train=40, n_test=8)[0], progress=False)
    with pytest.raises(UsageError, match=r"^test_fraction( must be between 0 and 1 \(exclusive\), got |=1e-12: holds out 1 of 40)"):
        hold_out(task, value)


def test_a_class_with_one_image_is_named(tmp_path, capsys):
    source, _ = digit_recognizer(tmp_path / "dr", n_train=40, n_test=8, label_values=["a", "b", "c", "d"])
    frame = pd.read_csv(source / "train.csv", dtype=str)
    frame.loc[5, "label"] = "lonely"
    frame.to_csv(source / "train.csv", index=False)
    before = tree(source)
    with pytest.raises(DataError, match="class 'lonely' has a single training image"):
        hold_out(load_task(source, progress=False), 0.25)
    assert kfold_main(["make-competition", "--data", str(source), "--out", str(tmp_path / "out"),
                       "--test-fraction", "0.25", "--layout", "pixel-csv"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'lonely'" in err[0] and not (tmp_path / "out").exists() and tree(source) == before
