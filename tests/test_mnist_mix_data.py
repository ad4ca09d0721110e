"""MNIST-MIX: combined file and component files, language subsets, both label modes, solution files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import write_kmnist_comp, write_kmnist_idx, write_mnist_mix_combined, write_mnist_mix_components

from kfold.data import LANGUAGES, load_mnist_mix, load_task, write_sample_submission, write_solution
from kfold.errors import DataError, UsageError


def raises(exc_type, call, *fragments):
    with pytest.raises(exc_type) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return write_mnist_mix_components(tmp_path_factory.mktemp("components"), n_train_per_lang=30, n_test_per_lang=10)


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    return write_mnist_mix_combined(tmp_path_factory.mktemp("combined"), n_train_per_lang=30, n_test_per_lang=10)


def test_all_components_specific(components):
    task = load_task(components)
    assert task.num_classes == 100 and task.class_names[0] == "Arabic-0" and task.class_names[-1] == "Urdu-9"
    assert task.group_names == list(LANGUAGES) and task.extra["layout"] == "mnist-mix-components"
    assert task.train_images.shape == (300, 28, 28) and task.test_images.shape == (100, 28, 28)
    np.testing.assert_array_equal(task.test_ids, np.arange(100))
    for position, language in enumerate(LANGUAGES):
        raw = np.load(components / f"{language}_train_test.npz")
        rows = task.group_rows("train")[language]
        np.testing.assert_array_equal(task.train_images[rows], raw["X_train"])
        np.testing.assert_array_equal(task.train_labels[rows], position * 10 + raw["y_train"])
        np.testing.assert_array_equal(task.test_labels[task.group_rows("test")[language]], position * 10 + raw["y_test"])
    assert task.train_labels.dtype == np.int64 and task.train_groups.dtype == np.int64


def test_subset_is_canonically_ordered_and_case_insensitive(components):
    task = load_mnist_mix(components, languages=["devanagari", "Arabic"])
    assert task.group_names == ["Arabic", "Devanagari"] and task.num_classes == 20
    assert task.class_names[13] == "Devanagari-3"
    devanagari = np.load(components / "Devanagari_train_test.npz")
    rows = task.group_rows("test")["Devanagari"]
    np.testing.assert_array_equal(task.test_labels[rows], 10 + devanagari["y_test"])
    np.testing.assert_array_equal(task.test_groups[rows], 1)


def test_agnostic_mode(components):
    task = load_mnist_mix(components, languages=["Telugu", "Bangla"], label_mode="agnostic")
    assert task.class_names == [str(d) for d in range(10)] and task.group_names == ["Bangla", "Telugu"]
    telugu = np.load(components / "Telugu_train_test.npz")
    np.testing.assert_array_equal(task.train_labels[task.group_rows()["Telugu"]], telugu["y_train"])


@pytest.mark.parametrize("spec", ["directory", "file"])
def test_combined_subset(combined, spec):
    path = combined if spec == "directory" else combined / "MNIST_MIX_train_test.npz"
    task = load_task(path, languages=["Telugu", "Bangla"])
    raw = np.load(combined / "MNIST_MIX_train_test.npz")
    keep = np.isin(raw["y_test"] // 10, [1, 7])  # Bangla, Telugu, in file row order
    np.testing.assert_array_equal(task.test_images, raw["X_test"][keep])
    expected_position = np.where(raw["y_test"][keep] // 10 == 1, 0, 1)
    np.testing.assert_array_equal(task.test_groups, expected_position)
    np.testing.assert_array_equal(task.test_labels, expected_position * 10 + raw["y_test"][keep] % 10)
    assert task.extra["layout"] == "mnist-mix-combined" and task.group_names == ["Bangla", "Telugu"]


def test_combined_and_components_hold_the_same_data(combined, components):
    a, b = load_mnist_mix(combined), load_mnist_mix(components)
    assert a.class_names == b.class_names
    for language in LANGUAGES:
        pairs = [sorted(zip(task.train_labels[rows], map(bytes, task.train_images[rows])))
                 for task, rows in ((a, a.group_rows()[language]), (b, b.group_rows()[language]))]
        assert pairs[0] == pairs[1]


def test_combined_present_languages_only(tmp_path):
    directory = write_mnist_mix_combined(tmp_path, languages=["English", "Urdu"], n_train_per_lang=20, n_test_per_lang=10)
    task = load_task(directory)
    assert task.group_names == ["English", "Urdu"] and task.num_classes == 20
    raises(DataError, lambda: load_task(directory, languages=["Farsi"]), "MNIST_MIX_train_test.npz",
           "no rows of language(s) Farsi (present: English, Urdu)")


# --- real components ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_mix(shared_data):
    path = shared_data / "mnist-mix"
    if not (path / "Arabic_train_test.npz").is_file():
        pytest.skip(f"MNIST-MIX components not available at {path}")
    return path


def test_real_components(real_mix):
    task = load_task(real_mix)
    assert task.group_names == ["Arabic", "Devanagari"] and task.num_classes == 20
    assert task.train_images.shape == (4800, 28, 28) and task.test_images.shape == (1200, 28, 28)
    assert {k: len(v) for k, v in task.group_rows("train").items()} == {"Arabic": 2400, "Devanagari": 2400}
    assert {k: len(v) for k, v in task.group_rows("test").items()} == {"Arabic": 600, "Devanagari": 600}
    np.testing.assert_array_equal(np.bincount(task.train_labels, minlength=20) > 0, np.ones(20, bool))
    agnostic = load_task(real_mix, label_mode="agnostic")
    assert agnostic.num_classes == 10
    np.testing.assert_array_equal(agnostic.train_labels, task.train_labels % 10)
    arabic = load_mnist_mix(real_mix, languages=["Arabic"])
    raw = np.load(real_mix / "Arabic_train_test.npz")
    assert arabic.num_classes == 10
    np.testing.assert_array_equal(arabic.train_labels, raw["y_train"])
    np.testing.assert_array_equal(arabic.test_images, raw["X_test"])


# --- errors ------------------------------------------------------------------------------------

def test_unknown_language(components):
    raises(UsageError, lambda: load_task(components, languages=["Arabic", "Klingon"]),
           "unknown MNIST-MIX language(s) 'Klingon'", "valid: " + ", ".join(LANGUAGES))


def test_bad_label_mode(components):
    raises(UsageError, lambda: load_mnist_mix(components, label_mode="digits"), "label_mode 'digits'", "specific, agnostic")


def test_missing_component(tmp_path):
    directory = write_mnist_mix_components(tmp_path, languages=["Arabic"], n_train_per_lang=10, n_test_per_lang=10)
    raises(DataError, lambda: load_mnist_mix(directory, languages=["Arabic", "Kannada"]),
           "missing Kannada_train_test.npz", "found components: Arabic")


def test_component_missing_key(tmp_path):
    np.savez(tmp_path / "Farsi_train_test.npz", X_train=np.zeros((10, 28, 28), np.uint8), y_train=np.zeros(10, np.int32),
             X_test=np.zeros((10, 28, 28), np.uint8))
    raises(DataError, lambda: load_task(tmp_path), "Farsi_train_test.npz", "missing key(s) 'y_test'",
           "the archive has: X_train, y_train, X_test")


def test_component_digit_out_of_range(tmp_path):
    directory = write_mnist_mix_components(tmp_path, languages=["Swedish"], n_train_per_lang=10, n_test_per_lang=10)
    arrays = dict(np.load(directory / "Swedish_train_test.npz"))
    arrays["y_test"][4] = 10
    np.savez(directory / "Swedish_train_test.npz", **arrays)
    raises(DataError, lambda: load_task(directory), "Swedish_train_test.npz [y_test]", "label 10 at row 4 is outside 0..9")


def test_combined_label_out_of_range(tmp_path):
    directory = write_mnist_mix_combined(tmp_path, languages=["Arabic"], n_train_per_lang=10, n_test_per_lang=10)
    arrays = dict(np.load(directory / "MNIST_MIX_train_test.npz"))
    arrays["y_train"][2] = 100
    np.savez(directory / "MNIST_MIX_train_test.npz", **arrays)
    raises(DataError, lambda: load_task(directory), "MNIST_MIX_train_test.npz [y_train]", "label 100 at row 2 is outside 0..99")


def test_component_size_mismatch(tmp_path):
    directory = write_mnist_mix_components(tmp_path, languages=["Arabic"], n_train_per_lang=10, n_test_per_lang=10)
    np.savez(directory / "Bangla_train_test.npz", X_train=np.zeros((10, 32, 32), np.uint8), y_train=np.zeros(10, np.int32),
             X_test=np.zeros((10, 32, 32), np.uint8), y_test=np.zeros(10, np.int32))
    raises(DataError, lambda: load_task(directory), "Bangla_train_test.npz [X_train]: images are 32x32",
           "Arabic_train_test.npz [X_train] has 28x28")


def test_component_count_mismatch(tmp_path):
    np.savez(tmp_path / "Urdu_train_test.npz", X_train=np.zeros((10, 28, 28), np.uint8), y_train=np.zeros(9, np.int32),
             X_test=np.zeros((10, 28, 28), np.uint8), y_test=np.zeros(10, np.int32))
    raises(DataError, lambda: load_task(tmp_path), "Urdu_train_test.npz [y_train]: 9 labels but")


# --- solution files ----------------------------------------------------------------------------

def test_write_solution_and_attach(tmp_path):
    directory = write_mnist_mix_components(tmp_path, languages=["Arabic", "Tibetan"], n_train_per_lang=10, n_test_per_lang=50)
    task = load_task(directory)
    assert task.solution is None
    path = write_solution(task, directory / "solution.csv", seed=5)
    solution = pd.read_csv(path)
    np.testing.assert_array_equal(solution["Id"], task.test_ids)
    np.testing.assert_array_equal(solution["Category"], task.test_labels)
    assert solution["Usage"].value_counts().to_dict() == {"Private": 70, "Public": 30}
    assert list(solution.columns) == ["Id", "Category", "Usage", "Language"]
    np.testing.assert_array_equal(solution["Language"], np.asarray(task.group_names)[task.test_groups])
    assert load_task(directory).solution == path
    # a solution.csv made for another configuration is not attached
    assert load_task(directory, label_mode="agnostic").solution is None
    assert load_task(directory, languages=["Arabic"]).solution is None


def test_solution_usage_is_seeded(tmp_path, components):
    task = load_mnist_mix(components)
    usage = [pd.read_csv(write_solution(task, tmp_path / f"{seed}.csv", seed=seed, public_fraction=0.4))["Usage"]
             for seed in (1, 1, 2)]
    pd.testing.assert_series_equal(usage[0], usage[1])
    assert not usage[0].equals(usage[2]) and (usage[2] == "Public").sum() == 40


def test_write_sample_submission(tmp_path, components):
    task = load_mnist_mix(components)
    sample = pd.read_csv(write_sample_submission(task, tmp_path / "sample_submission.csv"))
    assert list(sample.columns) == ["Id", "Category"] and (sample["Category"] == 0).all()
    np.testing.assert_array_equal(sample["Id"], task.test_ids)


def test_solution_needs_test_labels(tmp_path):
    task = load_task(write_kmnist_comp(tmp_path, n_train=20, n_test=10))
    raises(UsageError, lambda: write_solution(task, tmp_path / "s.csv"), "no test labels")
    raises(UsageError, lambda: write_solution(load_task(write_kmnist_idx(tmp_path / "i", n_train=20, n_test=10)),
                                              tmp_path / "s.csv", public_fraction=1.0), "between 0 and 1", "1.0")
    assert not (tmp_path / "s.csv").exists()
