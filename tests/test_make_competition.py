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
from kfold.data.layouts import LoadOptions
from kfold.data.make_competition import LAYOUTS, MakeOptions, _tinted, make_competition, output_files
from kfold.data.pixel_csv import resize_images
from kfold.data.task import Task
from kfold.files.schema import read_competition_file, read_sample
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
    err = capsys.readouterr().err  # the written file is now one of the inputs: the output guard refuses first
    assert "MNIST_MIX_train_test.npz" in err and ("already holds" in err or "would overwrite the input" in err)
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


# -- issue 22 item 6: practice competitions in every layout, read back by kfold's own readers -------------------


def subset(task: Task, n_train: int, n_test: int) -> Task:
    """The first rows of a labelled task, stratification aside (enough of every class for these checks)."""
    rows_train = np.random.default_rng(0).permutation(len(task.train_labels))[:n_train]
    rows_test = np.random.default_rng(1).permutation(len(task.test_ids))[:n_test]
    pick = lambda array, rows: None if array is None else np.asarray(array)[rows]  # noqa: E731
    return Task(name=task.name, train_images=task.train_images[rows_train], train_labels=task.train_labels[rows_train],
                test_images=task.test_images[rows_test], test_ids=np.arange(n_test, dtype=np.int64),
                class_names=task.class_names, test_labels=task.test_labels[rows_test],
                train_groups=pick(task.train_groups, rows_train), test_groups=pick(task.test_groups, rows_test),
                group_names=task.group_names, source=task.source, extra=dict(task.extra))


@pytest.fixture(scope="module")
def real_tasks(shared_data):
    """Labelled real data: KMNIST (kmnist-comp with its host's labels) and both MNIST-MIX files."""
    from kfold.data import read_classmap

    comp = shared_data / "kmnist-comp"
    mix = shared_data / "mnist-mix"
    if not (comp / "solution.csv").is_file() or not (mix / "Arabic_train_test.npz").is_file():
        pytest.skip("real KMNIST / MNIST-MIX files not in the shared data")
    solution = pd.read_csv(comp / "solution.csv")
    kmnist = Task(name="kmnist", train_images=np.load(comp / "kmnist-train-imgs.npy"),
                  train_labels=np.load(comp / "kmnist-train-labels.npy").astype(np.int64),
                  test_images=np.load(comp / "kmnist-test-imgs.npy"), test_ids=solution["Id"].to_numpy(),
                  class_names=read_classmap(comp / "kmnist_classmap.csv"),
                  test_labels=solution["Category"].to_numpy().astype(np.int64))
    return {"kmnist": subset(kmnist, 300, 90), "mnist-mix": subset(load_task(mix), 300, 90)}


def binary(task: Task) -> Task:
    """The task's classes 0 and 1 only."""
    keep, keep_test = task.train_labels < 2, task.test_labels < 2
    return Task(name=task.name + "-2", train_images=task.train_images[keep], train_labels=task.train_labels[keep],
                test_images=task.test_images[keep_test], test_ids=np.arange(keep_test.sum()),
                class_names=task.class_names[:2], test_labels=task.test_labels[keep_test])


ROUND_TRIPS = {
    "pixel-csv-digit-recognizer": ("kmnist", dict(layout="pixel-csv", id_column="ImageId")),
    "pixel-csv-string-ids-names": ("mnist-mix", dict(layout="pixel-csv", string_ids=True, test_id_column=True,
                                                     class_values="names", id_column="key", label_column="digit")),
    "pixel-csv-rgb-probs": ("kmnist", dict(layout="pixel-csv", rgb=True, resize=20, target="probs")),
    "image-files-string-ids": ("mnist-mix", dict(layout="image-files", string_ids=True, class_values="names")),
    "image-files-rgb-probs": ("kmnist", dict(layout="image-files", rgb=True, resize=36, target="probs",
                                             metric="auc", class_values="names")),
    "image-files-binary": ("kmnist-2", dict(layout="image-files", string_ids=True, target="probs",
                                            label_column="has_char")),
    "class-folders-kana": ("kmnist", dict(layout="class-folders", class_values="names", id_column="file",
                                          label_column="species")),
    "class-folders-rgb": ("mnist-mix", dict(layout="class-folders", string_ids=True, rgb=True, resize=32,
                                            metric="macro-f1")),
}


def rows_as_set(images: np.ndarray, values) -> list:
    return sorted((str(v), image.tobytes()) for image, v in zip(images, values))


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_every_layout_reads_back_the_same_images_and_labels(case, real_tasks, tmp_path, monkeypatch):
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    name, kwargs = ROUND_TRIPS[case]
    task = binary(real_tasks["kmnist"]) if name == "kmnist-2" else real_tasks[name]
    options = MakeOptions(**kwargs)
    out = tmp_path / "comp"
    files = make_competition(task, out, seed=5, options=options)
    assert sorted(p.name for p in out.iterdir()) == sorted(output_files(task, options.layout))  # nothing else
    assert {p.name for p in files} == set(output_files(task, options.layout))

    back = load_task(out, progress=False)
    assert back.extra["layout"] == options.layout and back.solution == out / "solution.csv"
    schema = back.schema
    assert read_competition_file(out)["schema"] == schema and read_competition_file(out)["layout"] == options.layout
    sample = read_sample(out / "sample_submission.csv")
    assert list(pd.read_csv(out / "sample_submission.csv", nrows=0).columns) == schema.header
    assert np.array_equal(back.test_ids, sample.ids) and len(back.test_ids) == len(task.test_ids)
    assert (back.test_ids.dtype.kind == "U") == (options.string_ids or options.layout == "class-folders")
    assert schema.id_column == (options.id_column or "id")
    if options.target == "probs":
        assert schema.target == ("binary" if task.num_classes == 2 else "probs")
    assert schema.metric == (options.metric or {"label": "accuracy", "probs": "logloss", "binary": "auc"}[schema.target])

    values = ([str(i) for i in range(task.num_classes)] if options.class_values == "index"
              else [n if not n.isdigit() else f"class_{n}" for n in task.class_names])
    train, test = task.train_images, task.test_images
    if options.rgb:
        train, test = _tinted(train, 5, "train"), _tinted(test, 5, "test")
    if options.resize:
        train, test = resize_images(train, options.resize), resize_images(test, options.resize)
    written_values = np.array(values, dtype=object)[task.train_labels]
    read_values = schema.decode(back.train_labels).astype(str)
    if options.layout == "class-folders":  # read class by class: the same rows, in another order
        assert rows_as_set(back.train_images, read_values) == rows_as_set(train, written_values)
    else:
        assert np.array_equal(back.train_images, train) and list(read_values) == list(written_values)
    assert np.array_equal(back.test_images, test)  # in the sample's order

    solution = pd.read_csv(out / "solution.csv", dtype=str, keep_default_na=False)
    assert list(solution.columns[:3]) == schema.solution_header
    assert list(solution.iloc[:, 1]) == list(np.array(values, dtype=object)[task.test_labels])
    assert list(solution.iloc[:, 0]) == [str(i) for i in sample.ids]
    assert (solution["Usage"] == "Public").sum() == round(0.3 * len(solution))
    if task.group_names:
        assert solution.columns[-1] == "Language" and set(solution["Language"]) == set(task.group_names)


def test_the_same_seed_writes_the_same_competition(real_tasks, tmp_path):
    task = real_tasks["mnist-mix"]
    options = MakeOptions(layout="pixel-csv", string_ids=True, rgb=True)
    make_competition(task, tmp_path / "a", seed=3, options=options)
    make_competition(task, tmp_path / "b", seed=3, options=options)
    make_competition(task, tmp_path / "c", seed=4, options=options)
    for name in ("train.csv", "test.csv", "sample_submission.csv", "solution.csv", "competition.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "solution.csv").read_bytes() != (tmp_path / "c" / "solution.csv").read_bytes()


@pytest.mark.parametrize("layout", LAYOUTS[1:])
def test_command_writes_each_layout(layout, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic",), n_train_per_lang=30, n_test_per_lang=10)
    assert make(source, tmp_path / "comp", "--layout", layout, "--string-ids", "--rgb", "--resize", "16") == 0
    assert f"{layout} layout" in capsys.readouterr().out
    assert kfold_main(["inspect", str(tmp_path / "comp"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"layout: {layout}" in out and "images: 16x16, 3 channels (RGB)" in out and "rows: 30 training, 10 test" in out


@pytest.mark.parametrize("argv,fragment", [
    (["--string-ids"], "--string-ids: not used by the arrays layout"),
    (["--layout", "arrays", "--resize", "32"], "--resize 32: not used by the arrays layout"),
    (["--layout", "tiles"], "unknown layout 'tiles'"),
    (["--layout", "pixel-csv", "--target", "binary"], "unknown target 'binary'"),
    (["--layout", "pixel-csv", "--metric", "logloss"], "metric 'logloss' scores probabilities"),
    (["--layout", "image-files", "--id-column", "label", "--label-column", "label"], "both 'label'"),
    (["--layout", "image-files", "--test-id-column"], "--test-id-column: not used by the image-files layout"),
    (["--layout", "pixel-csv", "--id-column", "a,b"], "without commas"),
    (["--layout", "pixel-csv", "--resize", "0"], "--resize"),
])
def test_make_competition_refusals_write_nothing(argv, fragment, tmp_path, capsys):
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic",), n_train_per_lang=20, n_test_per_lang=10)
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    assert make(source, tmp_path / "comp", *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "comp").exists()
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before


def test_an_existing_layout_file_is_never_replaced(tmp_path, capsys):
    source = write_mnist_mix_components(tmp_path / "mix", languages=("Arabic",), n_train_per_lang=20, n_test_per_lang=10)
    (tmp_path / "comp" / "train").mkdir(parents=True)
    assert make(source, tmp_path / "comp", "--layout", "class-folders") == 2
    assert "already holds train" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "comp").iterdir()] == ["train"] and not any((tmp_path / "comp" / "train").iterdir())


def test_arrays_competition_records_its_metric(tmp_path):
    source = write_kmnist_idx(tmp_path / "kmnist", n_train=40, n_test=20)
    assert make(source, tmp_path / "comp", "--metric", "macro-f1") == 0
    recorded = read_competition_file(tmp_path / "comp")
    assert recorded["layout"] == "arrays" and recorded["schema"].metric == "macro-f1"
    task = load_task(tmp_path / "comp")
    assert task.schema.metric == "macro-f1" and task.schema.header == load_task(source).schema.header
    assert load_task(tmp_path / "comp", options=LoadOptions(metric="qwk")).schema.metric == "qwk"  # the flag wins

