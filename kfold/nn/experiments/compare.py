"""Experiment 1: feed-forward nets against ResNets on all language x digit classes.

Writes ``results.csv`` (per model: parameters, train time, overall, per-language, digit-only and
language-only accuracy), ``history.csv`` (test accuracy per epoch), ``accuracy.png`` (models x
languages), ``history.png`` and ``summary.md``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kfold.files.atomic import write_csv
from kfold.nn.models import count_parameters
from kfold.scoring.report import markdown_table

from kfold.nn.experiments.common import Experiment, accuracy_by_language, map_models, model_config, new_trainer, predict_test, train_epochs, write_summary
from kfold.nn.experiments.figures import accuracy_curves, accuracy_heatmap

DEFAULT_MODELS = ["ff-2x100", "ff-2x250", "ff-2x500", "resnet8", "resnet14", "resnet20", "resnet26", "resnet32"]
LABEL_MODE = "specific"
QUICK_MODELS = ["ff-2x100", "ff-2x250", "resnet8"]  # --quick: small models only (about a minute on a 2-core CPU)


def compare_model(exp: Experiment, model: str) -> tuple[dict, list[dict]]:
    """Train one model on all classes: its results row and one history row per epoch."""
    task = exp.task
    cfg = model_config(model, exp.epochs)
    trainer = new_trainer(exp, cfg, exp.train_rows(), desc=model)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        train = train_epochs(trainer, 1)
        predicted = predict_test(exp, trainer)
        history.append({"model": model, "epoch": epoch, **train, **accuracy_by_language(task, predicted)})
    result = {
        "model": model, "parameters": count_parameters(trainer.model), "epochs": cfg.epochs,
        "train_seconds": trainer.state["seconds"], **accuracy_by_language(task, predicted),
        "digit_accuracy": float(np.mean(predicted % 10 == task.test_labels % 10)),
        "language_accuracy": float(np.mean(predicted // 10 == task.test_labels // 10)),
    }
    return result, history


def run_compare(exp: Experiment, models: list[str]) -> dict[str, pd.DataFrame]:
    """Train every model on all classes; return the results table (one row per model) by title."""
    task = exp.task
    results, history = [], []
    for result, rows in map_models(exp, compare_model, models):
        results.append(result)
        history += rows
        tqdm.write(f"{result['model']}: test accuracy {result['overall']:.4f} after {result['epochs']} epochs")
    table = pd.DataFrame(results)
    history = pd.DataFrame(history)
    write_csv(exp.out / "results.csv", table)
    write_csv(exp.out / "history.csv", history)
    languages = ["overall", *exp.languages]
    accuracy_heatmap(table.set_index("model")[languages], exp.out / "accuracy.png", f"{task.num_classes}-class test accuracy",
                     "test language", "model")
    curves = history.pivot(index="epoch", columns="model", values="overall").reset_index()
    accuracy_curves({"overall": curves}, "epoch", models, exp.out / "history.png", "test accuracy per epoch", "epoch")
    best = table.loc[table["overall"].idxmax()]
    write_summary(exp, "MNIST-MIX experiment 1: model comparison", [
        f"{task.num_classes} classes (language x digit), {', '.join(exp.languages)}. Feed-forward models use the "
        f"`ff-2x250` preset's training setup, the others the `resnet26` preset's; no augmentation.", "",
        "## Test accuracy (overall and per language)", "",
        markdown_table(table), "",
        "`digit_accuracy`: the predicted digit is right whatever the language; `language_accuracy`: the predicted "
        "language is right whatever the digit.", "",
        f"Best: **{best['model']}** with {best['overall']:.4f} overall.", "",
        "Figures: `accuracy.png` (models x languages), `history.png` (test accuracy per epoch); tables: "
        "`results.csv`, `history.csv`.",
    ])
    return {f"{task.num_classes}-class test accuracy": table}
