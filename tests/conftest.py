"""Shared fixtures. Tests that need the real data skip cleanly when ../shared/data is absent."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KFOLD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/synthetic.py etc.


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (real KMNIST / MNIST-MIX files), or skip the test."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kmnist_comp(shared_data) -> Path:
    path = shared_data / "kmnist-comp"
    if not (path / "kmnist-train-imgs.npy").is_file():
        pytest.skip(f"kmnist-comp not available at {path}")
    return path


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, migrated once per test process (creating one runs MLflow's ~50 alembic
    migrations: seconds each time): a test copies the file (``shutil.copy``) to get a fresh store."""
    pytest.importorskip("mlflow")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


# Seconds each slow file took (setup + call + teardown of its tests, `--durations=0`, 2 xdist workers on the 2-core
# AMD EPYC VM, loaded; BENCHMARKS.md "CI time"). pytest-xdist's loadfile hands a worker a whole file at a time, in
# the order collected (``--no-loadscope-reorder`` in pyproject.toml; its default order, most tests first, would
# start a one-test file of minutes last): the slowest files first, so that they start at once and the many short
# files fill in behind them (longest processing time first). A file not listed comes after these, most tests first.
FILE_SECONDS: dict[str, float] = {  # 2026-12-07, commit 7c1d58f, load average 10-20; split files apportioned;
    # the files the eleventh session shrank scaled by their measured after/before ratios (BENCHMARKS "CI time: ...")
    "test_ray.py": 700, "test_code_submission.py": 280, "test_tune.py": 568, "test_training.py": 290,
    "test_competitions_end_to_end.py": 149, "test_kaggle_log.py": 45, "test_rehearse_sandbox.py": 230,
    "test_kaggle_loop.py": 85, "test_kaggle_shapes.py": 182, "test_api.py": 157, "test_speedrun.py": 64,
    "test_preset_shapes.py": 206, "test_tracking_e2e.py": 137, "test_rehearse.py": 163,
    "test_cli_torchfree.py": 110, "test_code_loop.py": 157, "test_ray_usage.py": 143, "test_tracking.py": 143,
    "test_hostile.py": 141, "test_bench.py": 112, "test_experiments.py": 101, "test_hostile_surfaces.py": 77,
    "test_compare.py": 98, "test_flag_use.py": 79, "test_architecture.py": 56, "test_layouts.py": 76,
    "test_untrusted.py": 67, "test_mnist_mix_flow.py": 65, "test_tune_report.py": 65, "test_scale.py": 62,
}


def pytest_collection_modifyitems(session, config, items):
    """Run the files slowest first (``FILE_SECONDS``), each file's tests in their own order."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        name = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
        counts[name] = counts.get(name, 0) + 1
        first.setdefault(name, index)
    rank = {name: (-FILE_SECONDS.get(name, 0.0), -counts[name], first[name]) for name in counts}
    items[:] = [item for _, item in sorted(enumerate(items), key=lambda pair: (
        rank[pair[1].nodeid.split("::", 1)[0].rsplit("/", 1)[-1]], pair[0]))]


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core the process may use, at most 4 (the Ray and training files dominate; more
    workers than that only contend for memory and for torch's own threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))
