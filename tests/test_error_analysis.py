"""Issue 18 item 7: out-of-fold error analysis of a run (confusion with class names, per-class accuracy, gallery)."""
from __future__ import annotations

import json
import warnings

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from synthetic import write_kmnist_comp
from runs import HIRAGANA, fake_run

from kfold.commands.main import main as kfold_main
from kfold.data import load_task
from kfold.figures import DEFAULT_FONT, can_draw, class_labels, japanese_font_path, label_fonts, plot_confusion
from kfold.files.probs import read_probs
from kfold.scoring.errors_analysis import analyze_run, write_analysis


def test_hiragana_class_names_are_glyphs_not_boxes(tmp_path):
    if japanese_font_path() is None:
        pytest.skip("matplotlib-fontja is not installed")
    fonts = label_fonts(HIRAGANA)
    assert can_draw("".join(HIRAGANA), fonts)
    assert not can_draw("".join(HIRAGANA), [DEFAULT_FONT])  # the check itself tells a box from a glyph
    labels, _ = class_labels(HIRAGANA)
    assert labels[0] == "0 お" and labels[9] == "9 を"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_confusion(np.eye(10, dtype=int) * 3, HIRAGANA, tmp_path / "c.png", title="お")
    assert not [w for w in caught if "missing from font" in str(w.message)], [str(w.message) for w in caught]
    assert matplotlib.image.imread(tmp_path / "c.png").shape[2] in (3, 4)


def test_the_japanese_font_is_a_fallback_not_the_default(tmp_path):
    import sys

    import matplotlib

    label_fonts(HIRAGANA)
    assert "matplotlib_fontja" not in sys.modules  # importing it would switch every figure's font
    assert matplotlib.rcParams["font.family"] == ["sans-serif"]


def test_names_that_cannot_be_drawn_fall_back_to_the_index():
    labels, _ = class_labels(["a", "\U00020000x", "2"])  # a CJK extension-B character: in neither font
    assert labels == ["0 a", "1", "2"]


def test_analysis_of_a_run(tmp_path):
    run, data = fake_run(tmp_path)
    oof = read_probs(run / "oof.npz")
    predicted = oof.probs.argmax(1)
    analysis = analyze_run(run)
    assert analysis.notes == []
    assert analysis.confusion.sum() == len(oof.ids) and np.trace(analysis.confusion) == (predicted == oof.labels).sum()
    assert analysis.confusion[3, 5] == ((oof.labels == 3) & (predicted == 5)).sum()
    per_class = analysis.per_class
    assert list(per_class["name"]) == HIRAGANA
    for c in range(10):
        rows = oof.labels == c
        assert per_class.loc[c, "accuracy"] == pytest.approx((predicted[rows] == c).mean())
    errors = analysis.errors
    assert len(errors) == (predicted != oof.labels).sum() and errors["confidence"].is_monotonic_decreasing
    assert (errors["true"] != errors["predicted"]).all()
    train_images = load_task(data).train_images
    assert np.array_equal(analysis.images, train_images[errors["Id"].to_numpy()[: len(analysis.images)]])

    files = write_analysis(analysis)
    assert set(p.name for p in (run / "analysis").iterdir()) == {
        "confusion_oof.csv", "confusion_oof.png", "per_class_accuracy.csv", "per_class_accuracy.md",
        "per_class_accuracy.png", "errors.csv", "errors_gallery.png"}
    table = pd.read_csv(files["confusion_csv"], index_col=0)
    assert table.index[0] == "0 お" and table.to_numpy().sum() == len(oof.ids)
    assert "| 0 | お | " in files["per_class_md"].read_text(encoding="utf-8")
    for key in ("confusion", "per_class", "gallery"):
        assert matplotlib.image.imread(files[key]).shape[0] > 100


def test_gallery_skipped_when_the_data_is_not_the_runs(tmp_path):
    run, data = fake_run(tmp_path)
    other = write_kmnist_comp(tmp_path / "other", n_train=120, n_test=40, seed=7)  # loadable, but not the run's data
    analysis = analyze_run(run, data=str(other))
    assert analysis.images is None and "fingerprint differs" in analysis.notes[0]
    assert "gallery" not in write_analysis(analysis, tmp_path / "out")


def test_unfinished_run_uses_the_finished_folds(tmp_path):
    run, _ = fake_run(tmp_path)
    (run / "oof.npz").unlink()
    (run / "fold1" / "oof.npz").unlink()
    analysis = analyze_run(run)
    assert len(analysis.labels) == len(read_probs(run / "fold0" / "oof.npz").ids)
    assert any("not every fold" in note for note in analysis.notes)


def test_kfold_errors_command(tmp_path, capsys):
    run, _ = fake_run(tmp_path)
    assert kfold_main(["errors", str(run), "--out", str(tmp_path / "a"), "--gallery", "8"]) == 0
    out = capsys.readouterr().out
    assert "| class | name | rows | correct | accuracy |" in out and f"wrote {tmp_path / 'a' / 'errors_gallery.png'}" in out
    assert kfold_main(["errors", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: no such run directory\n"
