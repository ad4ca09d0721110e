"""Error analysis of a multi-label run (``kfold errors``, the HTML report): per-tag precision, recall, F1 and
support instead of a confusion matrix, and the worst out-of-fold images with their missed and spurious tags.
Torch-free.

The run's out-of-fold probabilities are taken at the thresholds the run chose (``summary.json``), with the top-1
fallback, exactly as its submissions are written. An image's cost is its number of wrong tags (missed plus
spurious); the worst come first (ties: the larger probability error first).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.files.probs import ProbFile
from kfold.files.schema import ID_COLUMN

__all__ = ["MultilabelAnalysis", "analyze_multilabel", "write_multilabel_analysis"]


@dataclass
class MultilabelAnalysis:
    """What ``kfold errors`` reports of a multi-label run (the fields the single-label ``RunAnalysis`` shares)."""

    run_dir: Path
    class_names: list[str]
    ids: np.ndarray
    labels: np.ndarray            # (N, tags) 0/1
    probs: np.ndarray
    predicted: np.ndarray         # (N, tags) 0/1 at the run's thresholds
    metric: str
    score: float
    per_class: pd.DataFrame       # tag, precision, recall, f1, support, predicted (and name/accuracy for the figure)
    errors: pd.DataFrame          # Id, true_name, predicted_name, missed, spurious, wrong_tags, confidence, true_probability
    images: np.ndarray | None = None
    notes: list | None = None
    multilabel: bool = True

    @property
    def accuracy(self) -> float:
        """The share of right (image, tag) decisions."""
        return float((self.predicted == self.labels).mean())


def analyze_multilabel(run_dir: Path, oof: ProbFile, images_of, gallery_size: int) -> MultilabelAnalysis:
    """The analysis of ``oof`` (the run's out-of-fold file with (N, tags) labels); ``images_of`` gives the training
    images (or None and why) as ``kfold.scoring.errors_analysis.training_images`` does."""
    from kfold.files.multilabel import decode_tags
    from kfold.files.rundir import RunDir
    from kfold.metrics import score
    from kfold.scoring.multilabel import apply_thresholds, fast_score, per_tag_table, thresholds_of

    run = RunDir(run_dir)
    summary = run.read_summary() if run.summary.is_file() else {}
    metric = summary.get("metric", "f1-samples")
    thresholds = thresholds_of(summary.get("thresholds"), oof.num_classes)
    labels = np.asarray(oof.labels, dtype=np.int64)
    probs = np.asarray(oof.probs, dtype=np.float64)
    predicted = apply_thresholds(probs, thresholds)
    value = (score(metric, labels, probs) if metric == "mean-auc" else fast_score(metric, labels, predicted))
    per_tag = per_tag_table(labels, probs, oof.classes, thresholds)
    per_tag.insert(1, "threshold", thresholds)
    per_tag["name"], per_tag["accuracy"] = per_tag["tag"], per_tag["f1"]  # the per-class figure's columns
    missed, spurious = labels * (1 - predicted), predicted * (1 - labels)
    wrong = missed.sum(axis=1) + spurious.sum(axis=1)
    error = np.abs(probs - labels).sum(axis=1)
    rows = np.flatnonzero(wrong > 0)
    rows = rows[np.lexsort((-error[rows], -wrong[rows]))]
    tags = oof.classes
    errors = pd.DataFrame({
        ID_COLUMN: oof.ids[rows], "true_name": decode_tags(labels[rows], tags),
        "predicted_name": decode_tags(predicted[rows], tags), "missed": decode_tags(missed[rows], tags),
        "spurious": decode_tags(spurious[rows], tags), "wrong_tags": wrong[rows],
        "confidence": np.where(spurious[rows].any(axis=1), (probs[rows] * spurious[rows]).max(axis=1), 0.0),
        "true_probability": np.where(missed[rows].any(axis=1),
                                     np.where(missed[rows] == 1, probs[rows], 1.0).min(axis=1), 1.0),
    })
    analysis = MultilabelAnalysis(Path(run_dir), list(tags), oof.ids, labels, probs, predicted, metric, value, per_tag,
                                  errors, notes=[])
    images, why = images_of()
    if images is None:
        analysis.notes.append(f"no error gallery: {why}")
    elif len(errors):
        shown = errors[ID_COLUMN].to_numpy()[:gallery_size]
        if shown.max() < len(images):
            analysis.images = images[shown]
    return analysis


def write_multilabel_analysis(analysis: MultilabelAnalysis, out_dir: Path, files: dict[str, Path]) -> dict[str, Path]:
    """The per-tag table (CSV, Markdown, F1 bars), errors.csv and the gallery, under the analysis files' names."""
    from kfold.figures import plot_error_gallery, plot_per_class_accuracy
    from kfold.files.atomic import together, write_csv, write_text
    from kfold.scoring.report import markdown_table

    table = analysis.per_class.drop(columns=["name", "accuracy"])
    with together():
        write_csv(files["per_class_csv"], table)
        write_text(files["per_class_md"], markdown_table(table))
        plot_per_class_accuracy(analysis.per_class, files["per_class"],
                                title=f"{analysis.run_dir.name}: out-of-fold F1 per tag (at the run's thresholds)")
        write_csv(files["errors_csv"], analysis.errors)
        if analysis.images is not None:
            shown = analysis.errors.iloc[: len(analysis.images)]
            files["gallery"] = out_dir / "errors_gallery.png"
            plot_error_gallery(analysis.images, list(shown["true_name"]), list(shown["predicted_name"]),
                               shown["wrong_tags"].to_numpy(dtype=np.float64), files["gallery"],
                               ids=shown[ID_COLUMN].to_numpy(),
                               title=f"{analysis.run_dir.name}: the {len(shown)} out-of-fold images with the most wrong "
                                     f"tags (of {len(analysis.errors)}): Id, true → predicted tags, wrong tags")
    return {role: path for role, path in files.items() if role in ("per_class_csv", "per_class_md", "per_class",
                                                                    "errors_csv", "gallery")}
