"""kfold learning-curve: power-law fit over runs with different k, the same-recipe checks, outputs, torch-free."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfold.commands import main as cli
from kfold.scoring.learning_curve import CurvePoint, PowerLaw, fit_power_law

REPO = Path(__file__).resolve().parents[1]
OOF_ROWS = 7000


def fake_run(root: Path, name: str, k: int, errors: int, seed: int = 0, epochs: int = 20, fingerprint: str = "f00d",
             folds_done: int | None = None) -> Path:
    """A finished train.py run directory as far as the learning curve reads it."""
    run = root / name
    run.mkdir()
    config = {"model": "resnet9", "epochs": epochs, "lr": 0.1, "keep": "last", "eval_batch_size": 1024}
    (run / "config.json").write_text(json.dumps({"config": config, "k": k, "seed": seed, "fingerprint": fingerprint}))
    summary = {"k": k, "seed": seed, "folds_done": k if folds_done is None else folds_done, "oof_rows": OOF_ROWS,
               "oof_accuracy": 1 - errors / OOF_ROWS, "oof_accuracy_last_epoch": 1 - errors / OOF_ROWS}
    (run / "summary.json").write_text(json.dumps(summary))
    for fold in range(k):
        (run / f"fold{fold}").mkdir()
        (run / f"fold{fold}" / "meta.json").write_text(json.dumps({"train_rows": OOF_ROWS * (k - 1) // k}))
    return run


def law_errors(k: int, law: PowerLaw) -> int:
    return int(round(float(law.error(OOF_ROWS * (k - 1) // k)) * OOF_ROWS))


def test_fit_recovers_a_known_power_law():
    law = PowerLaw(scale=2.0, exponent=0.6)
    rows = np.array([1000.0, 3000.0, 9000.0])
    points = [CurvePoint("r", 2, 0, r, 10**7, int(round(law.error(r) * 10**7))) for r in rows]
    fitted = fit_power_law(points)
    assert fitted.exponent == pytest.approx(0.6, abs=1e-4) and fitted.scale == pytest.approx(2.0, rel=1e-3)
    assert fitted.rows_for(float(law.error(20000.0))) == pytest.approx(20000.0, rel=1e-3)
    assert PowerLaw(scale=0.01, exponent=-0.1).rows_for(0.005) == float("inf")  # a rising curve never gets there
    assert PowerLaw(scale=1.0, exponent=1e-4).rows_for(1e-6) == float("inf")  # beyond float range: no overflow


def test_cli_writes_table_plot_and_estimates(tmp_path, capsys):
    law = PowerLaw(scale=1.5, exponent=0.57)
    runs = [fake_run(tmp_path, f"k{k}", k, law_errors(k, law)) for k in (2, 3, 5, 10)]
    out = tmp_path / "lc"
    assert cli.main(["learning-curve", *map(str, runs), "--out", str(out), "--target", "0.995"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "learning_curve.csv")
    assert list(table["k"]) == [2, 3, 5, 10] and list(table["train_rows"]) == [3500, 4666, 5600, 6300]
    assert list(table["errors"]) == [law_errors(k, law) for k in (2, 3, 5, 10)]
    assert (table["accuracy_ci_low"] < table["oof_accuracy"]).all() and (table["oof_accuracy"] < table["accuracy_ci_high"]).all()
    assert np.allclose(table["fitted_accuracy"], 1 - law.error(table["train_rows"].to_numpy()), atol=2e-4)
    exponent = float(re.search(r"fit: error = [\d.]+ \* rows\^-([\d.]+) over 4 runs", printed).group(1))
    assert exponent == pytest.approx(0.57, abs=0.03)  # the error counts are rounded to whole rows
    all_rows = float(re.search(r"trained on all 7,000 rows: ([\d.]+) ", printed).group(1))
    assert all_rows == pytest.approx(1 - float(law.error(OOF_ROWS)), abs=2e-4)
    estimate = re.search(r"training rows for accuracy 0\.9950: ([\d,]+) ", printed)
    assert float(estimate.group(1).replace(",", "")) == pytest.approx(law.rows_for(0.005), rel=0.1)
    assert "95% bootstrap interval" in printed
    assert (out / "learning_curve.png").stat().st_size > 1000 and (out / "learning_curve.md").read_text().startswith("| run |")


@pytest.mark.parametrize("change, message", [
    (dict(epochs=30), "config epochs=30 differs"),
    (dict(fingerprint="beef"), "trained on other data"),
    (dict(folds_done=1), "1 of 3 folds finished"),
])
def test_runs_that_are_not_one_recipe_are_refused(tmp_path, capsys, change, message):
    first = fake_run(tmp_path, "a", 2, 100)
    second = fake_run(tmp_path, "b", 3, 80, **change)
    assert cli.main(["learning-curve", str(first), str(second), "--out", str(tmp_path / "lc")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "lc").exists()


def test_usage_errors(tmp_path, capsys):
    a, b = fake_run(tmp_path, "a", 5, 80), fake_run(tmp_path, "b", 5, 70, seed=1)
    assert cli.main(["learning-curve", str(a), str(b), "--out", str(tmp_path / "lc")]) == 2
    assert "at least two different k" in capsys.readouterr().err
    c = fake_run(tmp_path, "c", 2, 100)
    assert cli.main(["learning-curve", str(a), str(c), "--out", str(tmp_path / "lc"), "--target", "99.5"]) == 2
    assert "argument --target: '99.5' is not a finite number in (0, 1)" in capsys.readouterr().err
    assert cli.main(["learning-curve", str(tmp_path / "missing"), str(c), "--out", str(tmp_path / "lc")]) == 1
    assert "summary.json: not found" in capsys.readouterr().err
    assert not (tmp_path / "lc").exists()


def test_learning_curve_imports_no_torch(tmp_path):
    runs = [fake_run(tmp_path, f"k{k}", k, e) for k, e in ((2, 100), (5, 78))]
    code = (f"import sys; from kfold.commands.main import main; rc = main(['learning-curve', {str(runs[0])!r}, {str(runs[1])!r}, "
            f"'--out', {str(tmp_path / 'lc')!r}]); assert rc == 0; assert 'torch' not in sys.modules; print('OK')")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr
