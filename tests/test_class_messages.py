"""Messages about a class name it as the competition spells it (issue 31, item 2): a folder name, a label value, a
probability column; never kfold's internal class index."""
from __future__ import annotations

import numpy as np
import pytest
from synthetic import pattern_images
from test_hostile import tree

from kfold.commands.main import main as kfold_main
from kfold.data.make_competition import MakeOptions, make_competition
from kfold.data.task import Task

NAMES = [  # class names of our own; the last one is the rare class
    ["Black-grass", "Charlock", "Loose Silky-bent"],
    ["Type_1", "Type_2", "Type_3"],
    ["猫", "犬", "鳥"],
    ["alpha", "beta", "Gamma ray"],
    ["cat", "dog", "0x1F"],
]


def rare_task(names: list[str]) -> Task:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 8 + [1] * 8 + [2] * 2)
    test = np.array([0, 1, 2, 0, 1, 2])
    return Task(name="rare", train_images=pattern_images(labels, rng, 16), train_labels=labels.astype(np.int64),
                test_images=pattern_images(test, rng, 16), test_ids=np.arange(6), class_names=list(names),
                test_labels=test, source="test")


@pytest.mark.parametrize("names", NAMES, ids=[n[-1] for n in NAMES])
@pytest.mark.parametrize("layout, target", [("class-folders", "label"), ("pixel-csv", "label"), ("image-files", "probs")])
def test_a_class_too_small_for_k_is_named_as_the_competition_spells_it(names, layout, target, tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "cache"))
    comp = tmp_path / "comp"
    make_competition(rare_task(names), comp, seed=0, options=MakeOptions(layout=layout, target=target,
                                                                         class_values="names"))
    before = tree(comp)
    out = tmp_path / "run"
    assert kfold_main(["run", "--data", str(comp), "--out", str(out), "--k", "3", "--preset", "lenet5",
                       "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    rare = names[-1]
    spelled = rare if rare.lstrip("-").isdigit() else repr(rare)
    assert len(err.splitlines()) == 1 and f"k=3 is larger than the 2 training images of class {spelled}" in err, err
    assert "class 2" not in err or rare == "2"  # never the internal index
    assert not out.exists() and tree(comp) == before
