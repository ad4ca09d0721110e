"""Hostile values for every config field, generated from its row of ``kfold.config.PARAMS``.

For each field: values of the wrong type, out of bounds, nan/inf where numeric, not among the choices. Each must
be refused naming the field through ``TrainConfig.validate``, through ``resolve_config`` (a notebook's
``kfold.train(**overrides)``), through ``train.py --config FILE`` and, for the fields that have a flag, through
``train.py --FLAG VALUE``: one ``error:`` line, exit 2, nothing written.
"""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from kfold.commands import args as flags
from kfold.commands.train import build_parser, main as train_main
from kfold.config import PARAMS, TrainConfig, resolve_config
from kfold.errors import UsageError, flag_of, run_cli

ROOT = Path(__file__).resolve().parents[1]


def wrong_types(spec) -> list:
    """Values of another type than the field's (an int is a float, a bool is neither)."""
    values = {int: ["3", 2.5, True, [1]], float: ["0.1", True, [0.1], {"x": 1}], bool: [1, 0, "true", None],
              str: [3, 1.5, ["sgd"], True], dict: ["width=8", [1], 3]}
    out = [v for kind in spec.kind for v in values[kind]]
    out = [v for v in out if not isinstance(v, spec.kind) or (isinstance(v, bool) and bool not in spec.kind)]
    if not spec.optional and None not in out:
        out.append(None)
    return out


def out_of_bounds(spec) -> list:
    """Just outside each bound (or on an open one), far outside, and nan/inf for a float."""
    if spec.low is None:
        return []
    step = 1 if spec.kind == (int,) else 1e-9 * max(1.0, abs(spec.high))
    values = [spec.low if spec.low_open else spec.low - step, spec.high if spec.high_open else spec.high + step,
              spec.low - 10 ** 6, spec.high * 10 ** 6 + 10 ** 6]
    if spec.kind == (int,):
        return [int(v) for v in values] + [math.nan, math.inf]  # floats, and not finite ones
    return [float(v) for v in values] + [math.nan, math.inf, -math.inf]


def not_among_choices(spec) -> list:
    if spec.choices is None:
        return []
    first = spec.allowed()[0]
    return ["nosuch", "", first.upper() if first.upper() != first else first + "x", f" {first}"]


CASES = [(name, value) for name, spec in PARAMS.items()
         for value in wrong_types(spec) + out_of_bounds(spec) + not_among_choices(spec)]
IDS = [f"{name}={value!r}"[:40] for name, value in CASES]


def test_every_field_has_one_row_and_every_row_a_field():
    assert list(PARAMS) == [f.name for f in dataclasses.fields(TrainConfig)]
    for spec in PARAMS.values():
        assert spec.help and spec.kind, spec.name
        assert (spec.low is None) == (spec.high is None), spec.name
        assert spec.choices is None or spec.low is None, spec.name


def test_there_are_hostile_cases_for_every_field():
    assert {name for name, _ in CASES} == set(PARAMS)


@pytest.mark.parametrize("name, value", CASES, ids=IDS)
def test_train_config_refuses_naming_the_field(name, value):
    with pytest.raises(UsageError) as caught:
        TrainConfig(**{name: value}).validate()
    message = str(caught.value)
    assert name in message or name.split("_")[0] in message, message
    assert "\n" not in message and "--" not in message, message  # the library speaks of parameters, not flags


@pytest.mark.parametrize("name, value", CASES, ids=IDS)
def test_resolve_config_refuses_naming_the_field(name, value):
    with pytest.raises(UsageError, match=name.split("_")[0]):
        resolve_config("fast", overrides={name: value})


def boundary_values(spec) -> list:
    """The values on closed bounds and inside them, which the field must accept."""
    if spec.choices is not None:
        return spec.allowed()
    if spec.low is None:
        return []
    inside = (spec.low + spec.high) / 2 if spec.kind == (float,) else int(spec.low) + 1
    return [v for v, open_ in ((spec.low, spec.low_open), (spec.high, spec.high_open)) if not open_] + [inside]


# val_every other than 1 needs keep='last' (a rule between fields); low_res 1..7 is refused by another rule
PARTNERS = {"val_every": {"keep": "last"}}
ACCEPTED = [(name, value) for name, spec in PARAMS.items() for value in boundary_values(spec)
            if not (name == "low_res" and 0 < value < 8)]


@pytest.mark.parametrize("name, value", ACCEPTED, ids=[f"{n}={v!r}"[:40] for n, v in ACCEPTED])
def test_values_within_the_bounds_are_accepted(name, value):
    cfg = TrainConfig(**{**PARTNERS.get(name, {}), name: value}).validate()
    assert getattr(cfg, name) == value


def cli_texts(spec) -> list[str]:
    """What a user can type that the flag must refuse."""
    if spec.choices is not None:
        return ["nosuch", spec.allowed()[0].upper() + "x"]
    texts = ["x", "nan", "inf", "-inf", ""]
    if spec.kind == (int,):
        texts += ["1.5", "1e3"]
    return texts + [repr(v) for v in out_of_bounds(spec) if not (isinstance(v, float) and not math.isfinite(v))]


FLAG_CASES = [(name, text) for name in flags.TRAINING_FLAGS for text in cli_texts(PARAMS[name])]


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def refused_by_train(tmp_path: Path, capsys, argv: list[str]) -> str:
    before = tree(tmp_path)
    capsys.readouterr()
    assert run_cli(train_main, ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    assert tree(tmp_path) == before  # nothing written
    return lines[0]


@pytest.mark.parametrize("name, text", FLAG_CASES, ids=[f"--{n}={t}"[:40] for n, t in FLAG_CASES])
def test_training_flag_refuses_with_one_line(name, text, tmp_path, capsys):
    line = refused_by_train(tmp_path, capsys, [flag_of(name), text])
    assert f"argument {flag_of(name)}: " in line, line


@pytest.mark.parametrize("name, value", CASES, ids=IDS)
def test_config_file_value_refused_with_one_line(name, value, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({name: value}))
    line = refused_by_train(tmp_path, capsys, ["--config", str(config)])
    assert name in line or name.split("_")[0] in line, line


def test_flags_are_the_table_rows_with_its_help_and_bounds():
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    for name, spec in PARAMS.items():
        if not spec.flag:
            assert name not in actions or name == "compile", name
            continue
        action = actions[name]
        assert action.option_strings == [flag_of(name)] and action.help.startswith(spec.help), name
        if spec.low is not None:
            assert f"{spec.high:g}" in action.help, action.help  # the bound the flag enforces is the one it shows
        if spec.choices is not None:
            assert action.metavar == "|".join(spec.allowed())


@pytest.mark.parametrize("name", flags.TRAINING_FLAGS)
def test_every_flag_value_in_bounds_reaches_the_config(name):
    spec = PARAMS[name]
    for value in boundary_values(spec):
        parsed = build_parser().parse_args(["--data", "d", "--out", "o", flag_of(name), str(value)])
        assert getattr(parsed, name) == value
        assert flags.recipe_overrides(parsed)[name] == value


def test_train_py_script_refuses_a_bad_flag_and_a_bad_config_value(tmp_path):
    """The top-level script itself: one line, exit 2, nothing written (the in-process tests above cover every case)."""
    config = tmp_path / "c.json"
    config.write_text('{"ema": Infinity}')
    for argv, fragment in ((["--lr", "inf"], "argument --lr: 'inf' is not a finite number in (0, 10]"),
                           (["--config", str(config)], "config value ema=inf must be a finite number")):
        done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--data", str(tmp_path / "d"), "--out",
                               str(tmp_path / "run"), *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert fragment in done.stderr, done.stderr
        assert not (tmp_path / "run").exists()
