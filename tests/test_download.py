"""The checksummed downloader against a local HTTP server serving the real official KMNIST bytes.

The real host is never contacted: every test points KFOLD_KMNIST_URL at 127.0.0.1.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import socket
import threading

import numpy as np
import pandas as pd
import pytest
from synthetic import write_idx

from kfold.data import KMNIST_MD5, cache_root, download_kmnist, fetch, load_task
from kfold.data.arrays import read_idx
from kfold.data.download import kmnist_base_url
from kfold.errors import DataError

REAL_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "kmnist_classmap.csv")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(directory) -> base URL of a 127.0.0.1 server on an ephemeral port; stopped after the test."""
    servers = []

    def start(directory):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(tmp_path, shared_data):
    """A directory holding copies of the real official KMNIST files that exist here."""
    directory = tmp_path / "mirror"
    directory.mkdir()
    for name in REAL_FILES:
        shutil.copy(shared_data / "kmnist" / name, directory / name)
    return directory


@pytest.fixture(autouse=True)
def no_real_host(monkeypatch, tmp_path):
    """Even a test that forgets to set a URL gets a closed local port, never the real host."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("KFOLD_KMNIST_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "env-cache"))


@pytest.mark.parametrize("name", REAL_FILES)
def test_fetch_real_file_with_official_md5(tmp_path, mirror, serve, name):
    url = serve(mirror)
    cache = tmp_path / "cache"
    path = fetch(name, cache, md5=KMNIST_MD5[name], base_url=url, progress=False)
    assert path == cache / name
    assert path.read_bytes() == (mirror / name).read_bytes()
    assert hashlib.md5(path.read_bytes()).hexdigest() == KMNIST_MD5[name]


def test_corrupt_download_rejected_and_not_cached(tmp_path, mirror, serve):
    name = "t10k-labels-idx1-ubyte.gz"
    data = bytearray((mirror / name).read_bytes())
    data[100] ^= 0xFF
    (mirror / name).write_bytes(bytes(data))
    url = serve(mirror)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        fetch(name, cache, md5=KMNIST_MD5[name], base_url=url, progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(name) and "checksum mismatch" in message and KMNIST_MD5[name] in message
    assert not (cache / name).exists()
    assert list(cache.iterdir()) == []  # no temporary leftovers either


def test_corrupt_cached_file_is_downloaded_again(tmp_path, mirror, serve):
    name = "t10k-labels-idx1-ubyte.gz"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / name).write_bytes(b"stale or corrupt")
    path = fetch(name, cache, md5=KMNIST_MD5[name], base_url=serve(mirror), progress=False)
    assert path.read_bytes() == (mirror / name).read_bytes()


def test_cached_file_needs_no_server(tmp_path, mirror, serve):
    name = "kmnist_classmap.csv"
    cache = tmp_path / "cache"
    fetch(name, cache, md5=KMNIST_MD5[name], base_url=serve(mirror), progress=False)
    # the autouse fixture's URL is a closed port: a second fetch must be served from the cache
    assert fetch(name, cache, md5=KMNIST_MD5[name], base_url=kmnist_base_url(), progress=False) == cache / name


def test_missing_file_on_server(tmp_path, mirror, serve):
    name = "train-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match=rf"^{name}: download from http://127\.0\.0\.1:\d+/{name} failed \(404"):
        fetch(name, tmp_path / "cache", md5=KMNIST_MD5[name], base_url=serve(mirror), progress=False)


def test_unreachable_server(tmp_path):
    name = "kmnist_classmap.csv"
    with pytest.raises(DataError, match=rf"^{name}: download from .* failed"):
        fetch(name, tmp_path / "cache", md5=KMNIST_MD5[name], base_url=kmnist_base_url(), progress=False)


def test_cache_and_url_settings(tmp_path, monkeypatch):
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    assert cache_root() == tmp_path / "env-cache"
    monkeypatch.delenv("KFOLD_CACHE")
    assert cache_root().parts[-2:] == (".cache", "kfold")
    monkeypatch.setenv("KFOLD_KMNIST_URL", "http://mirror.example/kmnist")
    assert kmnist_base_url() == "http://mirror.example/kmnist/"
    monkeypatch.delenv("KFOLD_KMNIST_URL")
    assert kmnist_base_url() == "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"


def test_load_official_kmnist_end_to_end(tmp_path, mirror, serve, monkeypatch, shared_data):
    """Full load_task('kmnist') flow. The 60k train images are not available here, so a stand-in with
    its own md5 is served for that one file; every other file is the real one with its official md5."""
    stand_in = write_idx(mirror / "train-images-idx3-ubyte.gz", np.zeros((60000, 28, 28), np.uint8))
    monkeypatch.setitem(KMNIST_MD5, "train-images-idx3-ubyte.gz", hashlib.md5(stand_in.read_bytes()).hexdigest())
    monkeypatch.setenv("KFOLD_KMNIST_URL", serve(mirror))
    task = load_task("kmnist", cache_dir=tmp_path / "cache", progress=False)

    directory = tmp_path / "cache" / "kmnist"
    real_test_labels = read_idx(shared_data / "kmnist" / "t10k-labels-idx1-ubyte.gz", 1)
    assert task.name == "kmnist" and task.train_images.shape == (60000, 28, 28) and task.test_images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(task.train_labels, read_idx(shared_data / "kmnist" / "train-labels-idx1-ubyte.gz", 1))
    np.testing.assert_array_equal(task.test_ids, np.arange(10000))
    np.testing.assert_array_equal(task.test_labels, real_test_labels)
    assert task.class_names[0] == "お"

    assert task.solution == directory / "solution.csv"
    solution = pd.read_csv(task.solution)
    assert list(solution.columns) == ["Id", "Category", "Usage"]
    np.testing.assert_array_equal(solution["Id"], np.arange(10000))
    np.testing.assert_array_equal(solution["Category"], real_test_labels)
    assert solution["Usage"].value_counts().to_dict() == {"Private": 7000, "Public": 3000}
    sample = pd.read_csv(task.sample_submission)
    assert task.sample_submission == directory / "sample_submission.csv"
    assert list(sample.columns) == ["Id", "Category"] and len(sample) == 10000 and (sample["Category"] == 0).all()

    # a second load is served from the cache (the server now has nothing) and gives the same solution
    for server_file in mirror.iterdir():
        server_file.unlink()
    again = load_task("kmnist", cache_dir=tmp_path / "cache", progress=False)
    assert again.fingerprint() == task.fingerprint()
    pd.testing.assert_frame_equal(pd.read_csv(again.solution), solution)


def test_download_kmnist_uses_env_cache(mirror, serve, monkeypatch, tmp_path):
    write_idx(mirror / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
    monkeypatch.setitem(KMNIST_MD5, "train-images-idx3-ubyte.gz",
                        hashlib.md5((mirror / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest())
    monkeypatch.setenv("KFOLD_KMNIST_URL", serve(mirror))
    directory = download_kmnist(progress=False)
    assert directory == tmp_path / "env-cache" / "kmnist"
    assert sorted(p.name for p in directory.iterdir()) == sorted(["train-images-idx3-ubyte.gz", *REAL_FILES])
