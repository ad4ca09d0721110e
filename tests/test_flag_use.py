"""Every data flag is either consumed or refused, for every detected layout and target (issue 31, items 1 and 7).

The table is ``kfold.data.flag_use``: these tests iterate over every flag x layout x target of it and over the
commands' argparse parsers, so a new flag that no layout consumes (or that the table does not list) fails here.
"""
from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import numpy as np
import pytest
from synthetic import balanced_labels, pattern_images, write_kmnist_comp, write_mnist_mix_components

from kfold.commands.main import main as kfold_main
from kfold.data import load_task
from kfold.data.flag_use import DATA_FLAGS, LOAD_FLAGS, MAKE_FLAGS, MAKE_USES, USES
from kfold.data.layouts import LoadOptions
from kfold.data.make_competition import MakeOptions, make_competition
from kfold.data.task import Task
from kfold.errors import UsageError

KINDS = {"label": 3, "probs": 3, "binary": 2}  # target -> classes of the competition made for it
SELECTORS = ("train_csv", "test_csv", "image_dir", "test_dir")  # naming a file reads the folder as a CSV/image layout


def small_task(n_classes: int, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    train, test = balanced_labels(24, n_classes, rng), balanced_labels(9, n_classes, rng)
    names = ["Ant", "Bee", "Cat"][:n_classes]
    return Task(name="tiny", train_images=pattern_images(train, rng, 16), train_labels=train.astype(np.int64),
                test_images=pattern_images(test, rng, 16), test_ids=np.arange(9), class_names=names,
                test_labels=test.astype(np.int64), source="tests/test_flag_use.py")


@pytest.fixture(scope="module")
def comps(tmp_path_factory) -> dict:
    """(layout, target) -> a competition folder, every layout x target kfold writes, plus arrays and MNIST-MIX."""
    root = tmp_path_factory.mktemp("comps")
    out = {("arrays", "label"): write_kmnist_comp(root / "arrays", n_train=40, n_test=10),
           ("mnist-mix", "label"): write_mnist_mix_components(root / "mix", languages=("Arabic", "Bangla"),
                                                               n_train_per_lang=12, n_test_per_lang=4)}
    for layout in ("pixel-csv", "image-files", "class-folders"):
        for target, n in KINDS.items():
            folder = root / f"{layout}-{target}"
            make_competition(small_task(n), folder, seed=1, options=MakeOptions(
                layout=layout, target="label" if target == "label" else "probs", string_ids=layout != "pixel-csv",
                class_values="names"))
            out[(layout, target)] = folder
    for folder in out.values():  # a file and a folder that no layout reads by default
        (folder / "notes.csv").write_text("a,b\n1,2\n")
        (folder / "notes").mkdir()
    return out


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KFOLD_CACHE", str(tmp_path / "kcache"))


def a_value(name: str, layout: str, target: str, folder: Path, tmp: Path) -> str:
    """A value of flag ``name`` that the competition would accept if the flag is consumed there."""
    from kfold.files.schema import read_competition_file

    schema = read_competition_file(folder)["schema"] if (folder / "competition.json").is_file() else None
    exists = lambda *names: next((n for n in names if (folder / n).exists()), None)  # noqa: E731
    return {
        "train_csv": exists("train.csv") or "notes.csv",
        "test_csv": exists("test.csv") or "notes.csv",
        "image_dir": exists("train") or "notes",
        "test_dir": exists("test") or "notes",
        "id_column": schema.id_column if schema else "Id",
        "label_column": "label",
        "image_column": schema.id_column if schema else "Id",
        "image_size": "20",
        "channels": "3",
        "metric": {"label": "macro-f1", "probs": "logloss", "binary": "auc"}[target],
        "target": target,
        "languages": "Arabic",
        "label_mode": "agnostic",
        "cache_dir": str(tmp / "cache"),
    }[name]


def inspect(folder: Path, name: str, value: str, capsys) -> tuple[int, str, str]:
    code = kfold_main(["inspect", str(folder), "--no-progress", "--" + name.replace("_", "-"), value])
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def test_the_table_covers_every_layout_and_flag():
    assert set(USES) == {"arrays", "kmnist", "mnist-mix", "pixel-csv", "image-files", "class-folders"}
    assert {field.name for field in __import__("dataclasses").fields(LoadOptions)} == set(LOAD_FLAGS)
    for used in USES.values():
        assert used <= set(LOAD_FLAGS) | set(DATA_FLAGS)
    every = set().union(*USES.values())
    assert every == set(LOAD_FLAGS) | set(DATA_FLAGS), "a flag that no layout consumes"


CASES = [(layout, target, name) for layout, target in
         [("arrays", "label"), ("mnist-mix", "label")] + [(lay, t) for lay in ("pixel-csv", "image-files", "class-folders")
                                                         for t in KINDS]
         for name in (*LOAD_FLAGS, *DATA_FLAGS)]


@pytest.mark.parametrize("layout, target, name", CASES)
def test_every_flag_is_consumed_or_refused(layout, target, name, comps, tmp_path, capsys):
    """``kfold inspect`` with one flag (``load_task`` for MNIST-MIX's flags, which inspect has not): a flag the
    table says the layout consumes loads and shows its effect where it has one; a file or folder flag of another
    layout reads the folder as that layout (whose failure names the flag); any other is refused with one line
    naming the flag and the layout: never ignored."""
    folder = comps[(layout, target)]
    value = a_value(name, layout, target, folder, tmp_path)
    if name in ("languages", "label_mode"):
        try:
            task = load_task(folder, progress=False, **{name: [value] if name == "languages" else value})
        except UsageError as exc:
            code, err, out = 2, f"error: {exc.for_command()}", ""
        else:
            code, err, out = 0, "", f"label_mode {task.extra.get('label_mode')} languages {task.extra.get('languages')}"
    else:
        code, err, out = inspect(folder, name, value, capsys)
    flag = "--" + name.replace("_", "-")
    if name in USES[layout]:
        assert code == 0, err
        shown = {"image_size": "images: 20x20", "channels": "3 channels", "metric": f"metric: {value}",
                 "label_mode": "label_mode agnostic", "languages": "languages ['Arabic']"}
        if name in shown:
            assert shown[name] in out, out
    elif name in SELECTORS:  # it chose another layout: that layout's first failure names the flag
        assert code in (1, 2) and len(err.splitlines()) == 1 and flag in err, (code, err)
    else:
        assert code == 2 and len(err.splitlines()) == 1 and flag in err, err
        assert f"the {layout} layout" in err and "does not use it" in err, err


@pytest.mark.parametrize("layout, target", [(lay, t) for lay in ("pixel-csv", "image-files", "class-folders") for t in KINDS])
def test_consumed_flags_take_effect(layout, target, comps, capsys):
    folder = comps[(layout, target)]
    assert kfold_main(["inspect", str(folder), "--no-progress", "--image-size", "20", "--channels", "3",
                       "--metric", a_value("metric", layout, target, folder, folder)]) == 0
    out = capsys.readouterr().out
    assert "images: 20x20, 3 channels" in out
    assert f"metric: {a_value('metric', layout, target, folder, folder)}" in out


OTHER_TARGETS = [(lay, t, other) for lay in ("pixel-csv", "image-files", "class-folders") for t in KINDS
                 for other in KINDS if other != t]


@pytest.mark.parametrize("layout, target, other", OTHER_TARGETS)
def test_a_target_the_sample_cannot_hold_is_refused_not_ignored(layout, target, other, comps, capsys):
    """A sample with one probability column per class is 'probs' whatever --target says; a one-column sample
    is never 'probs'. label <-> binary on a one-column sample takes effect (or fails on the class count)."""
    code, err, _ = inspect(comps[(layout, target)], "target", other, capsys)
    assert len(err.splitlines()) <= 1
    if target == "probs" or other == "probs":
        assert code == 2 and "--target" in err and "so its target is" in err, err
    elif other == "binary":  # three classes cannot be binary
        assert code == 1 and "binary probability target needs 2 classes" in err, err
    else:
        assert code == 0, err


# A hostile corpus of our own: flags the layout ignores, in combinations too.
CORPUS = [
    ("pixel-csv", "label", ["--image-column", "ImageId"], "--image-column"),
    ("pixel-csv", "probs", ["--test-dir", "notes"], "--test-dir"),
    ("pixel-csv", "label", ["--cache-dir", "/tmp/elsewhere"], "--cache-dir"),
    ("pixel-csv", "binary", ["--languages", "Arabic"], "--languages"),
    ("image-files", "label", ["--image-dir", "train", "--test-csv", "notes.csv"], "--test-csv"),
    ("class-folders", "label", ["--label-column", "species"], "--label-column"),
    ("class-folders", "probs", ["--train-csv", "notes.csv"], "--train-csv"),
    ("class-folders", "binary", ["--image-column", "file"], "--image-column"),
    ("arrays", "label", ["--label-column", "Category"], "--label-column"),
    ("arrays", "label", ["--target", "probs"], "--target"),
    ("arrays", "label", ["--cache-dir", "/tmp/x"], "--cache-dir"),
    ("mnist-mix", "label", ["--id-column", "Id"], "--id-column"),
    ("image-files", "probs", ["--target", "label"], "--target"),
    ("class-folders", "label", ["--target", "probs"], "--target"),
]


@pytest.mark.parametrize("layout, target, argv, flag", CORPUS)
@pytest.mark.parametrize("command", ["inspect", "run", "tune"])
def test_ignored_flags_are_refused_by_every_command_before_anything_is_written(layout, target, argv, flag, command,
                                                                             comps, tmp_path, capsys):
    folder = comps[(layout, target)]
    out = tmp_path / "out"
    full = {"inspect": ["inspect", str(folder)],
            "run": ["run", "--data", str(folder), "--out", str(out), "--k", "2", "--epochs", "1", "--preset", "lenet5"],
            "tune": ["tune", "--data", str(folder), "--out", str(out), "--trials", "1", "--k", "2", "--preset", "lenet5"]}
    code = kfold_main([*full[command], "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and flag in err, err
    assert not out.exists()


@pytest.mark.parametrize("layout, target, argv, flag", CORPUS[:8])
def test_the_python_api_names_the_parameter(layout, target, argv, flag, comps):
    name = flag[2:].replace("-", "_")
    value = argv[argv.index(flag) + 1]
    fields = {name: value} if name in LOAD_FLAGS else {}
    kwargs = {} if fields else {name: value}
    if name == "test_csv":
        fields = {"image_dir": "train", "test_csv": "notes.csv"}
    with pytest.raises(UsageError) as info:
        load_task(comps[(layout, target)], options=LoadOptions(**fields), progress=False,
                  **{k: (v.split(",") if k == "languages" else v) for k, v in kwargs.items()})
    assert str(info.value).startswith(f"{name}=") or f"{name}=" in str(info.value), str(info.value)


def test_kmnist_by_name_refuses_before_downloading(monkeypatch):
    import kfold.data.load as load

    monkeypatch.setattr(load, "download_kmnist", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(UsageError, match=r"^image_column='x': the kmnist layout"):
        load_task("kmnist", options=LoadOptions(image_column="x"))


@pytest.mark.parametrize("task", ["kmnist", "mnist-mix"])
def test_the_task_flag_is_never_ignored(task, comps, capsys):
    folder = comps[("pixel-csv", "label")]
    assert kfold_main(["run", "--data", str(folder), "--task", task, "--no-progress", "--out", str(folder / "r")]) == 2
    err = capsys.readouterr().err
    assert "--task" in err and "pixel-csv competition" in err
    assert not (folder / "r").exists()


# -- make-competition: the flags of the competition it writes ------------------------------------------
MAKE_VALUES = {"target": ["--target", "probs"], "metric": None, "id_column": ["--id-column", "ImageId"],
               "label_column": ["--label-column", "Kind"], "string_ids": ["--string-ids"],
               "class_values": ["--class-values", "names"], "rgb": ["--rgb"], "resize": ["--resize", "20"],
               "test_id_column": ["--test-id-column"]}


def test_the_make_table_covers_every_make_competition_flag():
    from kfold.commands.make_competition import build_parser

    dests = {a.dest for a in build_parser()._actions} - {"help"}
    inputs = {"data", "out", "layout", "test_fraction", "public_fraction", "seed", "languages", "cache_dir"}
    assert dests - inputs == set(MAKE_FLAGS)
    assert set(MAKE_VALUES) == set(MAKE_FLAGS)


MAKE_CASES = [(lay, kind, name) for lay in ("arrays", "pixel-csv", "image-files", "class-folders")
              for kind in ("label", "probs", "binary") for name in MAKE_FLAGS
              if name != "metric" and not (name == "target" and kind == "label")
              and (lay != "arrays" or kind == "label" or name == "target")]


@pytest.mark.parametrize("layout, kind, name", MAKE_CASES)
def test_make_competition_consumes_or_refuses_every_flag(layout, kind, name, tmp_path, capsys):
    n_classes = 2 if kind == "binary" else 3
    source = tmp_path / "src"
    make_competition(small_task(n_classes), source, seed=0, options=MakeOptions(layout="pixel-csv"))
    argv = ["make-competition", "--data", str(source), "--out", str(tmp_path / "out"), "--layout", layout,
            "--test-fraction", "0.25",
            *(["--target", "probs"] if kind != "label" else []), *MAKE_VALUES[name]]
    argv = list(dict.fromkeys(argv)) if name == "target" else argv
    code = kfold_main(argv)
    err = capsys.readouterr().err.strip()
    if name in MAKE_USES.get((layout, kind), ()):
        assert code == 0, err
    else:
        assert code == 2 and len(err.splitlines()) == 1 and "--" + name.replace("_", "-") in err, err
        assert "not used by the" in err and not (tmp_path / "out").exists()


# -- every integer and number flag goes through one checked parser (issue 31, item 6) --------------------
def _parsers():
    from kfold.commands.main import build_parser

    found = [build_parser()]
    for path in sorted(Path(importlib.import_module("kfold.commands").__file__).parent.glob("*.py")):
        module = importlib.import_module(f"kfold.commands.{path.stem}")
        if hasattr(module, "build_parser") and path.stem != "main":
            found.append(module.build_parser())
    todo, out = list(found), []
    while todo:
        parser = todo.pop()
        out.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return out


def test_no_parser_uses_a_bare_int_or_float():
    bare = [(p.prog, a.dest) for p in _parsers() for a in p._actions if a.type in (int, float)]
    assert bare == []
    written = []
    for path in Path(importlib.import_module("kfold.commands").__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "type" and isinstance(node.value, ast.Name) \
                    and node.value.id in ("int", "float"):
                written.append(f"{path.name}:{node.value.lineno}")
    assert written == []


def test_the_data_and_layout_flags_of_every_command_are_in_the_table():
    """Every flag of a command's data/layout groups is a row of kfold.data.flag_use (or --data/--task)."""
    known = set(LOAD_FLAGS) | set(DATA_FLAGS) | {"data", "task"}
    seen = set()
    for parser in _parsers():
        for group in parser._action_groups:
            if group.title == "data" or (group.title or "").startswith("layout"):
                seen |= {a.dest for a in group._group_actions}
    assert seen and seen <= known, seen - known
    assert set(LOAD_FLAGS) <= seen


INTEGER_FLAGS = [
    (["make-competition", "--data", "x", "--out", "o", "--seed", "-1"], "--seed"),
    (["make-competition", "--data", "x", "--out", "o", "--seed", "1_0"], "--seed"),
    (["make-competition", "--data", "x", "--out", "o", "--public-fraction", "nan"], "--public-fraction"),
    (["make-competition", "--data", "x", "--out", "o", "--test-fraction", "inf"], "--test-fraction"),
    (["leaderboard", "--solution", "s.csv", "--seed", "2e3"], "--seed"),
    (["leaderboard", "--solution", "s.csv", "--bootstrap", "0"], "--bootstrap"),
    (["validate", "s.csv", "--num-classes", "٣"], "--num-classes"),
    (["ensemble", "a.npz", "--out", "o.csv", "--fit-rounds", "-3"], "--fit-rounds"),
    (["ensemble", "a.npz", "--out", "o.csv", "--seed", "4294967296"], "--seed"),
    (["errors", "run", "--gallery", " 5"], "--gallery"),
    (["inspect", "d", "--channels", "2"], "--channels"),
    (["inspect", "d", "--channels", "3.0"], "--channels"),
    (["submit", "s.csv", "-c", "c", "-m", "m", "--wait", "inf"], "--wait"),
    (["submit", "s.csv", "-c", "c", "-m", "m", "--num-classes", "0x10"], "--num-classes"),
]


@pytest.mark.parametrize("argv, flag", INTEGER_FLAGS)
def test_integer_and_number_flags_are_one_line_usage_errors(argv, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert kfold_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"argument {flag}" in err and "Traceback" not in err, err
