"""A trained-looking run directory without training (torch-free, fast): config.json, summary.json, folds'
metrics.csv and oof.npz, run-level oof.npz, over a synthetic Kaggle-layout competition."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss
from synthetic import write_kmnist_comp

from kfold.data import load_task
from kfold.files.probs import write_probs

HIRAGANA = list("おきすつなはまやれを")


def fake_run(tmp_path: Path, k: int = 2, epochs: int = 3, error_rate: float = 0.2, seed: int = 0) -> tuple[Path, Path]:
    """(run_dir, data_dir): out-of-fold probabilities wrong on about ``error_rate`` of the rows."""
    data = write_kmnist_comp(tmp_path / "comp", n_train=120, n_test=40, seed=seed)
    task = load_task(data)
    rng = np.random.default_rng(seed)
    n = len(task.train_labels)
    labels = task.train_labels.astype(np.int64)
    predicted = labels.copy()
    wrong = rng.random(n) < error_rate
    predicted[wrong] = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    probs = rng.dirichlet(np.ones(10) * 0.3, n) * 0.4
    probs[np.arange(n), predicted] += 0.6
    folds = np.arange(n) % k
    run = tmp_path / "run"
    meta = {"kind": "oof", "run": "run", "model": "lenet5", "preset": "lenet5", "seed": seed, "tta": 1,
            "fingerprint": task.fingerprint(), "task": task.name}
    fold_rows = []
    for fold in range(k):
        rows = np.flatnonzero(folds == fold)
        (run / f"fold{fold}").mkdir(parents=True)
        write_probs(run / f"fold{fold}" / "oof.npz", rows, probs[rows], task.class_names, {**meta, "fold": fold},
                    labels=labels[rows])
        history = pd.DataFrame({"epoch": range(1, epochs + 1), "train_loss": np.linspace(2, 0.5, epochs),
                                "train_accuracy": np.linspace(0.3, 0.8, epochs), "val_loss": np.linspace(1.8, 0.6, epochs),
                                "val_accuracy": np.linspace(0.4, 0.8, epochs), "lr": np.linspace(0.1, 0.0, epochs),
                                "seconds": 1.25})
        history.to_csv(run / f"fold{fold}" / "metrics.csv", index=False)
        fold_rows.append({"fold": fold, "best_epoch": epochs, "val_accuracy": float((predicted[rows] == labels[rows]).mean()),
                          "val_loss": 0.6, "seconds": 161.934})
    write_probs(run / "oof.npz", np.arange(n), probs, task.class_names, {**meta, "fold": "all"}, labels=labels)
    config = {"config": {"epochs": epochs, "schedule": "onecycle"}, "preset": "lenet5", "k": k, "seed": seed,
              "data": str(data), "task": task.name, "fingerprint": task.fingerprint(), "classes": task.class_names}
    (run / "config.json").write_text(json.dumps(config))
    summary = {"task": task.name, "preset": "lenet5", "model": "lenet5", "k": k, "seed": seed, "keep": "last",
               "folds_done": k, "folds": fold_rows, "train_seconds": 323.868, "oof_rows": n,
               "oof_accuracy": float((predicted == labels).mean()), "oof_accuracy_last_epoch": float((predicted == labels).mean()),
               "oof_logloss": float(log_loss(labels, probs, labels=range(10)))}  # as summarize computes it
    (run / "summary.json").write_text(json.dumps(summary))
    return run, data


def finished_run(tmp_path: Path, name: str = "run", k: int = 2) -> Path:
    """``fake_run``'s trained-looking run, finished like training finishes it: each fold's meta.json (written
    last), learning curve and confusion files, folds.csv and a config with a model option."""
    base = tmp_path / name
    base.mkdir()
    run, _ = fake_run(base, k=k)
    config = json.loads((run / "config.json").read_text())
    config["config"].update({"model": "resnet_small", "model_kwargs": {"width": 16}, "lr": 0.1})
    config.update(folds_sha256="ab" * 32, threads=1)
    (run / "config.json").write_text(json.dumps(config))
    (run / "folds.csv").write_text("Id,label,fold\n" + "".join(f"{i},{i % 10},{i % k}\n" for i in range(120)))
    for fold in range(k):
        folder = run / f"fold{fold}"
        (folder / "meta.json").write_text(json.dumps({
            "fold": fold, "best_epoch": 3, "seconds": 161.9, "val_rows": 60, "train_rows": 60, "val_accuracy": 0.8,
            "val_loss": 0.6, "threads": 1, "device": "cpu", "host": "test-host",
            "precision": {"bf16": False, "channels_last": False, "decided_by": "rule"}}))
        (folder / "learning_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
        (folder / "confusion.csv").write_text("a,b\n1,0\n0,1\n")
    return run



def fold_probs_and_solution(run: Path, tmp_path: Path) -> tuple[list[str], Path, Path]:
    """Two fold test-probability files of ``finished_run``'s ``run`` in its probs/ folder (seeded random rows with the
    run's metadata, as predict writes them) and a solution for its competition (a third of the rows Public):
    (the files, the sample submission, the solution)."""
    from kfold.files.probs import read_probs

    data = Path(json.loads((run / "config.json").read_text())["data"])
    oof = read_probs(run / "oof.npz")
    sample = pd.read_csv(data / "sample_submission.csv")
    ids = sample.iloc[:, 0].to_numpy()
    rng = np.random.default_rng(0)
    files = []
    for fold in range(2):
        meta = {**{k: oof.meta[k] for k in ("run", "model", "preset", "seed", "fingerprint", "task")},
                "kind": "test", "fold": fold, "tta": 1}
        path = run / "probs" / f"run-fold{fold}.npz"
        path.parent.mkdir(exist_ok=True)
        write_probs(path, ids, rng.dirichlet(np.ones(10), len(ids)), oof.classes, meta)
        files.append(str(path))
    solution = tmp_path / "solution.csv"
    pd.DataFrame({sample.columns[0]: ids, sample.columns[1]: rng.integers(0, 10, len(ids)),
                  "Usage": ["Public" if i % 3 == 0 else "Private" for i in range(len(ids))]}).to_csv(solution, index=False)
    return files, data / "sample_submission.csv", solution
