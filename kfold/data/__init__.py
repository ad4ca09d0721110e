"""Data loading for every supported file layout, checksummed downloads, and competition CSV files.

Nothing here imports torch.
"""
from kfold.data.competition import read_classmap, read_sample_ids, write_sample_submission, write_solution
from kfold.data.download import KMNIST_MD5, cache_root, download_kmnist, fetch
from kfold.data.layouts import LoadOptions
from kfold.data.load import load_official_kmnist, load_task
from kfold.data.mnist_mix import LANGUAGES, load_mnist_mix

__all__ = [
    "KMNIST_MD5", "LANGUAGES", "LoadOptions", "cache_root", "download_kmnist", "fetch", "load_mnist_mix",
    "load_official_kmnist", "load_task", "read_classmap", "read_sample_ids", "write_sample_submission", "write_solution",
]
