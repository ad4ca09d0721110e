import json

import numpy as np
import pytest

from kfold.config import PRESETS, TrainConfig, resolve_config
from kfold.errors import DataError, UsageError
from kfold.files.folds import assign_folds, load_or_create_folds, read_folds, write_folds


def test_preset_then_overrides_win():
    cfg = resolve_config("alexnet5-sgd", overrides={"epochs": 3, "lr": 0.5})
    assert (cfg.model, cfg.momentum, cfg.weight_decay, cfg.epochs, cfg.lr) == ("alexnet5", 0.8, 1e-4, 3, 0.5)


def test_config_file_between_preset_and_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 7, "batch_size": 32}))
    cfg = resolve_config("fast", path, {"batch_size": 16})
    assert (cfg.epochs, cfg.batch_size) == (7, 16)


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": -1}, "epochs=-1"),
    ({"epochs": 0}, "epochs=0"),
    ({"lr": 0.0}, "lr=0.0"),
    ({"optimizer": "lbfgs"}, "optimizer='lbfgs'"),
    ({"schedule": "wavy"}, "schedule='wavy'"),
    ({"label_smoothing": 1.5}, "label_smoothing=1.5"),
    ({"epochs": "ten"}, "'epochs' expects int"),
    ({"epochs": 2.5}, "'epochs' expects int"),
    ({"nesterov": 1}, "'nesterov' expects bool"),
    ({"bogus": 1}, "unknown config key 'bogus'"),
    ({"keep": "median"}, "keep='median' must be one of best, last"),
    ({"early_stopping": 3}, "early_stopping=3 cannot be combined with keep='last'"),
])
def test_bad_config_values_are_named(overrides, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resolve_config("fast", overrides=overrides)


def test_bad_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"epochs": 3, "colour": "red"}')
    with pytest.raises(UsageError, match="c.json: unknown config key 'colour'"):
        resolve_config("fast", path)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="c.json: not valid JSON"):
        resolve_config("fast", path)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UsageError, match="unknown preset 'nope'.*fast"):
        resolve_config("nope")


def test_every_preset_resolves():
    for name in PRESETS:
        assert isinstance(resolve_config(name), TrainConfig)


def test_folds_are_stratified_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    folds = assign_folds(labels, 5, seed=3)
    assert np.array_equal(folds, assign_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, assign_folds(labels, 5, seed=4))
    counts = np.array([[np.sum((folds == f) & (labels == c)) for c in range(10)] for f in range(5)])
    assert (counts == 10).all()


def test_folds_csv_same_seed_same_bytes(tmp_path):
    labels = np.random.default_rng(0).integers(0, 10, 300)
    load_or_create_folds(tmp_path / "a.csv", labels, 5, 7)
    load_or_create_folds(tmp_path / "b.csv", labels, 5, 7)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert np.array_equal(read_folds(tmp_path / "a.csv", labels), assign_folds(labels, 5, 7))


@pytest.mark.parametrize("k, message", [(1, "k=1: k-fold needs an integer k in 2..10000"), (11, "k=11 is larger than the 10 training images of class 0")])
def test_nonsense_k(k, message):
    with pytest.raises(UsageError, match=message):
        assign_folds(np.repeat(np.arange(3), [10, 20, 30]), k, 0)


def test_folds_file_must_match_data(tmp_path):
    labels = np.repeat(np.arange(4), 5)
    write_folds(tmp_path / "folds.csv", labels, assign_folds(labels, 2, 0))
    with pytest.raises(DataError, match="row Id 0 has label 0 but the data says 3"):
        read_folds(tmp_path / "folds.csv", labels[::-1].copy())
    with pytest.raises(UsageError, match="has 2 folds but k=3"):
        load_or_create_folds(tmp_path / "folds.csv", labels, 3, 0)
