"""Labelled training data alone: no sample submission, no test set (issue 32, item 6).

Every layout (class folders, image files with a labels CSV, a ``train.csv`` pixel CSV, KMNIST arrays of the
training images and labels only) loads as a task without test rows whose schema comes from the labels' own columns
or Kaggle-like defaults (``kfold inspect`` says which); ``kfold run`` trains the folds, reports the out-of-fold
score, says in one line that no submission is written and exits 0; ``kfold.train`` works on it;
``make-competition --test-fraction`` turns it into a practice competition. Half-made competitions (a sample
without test images, test images without a sample, an empty training folder, ...) are one error line each.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import write_kmnist_comp, write_kmnist_npz
from test_layouts import class_folders, digit_recognizer, image_files, save, tree
from test_reliability import assert_one_line_error

from kfold.commands.main import main as kfold_main
from kfold.data import load_task
from kfold.data.layouts import LoadOptions
from kfold.errors import DataError, UsageError
from kfold.files.schema import KMNIST


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("KFOLD_CACHE", str(folder))
    return folder


def _drop(directory: Path, *names: str) -> Path:
    for name in names:
        path = directory / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return directory


# name -> (builder, the schema's header, where inspect says the columns came from)
LAYOUTS = {
    "class-folders": (lambda tmp: _drop(class_folders(tmp / "d")[0], "test", "sample_submission.csv"),
                      ["id", "label"], "kfold's defaults for class folders"),
    "image-files": (lambda tmp: _drop(image_files(tmp / "d", id_column="image_name", label_column="species")[0],
                                      "test", "sample_submission.csv"),
                    ["image_name", "species"], "the columns of train.csv"),
    "image-files-rgb": (lambda tmp: _drop(image_files(tmp / "d", rgb=True)[0], "test", "sample_submission.csv"),
                        ["id", "label"], "the columns of train.csv"),
    "pixel-csv": (lambda tmp: _drop(digit_recognizer(tmp / "d")[0], "test.csv", "sample_submission.csv"),
                  ["id", "label"], "no Id column there: kfold's default 'id'"),
    "arrays-npy": (lambda tmp: _drop(write_kmnist_comp(tmp / "d", n_train=40), "kmnist-test-imgs.npy",
                                     "sample_submission.csv", "solution.csv"),
                   KMNIST.header, "the arrays layout's own"),
    "arrays-npz": (lambda tmp: _drop(write_kmnist_npz(tmp / "d", n_train=40), "kmnist-test-imgs.npz",
                                     "kmnist-test-labels.npz"),
                   KMNIST.header, "the arrays layout's own"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_labelled_folder_alone_loads_without_test_rows_and_inspect_says_so(layout, tmp_path, capsys):
    build, header, source = LAYOUTS[layout]
    directory = build(tmp_path)
    task = load_task(directory, progress=False)
    assert not task.has_test and len(task.test_images) == 0 and task.test_images.shape[1:] == task.train_images.shape[1:]
    assert task.schema.header == header and task.schema.target == "label" and task.schema.metric == "accuracy"
    assert task.sample_submission is None and task.solution is None
    assert kfold_main(["inspect", str(directory), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no test set (training data alone" in out
    assert f"columns from: no sample_submission.csv: " in out and source in out
    assert f"Id column: {header[0]} " in out and f"target: {header[1]} " in out


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_kfold_run_trains_the_folds_reports_the_oof_score_and_writes_no_submission(layout, tmp_path, capsys):
    directory = LAYOUTS[layout][0](tmp_path)
    before = tree(directory)
    out, subs = tmp_path / "run", tmp_path / "subs"
    assert kfold_main(["run", "--data", str(directory), "--preset", "lenet5", "--k", "2", "--epochs", "1",
                       "--threads", "1", "--no-progress", "--out", str(out), "--submissions", str(subs)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds_done"] == 2 and 0 <= summary["oof_score"] <= 1
    said = [line for line in printed.splitlines() if "no test set" in line]
    assert said == [f"out-of-fold accuracy {summary['oof_score']:.4f}; {directory} has no test set (training data "
                    "alone), so no submission was written"]
    assert printed.rstrip().endswith(said[0])
    assert not subs.exists() and not (out / "probs").exists() and not (out / "leaderboard").exists()
    assert tree(directory) == before


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A class-folders training folder alone and a 2-fold run of it through the Python API."""
    import kfold

    root = tmp_path_factory.mktemp("alone")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KFOLD_CACHE", str(root / "cache"))
        directory = LAYOUTS["class-folders"][0](root)
        run = kfold.train(str(directory), "lenet5", k=2, epochs=1, threads=1, out=root / "run", progress=False)
    return directory, run


def test_the_python_api_trains_on_a_folder_alone_and_refuses_to_predict(trained, tmp_path):
    directory, run = trained
    assert run.summary["folds_done"] == 2 and 0 <= run.oof_accuracy <= 1
    assert run.oof.probs.shape == (24, 3)
    with pytest.raises(DataError) as info:
        run.predict(tmp_path / "probs", threads=1)
    assert "training data alone: no test images" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "probs").exists()


def test_predict_compare_and_tune_ensembles_refuse_a_folder_alone_in_one_line(trained, tmp_path, capsys):
    directory, run = trained
    before = tree(run.path)
    commands = [
        (["predict", str(run.path), "--data", str(directory), "--out", str(tmp_path / "probs"), "--threads", "1"], 1,
         "training data alone: no test images, so there is nothing to predict"),
        (["compare", "--data", str(directory), "--out", str(tmp_path / "cmp"), "--presets", "lenet5", "--seeds", "0",
          "--k", "2", "--epochs", "1"], 1, "compare ranks submissions of the test set"),
        (["tune", "--data", str(directory), "--preset", "lenet5", "--trials", "1", "--k", "2", "--ensemble-top", "1",
          "--out", str(tmp_path / "tune")], 2, "--ensemble-top ensembles test predictions"),
    ]
    for argv, code, fragment in commands:
        assert kfold_main(argv) == code, argv
        err = capsys.readouterr().err.split("\r")[-1]  # after the decoding progress bar of predict's data
        assert_one_line_error(err, fragment)
    assert not any((tmp_path / name).exists() for name in ("probs", "cmp", "tune")) and tree(run.path) == before


@pytest.mark.parametrize("layout, shape", [(name, "class-folders" if "files" in name or "folders" in name else "arrays")
                                           for name in LAYOUTS])
def test_make_competition_test_fraction_turns_a_folder_alone_into_practice(layout, shape, tmp_path, capsys):
    directory = LAYOUTS[layout][0](tmp_path)
    out = tmp_path / "practice"
    argv = ["make-competition", "--data", str(directory), "--out", str(out), "--test-fraction", "0.25",
            "--layout", shape] + (["--class-values", "names"] if shape == "class-folders" else [])
    assert kfold_main(argv) == 0, capsys.readouterr().err
    task = load_task(out, progress=False)
    source = load_task(directory, progress=False)
    n_test = int(np.ceil(0.25 * len(source.train_labels)))
    assert task.has_test and len(task.test_ids) == n_test and len(task.train_labels) == len(source.train_labels) - n_test
    assert task.sample_submission is not None and task.solution is not None
    assert task.num_classes == source.num_classes
    solution = pd.read_csv(out / "solution.csv")
    assert len(solution) == n_test and set(solution.iloc[:, 2]) <= {"Public", "Private"}


def test_make_competition_refuses_rgb_images_in_the_gray_arrays_layout(tmp_path, capsys):
    directory = LAYOUTS["image-files-rgb"][0](tmp_path)
    argv = ["make-competition", "--data", str(directory), "--out", str(tmp_path / "practice"), "--test-fraction", "0.25"]
    assert kfold_main(argv) == 2
    assert_one_line_error(capsys.readouterr().err.split("\r")[-1], "--layout 'arrays' writes KMNIST's grayscale",
                          "images are RGB; choose pixel-csv")
    assert not (tmp_path / "practice").exists()


# -- half-made competitions and bad labels: one line each, nothing written ---------------------------------------

def _class_folders(tmp: Path, *drop: str) -> Path:
    return _drop(class_folders(tmp / "d")[0], *drop)


def _empty_train(tmp: Path) -> Path:
    (tmp / "d" / "train").mkdir(parents=True)
    return tmp / "d"


def _empty_train_with_labels(tmp: Path) -> Path:
    directory = _empty_train(tmp)
    pd.DataFrame({"id": ["a", "b"], "label": [0, 1]}).to_csv(directory / "train.csv", index=False)
    return directory


def _folders(names) -> callable:
    def build(tmp: Path) -> Path:
        rng = np.random.default_rng(0)
        for i, name in enumerate(names):
            for j in range(3 if name != "(empty)" else 0):
                save(tmp / "d" / "train" / name / f"{i}{j}.png", rng.integers(0, 256, (28, 28), dtype=np.uint8))
            if name == "(empty)":
                (tmp / "d" / "train" / name).mkdir(parents=True)
        return tmp / "d"
    return build


def _pixel(tmp: Path, rename: dict | None = None) -> Path:
    directory = _drop(digit_recognizer(tmp / "d")[0], "test.csv", "sample_submission.csv")
    if rename:
        frame = pd.read_csv(directory / "train.csv")
        frame.rename(columns=rename).to_csv(directory / "train.csv", index=False)
    return directory


def _image_files_missing_file(tmp: Path) -> Path:
    directory = LAYOUTS["image-files"][0](tmp)
    frame = pd.read_csv(directory / "train.csv", dtype=str)
    frame.loc[3, "image_name"] = "deadbeef"
    frame.to_csv(directory / "train.csv", index=False)
    return directory


def _arrays(tmp: Path, *drop: str) -> Path:
    return _drop(write_kmnist_comp(tmp / "d", n_train=40), *drop)


HOSTILE = {
    # name: (builder, extra argv, exit code, fragments)
    "sample-without-test-folder": (lambda t: _class_folders(t, "test"), [], 1,
                                   ["sample_submission.csv but no folder of test images", "test/ or test_images/"]),
    "test-folder-without-sample": (lambda t: _class_folders(t, "sample_submission.csv"), [], 1,
                                   ["test images in test/ but no sample_submission.csv"]),
    "sample-without-test-csv": (lambda t: _drop(digit_recognizer(t / "d")[0], "test.csv"), [], 1,
                                ["train.csv and sample_submission.csv but no test CSV"]),
    "test-csv-without-sample": (lambda t: _drop(digit_recognizer(t / "d")[0], "sample_submission.csv"), [], 1,
                                ["test CSV (test.csv) needs sample_submission.csv"]),
    "sample-without-test-arrays": (lambda t: _arrays(t, "kmnist-test-imgs.npy"), [], 1,
                                   ["layout is missing kmnist-test-imgs.npy", "sample_submission.csv promises"]),
    "empty-train-folder": (_empty_train, [], 1, ["an empty training folder (no images, no class subfolders)"]),
    "empty-train-folder-with-labels": (_empty_train_with_labels, [], 1, ["an empty training folder"]),
    "empty-class-folder": (_folders(["a", "b", "(empty)"]), [], 1, ["a class folder without images"]),
    "one-class-folder": (_folders(["only"]), [], 1, ["only one class ('only')"]),
    "class-folder-named-id": (_folders(["id", "b"]), [], 1, ["class folder name 'id'", "column name"]),
    "class-folder-named-label": (_folders(["a", "label"]), [], 1, ["class folder name 'label'"]),
    # class folders take no label column: the flag is refused (issue 31, kfold/data/flag_use.py), not ignored
    "class-folder-named-like-label-column": (_folders(["a", "kind"]), ["--label-column", "kind"], 2,
                                             ["--label-column", "class-folders"]),
    "pixel-csv-without-label-column": (lambda t: _pixel(t, {"label": "digit"}), [], 1,
                                       ["train.csv", "cannot tell which column holds the labels (no 'label' column)",
                                        "--label-column"]),
    "pixel-csv-id-column-absent": (_pixel, ["--id-column", "ImageNo"], 2, ["--id-column 'ImageNo'", "no such column"]),
    "image-files-id-column-absent": (lambda t: LAYOUTS["image-files"][0](t), ["--id-column", "file"], 2,
                                     ["--id-column 'file'", "no such column"]),
    "labels-csv-names-a-missing-image": (_image_files_missing_file, [], 1, ["'deadbeef' has no image"]),
    "binary-target-of-four-classes": (_pixel, ["--target", "binary"], 1, ["binary probability target needs 2 classes"]),
    "auc-on-labels": (_pixel, ["--metric", "auc"], 2, ["metric 'auc' scores probabilities"]),
    "label-missing": (lambda t: _pixel_label(t, ""), [], 1, ["train.csv", "line 5", "missing label"]),
}


def _pixel_label(tmp: Path, value: str) -> Path:
    directory = _pixel(tmp)
    frame = pd.read_csv(directory / "train.csv", dtype=str, keep_default_na=False)
    frame.loc[3, "label"] = value
    frame.to_csv(directory / "train.csv", index=False)
    return directory


@pytest.mark.parametrize("case", list(HOSTILE))
def test_half_made_competitions_are_one_error_line_and_nothing_is_written(case, tmp_path, capsys):
    build, argv, code, fragments = HOSTILE[case]
    directory = build(tmp_path)
    before = tree(directory)
    out = tmp_path / "run"
    for command in (["inspect", str(directory), "--no-progress", *argv],
                    ["run", "--data", str(directory), "--preset", "lenet5", "--k", "2", "--epochs", "1", "--threads",
                     "1", "--no-progress", "--out", str(out), "--submissions", str(tmp_path / "subs"), *argv]):
        assert kfold_main(command) == code, command
        captured = capsys.readouterr()
        assert_one_line_error(captured.err, *fragments)
    assert tree(directory) == before and not out.exists() and not (tmp_path / "subs").exists()
    keys = {"--label-column": "label_column", "--id-column": "id_column", "--target": "target", "--metric": "metric"}
    options = LoadOptions(**{keys[k]: v for k, v in zip(argv[::2], argv[1::2])})
    with pytest.raises(DataError if code == 1 else UsageError) as info:  # the library: the same one line
        load_task(directory, progress=False, options=options)
    assert "\n" not in str(info.value)
