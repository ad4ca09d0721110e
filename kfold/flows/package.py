"""``kfold package``: trained runs -> a Kaggle dataset and an offline notebook for a code competition.

Everything is checked before the first byte (Kaggle's naming rules, the accelerator, an empty ``out``; run
directories complete, of one competition and data, each model readable by the packaged kfold and fitting the
images), then the package is staged in a hidden sibling of ``out`` and renamed into place whole. The local
submission is computed by :func:`kfold.flows.offline.predict_offline`, the very function the notebook runs.
The layout and manifest: :mod:`kfold.files.package`. Torch only through ``kfold.nn``, lazily.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from kfold.errors import DataError, UsageError, param
from kfold.files import package as pk
from kfold.files.rundir import RunDir

__all__ = ["PackageResult", "package", "check_out", "check_request", "check_runs", "default_slug"]

METHODS = ("mean", "geomean", "vote", "rank")
_PATH_OPTIONS = ("train_csv", "test_csv", "image_dir", "test_dir")


@dataclass
class PackageResult:
    """A written package: its folder, manifest and size in bytes, and the rehearsal's result (None: skipped)."""

    path: Path
    manifest: dict
    size: int
    rehearsal: object | None = None


def default_slug(competition: str) -> str:
    """``<competition>-kfold``, cut to Kaggle's 50 characters.

    >>> default_slug("kmnist-practice")
    'kmnist-practice-kfold'
    """
    return competition[:44].rstrip("-") + "-kfold"


def check_out(out: Path) -> None:
    """``out`` is new or an empty folder (a package is never written over another)."""
    if out.is_symlink():
        raise UsageError(f"{param('out')}={str(out)!r}: is a symbolic link; kfold writes only into real folders and "
                         f"never through a link it did not create (name a new folder)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{param('out')}={str(out)!r}: exists and is not a folder; name a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"{param('out')}={str(out)!r}: the folder is not empty; name a new or empty folder "
                         f"(a package is never written over another)")


def check_runs(runs: Sequence[RunDir]) -> tuple[list[tuple[str, int, Path]], dict]:
    """The runs' fold models ``(run name, fold, weights)`` and the first run's config: every run complete,
    distinct by name, and trained on the same data (one competition, one schema)."""
    models, configs = [], []
    for run in runs:
        config = run.read_config()
        for key in ("fingerprint", "classes"):
            if key not in config:
                raise DataError(f"{run.config}: field '{key}' is missing (a run written by an older kfold: train again)")
        folds = [fold for fold in run.models() if fold != "full"]  # every fold finished, else one DataError
        models += [(run.name, int(fold), run.weights(fold)) for fold in folds]
        configs.append((run, config))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise UsageError(f"two run directories are both named {twice!r}: a package names its runs by their folders")
    first_run, first = configs[0]
    for run, config in configs[1:]:
        for key, what in (("classes", "classes"), ("fingerprint", "data (fingerprint)")):
            if config[key] != first[key]:
                raise DataError(f"{run.path}: trained on other {what} than {first_run.path} ({config[key]!r:.60} "
                                f"against {first[key]!r:.60}): a package holds runs of one competition")
    return models, first


def check_request(competition: str, owner: str, slug: str | None, accelerator: str, method: str,
                  tta: int | None, seed: int) -> tuple[str, str, str]:
    """(dataset slug, notebook slug, accelerator as Kaggle spells it) of a request Kaggle and kfold take."""
    from kfold.scoring.ensemble import check_seed

    pk.check_owner(owner), pk.check_slug(competition, "competition", (1, 100))
    slug = pk.check_slug(slug or default_slug(competition))
    accelerator = pk.check_accelerator(accelerator)
    if method not in METHODS:
        raise UsageError(f"{param('method')}={method!r}: one of {', '.join(METHODS)}")
    if tta is not None and (isinstance(tta, bool) or not isinstance(tta, int) or not 1 <= tta <= 9):
        raise UsageError(f"{param('tta')}={tta!r}: 1 to 9 views")
    check_seed(seed)
    return slug, slug[:42].rstrip("-") + "-predict", accelerator


def _load_options(options: dict | None, data: Path) -> dict:
    """The layout options, file options relative to the competition folder (the notebook resolves them there)."""
    from kfold.data.layouts import resolve_option

    options = {k: v for k, v in (options or {}).items() if v is not None}
    for name in _PATH_OPTIONS:
        if name in options:  # resolved as training resolves it: the current directory first, then the data folder
            path = resolve_option(data, options[name], name, "file" if name.endswith("_csv") else "folder")
            try:
                options[name] = path.resolve().relative_to(data.resolve()).as_posix()
            except ValueError:
                raise UsageError(f"{param(name)}={str(options[name])!r}: outside the competition folder {data}; on "
                                 f"Kaggle the notebook finds only the competition's own files") from None
    return options


def package(runs: Sequence[str | os.PathLike], competition: str, owner: str, out: str | os.PathLike, *,
            data: str | os.PathLike | None = None, load_options: dict | None = None, slug: str | None = None,
            method: str = "mean", tta: int | None = None, seed: int = 0, accelerator: str = "none",
            threads: int | None = None, rehearse: bool = True, time_limit: float = 9.0, echo=print) -> PackageResult:
    """Write a code-competition package (see :mod:`kfold.files.package`) and, unless ``rehearse`` is False,
    rehearse it offline (:func:`kfold.flows.rehearse.rehearse`). ``kfold.package`` documents the parameters."""
    from kfold.files.atomic import guard_outputs
    from kfold.flows.offline import competition_task
    from kfold.flows.sandbox import build_kfold_wheel
    from kfold.identity import code_identity, version
    from kfold.nn.predict import check_models

    slug, kernel_slug, accelerator = check_request(competition, owner, slug, accelerator, method, tta, seed)
    if not runs:
        raise UsageError(f"{param('runs')}: give at least one run directory")
    out, run_dirs = Path(out), [RunDir(run) for run in runs]
    check_out(out)
    models, config = check_runs(run_dirs)
    if data is None and not config.get("data"):
        raise UsageError(f"{param('data')}: {run_dirs[0].config} does not name the training data; give it")
    data = Path(data if data is not None else config["data"])
    if not data.is_dir():
        raise UsageError(f"{param('data')}={str(data)!r}: not a competition folder (a code competition's files "
                         f"as Kaggle ships them); give {param('data')}")
    guard_outputs([out], [*(p for run in run_dirs for p in run.inputs()), data], root=out.parent)
    options = _load_options(load_options, data)
    task = competition_task(data, {"load_options": options})
    if task.sample_submission is None or task.name == "mnist-mix":
        raise UsageError(f"{param('data')}={str(data)!r}: no sample submission; a code competition's notebook "
                         f"writes the sample's rows")
    if task.fingerprint() != config["fingerprint"]:
        raise DataError(f"{data}: not the data the runs were trained on (fingerprint {task.fingerprint()}, the runs "
                        f"{config['fingerprint']}): give the training's {param('data')} and layout options")
    metas = check_models(models, task, task.class_names)
    views = {meta["config"].get("tta", 1) for meta in metas}
    if tta is None and len(views) > 1:
        raise UsageError(f"the runs were trained with different TTA views {sorted(views)}: give {param('tta')}")
    recipe = {"method": method, "tta": tta or views.pop(), "seed": seed, "tiebreak": "random", "threads": threads,
              "batch_size": 2048, "device": "auto"}
    wheel = build_kfold_wheel(echo=echo)

    manifest = {"format": pk.FORMAT, "kfold_version": version(), "competition": competition, "owner": owner,
                "dataset": f"{owner}/{slug}", "kernel": f"{owner}/{kernel_slug}", "output_file": "submission.csv",
                "schema": task.schema.to_dict(), "classes": list(task.class_names), "recipe": recipe,
                "accelerator": accelerator, "load_options": options,
                "input": {"image_size": metas[0].get("image_size", 28), "channels": metas[0].get("channels", 1)},
                "sample": task.sample_submission.resolve().relative_to(data.resolve()).as_posix(),
                "data_fingerprint": task.fingerprint(), "identity": code_identity(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    manifest = _write(out, run_dirs, models, wheel, data, manifest, kernel_slug.replace("-", " "), echo)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    echo(f"wrote {out}: dataset {manifest['dataset']} ({size / 2**20:.1f} MiB, {len(manifest['files'])} files), "
         f"notebook {manifest['kernel']}, local submission {manifest['local_submission']['rows']} rows sha256 "
         f"{manifest['local_submission']['sha256'][:12]}")
    result = PackageResult(out, manifest, size)
    if rehearse:
        from kfold.flows.rehearse import rehearse as run_rehearsal

        result.rehearsal = run_rehearsal(out, data, time_limit=time_limit, echo=echo)
    return result


LOCAL_KEYS = ("data", "host")  # a run's local data path and machine name stay out of the uploaded copies


def _copy_json(source: Path, target: Path, drop: Sequence[str]) -> None:
    """``source``'s JSON object without the keys ``drop`` (kept in ``PKG/local``: never uploaded)."""
    import json

    data = json.loads(source.read_text(encoding="utf-8"))
    pk.write_json_file(target, {k: v for k, v in data.items() if k not in drop} if isinstance(data, dict) else data)


def _copy_weights(source: Path, target: Path, drop: Sequence[str]) -> None:
    """A safetensors file whose header's ``kfold`` metadata lacks the keys ``drop``; the tensors' bytes copied as
    they are (the header is JSON after its 8-byte length; tensor offsets count from the end of the header)."""
    import json
    import struct

    from kfold.files.atomic import atomic_path

    with open(source, "rb") as fh:
        try:
            size = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(size).decode("utf-8"))
            meta = json.loads(header["__metadata__"]["kfold"])
        except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise DataError(f"{source}: not a kfold safetensors file ({type(exc).__name__})") from None
        header["__metadata__"]["kfold"] = json.dumps({k: v for k, v in meta.items() if k not in drop})
        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
        text += b" " * (-len(text) % 8)  # the tensors stay 8-byte aligned, as safetensors writes them
        with atomic_path(target) as tmp, open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(text)) + text)
            shutil.copyfileobj(fh, out, 1 << 20)


def _write(out: Path, run_dirs: Sequence[RunDir], models, wheel: Path, data: Path, manifest: dict, title: str,
           echo) -> dict:
    """Stage the package in a hidden sibling of ``out`` (models, wheel, metadata, local submission, manifest,
    notebook), read it back whole, then rename it into place; on any error nothing appears. Returns the manifest."""
    from kfold.flows.offline import predict_offline

    staging = out.parent / f".{out.name}.kfold-package-{os.getpid()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    owner, slug = manifest["dataset"].split("/")
    try:
        dataset = staging / pk.DATASET
        manifest["models"] = []
        for run in run_dirs:
            packaged = RunDir(dataset / pk.MODELS / run.name)
            folds = [fold for name, fold, _ in models if name == run.name]
            for fold in folds:
                packaged.model_dir(fold).mkdir(parents=True)
                _copy_weights(run.weights(fold), packaged.weights(fold), LOCAL_KEYS)
                _copy_json(run.meta(fold), packaged.meta(fold), LOCAL_KEYS)
            _copy_json(run.config, packaged.config, LOCAL_KEYS)
            if run.summary.is_file():  # a tag target's out-of-fold thresholds live there
                shutil.copyfile(run.summary, packaged.summary)
            manifest["models"].append({"run": run.name, "dir": f"{pk.MODELS}/{run.name}", "folds": folds})
        (dataset / pk.WHEELS).mkdir()
        shutil.copyfile(wheel, dataset / pk.WHEELS / wheel.name)
        pk.write_json_file(dataset / pk.DATASET_METADATA, pk.dataset_metadata(owner, slug, slug))
        echo(f"local submission with the packaged recipe on {data}")
        local = predict_offline(dataset, data, staging / pk.LOCAL / pk.LOCAL_SUBMISSION, manifest=manifest, echo=echo)
        manifest["local_submission"] = {"sha256": local.sha256, "rows": local.rows}
        manifest = pk.write_manifest(dataset, manifest)
        pk.write_json_file(staging / pk.LOCAL / pk.LOCAL_INFO, {"data": str(data.resolve())})
        pk.write_kernel(staging / pk.KERNEL, manifest, title)
        pk.read_package(staging)  # the package reads back whole before it appears
        os.rename(staging, out)  # appears whole (an empty out folder is replaced)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
