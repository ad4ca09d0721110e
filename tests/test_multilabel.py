"""Multi-label targets (issue 32): tags and independent probability columns, from detection to the leaderboard."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfold.errors import DataError, UsageError
from kfold.files.folds import assign_folds, read_folds, write_folds
from kfold.files.multilabel import detect, encode_tags
from kfold.files.multilabel_submission import read_multilabel_submission, write_multilabel_submission
from kfold.files.schema import Sample, Schema, infer_schema
from kfold.metrics import METRICS, default_metric, metric_fit_problem, score
from kfold.scoring.multilabel import (GRID, apply_thresholds, fast_score, search_thresholds, vote_tags)

TAGS = Schema(id_column="image_name", target_columns=("tags",), classes=("clear", "haze", "road"), target="tags",
              id_kind="str", class_kind="str", metric="f2-samples")
PROBS = Schema(id_column="id", target_columns=("a", "b", "c"), classes=("a", "b", "c"), target="multilabel-probs",
               id_kind="int", class_kind="str", metric="mean-auc")


def _sample(columns, cells):
    frame = pd.DataFrame({columns[0]: [str(i) for i in range(len(cells))]})
    for j, column in enumerate(columns[1:]):
        frame[column] = [row[j] for row in cells]
    return Sample(Path("sample_submission.csv"), list(columns), np.arange(len(cells)), "int", frame)


# -- detection ------------------------------------------------------------------------------------------
def test_tags_are_detected_from_the_training_labels_and_say_why():
    schema = infer_schema(_sample(["image_name", "tags"], [["clear"]]), ["clear primary", "haze", "clear", "road clear"])
    assert (schema.target, schema.classes, schema.metric) == ("tags", ("clear", "haze", "primary", "road"), "f1-samples")
    assert "stand alone" in schema.extra["detected"]


def test_class_names_with_spaces_stay_one_label():
    schema = infer_schema(_sample(["file", "species"], [["Maize"]]), ["Common Chickweed", "Maize", "Common wheat"])
    assert schema.target == "label" and "Common Chickweed" in schema.classes


def test_probability_columns_with_several_ones_are_multilabel_and_one_hot_rows_are_multiclass():
    sample = _sample(["id", "a", "b", "c"], [["0.5", "0.5", "0.5"]])
    multi = infer_schema(sample, np.array([[1, 1, 0], [0, 0, 0], [0, 1, 0]]))
    assert (multi.target, multi.metric) == ("multilabel-probs", "mean-auc") and "2 ones" in multi.extra["detected"]
    single = infer_schema(sample, np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]]))
    assert (single.target, single.metric) == ("probs", "logloss")
    forced = infer_schema(sample, np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]]), target="multilabel-probs")
    assert forced.target == "multilabel-probs"


def test_metric_fit_problems_name_the_fitting_metrics():
    assert default_metric("tags", 3) == "f1-samples" and default_metric("multilabel-probs", 3) == "mean-auc"
    assert "use one of f1-samples, f2-samples, micro-f1" in metric_fit_problem("mean-auc", "tags", 3)
    assert metric_fit_problem("accuracy", "tags", 3) is not None
    assert metric_fit_problem("f2-samples", "label", 3) is not None
    assert metric_fit_problem("micro-f1", "multilabel-probs", 3) is None


# -- metrics --------------------------------------------------------------------------------------------
def test_metrics_are_scikit_learns():
    from sklearn.metrics import f1_score, fbeta_score, roc_auc_score

    rng = np.random.default_rng(0)
    labels = (rng.random((200, 5)) < 0.3).astype(int)
    labels[np.arange(200), rng.integers(0, 5, 200)] = 1
    probs = np.clip(labels * 0.4 + rng.random(labels.shape) * 0.7, 0, 1)
    hard = apply_thresholds(probs, 0.5)  # the one tag rule: 0.5, a row without a tag keeps its most probable one
    assert score("f2-samples", labels, probs) == pytest.approx(fbeta_score(labels, hard, beta=2, average="samples"))
    assert score("f1-samples", labels, probs) == pytest.approx(f1_score(labels, hard, average="samples"))
    assert score("micro-f1", labels, probs) == pytest.approx(f1_score(labels, hard, average="micro"))
    assert score("mean-auc", labels, probs) == pytest.approx(np.mean([roc_auc_score(labels[:, j], probs[:, j])
                                                                      for j in range(5)]))
    for name in ("f1-samples", "f2-samples", "micro-f1"):
        assert fast_score(name, labels, hard) == pytest.approx(score(name, labels, hard))
    assert {"f1-samples", "f2-samples", "micro-f1", "mean-auc"} <= set(METRICS)


def test_weighted_auc_equals_scikit_learn_on_a_resample():
    from sklearn.metrics import roc_auc_score

    from kfold.scoring.multilabel_board import weighted_mean_auc

    rng = np.random.default_rng(1)
    labels, probs = (rng.random((150, 4)) < 0.4).astype(int), np.round(rng.random((150, 4)), 1)
    draw = rng.integers(0, 150, 150)
    weights = np.bincount(draw, minlength=150)[None].astype(float)
    expected = np.mean([roc_auc_score(labels[draw, j], probs[draw, j]) for j in range(4)])
    assert weighted_mean_auc(labels, probs, weights)[0] == pytest.approx(expected)


# -- folds ----------------------------------------------------------------------------------------------
def test_multilabel_folds_are_stratified_reproducible_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random((300, 6)) < 0.25).astype(np.int64)
    labels[np.arange(300), rng.integers(0, 6, 300)] = 1
    folds = assign_folds(labels, 5, seed=3)
    assert np.array_equal(folds, assign_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, assign_folds(labels, 5, seed=4))
    share = np.stack([labels[folds == f].mean(axis=0) for f in range(5)])
    assert np.abs(share - labels.mean(axis=0)).max() < 0.05
    write_folds(tmp_path / "folds.csv", labels, folds)
    assert np.array_equal(read_folds(tmp_path / "folds.csv", labels), folds)
    changed = labels.copy()
    changed[7] = 1 - changed[7]
    with pytest.raises(DataError, match="row Id 7"):
        read_folds(tmp_path / "folds.csv", changed)


# -- thresholds and ensembles ---------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["f1-samples", "f2-samples", "micro-f1"])
def test_threshold_search_finds_the_best_global_threshold_and_per_tag_never_worse(metric):
    rng = np.random.default_rng(2)
    labels = (rng.random((400, 5)) < [0.1, 0.3, 0.5, 0.2, 0.05]).astype(int)
    labels[np.arange(400), rng.integers(0, 5, 400)] = 1
    probs = np.clip(labels * rng.uniform(0.1, 0.6, 5) + rng.random(labels.shape) * 0.5, 0, 1)
    found = search_thresholds(labels, probs, metric)
    brute = [fast_score(metric, labels, apply_thresholds(probs, t)) for t in GRID]
    assert found["global"] == pytest.approx(GRID[int(np.argmax(brute))]) and found["score_global"] == pytest.approx(max(brute))
    assert found["score"] >= found["score_global"]
    assert found["score_per_tag"] == pytest.approx(fast_score(metric, labels, apply_thresholds(probs, found["per_tag"])))


def test_every_row_keeps_a_tag_and_the_vote_breaks_ties_by_seed():
    tags = apply_thresholds(np.array([[0.1, 0.3, 0.2], [0.9, 0.1, 0.6]]), 0.5)
    assert tags.tolist() == [[0, 1, 0], [1, 0, 1]]
    a, b = np.array([[1, 0], [0, 1]]), np.array([[0, 0], [1, 1]])
    first, tied = vote_tags([a, b], seed=0)
    assert tied == 2 and np.array_equal(first, vote_tags([a, b], seed=0)[0])
    assert vote_tags([a, a, b], seed=5)[0].tolist() == a.tolist()


# -- files ----------------------------------------------------------------------------------------------
def test_submissions_round_trip_in_the_samples_format(tmp_path):
    path = tmp_path / "s.csv"
    write_multilabel_submission(path, TAGS, np.array(["x", "y"]), tags=np.array([[1, 0, 1], [0, 1, 0]]))
    assert path.read_text() == "image_name,tags\nx,clear road\ny,haze\n"
    write_multilabel_submission(tmp_path / "p.csv", PROBS, np.array([0, 1]), probs=np.array([[0.9, 0.8, 0.0], [0, 0, 0.1]]))
    ids, values = read_multilabel_submission(tmp_path / "p.csv", PROBS)
    assert ids.tolist() == [0, 1] and values.sum(axis=1).tolist() == pytest.approx([1.7, 0.1])


HOSTILE = [
    ("tags", "image_name,tags\nx,clear road\ny,\n", "line 3.*no tag; metric f2-samples needs at least one"),
    ("tags", "image_name,tags\nx,\"clear,road\"\n", "line 2.*'clear,road' is not one of the competition's tags"),
    ("tags", "image_name,tags\nx,clear fog\n", "line 2.*tag 'fog' is not one of the competition's tags"),
    ("tags", "image_name,tags\nx,clear clear\n", "line 2.*tag 'clear' appears twice"),
    ("tags", "image_name,label\nx,clear\n", "line 1: header 'image_name,label' must be 'image_name,tags'"),
    ("probs", "id,a,b,c\n0,0.5,nan,0.1\n", "line 2.*column 'b'"),
    ("probs", "id,a,b,c\n0,0.5,1.5,0.1\n", "line 2.*column 'b': 1.5 is not a probability in \\[0, 1\\]"),
    ("probs", "id,a,b,c\n0,0.5,,0.1\n", "line 2.*column 'b'"),
    ("probs", "id,a,b\n0,0.5,0.1\n", "line 1: header"),
]


@pytest.mark.parametrize("which,text,message", HOSTILE)
def test_hostile_submissions_are_refused_by_line_and_column(tmp_path, which, text, message):
    path = tmp_path / "sub.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_multilabel_submission(path, TAGS if which == "tags" else PROBS)


HOSTILE_LABELS = [
    (["clear road", "clear", ""], "no tag"),
    (["clear road", "clear", "haze,fog"], "holds ','"),
    (["clear road", "clear", "haze haze"], "'haze' appears twice"),
]


@pytest.mark.parametrize("cells,message", HOSTILE_LABELS)
def test_hostile_training_tags_are_refused(cells, message):
    with pytest.raises(DataError, match=message):
        infer_schema(_sample(["image_name", "tags"], [["clear"]]), cells, target="tags")


def test_a_tag_on_one_image_cannot_be_split_into_k_folds():
    labels = encode_tags(["clear road", "clear", "clear haze", "clear road"], ("clear", "haze", "road"), "t", "tags")
    with pytest.raises(UsageError, match="k=2 is larger than the 1 training image of tag 'haze'"):
        assign_folds(labels, 2, seed=0, class_names=["clear", "haze", "road"])


def test_probability_columns_missing_from_training_are_refused():
    sample = _sample(["id", "a", "b", "c"], [["0.5", "0.5", "0.5"]])
    with pytest.raises(DataError, match="multilabel-probs target trains on the sample's probability columns"):
        infer_schema(sample, ["a", "b"], target="multilabel-probs")


def test_detect_refuses_tags_for_two_dimensional_probs_targets():
    assert detect(np.array([[1, 0], [0, 1]]), None, one_column=False)[0] == "probs"


def test_multilabel_probability_files_keep_tags_and_refuse_nan(tmp_path):
    from kfold.files.probs import read_probs, write_probs

    meta = {"kind": "oof", "schema": PROBS.to_dict()}
    probs = np.array([[0.9, 0.8, 0.1], [0.2, 0.1, 0.0]])  # rows need not sum to 1
    labels = np.array([[1, 1, 0], [0, 0, 0]])
    for suffix in ("csv", "npz"):
        write_probs(tmp_path / f"oof.{suffix}", [0, 1], probs, list(PROBS.classes), meta, labels=labels)
        back = read_probs(tmp_path / f"oof.{suffix}")
        assert back.labels.tolist() == labels.tolist() and np.allclose(back.probs, probs)
    bad = probs.copy()
    bad[1, 2] = np.nan
    with pytest.raises(DataError, match="row 1 .*column 'c': probability nan is not a finite number"):
        write_probs(tmp_path / "bad.npz", [0, 1], bad, list(PROBS.classes), meta, labels=labels)
    with pytest.raises(DataError, match="sum to"):  # a single-label file keeps its sum rule
        write_probs(tmp_path / "single.npz", [0, 1], probs, ["a", "b", "c"], {"kind": "test"})


def test_folds_are_as_well_stratified_as_the_iterative_stratification_package():
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    rng = np.random.default_rng(5)
    labels = (rng.random((2000, 8)) < np.geomspace(0.6, 0.01, 8)).astype(np.int64)

    def worst(folds):
        share = np.stack([labels[folds == f].mean(axis=0) for f in range(5)])
        return np.abs(share - labels.mean(axis=0)).max()

    theirs = np.empty(len(labels), dtype=np.int64)
    splits = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels)
    for fold, (_, rows) in enumerate(splits):
        theirs[rows] = fold
    ours = assign_folds(labels, 5, seed=0)
    assert worst(ours) <= worst(theirs) * 1.25 + 1e-3
    assert np.bincount(ours).max() - np.bincount(ours).min() <= 2
