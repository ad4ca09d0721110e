"""Checksummed downloads of the official KMNIST release into a local cache (pooch).

pooch downloads to a temporary file and moves it into the cache only when its md5 matches, so a
corrupt download never stays in the cache; a cached file whose md5 no longer matches is fetched again.
"""
from __future__ import annotations

import os
from pathlib import Path

from kfold.errors import DataError, param

KMNIST_URL = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"
URL_ENV = "KFOLD_KMNIST_URL"
CACHE_ENV = "KFOLD_CACHE"

# Official md5s as published by the distributors (see ../shared/data/README.md).
KMNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
    "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
    "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
    "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
    "kmnist_classmap.csv": "899202f6e8dc29a321ac210a03d0f2f1",
    "kmnist-train-imgs.npz": "a183fbc01ed9a345513b145673d3d0bb",
    "kmnist-train-labels.npz": "b0e1d240e8afec72b50437fc3bc5908a",
    "kmnist-test-imgs.npz": "dace6de62ca8b90843cc45366337d02e",
    "kmnist-test-labels.npz": "3ae489a79983d0fe386152684e3b5412",
}
KMNIST_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "kmnist_classmap.csv")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$KFOLD_CACHE``, else ``~/.cache/kfold``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kfold")


def kmnist_base_url() -> str:
    """The official base URL, or ``$KFOLD_KMNIST_URL`` (a mirror, or a local server in tests)."""
    url = os.environ.get(URL_ENV) or KMNIST_URL
    return url if url.endswith("/") else url + "/"


def offline_hint(directory: str | Path) -> str:
    """How to proceed without the download host (appended to a failed download's error line)."""
    return (f"; offline? copy the official files into {directory} (checked by md5; the cache is ${CACHE_ENV} or "
            f"~/.cache/kfold), point ${URL_ENV} at a mirror, or train on local files with {param('data')}=DIR")


def fetch(fname: str, directory: str | Path, *, md5: str, base_url: str, progress: bool = True) -> Path:
    """Download ``base_url + fname`` into ``directory`` unless a copy with this md5 is already there."""
    import pooch  # lazy: importing kfold.data stays fast
    import requests

    url = base_url + fname
    try:
        return Path(pooch.retrieve(url, known_hash=f"md5:{md5}", fname=fname, path=directory, progressbar=progress))
    except ValueError as exc:
        if "hash" not in str(exc):
            raise DataError(f"{fname}: cannot download from {url} ({' '.join(str(exc).split())}){offline_hint(directory)}") from None
        raise DataError(f"{fname}: checksum mismatch for the download from {url} (expected md5 {md5}); "
                        "the corrupt download was deleted") from None
    except requests.RequestException as exc:
        raise DataError(f"{fname}: download from {url} failed ({' '.join(str(exc).split())}){offline_hint(directory)}") from None


def download_kmnist(cache_dir: str | Path | None = None, *, progress: bool = True) -> Path:
    """Fetch the official KMNIST idx files and class map; return the cache directory holding them."""
    directory = cache_root(cache_dir) / "kmnist"
    base_url = kmnist_base_url()
    for fname in KMNIST_IDX_FILES:
        fetch(fname, directory, md5=KMNIST_MD5[fname], base_url=base_url, progress=progress)
    return directory
