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


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core the process may use, at most 4 (the Ray and training files dominate; more
    workers than that only contend for memory and for torch's own threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))
