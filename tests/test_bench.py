"""benchmarks/bench.py: the --quick smoke run works end to end and writes well-formed results (no numeric targets)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic import write_kmnist_comp

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("kfold_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()
OTHER_SECTION = "## Accuracy (someone else's)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One in-process --quick run on a tiny synthetic competition, recorded into a BENCHMARKS.md that
    already holds another engineer's section after an earlier Speed block."""
    root = tmp_path_factory.mktemp("bench")
    data = write_kmnist_comp(root / "comp", n_train=200, n_test=60, seed=1)
    md = root / "BENCHMARKS.md"
    md.write_text(f"# Benchmarks\n\n{bench.SECTION_TITLE}\n\n### an earlier run\n\nold table\n\n{OTHER_SECTION}")
    argv = ["--quick", "--device", "cpu", "--threads", "1", "--data", str(data), "--out", str(root / "out"),
            "--record", "--benchmarks-md", str(md)]
    assert bench.main(argv) == 0
    csvs = sorted((root / "out").glob("bench-*-quick.csv"))
    assert len(csvs) == 1
    return pd.read_csv(csvs[0]), md.read_text(), root


def test_quick_run_covers_every_section_and_model(quick_run):
    table, _, _ = quick_run
    assert list(table.columns) == bench.COLUMNS
    assert set(table["section"]) == set(bench.SECTIONS) - {"parallel"}  # --quick does not spawn training processes
    throughput = table[table.section == "throughput"]
    for model in bench.THROUGHPUT_MODELS:
        metrics = set(throughput[throughput.case.str.startswith(f"{model},")]["metric"])
        assert metrics == {"fast images/s", "conventional w2 images/s", "conventional w0 images/s", "speedup vs conventional w2",
                           "speedup vs conventional w0", "fast: augmentation share of step time"}
    inference = table[table.section == "inference"]
    labels = {case.split(",")[0] for case in inference["case"]}
    assert labels >= {*bench.INFERENCE_MODELS, "predict.py"} and any(label.endswith("(fast preset)") for label in labels)
    assert sorted(table[table.section == "ensemble"]["case"].str.split().str[0].astype(int)) == list(bench.QUICK.ensemble_files)


def test_quick_run_cells_are_well_formed(quick_run):
    table, _, _ = quick_run
    assert (table["n"] >= 1).all()
    measured = table[np.isfinite(table["median"])]
    assert (measured["min"] <= measured["median"]).all() and (measured["median"] <= measured["max"]).all()
    speeds = table[table.unit == "img/s"]
    assert (speeds["median"] > 0).all()
    shares = table[table.metric == "fast: augmentation share of step time"]["median"]
    assert ((shares > 0) & (shares < 100)).all()
    accuracy = table[(table.section == "time-to-accuracy") & (table.unit == "%")]["median"]
    assert len(accuracy) == len(bench.ACCURACY_PRESETS) and ((0 <= accuracy) & (accuracy <= 100)).all()
    # not reached -> no time; reached -> a time: the outcome text and the number agree
    for _, seconds in table[table.metric.str.startswith("seconds to")].iterrows():
        assert np.isfinite(seconds["median"]) == ("reached at epoch" in seconds["metric"])
    ratio = table[table.metric.str.startswith("ratio of the seconds")]
    assert list(ratio["case"]) == ["speedrun against fast, same run"] and (ratio["unit"] == "x").all()


def test_record_appends_inside_the_speed_section_only(quick_run):
    table, text, _ = quick_run
    assert text.startswith("# Benchmarks\n")
    assert text.count(bench.SECTION_TITLE) == 1
    speed = text.index(bench.SECTION_TITLE)
    old, new, other = text.index("### an earlier run"), text.index("(--quick smoke test: not measurements)"), text.index(OTHER_SECTION)
    assert speed < old < new < other  # the new block closes the Speed section; the other section is untouched
    assert text.endswith(OTHER_SECTION)
    block = text[new:other]
    for section in set(table["section"]):
        assert f"#### {section}\n" in block
    assert "- command: `python benchmarks/bench.py --quick" in block and "- versions: torch " in block and "load average" in block


def test_record_creates_the_file_and_the_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    bench.record(path, "### run 1\n\nbody 1\n")
    bench.record(path, "### run 2\n\nbody 2\n")
    assert path.read_text() == f"{bench.FILE_TITLE}\n\n{bench.SECTION_TITLE}\n\n### run 1\n\nbody 1\n\n### run 2\n\nbody 2\n"


def test_without_record_the_file_is_not_touched(tmp_path, quick_run):
    _, _, root = quick_run
    md = tmp_path / "BENCHMARKS.md"
    data = root / "comp"
    assert bench.main(["--quick", "--threads", "1", "--sections", "ensemble", "--data", str(data), "--out", str(tmp_path / "out"),
                       "--benchmarks-md", str(md)]) == 0
    assert not md.exists()


@pytest.mark.parametrize("argv, message", [
    (["--data", "/nonexistent/comp"], "--data /nonexistent/comp: no such directory"),
    (["--sections", "throughput,warp"], "--sections 'throughput,warp': choose from"),
    (["--repeats", "0"], "--repeats 0: must be positive"),
    (["--threads", "0"], "--threads 0: must be positive"),
])
def test_usage_errors_are_one_line(argv, message):
    result = subprocess.run([sys.executable, str(BENCH), *argv], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {message}") and "\n" not in result.stderr.strip()
    assert "Traceback" not in result.stderr
