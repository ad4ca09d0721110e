"""``kfold leaderboard --solution S`` for a competition in its own columns (issue 31, item 5): the schema comes from
the competition beside the solution (competition.json, else its sample and data), failing that from the solution's
own header (Id column first, Usage last, the label column between); only a header with several candidates for the
label column is refused, naming them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import balanced_labels, pattern_images

from kfold.commands.main import main as kfold_main
from kfold.data.make_competition import MakeOptions, make_competition
from kfold.data.task import Task

USAGE = ["Public", "Private"] * 6


def _solution(folder: Path, columns: list[str], ids, labels, usage=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({columns[0]: ids, columns[1]: labels})
    if usage:
        frame[columns[2] if len(columns) > 2 else "Usage"] = USAGE[:len(ids)]
    frame.to_csv(folder / "solution.csv", index=False)
    return folder / "solution.csv"


HEADERS = [  # (Id column, label column, Ids, labels): solutions in a competition's own columns, no competition beside
    ("id", "label", list(range(12)), [i % 3 for i in range(12)]),
    ("ImageId", "Label", list(range(1, 13)), [7, 3, 9] * 4),
    ("file", "species", [f"{i:04x}.png" for i in range(12)], ["Black-grass", "Charlock", "Cleavers"] * 4),
    ("image_name", "target", [f"ISIC_{i:07d}" for i in range(12)], [0, 1] * 6),
    ("Id", "Class", [f"00{i}" for i in range(12)], ["Type_1", "Type_2", "Type_3", "Type_2"] * 3),
    ("séance", "étiquette", list(range(12)), ["chat", "chien"] * 6),
]


@pytest.mark.parametrize("usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("id_column, label, ids, labels", HEADERS, ids=[h[0] for h in HEADERS])
def test_a_solution_alone_is_read_in_its_own_columns(id_column, label, ids, labels, usage, tmp_path, capsys):
    solution = _solution(tmp_path / "host", [id_column, label, "Usage"], ids, labels, usage)
    perfect = tmp_path / "perfect.csv"
    pd.DataFrame({id_column: ids, label: labels}).to_csv(perfect, index=False)
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({id_column: ids, label: labels[1:] + labels[:1]}).to_csv(wrong, index=False)
    out = tmp_path / "board"
    argv = ["leaderboard", "--solution", str(solution), str(perfect), str(wrong), "--out", str(out), "--bootstrap", "20"]
    assert kfold_main(argv) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "leaderboard.csv")
    best = table.set_index("submission").loc[str(perfect)]
    assert best["public"] == 1.0 and best["private"] == 1.0
    assert table.set_index("submission").loc[str(wrong), "overall"] < 1.0


AMBIGUOUS = [  # (header, the candidates named)
    (["id", "a", "b", "Usage"], ["'a'", "'b'"]),
    (["id", "label", "Split"], ["'label'", "'Split'"]),
    (["Id", "Predicted", "Expected", "Usage"], ["'Predicted'", "'Expected'"]),
]


@pytest.mark.parametrize("header, named", AMBIGUOUS)
def test_only_a_real_ambiguity_is_refused_with_the_choices_named(header, named, tmp_path, capsys):
    tmp_path.joinpath("host").mkdir()
    solution = tmp_path / "host" / "solution.csv"
    rows = [[i, i % 2, (i + 1) % 2, USAGE[i]][: len(header)] for i in range(6)]
    pd.DataFrame(rows, columns=header).to_csv(solution, index=False)
    sub = tmp_path / "s.csv"
    sub.write_text("id,label\n0,1\n")
    assert kfold_main(["leaderboard", "--solution", str(solution), str(sub), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot tell the label column" in err and all(n in err for n in named), err
    assert not (tmp_path / "b").exists()


def _task() -> Task:
    rng = np.random.default_rng(5)
    train, test = balanced_labels(24, 3, rng), balanced_labels(12, 3, rng)
    return Task(name="t", train_images=pattern_images(train, rng, 16), train_labels=train.astype(np.int64),
                test_images=pattern_images(test, rng, 16), test_ids=np.arange(12), class_names=["Ant", "Bee", "Cat"],
                test_labels=test.astype(np.int64), source="test")


@pytest.mark.parametrize("layout, target", [("pixel-csv", "label"), ("class-folders", "label"), ("image-files", "probs")])
def test_the_competition_beside_the_solution_gives_the_schema(layout, target, tmp_path, capsys, monkeypatch):
    """Without competition.json, the competition's sample and data beside the solution give its columns and
    classes (a probability submission is scored in its class columns, a label one by its class names)."""
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    comp = tmp_path / "comp"
    make_competition(_task(), comp, seed=0, options=MakeOptions(layout=layout, target=target, class_values="names"))
    (comp / "competition.json").unlink()
    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    assert kfold_main(["leaderboard", "--solution", str(comp / "solution.csv"), str(comp / "sample_submission.csv"),
                       "--out", str(tmp_path / "b"), "--bootstrap", "20"]) == 0, capsys.readouterr().err
    overall = pd.read_csv(tmp_path / "b" / "leaderboard.csv")["overall"].iloc[0]
    solution = pd.read_csv(comp / "solution.csv", dtype=str)
    if target == "probs":  # uniform probabilities over the three class columns: log loss ln 3
        assert overall == pytest.approx(np.log(3), rel=1e-4)
    else:  # the sample names one class on every row: its accuracy is that class's share
        assert overall == pytest.approx((solution.iloc[:, 1] == sample.iloc[0, 1]).mean())
