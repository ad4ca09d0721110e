"""The typed core seen from outside: the README's notebook example, one task load per command, validation before
the first byte, awkward run names."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from synthetic import write_kmnist_comp

import kfold
from kfold.commands.main import main as kfold_main
from kfold.errors import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Path:
    return write_kmnist_comp(tmp_path_factory.mktemp("comp"), n_train=150, n_test=40, seed=5)


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API (notebooks)"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_notebook_example_runs_train_predict_ensemble_leaderboard(comp, tmp_path, monkeypatch, capsys):
    code = readme_example()
    first = code.splitlines()[2]
    assert first.startswith("data, preset = ")  # the one line a reader edits
    monkeypatch.chdir(tmp_path)
    real_train, calls = kfold.train, []

    def one_epoch(*args, **kwargs):  # the README's own call, with one epoch per fold instead of the preset's 20
        calls.append((args, dict(kwargs)))
        return real_train(*args, **kwargs, epochs=1)

    monkeypatch.setattr(kfold, "train", one_epoch)
    namespace: dict = {}
    exec(code.replace(first, f"data, preset = {str(comp)!r}, 'lenet5'"), namespace)  # noqa: S102 - our own README
    assert len(calls) == 1 and calls[0][1]["preset"] == "lenet5"  # the README's one call, as written
    assert json.loads((tmp_path / "runs" / "notebook" / "config.json").read_text())["config"]["epochs"] == 1
    run, preds, vote, board = namespace["run"], namespace["preds"], namespace["vote"], namespace["board"]
    assert len(run.table) == 5 and 0 <= run.oof_accuracy <= 1
    assert len(preds.folds) == 5 and all(p.is_file() for p in preds.folds) and preds.mean.probs.shape == (40, 10)
    assert vote.submission.is_file() and len(vote.frame) == 40
    assert list(board["submission"]) and board[["public", "private"]].stack().between(0, 1).all()
    assert "out-of-fold accuracy" in capsys.readouterr().out
    again = kfold.load_run(tmp_path / "runs" / "notebook")
    assert again.summary["folds_done"] == 5 and again.oof.labels is not None


def test_kfold_run_and_compare_load_each_task_once(comp, tmp_path, monkeypatch):
    import kfold.data

    calls = []
    real = kfold.data.load_task

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(kfold.data, "load_task", counting)
    monkeypatch.chdir(tmp_path)
    assert kfold_main(["run", "--data", str(comp), "--preset", "lenet5", "--k", "2", "--epochs", "1", "--out", "runs/exp 1",
                       "--seeds", "0,1", "--device", "cpu", "--no-progress"]) == 0
    assert calls == [str(comp)]
    calls.clear()
    from kfold.commands.compare import main as compare_main

    assert run_cli(compare_main, ["--data", str(comp), "--out", str(tmp_path / "cmp"), "--presets", "lenet5,ff-2x250",
                                  "--seeds", "0", "--k", "2", "--epochs", "1", "--device", "cpu", "--no-progress"]) == 0
    assert calls == [str(comp)]


def test_awkward_run_names_complete_end_to_end(comp, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for out in ("runs/exp 1", "runs/lr=0.1"):
        assert kfold_main(["run", "--data", str(comp), "--preset", "lenet5", "--k", "2", "--epochs", "1", "--out", out,
                           "--device", "cpu", "--no-progress"]) == 0, capsys.readouterr().err
        name = {"runs/exp 1": "exp-1", "runs/lr=0.1": "lr-0.1"}[out]
        assert (tmp_path / "submissions" / f"{name}-mean.csv").is_file()
        assert (tmp_path / out / "leaderboard" / "leaderboard.csv").is_file()
    assert "recommended submission: submissions/lr-0.1-mean.csv" in capsys.readouterr().out


BAD = [
    (["--model", "nosuch"], "unknown model 'nosuch'"),
    (["--aug", "nosuch"], "unknown aug 'nosuch'"),
    (["--config", "{cfg}"], "model 'resnet9' has no option 'depth'"),
    (["--config", "{cfg_width}"], "width must be an integer in 1..1024"),
    (["--data", "{one_class}"], "needs at least 2 classes"),
]


@pytest.mark.parametrize("extra, fragment", BAD, ids=["model", "aug", "model-option", "model-width", "one-class"])
def test_bad_names_leave_no_file_and_the_corrected_command_works(extra, fragment, comp, tmp_path, capsys):
    import numpy as np

    from kfold.commands.train import main as train_main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": "resnet9", "model_kwargs": {"depth": 3}}))
    cfg_width = tmp_path / "cfgw.json"
    cfg_width.write_text(json.dumps({"model": "resnet9", "model_kwargs": {"width": 100000}}))
    one_class = write_kmnist_comp(tmp_path / "one", n_train=40, n_test=10, seed=1)
    np.save(one_class / "kmnist-train-labels.npy", np.zeros(40, dtype=np.uint8))
    (one_class / "kmnist_classmap.csv").write_text("index,codepoint,char\n0,U+304A,\u304a\n", encoding="utf-8")
    for name in ("solution.csv", "sample_submission.csv"):
        lines = (one_class / name).read_text().splitlines()
        (one_class / name).write_text("\n".join([lines[0]] + [",".join([l.split(",")[0], "0", *l.split(",")[2:]])
                                                                for l in lines[1:]]) + "\n")
    values = {"{cfg}": str(cfg), "{cfg_width}": str(cfg_width), "{one_class}": str(one_class)}
    extra = [values.get(item, item) for item in extra]
    out = tmp_path / "run"
    base = ["--data", str(comp), "--preset", "lenet5", "--k", "2", "--epochs", "1", "--out", str(out), "--no-progress"]
    argv = base + extra if "--data" not in extra else [*extra, *base[2:]]
    code = run_cli(train_main, argv)
    err = capsys.readouterr().err
    assert code in (1, 2) and err.startswith("error: ") and len(err.splitlines()) == 1 and fragment in err, err
    assert not out.exists()
    assert run_cli(train_main, base) == 0  # the corrected command, nothing deleted in between
    assert json.loads((out / "summary.json").read_text())["folds_done"] == 2
