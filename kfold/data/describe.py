"""What ``kfold inspect`` prints of a loaded task: layout, rows, image size and channels, classes with their
counts, the Id and target columns (and why that target), the metric. Torch-free."""
from __future__ import annotations

import numpy as np

from kfold.data.task import Task

__all__ = ["LAYOUT_NAMES", "NO_TEST_ROWS", "describe"]

LAYOUT_NAMES = ("arrays", "pixel-csv", "image-files", "class-folders")
NO_TEST_ROWS = ("no test set (training data alone: kfold run trains the folds and reports the out-of-fold score; "
                "no submission)")


def _why_single(task: Task) -> str:
    if task.extra.get("label_column", "").count(",") or task.schema.target != "probs":
        return "every training row holds exactly one 1 (one-hot): one class per image, rows summing to 1"
    return "the training labels hold one class per image"


def describe(task: Task) -> list[str]:
    """What ``kfold inspect`` prints of a loaded task: layout, rows, image size and channels, classes with
    their counts, the Id and target columns, the metric."""
    schema = task.schema
    shape = task.train_images.shape
    channels = 3 if task.train_images.ndim == 4 else 1
    labels = np.asarray(task.train_labels, dtype=np.int64)
    counts = labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=task.num_classes)
    shown = ", ".join(f"{name}: {count}" for name, count in zip(task.class_names[:20], counts[:20]))
    more = f", ... ({task.num_classes - 20} more)" if task.num_classes > 20 else ""
    ids = task.test_ids
    first_ids = ", ".join(str(v) for v in ids[:3]) + (", ..." if len(ids) > 3 else "")
    target = {"label": "one label column", "probs": "one probability column per class",
              "binary": "one probability column (binary)", "tags": "space-separated tags in one cell, several per image",
              "multilabel-probs": "one independent probability column per label, rows need not sum to 1"}[schema.target]
    layout = task.extra.get("layout", "arrays")
    lines = [
        f"layout: {layout if layout in LAYOUT_NAMES else f'arrays ({layout})'}",
        f"source: {task.source}",
        f"rows: {len(task.train_labels)} training, " + (f"{len(ids)} test" if task.has_test else NO_TEST_ROWS),
        f"images: {shape[2]}x{shape[1]}, {channels} channel{'s' if channels > 1 else ''} "
        f"({'grayscale' if channels == 1 else 'RGB'}), uint8",
        f"classes ({task.num_classes}, {schema.class_kind} values): {shown}{more}",
        f"Id column: {schema.id_column} ({schema.id_kind} Ids{f': {first_ids}' if task.has_test else ''})",
        f"target: {', '.join(schema.target_columns[:6])}{', ...' if len(schema.target_columns) > 6 else ''} ({target})",
        f"metric: {schema.metric}",
    ]
    if schema.multilabel or schema.target == "probs":
        lines.insert(-1, f"why: {schema.extra.get('detected') or _why_single(task)}")
    if layout in ("pixel-csv", "image-files"):
        column = task.extra["label_column"]
        lines.insert(5, f"training labels: column '{column}'" if not schema.target.endswith("probs") or "," not in column
                     else f"training labels: 0/1 columns {column.replace(',', ', ')}")
    elif layout == "class-folders":
        lines.insert(5, "training labels: the class folder names")
    if "schema_from" in task.extra:  # training data alone: where the Id and target columns came from
        lines.append(f"columns from: {task.extra['schema_from']}")
    if task.sample_submission is not None:
        lines.append(f"sample submission: {task.sample_submission}")
    lines.append(f"solution: {task.solution if task.solution is not None else 'none (no local leaderboard)'}")
    return lines
