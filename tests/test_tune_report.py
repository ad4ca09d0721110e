"""The search's section of ``kfold report`` (issue 25 item 5): ``kfold report TUNE_DIR`` (the section alone) and
``kfold report RUN_DIR --tune TUNE_DIR`` (added to a run's page), and a hostile corpus of damaged search files:
one error line naming the file (and row, column), exit 1/2, nothing written, inputs unchanged.

The search is real (Optuna, lenet5, 120 synthetic images, k = 2, one epoch, 3 trials); the damaged files are
copies of its own trials.csv and best.json with one thing changed."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("optuna")

from runs import fake_run  # noqa: E402
from synthetic import write_kmnist_comp  # noqa: E402
from test_hostile import tree  # noqa: E402
from test_reliability import assert_one_line_error, run  # noqa: E402

from kfold.commands.tune import main as tune_main  # noqa: E402
from kfold.errors import DataError, UsageError, run_cli  # noqa: E402
from kfold.files.rundir import TuneDir  # noqa: E402
from kfold.scoring.html_report import TUNE_TOP, build_report, read_tune  # noqa: E402

SPACE = {"lr": {"log_uniform": [0.005, 0.2]}, "aug": {"choice": ["none", "light"]}}


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tune")
    comp = write_kmnist_comp(root / "comp", n_train=120, n_test=30, seed=1)
    (root / "space.json").write_text(json.dumps(SPACE))
    out = root / "search"
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_cli(tune_main, ["--data", str(comp), "--out", str(out), "--space", str(root / "space.json"),
                                   "--trials", "3", "--pruner", "none", "--preset", "lenet5", "--epochs", "1",
                                   "--k", "2", "--threads", "1", "--device", "cpu", "--no-progress", "--seed", "0"]) == 0
    return out


@pytest.fixture
def copy(search, tmp_path) -> Path:
    """A copy of the search's result files (not its study or trials): the files the report reads."""
    target = tmp_path / "search"
    target.mkdir()
    for path in TuneDir(search).inputs():
        shutil.copy2(path, target / path.name)
    return target


class _Page(HTMLParser):
    """The h2 ids, the tables (rows of cell texts) and the images' data of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids, self.tables, self.images, self._cell = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self.ids.append(attrs.get("id"))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def test_report_of_a_search_alone_shows_its_best_trials_figures_and_best_config(search, tmp_path, capsys):
    out = tmp_path / "tune.html"
    assert run("kfold", ["report", search, "--out", out]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = parse(out)
    assert page.ids == ["tuning"]  # the search's section only: no run, so no summary or confusion
    trials = pd.read_csv(search / "trials.csv")
    complete = trials[trials["state"] == "complete"].sort_values(["accuracy", "number"], ascending=[False, True])
    table = page.tables[0]
    assert table[0][:4] == ["number", "accuracy", "folds_done", "seconds"] and table[0][4:] == ["lr", "aug"]
    assert [int(row[0]) for row in table[1:]] == complete["number"].head(TUNE_TOP).tolist()
    assert [float(row[1]) for row in table[1:]] == pytest.approx(complete["accuracy"].head(TUNE_TOP).tolist(), rel=1e-3)
    figures = [p for p in TuneDir(search).figures if p.is_file()]
    assert len(figures) >= 2 and len(page.images) == len(figures)
    for uri, path in zip(page.images, figures):  # each figure embedded byte for byte
        assert base64.b64decode(uri.split(",", 1)[1]) == path.read_bytes()
    best = json.loads((search / "best.json").read_text())
    shown = {row[0]: json.loads(row[1]) for row in page.tables[-1][1:]}
    assert shown == {"lr": best["lr"], "aug": best["aug"]}
    assert str(complete["number"].iloc[0]) in out.read_text()


def test_report_of_a_run_with_a_search_has_both(search, tmp_path, capsys):
    run_dir, data = fake_run(tmp_path)
    assert run("kfold", ["report", run_dir, "--tune", search, "--data", data]) == 0
    page = parse(run_dir / "report.html")
    assert page.ids[0] == "summary" and page.ids[-1] == "tuning" and "confusion" in page.ids
    assert 'href="#tuning"' in (run_dir / "report.html").read_text()
    without = tmp_path / "plain.html"
    assert run("kfold", ["report", run_dir, "--data", data, "--out", without]) == 0
    assert "tuning" not in parse(without).ids


def test_api_reads_the_search(search):
    tune = read_tune(search)
    assert tune["metric"] == "accuracy" and tune["direction"] == "maximize"
    assert len(tune["table"]) == 3 and set(tune["table"]["state"]) <= set(TuneDir.STATES)
    page, analysis, files = build_report(search)
    assert analysis is None and files == {} and "id=tuning>" in page


def _rewrite(path: Path, edit) -> None:
    path.write_text(edit(path.read_text()))


def _cell(text: str, row: int, column: str, value: str) -> str:
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    return table.to_csv(index=False)


DAMAGED = [  # (what, edit of trials.csv or best.json, exit, fragments of the one error line)
    ("state unknown", ("trials.csv", lambda t: _cell(t, 1, "state", "finished")), 1, ["row 3", "'state'", "finished"]),
    ("state empty", ("trials.csv", lambda t: _cell(t, 0, "state", "")), 1, ["row 2", "'state'"]),
    ("score text", ("trials.csv", lambda t: _cell(t, 2, "accuracy", "high")), 1, ["row 4", "'accuracy'", "high"]),
    ("score inf", ("trials.csv", lambda t: _cell(t, 0, "accuracy", "inf")), 1, ["row 2", "'accuracy'"]),
    ("complete without score", ("trials.csv", lambda t: _cell(t, 1, "accuracy", "")), 1, ["row 3", "'accuracy'",
                                                                                           "without its score"]),
    ("negative folds", ("trials.csv", lambda t: _cell(t, 0, "folds_done", "-1")), 1, ["row 2", "'folds_done'"]),
    ("fractional number", ("trials.csv", lambda t: _cell(t, 2, "number", "1.5")), 1, ["row 4", "'number'"]),
    ("duplicate number", ("trials.csv", lambda t: _cell(t, 2, "number", "0")), 1, ["row 4", "appears twice"]),
    ("seconds text", ("trials.csv", lambda t: _cell(t, 1, "seconds", "slow")), 1, ["row 3", "'seconds'"]),
    ("column missing", ("trials.csv", lambda t: pd.read_csv(io.StringIO(t)).drop(columns=["folds_done"]).to_csv(
        index=False)), 1, ["trials.csv", "folds_done"]),
    ("unknown metric", ("trials.csv", lambda t: t.replace("accuracy", "sharpness", 1)), 1, ["column 3", "sharpness"]),
    ("columns reordered", ("trials.csv", lambda t: pd.read_csv(io.StringIO(t))[
        ["state", "number", "accuracy", "folds_done", "seconds"]].to_csv(index=False)), 1, ["not a kfold tune"]),
    ("empty file", ("trials.csv", lambda t: ""), 1, ["trials.csv", "damaged"]),
    ("ragged row", ("trials.csv", lambda t: t.rstrip("\n") + ",extra,cells,here,and,more,of,them,x,y,z\n"), 1,
     ["trials.csv"]),
    ("binary", ("trials.csv", None), 1, ["trials.csv"]),
    ("best not JSON", ("best.json", lambda t: t[: len(t) // 2]), 1, ["best.json", "not JSON"]),
    ("best a list", ("best.json", lambda t: "[1, 2]"), 1, ["best.json", "not a JSON object"]),
]


CASES = [(*d, "alone") for d in DAMAGED] + [(*d, "with-run") for d in DAMAGED[::4]]  # the run's page: a sample


@pytest.mark.parametrize("what, change, code, fragments, how", CASES, ids=[f"{c[0]}-{c[4]}" for c in CASES])
def test_damaged_search_files_are_one_error_line_and_nothing_is_written(what, change, code, fragments, how, copy,
                                                                        tmp_path, capsys):
    name, edit = change
    path = copy / name
    if edit is None:
        path.write_bytes(bytes(range(256)) * 4)
    else:
        _rewrite(path, edit)
    argv = ["report", copy] if how == "alone" else ["report", fake_run(tmp_path / "r")[0], "--tune", copy,
                                                    "--data", tmp_path / "r" / "comp"]
    before = tree(tmp_path)
    capsys.readouterr()
    assert run("kfold", argv) == code
    line = assert_one_line_error(capsys.readouterr().err, name, *fragments)
    assert tree(tmp_path) == before, line
    with pytest.raises(DataError):
        read_tune(copy)


USAGE = [  # (argv from (search copy, run, data), fragments)
    (lambda s, r, d: ["report", r, "--tune", r, "--data", d], ["--tune", "holds no trials.csv"]),
    (lambda s, r, d: ["report", s, "--tune", s], ["--tune", "itself a search"]),
    (lambda s, r, d: ["report", r, "--tune", s / "missing", "--data", d], ["--tune", "holds no trials.csv"]),
    (lambda s, r, d: ["report", s, "--out", s / "trials.csv"], ["trials.csv"]),
    (lambda s, r, d: ["report", s, "--out", s / "best.json"], ["best.json"]),
    (lambda s, r, d: ["report", s, "--out", s / "page.txt"], [".html"]),
    (lambda s, r, d: ["report", s, "--data", d], ["--data", "trained run"]),
]


@pytest.mark.parametrize("argv, fragments", USAGE)
def test_contradictory_or_dangerous_requests_are_usage_errors(argv, fragments, copy, tmp_path, capsys):
    run_dir, data = fake_run(tmp_path / "r")
    before = tree(tmp_path)
    capsys.readouterr()
    assert run("kfold", argv(copy, run_dir, data)) == 2
    assert_one_line_error(capsys.readouterr().err, *fragments)
    assert tree(tmp_path) == before


def test_api_names_the_parameter(copy, tmp_path):
    from kfold.scoring.html_report import write_html_report

    run_dir, data = fake_run(tmp_path / "r")
    with pytest.raises(UsageError, match=re.escape("tune_dir=") + ".*holds no trials.csv"):
        write_html_report(run_dir, data=data, tune_dir=tmp_path)
