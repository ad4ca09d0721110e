"""What a packaged notebook runs on Kaggle, and what ``kfold package``/``kfold rehearse`` run here for the local
reference: one function, :func:`predict_offline`, so that the two outputs are byte-identical by construction.

It reads the package's manifest (every sha256 checked), loads the competition found at run time (whatever test
images and sample rows it holds: never Ids stored in the package), predicts with the packaged fold models through
``kfold.nn.predict.predict_packaged`` (the same per-model code as ``kfold predict``) and combines them with
``kfold.flows.ensembling.make_submission`` (the same as ``kfold ensemble``/``kfold run``), in the sample's row
order. Torch only through ``kfold.nn``, lazily.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kfold.errors import DataError
from kfold.files import package as pk
from kfold.files.atomic import write_bytes
from kfold.files.rundir import RunDir

__all__ = ["OfflineResult", "competition_task", "find_competition", "load_manifest", "predict_offline",
           "model_files", "NOT_UPLOADED"]

NOT_UPLOADED = (pk.DATASET_METADATA,)  # the kaggle client keeps its metadata file out of the uploaded dataset
_PATH_OPTIONS = ("train_csv", "test_csv", "image_dir", "test_dir")


@dataclass
class OfflineResult:
    """What :func:`predict_offline` wrote: the output, its rows and sha256, the device, the seconds spent."""

    output: Path
    rows: int
    sha256: str
    device: str
    seconds: dict

    def line(self) -> str:
        return f"{self.output}: {self.rows} rows, sha256 {self.sha256} ({self.device}, {sum(self.seconds.values()):.1f} s)"


def load_manifest(dataset_dir: str | os.PathLike, *, verify: bool = True) -> dict:
    """The manifest of a dataset folder (as Kaggle mounts it: without dataset-metadata.json), checked; with
    ``verify`` every listed file's sha256 too (a tampered, truncated or grown dataset: one DataError)."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / pk.MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (not a kfold package dataset)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    pk.check_manifest(manifest, path)
    if verify:
        files = {rel: digest for rel, digest in manifest["files"].items()
                 if rel not in NOT_UPLOADED or (dataset_dir / rel).exists()}
        pk.verify_files(dataset_dir, files, follow_links=True)
    return manifest


def model_files(dataset_dir: str | os.PathLike, manifest: dict) -> list[tuple[str, int, Path]]:
    """(run name, fold, weights path) of every packaged model, in the manifest's order."""
    return [(entry["run"], fold, RunDir(Path(dataset_dir) / entry["dir"]).weights(fold))
            for entry in manifest["models"] for fold in entry["folds"]]


def find_competition(input_dir: str | os.PathLike, competition: str, sample: str) -> Path:
    """The competition's folder under Kaggle's ``input``: ``competitions/<slug>`` (current mounts), ``<slug>``
    (legacy), else the one folder (up to three levels down) holding the sample submission ``sample``."""
    input_dir = Path(input_dir)
    for candidate in (input_dir / "competitions" / competition, input_dir / competition):
        if (candidate / sample).is_file():
            return candidate
    found = sorted({p.parent for depth in ("*", "*/*", "*/*/*") for p in input_dir.glob(f"{depth}/{sample}")
                    if not (p.parent / pk.MANIFEST).exists()})
    if len(found) != 1:
        what = "no folder" if not found else f"{len(found)} folders ({', '.join(map(str, found[:3]))})"
        raise DataError(f"{input_dir}: {what} with the competition's {sample}; attach the competition {competition!r}")
    return found[0]


def competition_task(competition_dir: str | os.PathLike, manifest: dict, progress: bool = False, *,
                     test_only: bool = False):
    """The competition loaded as the models' training loaded it (the manifest's layout options; relative file
    options resolved in ``competition_dir``). ``test_only``: its test images alone, decoded as the training run
    decoded them (no training image read: a code competition's training set can be large, and the notebook's
    time on Kaggle is limited)."""
    from kfold.data.jobs import TaskSpec

    options = dict(manifest.get("load_options", {}))
    for name in _PATH_OPTIONS:
        if options.get(name) is not None:
            options[name] = str(Path(competition_dir) / options[name])
    if test_only and options.get("channels") is None and manifest.get("input", {}).get("channels") == 3:
        options["channels"] = 3  # colour training images made the training decode the test images as RGB too
    return TaskSpec(str(competition_dir), options=tuple(sorted(options.items()))).load(progress=progress,
                                                                                      test_only=test_only)


def _check_competition(task, manifest: dict, where: Path) -> None:
    """The competition met at run time has the schema and classes the models were trained for."""
    from kfold.files.schema import Schema

    packaged = Schema.from_dict(manifest["schema"], "the package's schema")
    if task.schema != packaged:
        raise DataError(f"{where}: the competition's submission is {task.schema.header} with classes "
                        f"{list(task.schema.classes)[:6]}, the models were packaged for {packaged.header} with "
                        f"{list(packaged.classes)[:6]}")


def predict_offline(dataset_dir: str | os.PathLike, competition_dir: str | os.PathLike, out: str | os.PathLike, *,
                    manifest: dict | None = None, device: str | None = None, echo=print) -> OfflineResult:
    """Predict a competition's test set with a packaged ensemble and write its submission file.

    Parameters
    ----------
    dataset_dir : str or os.PathLike
        The package's dataset folder (``PKG/dataset``, or where Kaggle mounts it).
    competition_dir : str or os.PathLike
        The competition's folder as found at run time (its test images and sample submission).
    out : str or os.PathLike
        The submission file to write.
    manifest : dict, optional
        The manifest, when it is not yet written (``kfold package`` computing the local reference); else read
        from ``dataset_dir`` and every file's sha256 checked.
    device : str, optional
        ``auto`` uses CUDA when there is a GPU; default: the recipe's (``auto``).

    Returns
    -------
    OfflineResult

    Raises
    ------
    DataError
        A tampered or truncated dataset, a competition of another schema or classes, models that do not fit the
        test images.
    """
    from kfold.flows.ensembling import make_submission
    from kfold.nn.predict import predict_packaged

    times = {}
    start = time.perf_counter()
    manifest = load_manifest(dataset_dir) if manifest is None else manifest
    recipe = manifest["recipe"]
    times["verify"] = time.perf_counter() - start
    start = time.perf_counter()
    task = competition_task(competition_dir, manifest, test_only=True)
    _check_competition(task, manifest, Path(competition_dir))
    times["load"] = time.perf_counter() - start
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfold-offline-") as tmp:
        files, used = predict_packaged(model_files(dataset_dir, manifest), task, Path(tmp) / "probs",
                                       classes=manifest["classes"], tta=int(recipe["tta"]),
                                       batch_size=int(recipe.get("batch_size", 2048)),
                                       device=device or recipe.get("device", "auto"), threads=recipe.get("threads"),
                                       echo=echo)
        times["predict"] = time.perf_counter() - start
        start = time.perf_counter()
        submission = Path(tmp) / pk.LOCAL_SUBMISSION  # its probabilities stay here, out of Kaggle's output
        make_submission(files, submission, method=recipe["method"], seed=int(recipe["seed"]),
                        tiebreak=recipe.get("tiebreak", "random"), sample=task.sample_submission,
                        schema=task.schema, plot=False)
        data = submission.read_bytes()
    write_bytes(out, data)
    times["ensemble"] = time.perf_counter() - start
    return OfflineResult(Path(out), data.count(b"\n") - 1, hashlib.sha256(data).hexdigest(), used, times)
