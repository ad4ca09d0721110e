"""Issue 22 items 2 and 7: competitions as Kaggle ships them -- pixel CSVs, image files with a labels CSV, class
subfolders -- detected and read by ``load_task`` and ``kfold inspect``; every hostile input is one error line."""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from synthetic import pattern_images, write_kmnist_comp

from kfold.commands.args import in_flag_words
from kfold.commands.main import main as kfold_main
from kfold.data import load_task
from kfold.data.layouts import LoadOptions, detect_layout
from kfold.errors import DataError, UsageError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test decodes into its own cache folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("KFOLD_CACHE", str(folder))
    return folder


def images_and_labels(n: int, n_classes: int = 4, seed: int = 0, size: int = 28):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    return pattern_images(labels, rng, size=size), labels


def pixel_frame(images: np.ndarray, first: dict | None = None, start: int = 0) -> pd.DataFrame:
    flat = images.reshape(len(images), -1)
    frame = pd.DataFrame(flat, columns=[f"pixel{i + start}" for i in range(flat.shape[1])])
    for position, (name, values) in enumerate((first or {}).items()):
        frame.insert(position, name, values)
    return frame


def digit_recognizer(directory: Path, n_train=40, n_test=12, seed=0, label_values=None) -> tuple[Path, dict]:
    """train.csv label,pixel0..783; test.csv pixels only; sample ImageId,Label with ImageId from 1."""
    directory.mkdir(parents=True, exist_ok=True)
    train, labels = images_and_labels(n_train, seed=seed)
    test, test_labels = images_and_labels(n_test, seed=seed + 1)
    values = labels if label_values is None else np.asarray(label_values, dtype=object)[labels]
    pixel_frame(train, {"label": values}).to_csv(directory / "train.csv", index=False)
    pixel_frame(test).to_csv(directory / "test.csv", index=False)
    pd.DataFrame({"ImageId": np.arange(1, n_test + 1), "Label": 0}).to_csv(directory / "sample_submission.csv", index=False)
    return directory, {"train": train, "labels": values, "test": test, "test_labels": test_labels}


def save(path: Path, image: np.ndarray, mode: str | None = None, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(image)
    if mode is not None:
        img = img.convert(mode)
    img.save(path, **kwargs)


def image_files(directory: Path, n_train=20, n_test=8, *, labels_csv="train.csv", id_with_ext=False,
                train_dir="train", test_dir="test", suffix=".png", id_column="id", label_column="label",
                sample_target="label", rgb=False) -> tuple[Path, dict]:
    """train/<stem>.png + a labels CSV, test/<stem>.png, sample_submission.csv with Ids in a shuffled order."""
    train, labels = images_and_labels(n_train, n_classes=2 if sample_target == "binary" else 4)
    test, _ = images_and_labels(n_test, seed=1)
    if rgb:
        train, test = np.repeat(train[..., None], 3, axis=3), np.repeat(test[..., None], 3, axis=3)
        train[..., 1] //= 2
    train_stems = [f"{i:03d}a{i * 7919 % 1000:03x}" for i in range(n_train)]
    test_stems = [f"0{i:02d}f{i * 31:04x}" for i in range(n_test)]
    for stem, image in zip(train_stems, train):
        save(directory / train_dir / f"{stem}{suffix}", image)
    for stem, image in zip(test_stems, test):
        save(directory / test_dir / f"{stem}{suffix}", image)
    names = [s + suffix if id_with_ext else s for s in train_stems]
    pd.DataFrame({id_column: names, label_column: labels}).to_csv(directory / labels_csv, index=False)
    order = np.random.default_rng(5).permutation(n_test)
    ids = [test_stems[i] + (suffix if id_with_ext else "") for i in order]
    target = {"label": {label_column: 0}, "binary": {label_column: 0.5}}[sample_target]
    pd.DataFrame({id_column: ids, **target}).to_csv(directory / "sample_submission.csv", index=False)
    return directory, {"train": train, "labels": labels, "test": test[order], "ids": ids}


def class_folders(directory: Path, n_train=24, n_test=6, classes=("Black-grass", "Charlock", "Cleavers")) -> tuple[Path, dict]:
    train, labels = images_and_labels(n_train, n_classes=len(classes))
    test, _ = images_and_labels(n_test, seed=2)
    for i, (image, label) in enumerate(zip(train, labels)):
        save(directory / "train" / classes[label] / f"{i:04x}.png", image)
    names = [f"{i * 977:06x}.png" for i in range(n_test)]
    for name, image in zip(names, test):
        save(directory / "test" / name, image)
    pd.DataFrame({"file": names, "species": classes[0]}).to_csv(directory / "sample_submission.csv", index=False)
    return directory, {"train": train, "labels": labels, "test": test, "ids": names, "classes": classes}


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


# -- the layouts ---------------------------------------------------------------------------------------
def test_digit_recognizer_shape(tmp_path):
    directory, data = digit_recognizer(tmp_path / "digit-recognizer")
    task = load_task(directory)
    assert task.extra["layout"] == "pixel-csv" and task.extra["label_column"] == "label"
    assert np.array_equal(task.train_images, data["train"]) and np.array_equal(task.test_images, data["test"])
    assert task.test_ids.tolist() == list(range(1, 13)) and task.test_ids.dtype == np.int64  # ImageId from 1: row 0
    assert task.schema.header == ["ImageId", "Label"] and task.schema.metric == "accuracy"
    assert np.array_equal(task.schema.decode(task.train_labels), data["labels"])
    assert task.class_names == ["0", "1", "2", "3"] and task.solution is None
    assert task.sample_submission == directory / "sample_submission.csv"


def test_kannada_shape_test_rows_follow_the_sample_by_id(tmp_path):
    """test.csv has an 'id' column in another order than the sample: the rows are matched by Id."""
    directory = tmp_path / "kannada"
    directory.mkdir()
    train, labels = images_and_labels(30)
    test, _ = images_and_labels(10, seed=3)
    pixel_frame(train, {"label": labels}).to_csv(directory / "train.csv", index=False)
    shuffled = np.random.default_rng(0).permutation(10)
    pixel_frame(test[shuffled], {"id": shuffled}).to_csv(directory / "test.csv", index=False)
    pd.DataFrame({"id": np.arange(10), "label": 0}).to_csv(directory / "sample_submission.csv", index=False)
    task = load_task(directory)
    assert np.array_equal(task.test_images, test) and task.test_ids.tolist() == list(range(10))
    assert task.extra["unused_test_rows"] == 0


def test_sign_language_shape_labels_with_a_gap_and_pixel1(tmp_path):
    """Sign Language MNIST: labels 0..24 without 9, columns label,pixel1..pixel784; Fashion-MNIST-like test
    labels in test.csv become the task's test labels."""
    directory = tmp_path / "sign"
    directory.mkdir()
    present = np.array([c for c in range(25) if c != 9])
    train, index = images_and_labels(96, n_classes=24)
    test, test_index = images_and_labels(24, n_classes=24, seed=1)
    pixel_frame(train, {"label": present[index]}, start=1).to_csv(directory / "sign_mnist_train.csv", index=False)
    pixel_frame(test, {"label": present[test_index]}, start=1).to_csv(directory / "sign_mnist_test.csv", index=False)
    pd.DataFrame({"id": np.arange(24), "label": 0}).to_csv(directory / "sample_submission.csv", index=False)
    task = load_task(directory)
    assert task.num_classes == 24 and "9" not in task.class_names and task.class_names[-1] == "24"
    assert np.array_equal(task.schema.decode(task.train_labels), present[index])
    assert np.array_equal(task.schema.decode(task.test_labels), present[test_index])
    assert np.array_equal(task.train_images, train)


@pytest.mark.parametrize("side", [4, 8, 13])
def test_rgb_pixel_csv_from_three_n_squared_columns(side, tmp_path):
    directory = tmp_path / "rgb"
    directory.mkdir()
    rng = np.random.default_rng(side)
    train = rng.integers(0, 256, size=(12, side, side, 3), dtype=np.uint8)
    test = rng.integers(0, 256, size=(5, side, side, 3), dtype=np.uint8)
    pixel_frame(train, {"label": np.arange(12) % 3}).to_csv(directory / "train.csv", index=False)
    pixel_frame(test).to_csv(directory / "test.csv", index=False)
    pd.DataFrame({"id": np.arange(5), "label": 0}).to_csv(directory / "sample_submission.csv", index=False)
    task = load_task(directory)
    assert task.train_images.shape == (12, side, side, 3) and np.array_equal(task.train_images, train)
    assert np.array_equal(load_task(directory, options=LoadOptions(channels=1)).train_images,
                          np.asarray([np.asarray(Image.fromarray(im).convert("L")) for im in train]))


def test_string_class_names_and_explicit_files_and_columns(tmp_path):
    directory, data = digit_recognizer(tmp_path / "named", label_values=["cat", "dog", "Type_2", "ant"])
    os.rename(directory / "train.csv", directory / "training_rows.csv")
    os.rename(directory / "test.csv", directory / "rows_to_predict.csv")
    frame = pd.read_csv(directory / "training_rows.csv").rename(columns={"label": "animal"})
    frame.to_csv(directory / "training_rows.csv", index=False)
    options = LoadOptions(train_csv="training_rows.csv", test_csv=directory / "rows_to_predict.csv",
                          label_column="animal")
    task = load_task(directory, options=options)
    assert task.class_names == ["Type_2", "ant", "cat", "dog"] and task.schema.class_kind == "str"
    assert np.array_equal(task.schema.decode(task.train_labels), data["labels"])
    assert np.array_equal(task.test_images, data["test"])
    with pytest.raises(DataError, match="cannot tell which column holds the labels"):
        load_task(directory, options=LoadOptions(train_csv="training_rows.csv", test_csv="rows_to_predict.csv"))


@pytest.mark.parametrize("shape", [
    dict(),                                                                   # Aerial Cactus-like, ids with .png
    dict(id_with_ext=True, sample_target="binary", label_column="has_cactus"),
    dict(labels_csv="train_labels.csv", suffix=".tif"),                       # Histopathologic: ids without .tif
    dict(train_dir="train_images", test_dir="test_images", id_column="image_id", suffix=".jpg"),  # Cassava
    dict(suffix=".bmp", rgb=True),
])
def test_image_files_shapes(shape, tmp_path):
    directory, data = image_files(tmp_path / "comp", **shape)
    task = load_task(directory, progress=False)
    assert task.extra["layout"] == "image-files"
    assert task.test_ids.tolist() == data["ids"] and task.test_ids.dtype.kind == "U"
    assert np.array_equal(task.schema.decode(task.train_labels), data["labels"])
    if shape.get("suffix") == ".jpg":  # lossy: close, not equal
        assert np.abs(task.train_images.astype(int) - data["train"]).mean() < 8
        assert np.abs(task.test_images.astype(int) - data["test"]).mean() < 8
    else:
        assert np.array_equal(task.train_images, data["train"]) and np.array_equal(task.test_images, data["test"])
    if shape.get("sample_target") == "binary":
        assert task.schema.target == "binary" and task.schema.metric == "auc"


def test_class_folders_plant_seedlings_shape(tmp_path):
    directory, data = class_folders(tmp_path / "plants")
    task = load_task(directory, progress=False)
    assert task.extra["layout"] == "class-folders" and task.class_names == list(data["classes"])
    assert task.schema.header == ["file", "species"] and task.test_ids.tolist() == data["ids"]
    order = np.argsort(data["labels"], kind="stable")  # files are read class by class, each folder by name
    assert np.array_equal(task.train_images, data["train"][order])
    assert np.array_equal(task.train_labels, data["labels"][order])
    assert np.array_equal(task.test_images, data["test"])


def test_arrays_layouts_unchanged_and_options_apply(tmp_path):
    directory = write_kmnist_comp(tmp_path / "comp", n_train=40, n_test=20)
    plain = load_task(directory)
    again = load_task(directory, options=LoadOptions())
    assert plain.fingerprint() == again.fingerprint() and plain.extra == again.extra
    assert np.array_equal(plain.train_images, np.load(directory / "kmnist-train-imgs.npy"))
    resized = load_task(directory, options=LoadOptions(image_size=32, channels=3, metric="macro-f1"))
    assert resized.train_images.shape == (40, 32, 32, 3) and resized.schema.metric == "macro-f1"
    with pytest.raises(UsageError, match="label_column"):
        load_task(directory, options=LoadOptions(label_column="label"))
    with pytest.raises(UsageError, match="scores probabilities"):
        load_task(directory, options=LoadOptions(metric="logloss"))


def test_real_kmnist_loads_byte_identically(kmnist_comp):
    task = load_task(kmnist_comp)
    assert task.extra["layout"] == "kaggle-npy"
    assert np.array_equal(task.train_images, np.load(kmnist_comp / "kmnist-train-imgs.npy"))
    assert load_task(kmnist_comp, options=LoadOptions()).fingerprint() == task.fingerprint()


def test_inspect_prints_what_was_detected(tmp_path, capsys):
    directory, _ = class_folders(tmp_path / "plants")
    assert kfold_main(["inspect", str(directory), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for fragment in ("layout: class-folders", "rows: 24 training, 6 test", "images: 28x28, 1 channel",
                     "classes (3, str values): Black-grass: 8, Charlock: 8, Cleavers: 8", "Id column: file (str Ids",
                     "target: species (one label column)", "metric: accuracy"):
        assert fragment in out, out
    directory, _ = digit_recognizer(tmp_path / "dr")
    assert kfold_main(["inspect", str(directory), "--image-size", "14", "--channels", "3", "--metric", "macro-f1"]) == 0
    out = capsys.readouterr().out
    assert "layout: pixel-csv" in out and "images: 14x14, 3 channels (RGB)" in out and "metric: macro-f1" in out
    assert "Id column: ImageId (int Ids: 1, 2, 3, ...)" in out and "training labels: column 'label'" in out


def test_second_load_of_image_files_comes_from_the_cache(tmp_path, cache, monkeypatch):
    directory, data = image_files(tmp_path / "comp")
    first = load_task(directory, progress=False)
    written = sorted(p.name for p in (cache / "decoded").iterdir())
    assert len(written) == 2 and all(not name.startswith(".") for name in written)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")
    monkeypatch.setattr("kfold.data.decode.decode_one", no_decoding)
    second = load_task(directory, progress=False)
    assert isinstance(second.train_images, np.memmap) and np.array_equal(second.train_images, first.train_images)
    second.train_images[0, 0, 0] = 7  # copy-on-write: the cache file is not changed
    assert np.array_equal(load_task(directory, progress=False).train_images, first.train_images)


def test_detection_leaves_unknown_folders_to_the_old_report(tmp_path):
    (tmp_path / "empty").mkdir()
    assert detect_layout(tmp_path / "empty") is None
    with pytest.raises(DataError, match="no dataset found.*pixel CSVs"):
        load_task(tmp_path / "empty")


# -- hostile inputs ------------------------------------------------------------------------------------
def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's header), with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def edit_csv(path: Path, row: int, column: str, value: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def _dr(tmp_path):
    return digit_recognizer(tmp_path / "comp")[0]


def _files(tmp_path, **kwargs):
    return image_files(tmp_path / "comp", **kwargs)[0]


def pixel_value(value):
    def build(tmp_path):
        directory = _dr(tmp_path)
        edit_csv(directory / "test.csv", 3, "pixel200", value)
        return directory
    return build


def train_label(value):
    def build(tmp_path):
        directory = _dr(tmp_path)
        edit_csv(directory / "train.csv", 5, "label", value)
        return directory
    return build


def pixel_columns(n_pixels):
    def build(tmp_path):
        directory = tmp_path / "comp"
        directory.mkdir()
        rng = np.random.default_rng(0)
        for name, first in (("train.csv", {"label": np.arange(6) % 2}), ("test.csv", None)):
            frame = pd.DataFrame(rng.integers(0, 256, size=(6, n_pixels)), columns=[f"pixel{i}" for i in range(n_pixels)])
            for column, values in (first or {}).items():
                frame.insert(0, column, values)
            frame.to_csv(directory / name, index=False)
        pd.DataFrame({"ImageId": range(1, 7), "Label": 0}).to_csv(directory / "sample_submission.csv", index=False)
        return directory
    return build


def one_class(tmp_path):
    directory = _dr(tmp_path)
    edit_csv_all(directory / "train.csv", "label", "3")
    return directory


def edit_csv_all(path: Path, column: str, value: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame[column] = value
    frame.to_csv(path, index=False)


def sample_id_missing_pixel(tmp_path):
    directory = _dr(tmp_path)
    frame = pd.read_csv(directory / "test.csv")
    frame = pd.concat([pd.DataFrame({"ImageId": np.arange(1, len(frame) + 1)}), frame], axis=1)
    frame.to_csv(directory / "test.csv", index=False)
    edit_csv(directory / "sample_submission.csv", 4, "ImageId", "77")
    return directory


def sample_id_missing_image(tmp_path):
    directory = _files(tmp_path)
    edit_csv(directory / "sample_submission.csv", 2, "id", "deadbeef")
    return directory


def duplicate(where):
    def build(tmp_path):
        if where == "sample":
            directory = _dr(tmp_path)
            edit_csv(directory / "sample_submission.csv", 6, "ImageId", "2")
        elif where == "labels":
            directory = _files(tmp_path)
            frame = pd.read_csv(directory / "train.csv", dtype=str)
            edit_csv(directory / "train.csv", 9, "id", frame.loc[1, "id"])
        else:
            directory = sample_id_missing_pixel(tmp_path)
            edit_csv(directory / "sample_submission.csv", 4, "ImageId", "5")  # back to valid
            edit_csv(directory / "test.csv", 8, "ImageId", "1")
        return directory
    return build


def bad_test_image(content):
    def build(tmp_path):
        directory = _files(tmp_path)
        victim = sorted((directory / "test").iterdir())[3]
        data = victim.read_bytes()
        victim.write_bytes({"text": b"this is not an image", "empty": b"", "truncated": data[: len(data) // 2],
                            "bomb": png_claiming(20_000, 20_000)}[content])
        return directory
    return build


def symlink_out(kind):
    def build(tmp_path):
        directory = _files(tmp_path) if kind != "class" else class_folders(tmp_path / "comp")[0]
        outside = tmp_path / "elsewhere.png"
        save(outside, np.zeros((28, 28), np.uint8))
        folder = directory / ("test" if kind == "test" else "train")
        if kind == "class":
            (folder / "Charlock" / "zz.png").symlink_to(outside)
        else:
            victim = sorted(folder.iterdir())[0]
            victim.unlink()
            victim.symlink_to(outside)
        return directory
    return build


def mixed_sizes(split):
    def build(tmp_path):
        directory = _files(tmp_path)
        victim = sorted((directory / split).iterdir())[-1]
        save(victim, np.zeros((32, 30), np.uint8))
        return directory
    return build


def class_named(name, sample_columns=("file", "species")):
    def build(tmp_path):
        directory, _ = class_folders(tmp_path / "comp", classes=("Charlock", name))
        return directory
    return build


HOSTILE = {
    # name: (builder, extra argv, exit code, fragments)
    "sample-id-not-in-test-csv": (sample_id_missing_pixel, [], 1, ["sample_submission.csv", "line 6", "Id 77",
                                                                     "not in", "test.csv"]),
    "sample-id-without-image": (sample_id_missing_image, [], 1, ["sample_submission.csv", "'deadbeef' has no image"]),
    "duplicate-sample-id": (duplicate("sample"), [], 1, ["sample_submission.csv", "duplicate Id 2"]),
    "duplicate-labels-id": (duplicate("labels"), [], 1, ["train.csv", "line 11", "duplicate Id"]),
    "duplicate-test-id": (duplicate("test"), [], 1, ["test.csv", "line 10", "duplicate Id value 1"]),
    "one-class": (one_class, [], 1, ["only one class ('3')"]),
    "label-blank": (train_label(""), [], 1, ["train.csv", "line 7", "column 'label'", "missing label"]),
    "label-NaN": (train_label("NaN"), [], 1, ["train.csv", "line 7", "missing label"]),
    "label-nan": (train_label("nan"), [], 1, ["line 7", "missing label"]),
    "label-NA": (train_label("NA"), [], 1, ["line 7", "missing label"]),
    **{f"pixel-{value or 'blank'}": (pixel_value(value), [], 1, ["test.csv", "line 5", "column 'pixel200'",
                                                                 f"{value!r} is not a pixel value"])
       for value in ("abc", "-1", "256", "1e9", "3.5", "", "0x10", "inf")},
    **{f"pixel-columns-{n}": (pixel_columns(n), [], 1, ["train.csv", f"{n} pixel columns", "no square"])
       for n in (783, 785, 10, 2)},
    **{f"test-image-{kind}": (bad_test_image(kind), [], 1, ["test/", "not a readable image" if kind != "bomb"
                                                            else "decompression bomb"])
       for kind in ("text", "empty", "truncated", "bomb")},
    **{f"symlink-out-of-{kind}": (symlink_out(kind), [], 1, ["symbolic link", "elsewhere.png", "outside"])
       for kind in ("train", "test", "class")},
    **{f"mixed-sizes-{split}": (mixed_sizes(split), [], 1, ["images differ in size", "30x32", "--image-size"])
       for split in ("train", "test")},
    **{f"class-folder-named-{name}": (class_named(name), [], 1, [f"class folder name {name!r}", "column name"])
       for name in ("label", "Usage", "file", "species")},
    "metric-logloss-on-labels": (_dr, ["--metric", "logloss"], 2, ["metric 'logloss' scores probabilities"]),
    "metric-auc-on-labels": (_dr, ["--metric", "auc"], 2, ["metric 'auc' scores probabilities"]),
    "metric-qwk-on-names": (lambda tmp: digit_recognizer(tmp / "comp", label_values=["a", "b", "c", "d"])[0],
                            ["--metric", "qwk"], 2, ["'qwk' needs integer"]),
    "unknown-metric": (_dr, ["--metric", "f2"], 2, ["--metric", "unknown metric 'f2'"]),
    "label-column-absent": (_dr, ["--label-column", "digit"], 2, ["--label-column 'digit'", "no such column"]),
    "image-size-zero": (_dr, ["--image-size", "0"], 2, ["--image-size"]),
    "train-csv-missing": (_dr, ["--train-csv", "nope.csv"], 2, ["--train-csv 'nope.csv'", "no such file"]),
}


def _options(argv):
    """The LoadOptions of the hostile case's flags (for the library call)."""
    keys = {"--metric": "metric", "--label-column": "label_column", "--image-size": "image_size",
            "--train-csv": "train_csv"}
    values = dict(zip(argv[::2], argv[1::2]))
    out = {keys[k]: (int(v) if k == "--image-size" else v) for k, v in values.items()}
    return LoadOptions(**out)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_one_error_line_and_nothing_is_written(case, tmp_path, cache, capsys):
    build, argv, code, fragments = HOSTILE[case]
    directory = build(tmp_path)
    before = tree(directory)
    assert kfold_main(["inspect", str(directory), "--no-progress", *argv]) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert captured.out == ""
    if not argv or (argv[0] in ("--metric", "--label-column") and case != "unknown-metric"):
        with pytest.raises(DataError if code == 1 else UsageError) as info:
            load_task(directory, progress=False, options=_options(argv))
        assert "\n" not in str(info.value)
        assert lines[0] == f"error: {in_flag_words(info.value).for_command()}"  # the command names the flag, the library its parameter
    assert tree(directory) == before  # inputs unchanged, nothing written beside them
    if cache.exists():  # the cache holds only complete arrays, never a temporary file
        assert all(not p.name.startswith(".") for p in cache.rglob("*")), list(cache.rglob("*"))


def test_mixed_sizes_load_with_an_image_size(tmp_path):
    directory = mixed_sizes("test")(tmp_path)
    task = load_task(directory, progress=False, options=LoadOptions(image_size=24))
    assert task.train_images.shape[1:] == (24, 24) and task.test_images.shape[1:] == (24, 24)
