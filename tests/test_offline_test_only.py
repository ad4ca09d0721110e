"""A code competition's notebook loads the test images alone (review finding 8).

``kfold.flows.offline.competition_task(..., test_only=True)`` (what the packaged notebook and ``kfold package``'s
local reference run) must give exactly the test images, Ids, schema and classes of the whole load that training
used, for every CSV and image layout, target and channel combination, without reading a training image: shown by
damaging every training image (or a training pixel cell) after which the whole load fails and the test-only load
still gives the same arrays. A packaged tiny run on a competition whose training images are colour and whose test
images are gray gives the same local submission as ``kfold predict`` + ``kfold ensemble`` on the whole load.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import balanced_labels, pattern_images, rgb_shapes_task

from kfold.data.jobs import TaskSpec
from kfold.data.layouts import detect_layout
from kfold.data.make_competition import MakeOptions, make_competition
from kfold.data.task import Task
from kfold.errors import DataError
from kfold.flows.offline import competition_task


def _gray_task(n_train: int = 60, n_test: int = 30, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    train, test = balanced_labels(n_train, 10, rng), balanced_labels(n_test, 10, rng)
    return Task(name="gray", train_images=pattern_images(train, rng), train_labels=train.astype(np.int64),
                test_images=pattern_images(test, rng), test_ids=np.arange(n_test), class_names=[str(c) for c in range(10)],
                test_labels=test.astype(np.int64), source="tests/test_offline_test_only.py")


CASES = {
    # name: (task builder, make-competition options)
    "pixel-csv-ids": (_gray_task, MakeOptions(layout="pixel-csv", id_column="ImageId", label_column="Label",
                                              test_id_column=True)),
    "pixel-csv-row-order": (_gray_task, MakeOptions(layout="pixel-csv", class_values="names")),
    "pixel-csv-rgb-probs": (rgb_shapes_task, MakeOptions(layout="pixel-csv", target="probs")),
    "image-files-string-ids": (_gray_task, MakeOptions(layout="image-files", string_ids=True)),
    "image-files-rgb-resized": (_gray_task, MakeOptions(layout="image-files", rgb=True, resize=20)),
    "image-files-tags": (_gray_task, MakeOptions(layout="image-files", target="tags", string_ids=True)),
    "image-files-multilabel-probs": (_gray_task, MakeOptions(layout="image-files", target="multilabel-probs")),
    "class-folders-names": (_gray_task, MakeOptions(layout="class-folders", class_values="names", string_ids=True)),
    "class-folders-rgb-probs": (rgb_shapes_task, MakeOptions(layout="class-folders", target="probs")),
}


def _make(case: str, root: Path) -> Path:
    build, options = CASES[case]
    comp = root / case
    make_competition(build(), comp, options=options)
    return comp


def _recolour(folder: Path, mode: str) -> None:
    """Every PNG under ``folder`` rewritten in ``mode`` ("RGB": gray copied to 3 channels; "L": colour to gray)."""
    for path in sorted(folder.rglob("*.png")):
        with Image.open(path) as img:
            img.convert(mode).save(path)


def _damage_training_images(comp: Path) -> int:
    """Overwrite every training image (or, for a pixel CSV, one training pixel cell) with bytes no decoder takes;
    the labels stay readable. Returns how many files were damaged."""
    detected = detect_layout(comp)
    if detected.layout == "pixel-csv":
        lines = detected.train.read_text(encoding="utf-8").splitlines(keepends=True)
        lines[1] = lines[1].rstrip("\r\n").rsplit(",", 1)[0] + ",not-a-pixel\n"
        detected.train.write_text("".join(lines), encoding="utf-8")
        return 1
    folder = detected.image_dir if detected.layout == "image-files" else detected.train
    test = detected.test.resolve()
    damaged = [p for p in folder.rglob("*.png") if test not in p.resolve().parents]
    for path in damaged:
        path.write_bytes(b"not an image")
    return len(damaged)


def _manifest(task: Task) -> dict:
    return {"load_options": {}, "input": {"image_size": task.image_shape[0], "channels": task.channels}}


def _assert_same_test_side(part: Task, whole: Task) -> None:
    assert part.test_images.dtype == whole.test_images.dtype and part.test_images.shape == whole.test_images.shape
    assert np.array_equal(part.test_images, whole.test_images)
    assert np.array_equal(np.asarray(part.test_ids), np.asarray(whole.test_ids))
    assert part.schema == whole.schema and list(part.class_names) == list(whole.class_names)
    assert part.sample_submission == whole.sample_submission
    assert part.train_images.shape == (0, *whole.train_images.shape[1:]) and len(part.train_labels) == 0
    assert part.channels == whole.channels and part.image_shape == whole.image_shape


@pytest.mark.parametrize("case", list(CASES))
def test_the_test_only_load_equals_the_whole_load_and_reads_no_training_image(case, tmp_path, monkeypatch):
    comp = _make(case, tmp_path)
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache-whole"))
    whole = TaskSpec(str(comp)).load()
    assert len(whole.train_labels) > 0 and len(whole.test_ids) > 0
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache-part"))
    _assert_same_test_side(competition_task(comp, _manifest(whole), test_only=True), whole)

    assert _damage_training_images(comp) >= 1
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache-damaged"))
    with pytest.raises(DataError):  # the damage is real: the whole load reads the training images and fails
        TaskSpec(str(comp)).load()
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache-damaged-part"))
    _assert_same_test_side(competition_task(comp, _manifest(whole), test_only=True), whole)


@pytest.mark.parametrize("train_mode,test_mode", [("RGB", "L"), ("L", "RGB")])
def test_gray_and_colour_splits_decode_as_training_decoded_them(train_mode, test_mode, tmp_path, monkeypatch):
    """One split gray, the other colour: training decodes both as RGB; the test-only load must too (the package
    records the models' 3 channels)."""
    comp = _make("class-folders-names", tmp_path)
    detected = detect_layout(comp)
    _recolour(detected.train, train_mode)
    _recolour(detected.test, test_mode)
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    whole = TaskSpec(str(comp)).load()
    assert whole.channels == 3
    part = competition_task(comp, _manifest(whole), test_only=True)
    _assert_same_test_side(part, whole)
    if test_mode == "L":  # without the package's channels the gray test images would load gray: the hint matters
        alone = competition_task(comp, {"load_options": {}, "input": {"channels": 1}}, test_only=True)
        assert alone.channels == 1


def test_arrays_and_training_data_alone_load_whole(tmp_path):
    """Layouts without a separate test decode (KMNIST arrays) and training data alone (no sample) load whole."""
    from kfold.data.toy import make_toy_competition

    comp = make_toy_competition(tmp_path / "toy")
    part = competition_task(comp, {"load_options": {}}, test_only=True)
    whole = TaskSpec(str(comp)).load()
    assert part.fingerprint() == whole.fingerprint() and len(part.train_labels) == len(whole.train_labels)

    alone = _make("class-folders-names", tmp_path)
    test_folder = detect_layout(alone).test
    (alone / "sample_submission.csv").unlink()
    shutil.rmtree(test_folder)
    assert len(TaskSpec(str(alone)).load(test_only=True).train_labels) == len(TaskSpec(str(alone)).load().train_labels)


@pytest.mark.slow
def test_a_packaged_colour_run_on_gray_test_images_predicts_what_kfold_predict_gives(tmp_path, monkeypatch):
    """The notebook's function (test images alone) against ``kfold predict`` + ``kfold ensemble`` on the whole load,
    on a competition whose colour training images made the gray test images load as RGB."""
    import kfold
    from kfold.files.rundir import PredDir
    from kfold.flows.ensembling import make_submission
    from kfold.flows.package import package
    from kfold.nn.predict import predict_run

    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    comp = _make("class-folders-names", tmp_path)
    detected = detect_layout(comp)
    _recolour(detected.train, "RGB")
    _recolour(detected.test, "L")
    run = tmp_path / "run"
    kfold.train(str(comp), "lenet5", k=2, out=str(run), epochs=1, threads=1, device="cpu", progress=False)
    result = package([run], "toy-practice", "alice", tmp_path / "pkg", threads=1, rehearse=False, echo=lambda line: None)
    assert result.manifest["input"]["channels"] == 3

    task = TaskSpec(str(comp)).load()
    predict_run([run], task, tmp_path / "probs", threads=1, echo=lambda line: None)
    folds = [PredDir(tmp_path / "probs").fold("run", fold) for fold in range(2)]
    made = make_submission(folds, tmp_path / "sub.csv", method="mean", sample=task.sample_submission,
                           schema=task.schema, plot=False)
    assert made.submission.read_bytes() == (tmp_path / "pkg" / "local" / "submission.csv").read_bytes()
