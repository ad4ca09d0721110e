"""Error analysis of a trained run from its out-of-fold predictions: what a competitor looks at first when a
model plateaus.

``analyze_run(RUN_DIR)`` reads ``RUN_DIR/oof.npz`` (or the folds' ``fold{i}/oof.npz`` of an unfinished run) and
returns the run-level out-of-fold confusion matrix, the accuracy of each class and the most confident mistakes;
``write_analysis`` writes them (``confusion_oof.csv``/``.png``, ``per_class_accuracy.csv``/``.md``/``.png``,
``errors.csv``, ``errors_gallery.png``) into ``RUN_DIR/analysis`` (or another folder). The gallery needs the
training images: they are loaded from the run's ``config.json`` ``data`` (or ``data=``) and used only when the
data's fingerprint is the run's. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.files.rundir import RunDir
from kfold.errors import DataError, KfoldError
from kfold.files.atomic import together, write_csv, write_text
from kfold.files.probs import ProbFile, read_probs
from kfold.files.schema import ID_COLUMN
from kfold.scoring.report import markdown_table

__all__ = ["analyze_run", "GALLERY_SIZE", "per_class_markdown", "read_oof", "RunAnalysis", "training_images",
           "write_analysis"]

GALLERY_SIZE = 32


@dataclass
class RunAnalysis:
    run_dir: Path
    class_names: list[str]
    ids: np.ndarray             # training rows (Ids of folds.csv), sorted
    labels: np.ndarray
    probs: np.ndarray
    confusion: np.ndarray       # rows: true class, columns: predicted class
    per_class: pd.DataFrame     # class, name, rows, correct, accuracy, most_confused_with
    errors: pd.DataFrame        # Id, true, predicted, confidence, true_probability; most confident first
    images: np.ndarray | None = None  # training images of ``errors`` rows (gallery), None when unavailable
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))


def read_oof(run_dir: Path) -> ProbFile:
    """The run's out-of-fold probabilities: run-level ``oof.npz``, else every finished fold's concatenated."""
    run = RunDir(run_dir)
    config = run.read_config() if run.is_run() else {}
    if run.oof.is_file():
        oof = read_probs(run.oof)
        _check_kind(run.oof, oof)
        if config:
            run.check_oof(oof)  # copied from another run: refused
        return oof
    k = config.get("k", 0)
    parts = []
    for fold in range(k):
        if run.fold_oof(fold).is_file():
            part = read_probs(run.fold_oof(fold))
            run.check_belongs(run.fold_oof(fold), part.meta, fold, config)
            _check_kind(run.fold_oof(fold), part)
            parts.append(part)
    if not parts:
        raise DataError(f"{run_dir}: no out-of-fold predictions (the run's or any fold's); is it a trained run directory?")
    ids = np.concatenate([part.ids for part in parts])
    order = np.argsort(ids, kind="stable")
    labels = np.concatenate([part.labels for part in parts])[order]
    return ProbFile(ids[order], np.concatenate([part.probs for part in parts])[order], parts[0].classes,
                    {**parts[0].meta, "fold": "some"}, labels=labels)


def _check_kind(path: Path, oof: ProbFile) -> None:
    if oof.meta.get("kind") not in (None, "oof"):
        raise DataError(f"{path}: a {oof.meta.get('kind')!r} probability file, not out-of-fold predictions")
    if oof.labels is None:
        raise DataError(f"{path}: out-of-fold file without labels")


def _run_config(run_dir: Path) -> dict:
    run = RunDir(run_dir)
    return run.read_config() if run.config.is_file() else {}


def training_images(run_dir: Path, data: str | None = None) -> tuple[np.ndarray | None, str]:
    """The run's training images when its data can be loaded and matches the run's fingerprint; else why not."""
    config = _run_config(run_dir)
    spec = data or config.get("data")
    if not spec:
        return None, "no data path in the run config"
    from kfold.data import load_task

    classes = config.get("classes") or []
    attempts = [{}]
    if config.get("task") == "mnist-mix":  # the run may have used a language subset or agnostic labels
        languages = list(dict.fromkeys(name.rsplit("-", 1)[0] for name in classes if "-" in name))
        attempts = [{"languages": languages or None}, {"label_mode": "agnostic"}]
    for kwargs in attempts:
        try:
            task = load_task(spec, progress=False, **kwargs)
        except KfoldError as exc:
            return None, f"data {spec} not loadable ({exc})"
        if not config.get("fingerprint") or task.fingerprint() == config["fingerprint"]:
            return task.train_images, ""
    return None, f"data {spec} is not the data this run was trained on (fingerprint differs)"


def analyze_run(run_dir: str | Path, data: str | None = None, gallery_size: int = GALLERY_SIZE) -> RunAnalysis:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory")
    oof = read_oof(run_dir)
    if oof.labels is None:
        raise DataError(f"{oof.path or run_dir}: out-of-fold file without labels")
    if oof.labels.ndim == 2:  # several tags per image: per-tag precision/recall/F1, missed and spurious tags
        from kfold.scoring.multilabel_errors import analyze_multilabel

        return analyze_multilabel(run_dir, oof, lambda: training_images(run_dir, data), gallery_size)
    n = oof.num_classes
    predicted = oof.predictions()
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (oof.labels, predicted), 1)
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    rows = confusion.sum(axis=1)
    per_class = pd.DataFrame({
        "class": np.arange(n), "name": oof.classes, "rows": rows, "correct": np.diag(confusion),
        "accuracy": np.diag(confusion) / np.clip(rows, 1, None),
        "most_confused_with": [oof.classes[int(off[i].argmax())] if off[i].any() else "" for i in range(n)],
        "confused_rows": off.max(axis=1),
    })
    wrong = np.flatnonzero(predicted != oof.labels)
    confidence = oof.probs[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")]
    errors = pd.DataFrame({
        ID_COLUMN: oof.ids[order], "true": oof.labels[order], "predicted": predicted[order],
        "true_name": np.asarray(oof.classes, dtype=object)[oof.labels[order]],
        "predicted_name": np.asarray(oof.classes, dtype=object)[predicted[order]],
        "confidence": oof.probs[order, predicted[order]], "true_probability": oof.probs[order, oof.labels[order]],
    })
    analysis = RunAnalysis(run_dir, list(oof.classes), oof.ids, oof.labels, oof.probs, confusion, per_class, errors)
    images, why = training_images(run_dir, data)
    if images is None:
        analysis.notes.append(f"no error gallery: {why}")
    elif len(errors):
        shown = errors[ID_COLUMN].to_numpy()[:gallery_size]
        if shown.max() >= len(images):
            analysis.notes.append("no error gallery: out-of-fold Ids outside the training images")
        else:
            analysis.images = images[shown]
    if oof.meta.get("fold") == "some":
        analysis.notes.append("not every fold is finished: the analysis covers the finished folds' rows only")
    return analysis


ANALYSIS_FILES = {"confusion_csv": "confusion_oof.csv", "confusion": "confusion_oof.png",
                  "per_class_csv": "per_class_accuracy.csv", "per_class_md": "per_class_accuracy.md",
                  "per_class": "per_class_accuracy.png", "errors_csv": "errors.csv", "gallery": "errors_gallery.png"}


def analysis_dir(run_dir: Path, out_dir: str | Path | None) -> Path:
    return Path(out_dir) if out_dir is not None else Path(run_dir) / "analysis"


def guard_analysis(run_dir: str | Path, out_dir: str | Path | None = None, inputs=None, data: str | None = None) -> None:
    """The output guard of the analysis files: none is an input of the run (or the data), and no folder on the way
    is a planted symbolic link (below the run directory for the default RUN_DIR/analysis, else from --out on)."""
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs

    run_dir = Path(run_dir)
    folder = analysis_dir(run_dir, out_dir)
    if inputs is None:
        inputs = [*RunDir(run_dir).inputs(), *data_inputs(data)]
    guard_outputs([folder, *(folder / name for name in ANALYSIS_FILES.values())], inputs,
                  root=run_dir if out_dir is None else folder.parent)


def per_class_markdown(analysis: RunAnalysis) -> str:
    shown = analysis.per_class.rename(columns={"confused_rows": "rows confused"})
    if getattr(analysis, "multilabel", False):
        shown = shown.drop(columns=["name", "accuracy"])
    return markdown_table(shown)


def write_analysis(analysis: RunAnalysis, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the analysis files; return them by role (confusion, per_class, gallery, ...)."""
    from kfold.figures import plot_confusion, plot_error_gallery, plot_per_class_accuracy

    out_dir = analysis_dir(analysis.run_dir, out_dir)
    names = analysis.class_names
    files = {role: out_dir / name for role, name in ANALYSIS_FILES.items() if role != "gallery"}
    if getattr(analysis, "multilabel", False):
        from kfold.scoring.multilabel_errors import write_multilabel_analysis

        return write_multilabel_analysis(analysis, out_dir, files)
    with together():  # the analysis files appear together, or none does
        index = pd.Index([f"{i} {name}" if name != str(i) else name for i, name in enumerate(names)], name="true")
        write_csv(files["confusion_csv"], pd.DataFrame(analysis.confusion, index=index, columns=index.rename(None)), index=True)
        plot_confusion(analysis.confusion, names, files["confusion"],
                       title=f"{analysis.run_dir.name}: out-of-fold confusion ({len(analysis.labels)} rows, "
                             f"accuracy {analysis.accuracy:.4f})")
        write_csv(files["per_class_csv"], analysis.per_class)
        write_text(files["per_class_md"], per_class_markdown(analysis))
        plot_per_class_accuracy(analysis.per_class, files["per_class"], title=f"{analysis.run_dir.name}: out-of-fold accuracy per class")
        write_csv(files["errors_csv"], analysis.errors)
        if analysis.images is not None:
            shown = analysis.errors.iloc[: len(analysis.images)]
            files["gallery"] = out_dir / ANALYSIS_FILES["gallery"]
            plot_error_gallery(analysis.images, list(shown["true_name"]), list(shown["predicted_name"]),
                               shown["confidence"].to_numpy(), files["gallery"], ids=shown[ID_COLUMN].to_numpy(),
                               title=f"{analysis.run_dir.name}: the {len(shown)} most confident out-of-fold mistakes "
                                     f"(of {len(analysis.errors)}): Id, true → predicted, confidence")
    return files
