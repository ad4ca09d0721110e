"""Experiment 3: cross-language transfer. Train on one language alone (digit labels), test on every language.

Per model an L x L accuracy matrix, rows = test language, columns = train language (as the
report's Tables 1 and 2): ``transfer_<model>.csv`` and ``transfer_<model>.png``; ``transfer.csv``
summarises the diagonal (within-language) against the off-diagonal (cross-language) accuracy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kfold.files.atomic import write_csv
from kfold.scoring.report import markdown_table

from kfold.nn.experiments.common import Experiment, accuracy_by_language, map_models, model_config, new_trainer, predict_test, train_epochs, write_summary
from kfold.nn.experiments.figures import accuracy_heatmap

DEFAULT_MODELS = ["ff-2x250", "resnet26"]
LABEL_MODE = "agnostic"
QUICK_MODELS = ["ff-2x250", "resnet8"]  # --quick: small models only


def transfer_matrix(exp: Experiment, model: str) -> pd.DataFrame:
    """Accuracy of ``model`` trained on each language alone (columns) on each test language (rows)."""
    cfg = model_config(model, exp.epochs)
    columns = {}
    for language in tqdm(exp.languages, desc=f"transfer {model}", disable=not exp.progress):
        trainer = new_trainer(exp, cfg, exp.train_rows(language), desc=f"{model} on {language}")
        train_epochs(trainer, cfg.epochs)
        scores = accuracy_by_language(exp.task, predict_test(exp, trainer))
        columns[language] = [scores[name] for name in exp.languages]
        tqdm.write(f"{model} trained on {language}: {scores[language]:.4f} on {language}, {scores['overall']:.4f} overall")
    matrix = pd.DataFrame(columns, index=exp.languages)
    matrix.index.name, matrix.columns.name = "test language", "train language"
    return matrix


def transfer_stats(model: str, epochs: int, matrix: pd.DataFrame) -> dict:
    """Mean of the diagonal (trained and tested on the same language) against the off-diagonal cells."""
    values = matrix.to_numpy()
    off_diagonal = values[~np.eye(len(values), dtype=bool)]
    return {"model": model, "epochs": epochs, "within_language": float(np.diag(values).mean()),
            "cross_language": float(off_diagonal.mean()), "worst_cross": float(off_diagonal.min()),
            "best_cross": float(off_diagonal.max())}


def run_transfer(exp: Experiment, models: list[str]) -> dict[str, pd.DataFrame]:
    """Write one matrix per model and the summary; return the tables by title."""
    matrices = dict(zip(models, map_models(exp, transfer_matrix, models)))
    stats = pd.DataFrame([transfer_stats(model, model_config(model, exp.epochs).epochs, matrix)
                          for model, matrix in matrices.items()])
    write_csv(exp.out / "transfer.csv", stats)
    sections = [
        "Language-agnostic digit labels (10 classes). Each model is trained from scratch on one language's training "
        "rows (for `epochs` epochs) and tested on every language. Rows = test language, columns = train language. "
        "Chance is 0.1.", "",
        "## Within- and cross-language accuracy", "", markdown_table(stats), "",
    ]
    for model, matrix in matrices.items():
        write_csv(exp.out / f"transfer_{model}.csv", matrix, index=True)
        accuracy_heatmap(matrix, exp.out / f"transfer_{model}.png", f"{model}: trained on one language",
                         "train language", "test language")
        sections += [f"## {model} (`transfer_{model}.csv`, `transfer_{model}.png`)", "",
                     markdown_table(matrix.rename_axis("test / train").reset_index()), ""]
    write_summary(exp, "MNIST-MIX experiment 3: cross-language transfer", sections)
    tables = {"within- and cross-language accuracy": stats}
    tables.update({f"{model}: rows = test language, columns = train language": matrix.rename_axis("test / train").reset_index()
                   for model, matrix in matrices.items()})
    return tables
