"""Experiments 2 and 4: language schedules against mixed training, with language-agnostic digit labels.

A schedule is a list of stages, each some epochs on some rows; one model is trained through all of
them and tested on every language after each stage. The baseline, ``mixed``, trains on all
languages shuffled together for the same number of images (one stage per epoch).

- round-robin (2): one epoch of each language in turn, repeated for R rounds (mixed: R epochs).
- sequential (4): each language once, in order, for E epochs, never seen again (mixed: E epochs);
  the accuracy on every language after each stage is the forgetting curve.

Outputs: ``stages.csv`` (one row per stage and schedule), ``final.csv``, ``curves_<model>.png``,
for sequential also ``forgetting.csv`` and ``forgetting_<model>.png`` (stage x language heatmap),
and ``summary.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kfold.files.atomic import write_csv
from kfold.scoring.report import markdown_table

from kfold.nn.experiments.common import Experiment, accuracy_by_language, map_models, model_config, new_trainer, predict_test, train_epochs, write_summary
from kfold.nn.experiments.figures import accuracy_curves, accuracy_heatmap

DEFAULT_MODELS = ["ff-2x250", "resnet26"]
LABEL_MODE = "agnostic"
QUICK_MODELS = ["ff-2x250", "resnet8"]  # --quick: small models only
MIXED = "mixed"


@dataclass
class Stage:
    label: str
    language: str  # the language trained on, or "all"
    rows: np.ndarray
    epochs: int


def mixed_stages(exp: Experiment, epochs: int) -> list[Stage]:
    return [Stage(f"epoch {epoch}", "all", exp.train_rows(), 1) for epoch in range(1, epochs + 1)]


def roundrobin_stages(exp: Experiment, rounds: int) -> list[Stage]:
    return [Stage(f"round {r}: {language}", language, exp.train_rows(language), 1)
            for r in range(1, rounds + 1) for language in exp.languages]


def sequential_stages(exp: Experiment, epochs: int) -> list[Stage]:
    return [Stage(language, language, exp.train_rows(language), epochs) for language in exp.languages]


def train_schedule(exp: Experiment, model: str, schedule: str, stages: list[Stage]) -> pd.DataFrame:
    """Train one model through ``stages``; one row per stage with the test accuracy per language.

    ``data_epochs`` counts the training images seen so far in units of the whole training set.
    Normalisation statistics come from all rows the schedule will ever train on.
    """
    cfg = model_config(model, sum(stage.epochs for stage in stages))
    trainer = new_trainer(exp, cfg, np.unique(np.concatenate([stage.rows for stage in stages])), desc=f"{model} {schedule}")
    seen, records = 0, []
    for index, stage in enumerate(tqdm(stages, desc=f"{model} {schedule}", leave=False, disable=not exp.progress), 1):
        trainer.set_train_rows(stage.rows)
        train = train_epochs(trainer, stage.epochs)
        seen += stage.epochs * len(stage.rows)
        records.append({"model": model, "schedule": schedule, "stage": index, "label": stage.label,
                        "trained_on": stage.language, "data_epochs": seen / len(exp.task.train_labels), **train,
                        **accuracy_by_language(exp.task, predict_test(exp, trainer))})
    return pd.DataFrame(records)


def schedule_pair(exp: Experiment, model: str, schedule: str, make_stages, length) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One model through ``schedule`` and through mixed training of the same length."""
    n = length(model)
    return (train_schedule(exp, model, schedule, make_stages(exp, n)),
            train_schedule(exp, model, MIXED, mixed_stages(exp, n)))


def against_mixed(exp: Experiment, models: list[str], schedule: str, make_stages: Callable[[Experiment, int], list[Stage]],
                  length: Callable[[str], int]) -> pd.DataFrame:
    """Every model through ``schedule`` and through mixed training of the same length; all stage rows.

    ``length(model)`` is the schedule's R or E, which is also the number of mixed epochs.
    """
    parts = []
    for model, (scheduled, mixed) in zip(models, map_models(exp, schedule_pair, models, schedule, make_stages, length)):
        accuracy_curves({schedule: scheduled, MIXED: mixed}, "data_epochs", ["overall", *exp.languages], exp.out / f"curves_{model}.png",
                        f"{model}: {schedule} against mixed training", "training set passes (images seen / training rows)")
        tqdm.write(f"{model}: {schedule} {scheduled['overall'].iat[-1]:.4f}, mixed {mixed['overall'].iat[-1]:.4f} overall")
        parts += [scheduled, mixed]
    return pd.concat(parts, ignore_index=True)


def final_accuracy(stages: pd.DataFrame, languages: list[str]) -> pd.DataFrame:
    """The last stage of every (model, schedule): accuracy at the end of training."""
    last = stages.groupby(["model", "schedule"], sort=False).tail(1)
    return last[["model", "schedule", "data_epochs", "overall", *languages]].reset_index(drop=True)


def _accuracy_columns(frame: pd.DataFrame, languages: list[str], *keys: str) -> pd.DataFrame:
    return frame[[*keys, "overall", *languages]]


def run_roundrobin(exp: Experiment, models: list[str], rounds: int | None = None) -> dict[str, pd.DataFrame]:
    """Experiment 2: R rounds of one epoch per language against R mixed epochs (default R: preset epochs)."""
    languages = exp.languages
    stages = against_mixed(exp, models, "roundrobin", roundrobin_stages, lambda model: rounds or model_config(model).epochs)
    robin = stages["schedule"] == "roundrobin"
    stages["round"] = np.where(robin, (stages["stage"] - 1) // len(languages) + 1, stages["stage"])
    final = final_accuracy(stages, languages)
    write_csv(exp.out / "stages.csv", stages)
    write_csv(exp.out / "final.csv", final)
    # After r rounds of round-robin and after r mixed epochs both schedules have seen the same images.
    ends = stages[~robin | (stages["stage"] % len(languages) == 0)].sort_values(["model", "round", "schedule"], kind="stable")
    sections = [
        f"Language-agnostic digit labels (10 classes), languages {', '.join(languages)}. Round-robin: one epoch of "
        "each language in turn, repeated for R rounds, one model throughout; mixed: R epochs on all languages shuffled "
        "together (the same images). Accuracy is tested on every language after each stage (`stages.csv`, "
        "`curves_<model>.png`).", "",
        "## At the end", "", markdown_table(final), "",
        "## After each round (round-robin) and each epoch (mixed)", "",
        markdown_table(_accuracy_columns(ends, languages, "model", "round", "schedule")), "",
    ]
    write_summary(exp, "MNIST-MIX experiment 2: round-robin language epochs", sections)
    return {"final test accuracy": final}


def forgetting_table(stages: pd.DataFrame, languages: list[str]) -> pd.DataFrame:
    """Per model and language: accuracy right after its own stage, at the end, the drop, and mixed at the end."""
    rows = []
    for model, part in stages.groupby("model", sort=False):
        sequential, mixed = part[part["schedule"] == "sequential"], part[part["schedule"] == MIXED]
        for language in languages:
            learned = float(sequential.loc[sequential["trained_on"] == language, language].iat[0])
            final = float(sequential[language].iat[-1])
            rows.append({"model": model, "language": language, "after_own_stage": learned, "final": final,
                         "forgetting": learned - final, "mixed_final": float(mixed[language].iat[-1])})
    return pd.DataFrame(rows)


def run_sequential(exp: Experiment, models: list[str]) -> dict[str, pd.DataFrame]:
    """Experiment 4: each language once, in order, E epochs each, against E mixed epochs (default E: preset epochs)."""
    languages = exp.languages
    stages = against_mixed(exp, models, "sequential", sequential_stages, lambda model: model_config(model, exp.epochs).epochs)
    final = final_accuracy(stages, languages)
    forgetting = forgetting_table(stages, languages)
    write_csv(exp.out / "stages.csv", stages)
    write_csv(exp.out / "final.csv", final)
    write_csv(exp.out / "forgetting.csv", forgetting)
    sections = [
        f"Language-agnostic digit labels (10 classes). Sequential: one model trained on each language once, in the "
        f"order {', '.join(languages)}, never seen again; mixed: the same number of epochs on all languages shuffled "
        "together (the same images).", "",
        "## At the end", "", markdown_table(final), "",
        "## Forgetting: accuracy on each language right after its stage and at the end", "", markdown_table(forgetting), "",
    ]
    for model in dict.fromkeys(stages["model"]):
        curve = stages[(stages["model"] == model) & (stages["schedule"] == "sequential")]
        heat = curve.set_index("label")[languages]
        heat.index = [f"after {label}" for label in heat.index]
        accuracy_heatmap(heat, exp.out / f"forgetting_{model}.png", f"{model}: sequential training", "test language", "stage")
        sections += [f"## {model}: forgetting curve (`forgetting_{model}.png`, `curves_{model}.png`)", "",
                     markdown_table(_accuracy_columns(curve, languages, "stage", "trained_on", "data_epochs")), ""]
    write_summary(exp, "MNIST-MIX experiment 4: sequential training", sections)
    return {"final test accuracy": final, "forgetting": forgetting}
