"""``kfold tune`` checks what ``kfold run`` checks (issue 31, item 4).

* One metric/target check (``kfold.metrics.check_metric``) for ``run``, ``inspect`` and ``tune``: a metric that
  cannot score the competition is refused by each of them, with the same words, before anything is written.
* ``trials.csv`` and ``best.json`` are read strictly by ``kfold report`` and by a resumed search: a score out of
  its metric's range, a repeated trial number, an unknown state, a ``best.json`` that is not the best complete
  trial's config -> one line naming the file, row and column; nothing written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("optuna")

from synthetic import balanced_labels, pattern_images, write_kmnist_comp  # noqa: E402
from test_hostile import tree  # noqa: E402

from kfold.commands.main import main as kfold_main  # noqa: E402
from kfold.data.make_competition import MakeOptions, make_competition  # noqa: E402
from kfold.data.task import Task  # noqa: E402
from kfold.errors import DataError  # noqa: E402
from kfold.files.tune_results import read_results  # noqa: E402


def _task(n_classes: int) -> Task:
    rng = np.random.default_rng(3)
    train, test = balanced_labels(24, n_classes, rng), balanced_labels(8, n_classes, rng)
    return Task(name="t", train_images=pattern_images(train, rng, 16), train_labels=train.astype(np.int64),
                test_images=pattern_images(test, rng, 16), test_ids=np.arange(8),
                class_names=["Oak", "Elm", "Ash", "Yew"][:n_classes], test_labels=test.astype(np.int64), source="test")


@pytest.fixture(scope="module")
def comps(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("metric")
    out = {"ints": write_kmnist_comp(root / "ints", n_train=40, n_test=10)}
    for name, n, options in (("names", 4, MakeOptions(layout="pixel-csv", class_values="names")),
                             ("probs", 4, MakeOptions(layout="pixel-csv", class_values="names", target="probs")),
                             ("binary", 2, MakeOptions(layout="pixel-csv", target="probs"))):
        make_competition(_task(n), root / name, seed=0, options=options)
        out[name] = root / name
    return out


METRIC_CASES = [  # (competition, metric, words of the refusal)
    ("names", "qwk", "needs integer (ordinal) classes"),
    ("ints", "logloss", "scores probabilities, but the submission holds one class label"),
    ("ints", "auc", "scores probabilities, but the submission holds one class label"),
    ("names", "logloss", "scores probabilities"),
    ("probs", "qwk", "needs integer (ordinal) classes"),
    ("names", "auc", "scores probabilities"),
]


@pytest.mark.parametrize("comp, metric, words", METRIC_CASES)
@pytest.mark.parametrize("command", ["inspect", "run", "tune"])
def test_one_metric_check_for_run_inspect_and_tune(comp, metric, words, command, comps, tmp_path, capsys):
    data, out = comps[comp], tmp_path / "out"
    argv = {"inspect": ["inspect", str(data)],
            "run": ["run", "--data", str(data), "--out", str(out), "--metric", "X"],
            "tune": ["tune", "--data", str(data), "--out", str(out), "--trials", "1", "--preset", "lenet5"]}[command]
    argv = [a if a != "X" else metric for a in argv] + (["--metric", metric] if command != "run" else [])
    before = tree(data)
    assert kfold_main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"metric '{metric}'" in err and words in err, err
    assert not out.exists() and tree(data) == before


@pytest.mark.parametrize("comp, metric", [("ints", "qwk"), ("ints", "macro-f1"), ("probs", "logloss"),
                                          ("probs", "accuracy"), ("binary", "auc"), ("names", "macro-f1")])
def test_a_metric_that_fits_is_accepted_by_every_command(comp, metric, comps, capsys):
    from kfold.data import load_task
    from kfold.flows.tune import objective_metric

    assert kfold_main(["inspect", str(comps[comp]), "--metric", metric, "--no-progress"]) == 0
    assert f"metric: {metric}" in capsys.readouterr().out
    assert objective_metric(load_task(comps[comp], progress=False), metric) == metric


# -- trials.csv and best.json ------------------------------------------------------------------------------
ROWS = [  # a search's results as kfold writes them: number, state, metric, folds_done, seconds, lr, aug, ...
    [0, "complete", 0.62, 2, 3.1, 0.01, "light", "", "", "t/0000"],
    [1, "pruned", "", 1, 1.5, 0.2, "none", 0.4, "", "t/0001"],
    [2, "complete", 0.71, 2, 3.0, 0.03, "none", "", "", "t/0002"],
    [3, "failed", "", 0, 0.2, 0.5, "light", "", "keep: last with early_stopping", ""],
]
COLUMNS = ["number", "state", "METRIC", "folds_done", "seconds", "lr", "aug", "partial_metric", "reason", "dir"]


def write_search(folder: Path, metric: str = "accuracy", rows=None, best: object = "best") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [list(r) for r in (rows or ROWS)]
    if metric == "logloss":  # lower is better: trial 0 is the best
        rows[0][2], rows[2][2] = {0.62: 0.9}.get(rows[0][2], rows[0][2]), {0.71: 1.3}.get(rows[2][2], rows[2][2])
    frame = pd.DataFrame(rows, columns=[metric if c == "METRIC" else c for c in COLUMNS])
    frame.to_csv(folder / "trials.csv", index=False)
    if best == "best":
        winner = rows[0] if metric == "logloss" else rows[2]
        best = {"model": "lenet5", "epochs": 1, "lr": winner[5], "aug": winner[6]}
    if best is not None:
        (folder / "best.json").write_text(best if isinstance(best, str) else json.dumps(best))
    return folder


def cell(row: int, column: int, value):
    def edit(rows):
        rows = [list(r) for r in ROWS]
        rows[row][column] = value
        return rows
    return edit


DAMAGE = [  # (what, metric, rows edit, best.json, fragments of the one line)
    ("accuracy above 1", "accuracy", cell(0, 2, 7.5), "best", ["row 2", "'accuracy'", "7.5", "not an accuracy"]),
    ("negative accuracy", "accuracy", cell(2, 2, -0.25), "best", ["row 4", "'accuracy'", "not an accuracy"]),
    ("negative log loss", "logloss", cell(2, 2, -0.5), "best", ["row 4", "'logloss'", "not a log loss"]),
    ("AUC above 1", "auc", cell(0, 2, 1.0001), "best", ["row 2", "'auc'", "not an AUC"]),
    ("qwk below -1", "qwk", cell(2, 2, -1.5), "best", ["row 4", "'qwk'", "not a QWK"]),
    ("partial above 1", "accuracy", cell(1, 7, 3), "best", ["row 3", "'partial_metric'"]),
    ("repeated number", "accuracy", cell(3, 0, 2), "best", ["row 5", "'number'", "appears twice"]),
    ("state in capitals", "accuracy", cell(0, 1, "COMPLETE"), "best", ["row 2", "'state'", "COMPLETE"]),
    ("state done", "accuracy", cell(3, 1, "done"), "best", ["row 5", "'state'", "done"]),
    ("negative seconds", "accuracy", cell(1, 4, -3), "best", ["row 3", "'seconds'"]),
    ("best is another trial", "accuracy", None, {"model": "lenet5", "lr": 0.01, "aug": "light"},
     ["best.json", "'lr'", "row 4", "trial 2", "not the best trial's config"]),
    ("best of a pruned trial", "accuracy", None, {"lr": 0.2, "aug": "none"}, ["best.json", "not the best"]),
    ("best with another aug", "accuracy", None, {"lr": 0.03, "aug": "light"}, ["best.json", "'aug'", "row 4"]),
    ("best without the field", "accuracy", None, {"aug": "none"}, ["best.json", "'lr'", "None"]),
    ("best of a minimized metric read as maximized", "logloss", None, {"lr": 0.03, "aug": "none"},
     ["best.json", "row 2", "trial 0"]),
    ("best but nothing completed", "accuracy", lambda rows: [[r[0], "failed" if r[1] == "complete" else r[1], "",
                                                               *r[3:]] for r in rows], "{}", ["best.json", "no complete trial"]),
    ("best missing", "accuracy", None, None, ["best.json", "missing", "complete trial"]),
    ("best a list", "accuracy", None, "[0.03]", ["best.json", "not a JSON object"]),
]


def test_the_undamaged_files_are_read(tmp_path):
    for metric in ("accuracy", "logloss", "auc", "qwk", "macro-f1"):
        table, best = read_results(write_search(tmp_path / metric, metric))
        assert table.attrs["metric"] == metric and len(table) == 4
        assert best["lr"] == (0.01 if metric == "logloss" else 0.03)


@pytest.mark.parametrize("what, metric, edit, best, fragments", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_search_files_are_refused_by_report_and_by_a_resumed_search(what, metric, edit, best, fragments,
                                                                              comps, tmp_path, capsys):
    folder = write_search(tmp_path / "search", metric, edit(ROWS) if edit else None,
                          best if best != "best" else "best")
    with pytest.raises(DataError):
        read_results(folder)
    before = tree(tmp_path)
    for argv in (["report", str(folder)],
                 ["tune", "--data", str(comps["ints"]), "--out", str(folder), "--trials", "5", "--preset", "lenet5",
                  "--epochs", "1", "--k", "2", "--no-progress"]):
        assert kfold_main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert all(f in err for f in fragments), (fragments, err)
        assert "trials.csv" in err or "best.json" in err
        assert tree(tmp_path) == before  # nothing written: no study.db, no report, no trial


def test_every_metric_has_a_score_range():
    """A metric added to the table without its range would let any value through trials.csv's strict reading."""
    from kfold.metrics import METRICS, SCORE_RANGES

    assert sorted(SCORE_RANGES) == sorted(METRICS)
    for name, (low, high) in SCORE_RANGES.items():
        assert low < high, name
