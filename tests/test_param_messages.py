"""Library errors name parameters (``kfold.errors.param``), commands name flags (issue 23 item 3).

The same mistake made through the Python API reads ``max_size='lots': ...`` (a name the caller typed, no
``--flag``) and through a command ``error: --max-size 'lots': ...``; and no library module spells a flag in
an error message (a static check over every ``...Error(...)`` outside ``kfold/commands/``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from kfold.commands.main import main as kfold_main
from kfold.errors import KfoldError

REPO = Path(__file__).resolve().parents[1]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


# ----------------------------------------------------------------------------- files the cases read

def _npy(tmp: Path) -> Path:
    np.save(tmp / "m.npy", np.full((4, 2), 0.5))
    return tmp / "m.npy"


def _log_probs(tmp: Path) -> Path:
    from kfold.files.probs import write_probs

    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    write_probs(tmp / "k.npz", [0, 1], p, ["a", "b"], {"kind": "test"})
    np.savez(tmp / "klog.npz", **{k: v for k, v in np.load(tmp / "k.npz").items() if k != "probs"}, probs=np.log(p))
    return tmp / "klog.npz"


def _probs(tmp: Path) -> Path:
    from kfold.files.probs import write_probs

    write_probs(tmp / "p.npz", [0, 1], [[0.2, 0.8], [0.6, 0.4]], ["0", "1"], {"kind": "test"})
    return tmp / "p.npz"


def _submission(tmp: Path) -> Path:
    (tmp / "s.csv").write_text("Id,Category\n0,1\n1,0\n")
    return tmp / "s.csv"


def _solution(tmp: Path) -> Path:  # no Usage column: the Public/Private split is drawn with public_fraction
    (tmp / "solution.csv").write_text("Id,Category\n0,1\n1,0\n")
    return tmp / "solution.csv"


def _a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("x")
    return tmp / "file"


def _space_missing(tmp: Path) -> Path:
    return tmp / "missing-space.json"


def _toy(tmp: Path) -> Path:
    from kfold.data.toy import make_toy_competition

    return make_toy_competition(tmp / "comp")


# ----------------------------------------------------------------------------- the cases: Python call, command

def py_download_max_size(tmp):
    from kfold.flows.kaggle_loop import download
    download("kmnist", tmp / "d", max_size="lots")


def py_download_competition(tmp):
    from kfold.flows.kaggle_loop import download
    download("not a name!", tmp / "d")


def py_download_data_dir(tmp):
    from kfold.flows.kaggle_loop import download
    download("kmnist", _a_file(tmp))


def py_npy_ids(tmp):
    from kfold.files.readers import read_npy
    read_npy(_npy(tmp))


def py_log_probs(tmp):
    from kfold.files.probs import read_probs
    read_probs(_log_probs(tmp))


def py_ensemble_tiebreak(tmp):
    import kfold
    kfold.ensemble([_submission(tmp)], method="vote", tiebreak="prob", out=tmp / "o.csv")


def py_ensemble_num_classes(tmp):
    from kfold.flows.ensembling import make_submission
    make_submission([_probs(tmp)], tmp / "o.csv", num_classes=3)


def py_public_fraction(tmp):
    from kfold.scoring.leaderboard import read_solution
    read_solution(_solution(tmp), public_fraction=1.5)


def py_learning_curve_out(tmp):
    from kfold.scoring.learning_curve import learning_curve
    learning_curve([tmp / "run"], _a_file(tmp))


def py_tune_space(tmp):
    import kfold
    kfold.tune(str(_toy(tmp)), trials=1, space=str(_space_missing(tmp)), out=tmp / "t")


def py_tune_storage(tmp):
    import kfold
    kfold.tune(str(_toy(tmp)), trials=1, storage="not a url", out=tmp / "t", progress=False)


CASES = [  # id, Python call, its parameter text, command line, its flag text
    ("max_size", py_download_max_size, "max_size='lots': give a positive size",
     lambda t: ["download", "-c", "kmnist", "--data", str(t / "d"), "--max-size", "lots"], "--max-size 'lots': give"),
    ("competition", py_download_competition, "competition='not a name!': not a competition name",
     lambda t: ["download", "-c", "not a name!"], "--competition 'not a name!': not"),
    ("data_dir", py_download_data_dir, "give a folder for data_dir",
     lambda t: ["download", "-c", "kmnist", "--data", str(_a_file(t))], "give a folder for --data"),
    ("ids", py_npy_ids, "give them with ids=FILE",
     lambda t: ["validate", str(_npy(t))], "give them with --ids FILE"),
    ("log_probs", py_log_probs, "pass log_probs=True to read them",
     lambda t: ["validate", str(_log_probs(t))], "pass --log-probs to read them"),
    ("tiebreak", py_ensemble_tiebreak, "tiebreak='prob' needs probability files",
     lambda t: ["ensemble", str(_submission(t)), "--method", "vote", "--tiebreak", "prob", "--out", str(t / "o.csv")],
     "--tiebreak 'prob' needs probability files"),
    ("num_classes", py_ensemble_num_classes, "num_classes=3: ",
     lambda t: ["ensemble", str(_probs(t)), "--num-classes", "3", "--out", str(t / "o.csv")], "--num-classes 3: "),
    ("public_fraction", py_public_fraction, "public_fraction must be between 0 and 1",
     lambda t: ["leaderboard", "--solution", str(_solution(t)), str(_submission(t)), "--public-fraction", "1.5",
                "--out", str(t / "board")], "argument --public-fraction: '1.5' is not a finite number in (0, 1)"),
    ("learning_curve_out", py_learning_curve_out, "out='",
     lambda t: ["learning-curve", str(t / "run"), "--out", str(_a_file(t))], "--out '"),
    ("space", py_tune_space, "space='",
     lambda t: ["tune", "--data", str(_toy(t)), "--trials", "1", "--space", str(_space_missing(t)), "--out", str(t / "t")],
     "--space '"),
    ("storage", py_tune_storage, "storage='not a url': cannot open this Optuna storage",
     lambda t: ["tune", "--data", str(_toy(t)), "--trials", "1", "--storage", "not a url", "--out", str(t / "t"),
                "--no-progress"], "--storage 'not a url': cannot open this Optuna storage"),
]
IDS = [case[0] for case in CASES]


@pytest.fixture
def no_kaggle(monkeypatch, tmp_path):
    """No case may reach Kaggle: every one fails before the client would be asked anything."""
    from kfold import kaggle_api

    def refuse(*_args, **_kwargs):
        raise AssertionError("a parameter error must come before any connection to Kaggle")

    monkeypatch.setattr(kaggle_api, "connect", refuse)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("name, call, python_text, argv, command_text", CASES, ids=IDS)
def test_python_names_the_parameter(name, call, python_text, argv, command_text, tmp_path, no_kaggle):
    if name in ("space", "storage"):
        pytest.importorskip("optuna")
    with pytest.raises(KfoldError) as caught:
        call(tmp_path)
    message = str(caught.value)
    assert python_text in message
    assert not FLAG.search(message), message


@pytest.mark.parametrize("name, call, python_text, argv, command_text", CASES, ids=IDS)
def test_command_names_the_flag(name, call, python_text, argv, command_text, tmp_path, no_kaggle, capsys):
    if name in ("space", "storage"):
        pytest.importorskip("optuna")
    code = kfold_main(argv(tmp_path))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 1 and lines[0].startswith("error: "), err
    assert command_text in lines[0]
    assert "\0" not in lines[0]


# ----------------------------------------------------------------------------- the static check

# Flags that may stay in a library error, each with its reason (path, flag) -> why.
ALLOWED = {
    ("kfold/errors.py", "--help"): "ArgumentParser.error: argparse's own message, only ever raised by a command",
}
COMMAND_LINE = re.compile(r"kfold [a-z-]+ --[a-z][a-z0-9-]*")  # a spelled-out command ('kfold tune --out') names
# the command that wrote a folder, which reads the same from Python: not a parameter of the function raising


def _error_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name.endswith("Error"):
                yield node


def test_no_library_error_spells_a_flag():
    found = []
    for path in sorted((REPO / "kfold").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith("kfold/commands/"):
            continue
        for call in _error_calls(ast.parse(path.read_text(encoding="utf-8"))):
            for node in ast.walk(call):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = COMMAND_LINE.sub("", node.value)
                    found += [f"{relative}:{call.lineno}: {flag}" for flag in FLAG.findall(text)
                              if (relative, flag) not in ALLOWED]
    assert not found, "library errors name parameters with kfold.errors.param, not flags:\n" + "\n".join(found)
