"""KMNIST layouts through load_task: synthetic and real files load; every malformed input is one clear DataError."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import write_idx, write_kmnist_comp, write_kmnist_idx, write_kmnist_npz

from kfold.data import load_task, read_classmap
from kfold.data.arrays import read_idx
from kfold.errors import DataError, UsageError

KANA = list("おきすつなはまやれを")
WRITERS = {"kaggle-npy": write_kmnist_comp, "official-idx": write_kmnist_idx, "official-npz": write_kmnist_npz}


def raises(exc_type, spec, *fragments, **kwargs):
    """load_task(spec) raises a one-line exc_type whose message contains every fragment."""
    with pytest.raises(exc_type) as info:
        load_task(spec, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert str(fragment) in message, message
    return message


def raw_arrays(directory, layout):
    """The four arrays as written, read independently of kfold.data."""
    if layout == "kaggle-npy":
        return [np.load(directory / f"kmnist-{n}.npy") for n in ("train-imgs", "train-labels", "test-imgs")] + [None]
    if layout == "official-npz":
        return [np.load(directory / f"kmnist-{n}.npz")["arr_0"]
                for n in ("train-imgs", "train-labels", "test-imgs", "test-labels")]
    arrays = []
    for name, header in (("train-images-idx3", 16), ("train-labels-idx1", 8), ("t10k-images-idx3", 16), ("t10k-labels-idx1", 8)):
        arrays.append(np.frombuffer(gzip.decompress((directory / f"{name}-ubyte.gz").read_bytes())[header:], np.uint8))
    return [arrays[0].reshape(-1, 28, 28), arrays[1], arrays[2].reshape(-1, 28, 28), arrays[3]]


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_synthetic_layouts_load(tmp_path, layout):
    directory = WRITERS[layout](tmp_path / layout, n_train=60, n_test=30, seed=3)
    task = load_task(directory)
    train_images, train_labels, test_images, test_labels = raw_arrays(directory, layout)
    assert task.extra["layout"] == layout and task.name == layout
    assert task.train_images.dtype == np.uint8 and task.train_images.shape == (60, 28, 28)
    np.testing.assert_array_equal(task.train_images, train_images)
    np.testing.assert_array_equal(task.test_images, test_images)
    assert task.train_labels.dtype == np.int64
    np.testing.assert_array_equal(task.train_labels, train_labels)
    np.testing.assert_array_equal(task.test_ids, np.arange(30))
    assert task.class_names == KANA and task.num_classes == 10 and task.image_shape == (28, 28)
    assert task.train_groups is None and set(task.group_rows("test")) == {"all"}
    if layout == "kaggle-npy":
        # the host's labels stay hidden: solution.csv is referenced, never read into the Task
        assert task.test_labels is None
        assert task.solution == directory / "solution.csv"
        assert task.sample_submission == directory / "sample_submission.csv"
    else:
        np.testing.assert_array_equal(task.test_labels, test_labels)
        assert task.solution is None and task.sample_submission is None
    task.train_images[0, 0, 0] = 1  # arrays are writable, whatever the reader


def test_test_ids_follow_sample_submission_order(tmp_path):
    directory = write_kmnist_comp(tmp_path, n_train=20, n_test=10)
    ids = np.array([907, 3, 55, 1000, 12, 8, 44, 2, 71, 600])
    pd.DataFrame({"Id": ids, "Category": 0}).to_csv(directory / "sample_submission.csv", index=False)
    np.testing.assert_array_equal(load_task(directory).test_ids, ids)


def test_without_classmap_or_sample_submission(tmp_path):
    directory = write_kmnist_idx(tmp_path, n_train=20, n_test=10)
    (directory / "kmnist_classmap.csv").unlink()
    task = load_task(directory)
    assert task.class_names == [str(i) for i in range(10)]
    np.testing.assert_array_equal(task.test_ids, np.arange(10))


def test_synthetic_is_deterministic_and_class_dependent(tmp_path):
    a = load_task(write_kmnist_idx(tmp_path / "a", n_train=100, n_test=10, seed=1))
    b = load_task(write_kmnist_idx(tmp_path / "b", n_train=100, n_test=10, seed=1))
    assert a.fingerprint() == b.fingerprint()
    means = np.stack([a.train_images[a.train_labels == c].mean(0) for c in range(10)])
    # nearest class-mean classifies the training set far above chance (10%)
    distances = ((a.train_images[:, None].astype(float) - means[None]) ** 2).sum((2, 3))
    assert (distances.argmin(1) == a.train_labels).mean() > 0.9


# --- real data ---------------------------------------------------------------------------------

def test_real_kmnist_comp(kmnist_comp):
    task = load_task(kmnist_comp)
    assert task.train_images.shape == (7000, 28, 28) and task.test_images.shape == (3000, 28, 28)
    np.testing.assert_array_equal(np.bincount(task.train_labels), np.full(10, 700))
    assert task.class_names == KANA
    np.testing.assert_array_equal(task.test_ids, pd.read_csv(kmnist_comp / "sample_submission.csv")["Id"])
    assert task.test_labels is None and task.solution == kmnist_comp / "solution.csv"


def test_real_official_idx_files(shared_data):
    directory = shared_data / "kmnist"
    images = read_idx(directory / "t10k-images-idx3-ubyte.gz", 3)
    labels = read_idx(directory / "t10k-labels-idx1-ubyte.gz", 1)
    train_labels = read_idx(directory / "train-labels-idx1-ubyte.gz", 1)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))
    np.testing.assert_array_equal(np.bincount(train_labels), np.full(10, 6000))
    # kmnist-comp was carved out of these t10k images: provenance rows point at identical pixels
    rows = np.load(shared_data / "kmnist-comp" / "t10k-rows-train.npy")
    np.testing.assert_array_equal(images[rows], np.load(shared_data / "kmnist-comp" / "kmnist-train-imgs.npy"))
    assert read_classmap(directory / "kmnist_classmap.csv") == KANA


def test_real_official_dir_without_train_images(shared_data):
    raises(DataError, shared_data / "kmnist", "official KMNIST idx layout is missing train-images-idx3-ubyte.gz")


# --- malformed input ---------------------------------------------------------------------------

@pytest.fixture
def idx_dir(tmp_path):
    return write_kmnist_idx(tmp_path / "idx", n_train=20, n_test=10)


@pytest.fixture
def comp_dir(tmp_path):
    return write_kmnist_comp(tmp_path / "comp", n_train=20, n_test=10)


def test_idx_wrong_magic(idx_dir):
    shutil.copy(idx_dir / "train-labels-idx1-ubyte.gz", idx_dir / "train-images-idx3-ubyte.gz")
    raises(DataError, idx_dir, "train-images-idx3-ubyte.gz", "wrong magic number 0x00000801, expected 0x00000803")


def test_idx_truncated_data(idx_dir):
    path = idx_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    raises(DataError, idx_dir, "t10k-images-idx3-ubyte.gz", "truncated idx file", "(10, 28, 28) = 7840 bytes", "found 7740")


def test_idx_truncated_header(idx_dir):
    path = idx_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0])))
    raises(DataError, idx_dir, "train-labels-idx1-ubyte.gz", "truncated idx header")


def test_idx_trailing_bytes(idx_dir):
    path = idx_dir / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + b"\0\0\0"))
    raises(DataError, idx_dir, "t10k-labels-idx1-ubyte.gz", "3 unexpected bytes")


def test_idx_not_gzip(idx_dir):
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    raises(DataError, idx_dir, "train-images-idx3-ubyte.gz", "not a valid gzip file")


def test_idx_truncated_gzip_stream(idx_dir):
    path = idx_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    raises(DataError, idx_dir, "train-images-idx3-ubyte.gz", "not a valid gzip file")


def test_uncompressed_idx_is_read(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x-idx3-ubyte", array), 3), array)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_images_wrong_dtype(comp_dir, dtype):
    np.save(comp_dir / "kmnist-train-imgs.npy", np.zeros((20, 28, 28), dtype))
    raises(DataError, comp_dir, "kmnist-train-imgs.npy", f"dtype {np.dtype(dtype)}, expected uint8")


@pytest.mark.parametrize("shape", [(20, 784), (20, 28, 28, 1), (0, 28, 28)])
def test_images_wrong_shape(comp_dir, shape):
    np.save(comp_dir / "kmnist-train-imgs.npy", np.zeros(shape, np.uint8))
    raises(DataError, comp_dir, "kmnist-train-imgs.npy", f"shape {shape}", "expected (N, H, W)")


def test_test_images_other_size(comp_dir):
    np.save(comp_dir / "kmnist-test-imgs.npy", np.zeros((10, 32, 32), np.uint8))
    raises(DataError, comp_dir, "kmnist-test-imgs.npy", "images are 32x32", "kmnist-train-imgs.npy has 28x28")


def test_other_square_size_is_accepted(comp_dir):
    np.save(comp_dir / "kmnist-train-imgs.npy", np.zeros((20, 32, 32), np.uint8))
    np.save(comp_dir / "kmnist-test-imgs.npy", np.zeros((10, 32, 32), np.uint8))
    assert load_task(comp_dir).image_shape == (32, 32)


@pytest.mark.parametrize("value", [10, -1])
def test_labels_out_of_range(comp_dir, value):
    labels = np.arange(20, dtype=np.int64) % 10
    labels[7] = value
    np.save(comp_dir / "kmnist-train-labels.npy", labels)
    raises(DataError, comp_dir, "kmnist-train-labels.npy", f"label {value} at row 7 is outside 0..9")


def test_labels_out_of_range_of_classmap(comp_dir):
    pd.DataFrame({"index": range(5), "codepoint": "", "char": list("abcde")}).to_csv(comp_dir / "kmnist_classmap.csv", index=False)
    raises(DataError, comp_dir, "kmnist-train-labels.npy", "outside 0..4")


def test_labels_wrong_dtype(comp_dir):
    np.save(comp_dir / "kmnist-train-labels.npy", np.zeros(20, np.float64))
    raises(DataError, comp_dir, "kmnist-train-labels.npy", "labels have dtype float64, expected integers")


def test_label_count_mismatch(idx_dir):
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    raises(DataError, idx_dir, "train-labels-idx1-ubyte.gz", "19 labels but", "train-images-idx3-ubyte.gz has 20 images")


def test_sample_submission_row_count(comp_dir):
    pd.DataFrame({"Id": range(9), "Category": 0}).to_csv(comp_dir / "sample_submission.csv", index=False)
    raises(DataError, comp_dir, "sample_submission.csv", "9 rows but", "kmnist-test-imgs.npy has 10 test images")


def test_sample_submission_duplicate_id(comp_dir):
    pd.DataFrame({"Id": [0, 1, 2, 3, 4, 5, 6, 3, 8, 9], "Category": 0}).to_csv(comp_dir / "sample_submission.csv", index=False)
    raises(DataError, comp_dir, "sample_submission.csv", "line 9: duplicate Id 3")


def test_sample_submission_without_id_column(comp_dir):
    pd.DataFrame({"id": range(10), "Category": 0}).to_csv(comp_dir / "sample_submission.csv", index=False)
    raises(DataError, comp_dir, "sample_submission.csv", "line 1: header 'id,Category' must be 'Id,Category'")


def test_classmap_bad_index(comp_dir):
    (comp_dir / "kmnist_classmap.csv").write_text("index,codepoint,char\n0,U+304A,お\n2,U+304D,き\n", encoding="utf-8")
    raises(DataError, comp_dir, "kmnist_classmap.csv", "line 3: index '2', expected 1")


def test_npz_missing_key(tmp_path):
    directory = write_kmnist_npz(tmp_path, n_train=20, n_test=10)
    np.savez(directory / "kmnist-test-imgs.npz", images=np.zeros((10, 28, 28), np.uint8))
    raises(DataError, directory, "kmnist-test-imgs.npz", "missing key(s) 'arr_0' (the archive has: images)")


def test_npy_with_pickled_objects(comp_dir):
    np.save(comp_dir / "kmnist-train-labels.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    raises(DataError, comp_dir, "kmnist-train-labels.npy", "not a readable .npy file")


def test_garbage_npy(comp_dir):
    (comp_dir / "kmnist-test-imgs.npy").write_bytes(b"\x93NUMPY garbage")
    raises(DataError, comp_dir, "kmnist-test-imgs.npy", "not a readable .npy file")


def test_missing_required_file(comp_dir):
    (comp_dir / "kmnist-test-imgs.npy").unlink()
    raises(DataError, comp_dir, "Kaggle competition .npy layout is missing kmnist-test-imgs.npy")


def test_empty_directory_lists_layouts_tried(tmp_path):
    raises(DataError, tmp_path, str(tmp_path), "no dataset found", "kmnist-train-imgs.npy", "kmnist-train-imgs.npz",
           "train-images-idx3-ubyte.gz", "MNIST_MIX_train_test.npz")


def test_usage_errors(comp_dir, tmp_path):
    raises(UsageError, tmp_path / "nowhere", "nowhere", "no such directory")
    raises(UsageError, comp_dir, "languages applies to the mnist-mix layout", languages=["Arabic"])
    raises(UsageError, comp_dir, "label_mode 'digits'", label_mode="digits")


def test_kfold_data_does_not_import_torch():
    code = "import sys, kfold.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
