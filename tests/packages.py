"""A valid-looking code-competition package without training (torch-free, fast): the folders, metadata and
manifest of ``kfold package``'s layout with small stand-in files, for the reader's tests and the fake's."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from kfold.files import package as pk
from kfold.files.schema import KMNIST


def write_fake_package(out: Path, owner: str = "alice", slug: str = "kmnist-kfold-models",
                       competition: str = "kmnist-practice", accelerator: str = "none") -> Path:
    """``out``/{dataset,kernel,local} with a manifest that verifies; returns ``out``."""
    dataset, kernel, local = out / pk.DATASET, out / pk.KERNEL, out / pk.LOCAL
    for folder in (dataset / pk.WHEELS, dataset / pk.MODELS / "run" / "fold0", kernel, local):
        folder.mkdir(parents=True)
    (dataset / pk.WHEELS / "kfold_kaggle-0.2.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + bytes(18))
    (dataset / pk.MODELS / "run" / "fold0" / "model.safetensors").write_bytes(b"\x08" + bytes(15))
    (dataset / pk.MODELS / "run" / "config.json").write_text("{}\n")
    (dataset / pk.DATASET_METADATA).write_text(json.dumps(pk.dataset_metadata(owner, slug, "KMNIST kfold models")))
    kernel_meta = pk.kernel_metadata(owner, "KMNIST kfold predict", competition, f"{owner}/{slug}", accelerator)
    (kernel / pk.KERNEL_METADATA).write_text(json.dumps(kernel_meta))
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")]),
                   kernel / kernel_meta["code_file"])
    (local / pk.LOCAL_SUBMISSION).write_text("Id,Category\n0,3\n1,5\n")
    manifest = {"kfold_version": "0.2.0", "competition": competition, "owner": owner, "dataset": f"{owner}/{slug}",
                "kernel": kernel_meta["id"], "output_file": "submission.csv", "schema": KMNIST.to_dict(),
                "recipe": {"method": "mean", "tta": 1, "seed": 0}, "accelerator": accelerator,
                "classes": list(KMNIST.classes), "sample": "sample_submission.csv",
                "models": [{"run": "run", "dir": "models/run", "folds": [0]}],
                "local_submission": {"sha256": pk.sha256_file(local / pk.LOCAL_SUBMISSION), "rows": 2}}
    pk.write_manifest(dataset, manifest)
    return out


def train_tiny_run(folder: Path, n_train: int = 40, n_test: int = 20, seed: int = 0, name: str = "run") -> tuple[Path, Path]:
    """(run_dir, competition): a real lenet5 run of 2 folds, 1 epoch, 1 thread on a toy competition (seconds)."""
    import kfold
    from kfold.data.toy import make_toy_competition

    comp = make_toy_competition(folder / f"comp-{seed}", n_train=n_train, n_test=n_test, seed=seed)
    run = folder / name
    kfold.train(str(comp), "lenet5", k=2, out=str(run), epochs=1, threads=1, device="cpu", progress=False)
    return run, comp


def bigger_test_set(comp: Path, out: Path, n_test: int) -> Path:
    """A copy of ``comp`` whose test set has ``n_test`` images (the first ones the same): the hidden test set that
    Kaggle's scoring re-run mounts, larger than the public one."""
    import numpy as np

    from kfold.files.schema import KMNIST

    out.mkdir(parents=True)
    for name in ("kmnist-train-imgs.npy", "kmnist-train-labels.npy"):
        (out / name).write_bytes((comp / name).read_bytes())
    public = np.load(comp / "kmnist-test-imgs.npy")
    rng = np.random.default_rng(7)
    extra = public[rng.integers(0, len(public), n_test - len(public))][:, ::-1].copy()  # mirrored: other images
    np.save(out / "kmnist-test-imgs.npy", np.concatenate([public, extra]))
    ids = np.arange(n_test)
    KMNIST.submission_frame(ids, np.zeros(n_test, dtype=np.int64)).to_csv(out / "sample_submission.csv", index=False)
    return out
