"""Issue 22 item 5: the Kaggle loop on competitions as Kaggle ships them, through the REAL kaggle client and the
loopback fake (``kaggle_fake.py``): ``kfold download -c COMP --data data/COMP``, ``kfold inspect``, ``kfold run``,
``kfold validate`` against the competition's own sample, ``kfold submit`` (the bytes that reach the fake are the
file's, the log row names the competition's metric) for

* a Digit-Recognizer-shaped competition: ``train.csv`` (``label,pixel0..pixel783``), ``test.csv`` (pixels only),
  ``sample_submission.csv`` (``ImageId,Label``, ImageId from 1);
* an Aerial-Cactus-shaped one: RGB JPEGs named by hex stems in ``train/`` and ``test/``, ``train.csv``
  (``id,has_cactus`` with the file name and extension), a binary probability target scored by AUC;
* a Plant-Seedlings-shaped one: ``train/<species>/*.png`` class folders, ``test/*.png``, ``file,species``.

The images are synthetic class patterns (``synthetic.pattern_images``), 28x28 (cactus: 32x32 RGB), a few hundred.
Download and submit run as ``python -m kfold`` processes through the real client; inspect, run and validate run in
this process except for the aerial-cactus case (a fresh interpreter costs seconds).
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from kaggle_fake import fake_kaggle  # noqa: F401  (fixture)
from synthetic import pattern_images
from test_kaggle_loop import kfold, one_error_line

from kfold.commands.main import main as kfold_main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("kaggle") is None, reason="kaggle not installed")

SPECIES = ["Black-grass", "Charlock", "Cleavers", "Common Chickweed"]


def _png(image: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _zip(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _split(n_classes: int, n_train: int, n_test: int, seed: int):
    rng = np.random.default_rng(seed)
    train = np.arange(n_train) % n_classes
    test = rng.integers(0, n_classes, n_test)
    rng.shuffle(train)
    return rng, train, test


def digit_recognizer(seed: int = 0):
    """(zip bytes, test labels by Id): Kaggle's Digit Recognizer files."""
    rng, train, test = _split(10, 400, 80, seed)
    pixels = [f"pixel{i}" for i in range(784)]
    frame = pd.DataFrame(pattern_images(train, rng).reshape(len(train), -1), columns=pixels)
    frame.insert(0, "label", train)
    test_frame = pd.DataFrame(pattern_images(test, rng).reshape(len(test), -1), columns=pixels)
    ids = np.arange(1, len(test) + 1)
    sample = pd.DataFrame({"ImageId": ids, "Label": 0})
    members = {"train.csv": frame.to_csv(index=False), "test.csv": test_frame.to_csv(index=False),
               "sample_submission.csv": sample.to_csv(index=False)}
    return _zip(members), dict(zip(ids.astype(str), test.astype(str))), "accuracy"


def aerial_cactus(seed: int = 1):
    """Hex-named RGB JPEGs, a labels CSV with file names, a binary probability sample (``id,has_cactus``)."""
    rng, train, test = _split(2, 300, 60, seed)
    members = {}
    names = [hashlib.sha1(f"{seed}-{i}".encode()).hexdigest()[:20] + ".jpg" for i in range(len(train) + len(test))]
    for name, image in zip(names, pattern_images(np.concatenate([train, test]) * 5, rng, size=32)):
        rgb = np.stack([image, image // 2, 255 - image], axis=-1)
        folder = "train" if len(members) < len(train) else "test"
        members[f"{folder}/{name}"] = _png(rgb, "JPEG")
    members["train.csv"] = pd.DataFrame({"id": names[:len(train)], "has_cactus": train}).to_csv(index=False)
    members["sample_submission.csv"] = pd.DataFrame({"id": names[len(train):], "has_cactus": 0.5}).to_csv(index=False)
    return _zip(members), dict(zip(names[len(train):], test.astype(str))), "auc"


def plant_seedlings(seed: int = 2):
    """``train/<species>/*.png`` and unlabelled ``test/*.png``; the sample is ``file,species``."""
    rng, train, test = _split(len(SPECIES), 480, 60, seed)
    members = {}
    for i, (label, image) in enumerate(zip(train, pattern_images(train * 2, rng))):
        members[f"train/{SPECIES[label]}/{i:04d}.png"] = _png(image)
    files = [f"{hashlib.md5(str(i).encode()).hexdigest()[:9]}.png" for i in range(len(test))]
    for name, image in zip(files, pattern_images(test * 2, rng)):
        members[f"test/{name}"] = _png(image)
    members["sample_submission.csv"] = pd.DataFrame({"file": files, "species": SPECIES[0]}).to_csv(index=False)
    return _zip(members), dict(zip(files, [SPECIES[t] for t in test])), "accuracy"


SHAPES = {"digit-recognizer": (digit_recognizer, "pixel-csv", 0.5),
          "aerial-cactus": (aerial_cactus, "image-files", 0.6),
          "plant-seedlings-classification": (plant_seedlings, "class-folders", 0.4)}


FRESH_INTERPRETER = "aerial-cactus"  # the case whose inspect, run and validate are `python -m kfold` processes too


def local_command(name, capsys, *argv, cwd) -> tuple[int, str, str]:
    """``kfold ARGV`` for the commands that need no Kaggle client (inspect, run, validate): (exit code, stdout,
    stderr). In this process, except for the ``FRESH_INTERPRETER`` case, which keeps a whole successful ``kfold run``
    (and inspect, validate) in a fresh interpreter, as a user types it; download and submit are always processes."""
    if name == FRESH_INTERPRETER:
        done = kfold(*argv, cwd=cwd, timeout=600)
        return done.returncode, done.stdout, done.stderr
    capsys.readouterr()
    code = kfold_main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHAPES))
def test_kaggle_loop_on_a_competition_as_kaggle_ships_it(name, fake_kaggle, tmp_path, monkeypatch, capsys):
    make, layout, threshold = SHAPES[name]
    data_zip, truth, metric = make()
    competition = fake_kaggle.add(name, data_zip=data_zip, default_result=("COMPLETE", "0.97000", ""))
    folder = tmp_path / "data" / name

    done = kfold("download", "-c", name, "--data", f"data/{name}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"layout: {layout} (")
    assert done.stdout.splitlines()[-1].endswith(f"in data/{name}: use --data data/{name}")
    shipped = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with zipfile.ZipFile(io.BytesIO(data_zip)) as zf:
        assert shipped == {member: zf.read(member) for member in zf.namelist()}  # unpacked as shipped

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    code, out, err = local_command(name, capsys, "inspect", f"data/{name}", cwd=tmp_path)
    assert code == 0, err
    assert layout in out and metric in out

    code, out, err = local_command(name, capsys, "run", "--data", f"data/{name}", "--out", "runs/r", "--preset", "lenet5",
                                   "--k", "2", "--epochs", "3", "--threads", "1", "--no-progress", "--submissions", "subs",
                                   cwd=tmp_path)
    assert code == 0, err
    assert f"out-of-fold {metric}" in out
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == shipped

    sample = pd.read_csv(folder / "sample_submission.csv", dtype=str, keep_default_na=False)
    sub_path = tmp_path / "subs" / "r-mean.csv"
    submission = pd.read_csv(sub_path, dtype=str, keep_default_na=False)
    assert list(submission.columns) == list(sample.columns)
    assert submission.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()  # the sample's Ids, as written, in order
    ids, target = submission.iloc[:, 0], submission.iloc[:, 1]
    if metric == "auc":  # one probability column: the chance of class 1
        from sklearn.metrics import roc_auc_score

        p = target.astype(float)
        assert ((p >= 0) & (p <= 1)).all()
        assert roc_auc_score([int(truth[i]) for i in ids], p) >= threshold
        assert not (tmp_path / "subs" / "r-vote.csv").exists()
    else:
        assert set(target) <= set(truth.values())
        assert np.mean([truth[i] == t for i, t in zip(ids, target)]) >= threshold

    code, out, err = local_command(name, capsys, "validate", sub_path, "--sample", folder / "sample_submission.csv",
                                   cwd=tmp_path)
    assert code == 0 and out.startswith("ok:"), err
    bad = submission.copy()
    if metric == "auc":
        bad.iloc[0, 1] = "1.5"
    else:
        bad.iloc[0, 1] = "not-a-class"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    refused = kfold("submit", "bad.csv", "-c", name, "-m", "bad", "--data", f"data/{name}", cwd=tmp_path)
    one_error_line(refused, "bad.csv")
    assert competition.submissions == []  # checked against the sample before any upload

    sent = kfold("submit", sub_path, "-c", name, "-m", "first", "--data", f"data/{name}", "--wait", "30",
                 "--poll-interval", "0.1", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines()[-1] == "public score: 0.97000"
    assert len(competition.submissions) == 1
    assert list(fake_kaggle.uploads.values()) == [sub_path.read_bytes()]  # the file's bytes reached Kaggle
    log = pd.read_csv(tmp_path / "submissions" / "log" / f"{name}.csv", dtype=str, keep_default_na=False)
    assert log["competition"].tolist() == [name]
    assert log["sha256"].tolist() == [hashlib.sha256(sub_path.read_bytes()).hexdigest()]
