"""Probability files: round trip in both forms, and every malformed input gives one clear DataError."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from kfold.errors import DataError, UsageError
from kfold.files.probs import ProbFile, is_prob_csv, read_probs, write_probs

CLASSES = ["o", "ki", "su"]


def _probs(n=6, c=3, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(c), size=n).astype(np.float32)


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
@pytest.mark.parametrize("with_labels", [False, True])
def test_round_trip(tmp_path, suffix, with_labels):
    ids = np.array([10, 3, 7, 1, 0, 42])
    probs = _probs()
    labels = np.array([0, 1, 2, 2, 1, 0]) if with_labels else None
    meta = {"run": "r1", "model": "resnet", "fold": np.int64(2), "kind": "oof" if with_labels else "test", "note": "かな"}
    path = tmp_path / f"p{suffix}"
    write_probs(path, ids, probs, CLASSES, meta, labels=labels)
    got = read_probs(path)
    assert isinstance(got, ProbFile) and got.path == path
    np.testing.assert_array_equal(got.ids, ids)
    assert got.ids.dtype == np.int64 and got.probs.dtype == np.float32
    np.testing.assert_allclose(got.probs, probs, atol=1e-6)
    assert got.classes == CLASSES and got.meta == meta and type(got.meta["fold"]) is int
    if with_labels:
        np.testing.assert_array_equal(got.labels, labels)
        assert got.labels.dtype == np.int64
    else:
        assert got.labels is None
    np.testing.assert_array_equal(got.predictions(), probs.argmax(1))
    assert is_prob_csv(path) == (suffix == ".csv")


def test_csv_is_self_describing(tmp_path):
    path = tmp_path / "p.csv"
    write_probs(path, [0, 1], [[0.25, 0.75], [1.0, 0.0]], ["a,b", "c"], {"kind": "test"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#kfold-probs ")
    assert json.loads(lines[0][len("#kfold-probs "):])["classes"] == ["a,b", "c"]
    assert lines[1] == 'Id,"a,b",c'
    assert read_probs(path).classes == ["a,b", "c"]


def test_npz_has_no_pickled_objects(tmp_path):
    path = tmp_path / "p.npz"
    write_probs(path, [0, 1], [[0.5, 0.5], [0.1, 0.9]], ["a", "b"], {"kind": "test"})
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["classes", "ids", "meta", "probs"]
        assert json.loads(str(data["meta"])) == {"kind": "test"}


def _csv(tmp_path, body, meta='{"kind": "test", "classes": ["a", "b"]}', name="bad.csv"):
    path = tmp_path / name
    path.write_text(f"#kfold-probs {meta}\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, message", [
    ("Id,a,b\n0,0.5,0.5\n1,nan,0.5\n", "line 4 (Id 1), column 'a': probability nan is not a finite number"),
    ("Id,a,b\n0,0.5,0.5\n1,inf,0.5\n", "line 4 (Id 1), column 'a': probability inf is not a finite number"),
    ("Id,a,b\n0,0.5,0.5\n1,1.5,-0.5\n", "line 4 (Id 1), column 'b': probability -0.5 is negative"),
    ("Id,a,b\n0,0.5,0.5\n1,0.2,0.2\n", "line 4 (Id 1): probabilities sum to 0.4, not 1"),
    ("Id,a,b\n0,0.5,0.5\n0,0.2,0.8\n", "line 4 (Id 0): duplicate Id 0"),
    ("Id,a,b\n0,0.5,0.5\n1.5,0.2,0.8\n", "line 4, column 'Id': '1.5' is not an integer Id"),
    ("Id,a,b\n0,0.5,0.5\nx,0.2,0.8\n", "line 4, column 'Id': 'x' is not an integer Id"),
    ("Id,a,b\n0,0.5,0.5\n1,abc,0.8\n", "line 4, column 'a': 'abc' is not a number"),
    ("Id,a,b\n0,0.5,0.5\n1,,1\n", "line 4, column 'a': a blank value is not a number"),
    ("Id,a,b\n0,0.5,0.5\n\n1,0.5,0.5\n", "line 4 is blank"),
    ("Id,a,c\n0,0.5,0.5\n", "line 2: header Id,a,c does not match the metadata classes"),
    ("Id,a\n0,1.0\n", "line 2: header Id,a does not match the metadata classes"),
    ("Id,a,b,label\n0,0.5,0.5,2\n", "line 3 (Id 0), column 'label': label 2 is outside 0..1"),
    ("Id,a,b,label\n0,0.5,0.5,x\n", "line 3, column 'label': 'x' is not an integer label"),
    ("Id,a,b\n", "no rows"),
])
def test_csv_errors_name_line_and_column(tmp_path, body, message):
    path = _csv(tmp_path, body)
    with pytest.raises(DataError) as err:
        read_probs(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


@pytest.mark.parametrize("meta, message", [
    ("{not json", "line 1: metadata is not valid JSON"),
    ('{"kind": "test"}', "metadata must be a JSON object with a 'classes' list"),
    ('{"kind": "train", "classes": ["a", "b"]}', "metadata kind 'train' is not one of test, oof"),
    ('{"kind": "oof", "classes": ["a", "b"]}', "out-of-fold probability file (kind 'oof') without true labels"),
])
def test_csv_metadata_errors(tmp_path, meta, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_probs(_csv(tmp_path, "Id,a,b\n0,0.5,0.5\n", meta=meta))


def test_submission_csv_is_not_a_prob_file(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("Id,Category\n0,1\n")
    assert not is_prob_csv(path)
    with pytest.raises(DataError, match="line 1 must start with '#kfold-probs'"):
        read_probs(path)


def test_csv_with_bom_and_crlf_is_read(tmp_path):
    path = tmp_path / "bom.csv"
    text = '#kfold-probs {"kind": "test", "classes": ["a", "b"]}\r\nId,a,b\r\n5,0.5,0.5\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert is_prob_csv(path)
    assert read_probs(path).ids.tolist() == [5]


def _npz(tmp_path, **arrays):
    base = {"ids": np.arange(2), "probs": np.array([[0.5, 0.5], [0.3, 0.7]], np.float32),
            "classes": np.array(["a", "b"]), "meta": np.array('{"kind": "test"}')}
    base.update(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize("arrays, message", [
    ({"probs": np.array([[np.nan, 1.0], [0.3, 0.7]])}, "row 0 (Id 0), column 'a': probability nan is not a finite number"),
    ({"probs": np.array([[0.5, 0.5], [0.3, 0.3]])}, "row 1 (Id 1): probabilities sum to 0.6"),
    ({"ids": np.array([4, 4])}, "row 1 (Id 4): duplicate Id 4"),
    ({"ids": np.array([0.5, 1.0])}, "Ids must be integers"),
    ({"ids": np.arange(3)}, "3 Ids for 2 probability rows"),
    ({"classes": np.array(["a", "b", "c"])}, "2 probability columns but 3 class names"),
    ({"classes": np.array(["a", "a"])}, "class name 'a' appears twice"),
    ({"labels": np.array([0, 5])}, "row 1 (Id 1), column 'label': label 5 is outside 0..1"),
    ({"meta": np.array("[1, 2]")}, "metadata must be a JSON object"),
    ({"meta": None}, "missing array(s) meta"),
    ({"probs": np.array([[1, 0], [0, 1]])}, "probabilities must be floating point"),
    ({"probs": np.array([[0.5, 0.5], [0.3, 0.7]], dtype=object)}, "contains pickled object arrays"),
])
def test_npz_errors(tmp_path, arrays, message):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(DataError) as err:
        read_probs(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_not_a_zip(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"hello")
    with pytest.raises(DataError, match="not a readable .npz file"):
        read_probs(path)


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(DataError, match="probability file not found"):
        read_probs(tmp_path / "nope.npz")
    with pytest.raises(UsageError, match="must end in .csv or .npz"):
        write_probs(tmp_path / "p.txt", [0], [[1.0, 0.0]], ["a", "b"], {})


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_write_refuses_bad_data_and_leaves_no_file(tmp_path, suffix):
    path = tmp_path / f"p{suffix}"
    with pytest.raises(DataError, match="probabilities sum to 0.5"):
        write_probs(path, [0, 1], [[0.5, 0.5], [0.25, 0.25]], ["a", "b"], {"kind": "test"})
    with pytest.raises(DataError, match="row 0 \\(Id 7\\), column 'b': probability -0.5 is negative"):
        write_probs(path, [7], [[1.5, -0.5]], ["a", "b"], {"kind": "test"})
    assert list(tmp_path.iterdir()) == []


def test_large_npz_loads_fast(tmp_path):
    """A 120,000 x 100 file (the size of a big test set) loads and validates well under a second."""
    rng = np.random.default_rng(0)
    probs = rng.random((120_000, 100), dtype=np.float32)
    probs /= probs.sum(1, keepdims=True)
    path = tmp_path / "big.npz"
    write_probs(path, np.arange(120_000), probs, [f"c{i}" for i in range(100)], {"kind": "test"})
    start = time.perf_counter()
    got = read_probs(path)
    elapsed = time.perf_counter() - start
    assert got.probs.shape == (120_000, 100)
    assert elapsed < 1.0, f"reading a 120k x 100 .npz took {elapsed:.2f}s"
