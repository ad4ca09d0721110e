"""Issue 18, the small items: install hints, offline and Ctrl-C hints, plot details, seconds, README claims."""
from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from synthetic import write_kmnist_comp

from kfold import kaggle_api
from kfold.errors import DataError, run_cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def captured_figure(monkeypatch, module):
    """Replace ``module.save_figure`` so the figure stays open for inspection; returns the list it lands in."""
    figures = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path, **kw: figures.append(fig))
    return figures


# ---- 1. the distribution name and install hints ----------------------------------------------------------------

def test_distribution_name_is_not_the_taken_kfold():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "kfold-kaggle"  # `kfold` on PyPI is an unrelated package
    assert any(dep.startswith("matplotlib-fontja") for dep in project["dependencies"])
    assert project["scripts"]["kfold"] == "kfold.commands.main:main"


def test_every_install_hint_works_from_a_clone():
    assert "pip install -e '.[kaggle]'" in kaggle_api.MISSING_PACKAGE
    for text in (kaggle_api.MISSING_PACKAGE, README):
        assert "'kfold[kaggle]'" not in text and "pip install kfold" not in text
    assert "pip install -e '.[kaggle]'" in README


# ---- 2, 10, 11, 13: README claims ----------------------------------------------------------------------------------

def test_readme_claims():
    assert "--index-url https://download.pytorch.org/whl/cpu" in README  # CPU-only torch, anywhere
    assert "pins the CPU build" not in README
    assert "60,000 training images" in README and "--data kmnist" in README
    for name in ("KFOLD_CACHE", "KFOLD_KMNIST_URL", "~/.cache/kfold"):
        assert name in README
    assert "[--tta" not in README  # every command line can be pasted
    assert "kfold make-competition --data ../shared/data/mnist-mix" in README
    assert "kfold report runs/fast" in README and "--resume" in README
    # commands write under runs/ or submissions/, never into the repository root
    block = README[README.index("## The steps one by one"):README.index("Everything these commands write")]
    for line in block.splitlines():
        for flag, value in re.findall(r"(--out|--report)\s+(\S+)", line):
            assert value.startswith(("runs/", "submissions/")), line
    assert "kfold leaderboard" in block and "--out runs/fast/leaderboard" in block


def test_generated_folders_are_ignored_by_git():
    ignored = (REPO / ".gitignore").read_text().split()
    for name in ("runs/", "probs/", "reports/", "/leaderboard.csv", "/leaderboard.md"):
        assert name in ignored


def test_leaderboard_default_out_is_under_runs():
    from kfold.commands.main import build_parser

    args = build_parser().parse_args(["leaderboard", "--solution", "s.csv", "a.csv"])
    assert args.out == Path("runs") / "leaderboard"


# ---- 10. offline download, Ctrl-C ----------------------------------------------------------------------------------

def test_offline_download_says_how_to_proceed(tmp_path, monkeypatch):
    from kfold.data import fetch
    from kfold.data.download import KMNIST_MD5

    with socket.socket() as sock:  # a port nobody listens on: the download host is unreachable
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    name = "kmnist_classmap.csv"
    with pytest.raises(DataError) as caught:
        fetch(name, tmp_path / "cache" / "kmnist", md5=KMNIST_MD5[name], base_url=f"http://127.0.0.1:{port}/", progress=False)
    message = str(caught.value)
    for part in (str(tmp_path / "cache" / "kmnist"), "KFOLD_CACHE", "KFOLD_KMNIST_URL", "data=DIR", "~/.cache/kfold"):
        assert part in message, part
    assert "\n" not in message


def test_ctrl_c_in_training_says_how_to_resume(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from kfold.nn.engine import FoldTrainer
    from kfold.commands.train import main as train_main

    def interrupted(self, resume=False):
        self.state["epoch"] = 2
        raise KeyboardInterrupt

    monkeypatch.setattr(FoldTrainer, "fit", interrupted)
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20)
    argv = ["--data", str(data), "--out", str(tmp_path / "run"), "--preset", "lenet5", "--epochs", "5", "--k", "2",
            "--device", "cpu", "--no-progress"]
    assert run_cli(train_main, argv) == 130
    err = capsys.readouterr().err
    assert err == (f"error: interrupted in fold 0, epoch 3 of 5: finished folds are kept and its checkpoint after epoch 2 "
                   f"is in {tmp_path / 'run' / 'fold0'}; to continue, run the same command again with --resume "
                   "(kfold run continues by itself)\n")


# ---- 12. plot details ----------------------------------------------------------------------------------------------

def test_learning_curve_has_whole_epoch_ticks(monkeypatch):
    from kfold import figures

    figs = captured_figure(monkeypatch, figures)
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "train_accuracy": [0.5, 0.7],
                            "val_accuracy": [0.4, 0.6]})
    figures.plot_learning_curve(history, "x.png")
    for ax in figs[0].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    matplotlib.pyplot.close("all")


def test_confusion_title_names_the_kept_epoch():
    source = (REPO / "kfold" / "nn" / "fold.py").read_text()
    assert "best epoch {result.best_epoch}" not in source
    assert 'title=f"{desc} validation (kept the {cfg.keep} epoch, {result.best_epoch} of {cfg.epochs})"' in source


def test_mean_and_vote_agreement_heatmaps_have_different_titles(tmp_path, monkeypatch):
    from kfold.scoring import report
    from kfold.scoring.ensemble import combine
    from kfold.files.probs import write_probs

    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"m{k}.npz")
        write_probs(paths[-1], range(30), rng.dirichlet(np.ones(4), 30), list("abcd"), {"kind": "test"})
    titles = []
    from kfold import figures

    monkeypatch.setattr(figures, "agreement_heatmap", lambda *args, title="", **kwargs: titles.append(title))
    for method in ("mean", "vote"):
        report.write_agreement_report(combine(paths, method=method), tmp_path / method)
    assert len(set(titles)) == 2 and "mean" in titles[0] and "vote" in titles[1]


def test_one_epoch_mnist_mix_history_is_bars_from_zero(monkeypatch):
    pytest.importorskip("torch")
    from kfold.nn.experiments import figures

    figs = captured_figure(monkeypatch, figures)
    part = pd.DataFrame({"epoch": [1], "ff-2x100": [0.91], "resnet8": [0.95]})
    figures.accuracy_curves({"overall": part}, "epoch", ["ff-2x100", "resnet8"], "h.png", "test accuracy per epoch", "epoch")
    ax = figs[0].axes[0]
    assert len(ax.patches) == 2 and ax.get_xlim()[0] == 0  # bars with a zero origin, not two dots on 0.96-1.04
    assert "epoch 1" in ax.get_title()
    two = pd.DataFrame({"epoch": [1, 2], "ff-2x100": [0.9, 0.93], "resnet8": [0.94, 0.95]})
    figures.accuracy_curves({"overall": two}, "epoch", ["ff-2x100", "resnet8"], "h.png", "t", "epoch")
    assert len(figs[1].axes[0].lines) == 2
    matplotlib.pyplot.close("all")


def test_comparison_shows_points_with_intervals_not_bars_from_a_zoomed_origin(monkeypatch):
    from kfold.flows import compare

    figs = captured_figure(monkeypatch, compare)
    table = pd.DataFrame({"entry": ["best", "report-vote4"], "private": [0.99, 0.98], "private_std": [0.002, np.nan]})
    compare.plot_comparison(table, Path("c.png"))
    ax = figs[0].axes[0]
    assert not [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]  # no bars
    assert "not from 0" in ax.get_xlabel()
    matplotlib.pyplot.close("all")


def test_quick_mnist_mix_uses_small_models():
    pytest.importorskip("torch")
    from kfold.nn.experiments import compare, schedules, transfer

    for module in (compare, schedules, transfer):
        assert module.QUICK_MODELS and all(m.startswith("ff-") or m == "resnet8" for m in module.QUICK_MODELS)


# ---- 13. seconds -------------------------------------------------------------------------------------------------

def test_fold_table_prints_seconds_with_one_decimal(capsys):
    pytest.importorskip("torch")
    from kfold.flows.training import format_summary

    print(format_summary({"folds": [{"fold": 0, "best_epoch": 3, "val_accuracy": 0.91234, "val_loss": 0.3, "seconds": 161.934}],
                          "train_seconds": 161.934}))
    out = capsys.readouterr().out
    assert "161.9" in out and "161.934" not in out and "0.9123" in out


def test_experiment_tables_print_seconds_sensibly():
    pytest.importorskip("torch")
    from kfold.nn.experiments.common import console_table

    text = console_table(pd.DataFrame({"model": ["a", "b"], "train_seconds": [0.0364, 161.934], "overall": [0.45, 0.5]}))
    assert "0.04" in text and "161.9" in text and "161.934" not in text and "0.4500" in text
