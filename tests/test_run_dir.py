"""Issue 14 items 3, 5, 6, 19 and 26: the run directory refuses silent mixes (threads, edited folds, foreign or
missing folds, a config that is not an object) and names what differs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import write_kmnist_comp

from kfold.commands.predict import main as predict_main
from kfold.commands.train import main as train_main
from kfold.errors import run_cli
from kfold.files.rundir import RunDir


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Path:
    return write_kmnist_comp(tmp_path_factory.mktemp("comp"), n_train=120, n_test=30, seed=7)


def train(comp: Path, out: Path, *flags: str, threads=("--threads", "1")) -> int:
    """train.py on the small competition: lenet5, k = 3, 1 epoch unless ``flags`` say otherwise."""
    return run_cli(train_main, ["--data", str(comp), "--preset", "lenet5", "--k", "3", "--epochs", "1", *threads,
                                "--out", str(out), "--no-progress", *flags])


@pytest.fixture(scope="module")
def trained(comp, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train(comp, out) == 0
    return out


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def tree(path: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_thread_count_is_recorded_and_a_resume_with_another_is_refused(comp, trained, tmp_path, capsys):
    assert json.loads((trained / "config.json").read_text())["threads"] == 1
    assert json.loads((trained / "fold0" / "meta.json").read_text())["threads"] == 1
    run = copy(trained, tmp_path)
    before = tree(run)
    for threads in (["--threads", "2"], []):  # another count, or torch's default, would mix bits
        code = train(comp, run, "--resume", threads=threads)
        assert code == 2
        assert "threads: 1 in the run" in one_line(capsys)
    assert tree(run) == before


@pytest.mark.parametrize("edit", ["swap-two-rows", "shift-fold"])
def test_an_edited_fold_column_is_refused_before_training(edit, comp, trained, tmp_path, capsys):
    run = copy(trained, tmp_path)
    shutil.rmtree(run / "fold2")  # a resume would train fold 2
    frame = pd.read_csv(run / "folds.csv")
    if edit == "swap-two-rows":
        a, b = frame.index[frame["fold"] == 0][0], frame.index[frame["fold"] == 1][0]
        frame.loc[[a, b], "fold"] = [1, 0]
    else:
        frame["fold"] = (frame["fold"] + 1) % 3
    frame.to_csv(run / "folds.csv", index=False)
    before = tree(run)
    assert train(comp, run, "--resume") == 1
    assert "folds.csv: the fold assignment was changed" in one_line(capsys)
    assert tree(run) == before


def test_a_refused_resume_names_every_key_with_both_values(comp, trained, tmp_path, capsys):
    run = copy(trained, tmp_path)
    assert train(comp, run, "--resume", "--epochs", "2", "--lr", "0.02") == 2
    err = one_line(capsys)
    assert "config.epochs: 1 in the run, 2 now" in err and "config.lr: 0.01 in the run, 0.02 now" in err


@pytest.mark.parametrize("content", ["[]", "3", "\"x\"", "null", "{", ""])
def test_a_config_that_is_not_a_json_object_is_one_line(content, comp, trained, tmp_path, capsys):
    run = copy(trained, tmp_path)
    (run / "config.json").write_text(content)
    before = tree(run)
    assert train(comp, run, "--resume") == 1
    assert "config.json: damaged run config" in one_line(capsys)
    assert tree(run) == before


def test_predict_uses_only_the_folds_the_run_defines(comp, trained, tmp_path, capsys):
    run = copy(trained, tmp_path)
    shutil.copytree(run / "fold0", run / "fold0-old")  # a backup copy is not a model of the run
    shutil.copytree(run / "fold0", run / "fold7")      # nor a fold the run does not define
    assert run_cli(predict_main, [str(run), "--data", str(comp), "--out", str(tmp_path / "p")]) == 0
    mean = np.load(tmp_path / "p" / "run-mean.npz")
    assert json.loads(str(mean["meta"]))["folds"] == 3
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "run-fold0.npz", "run-fold1.npz", "run-fold2.npz", "run-mean.npz", "run-oof.npz"]
    assert RunDir(run).models() == [0, 1, 2]


def test_an_unfinished_run_is_refused_unless_asked_and_the_file_says_so(comp, trained, tmp_path, capsys):
    run = copy(trained, tmp_path)
    shutil.rmtree(run / "fold1")
    assert run_cli(predict_main, [str(run), "--data", str(comp), "--out", str(tmp_path / "p")]) == 1
    assert "folds 1 of 3 are not finished" in one_line(capsys)
    assert not (tmp_path / "p").exists()
    assert run_cli(predict_main, [str(run), "--data", str(comp), "--out", str(tmp_path / "p"), "--allow-incomplete"]) == 0
    meta = json.loads(str(np.load(tmp_path / "p" / "run-mean.npz")["meta"]))
    assert meta["folds"] == 2 and meta["folds_defined"] == 3 and meta["complete"] is False
