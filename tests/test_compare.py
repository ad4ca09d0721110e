"""compare.py: usage errors, the per-seed entries on hand-made probability files, and an end-to-end comparison
(two cheap presets, two seeds, 1 epoch) on a synthetic competition scored by its solution.csv; resume; folds check."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from kfold.commands import main as cli
from kfold.scoring.calibration import apply_temperature, fit_temperature
from kfold.commands.compare import main
from kfold.flows.compare import (AVG_ENTRY, FITTED_ENTRY, REPORT_AVG_PRESETS, REPORT_PRESETS, VOTE_ENTRY, Entry,
                                 comparison_markdown, comparison_table, score, seed_entries, write_board, write_entry)
from kfold.scoring.leaderboard import read_solution
from kfold.scoring.ensemble import combine
from kfold.errors import run_cli
from kfold.files.probs import read_probs, write_probs
from kfold.files.submission import read_submission
from synthetic import write_kmnist_comp

CHEAP = ["--k", "2", "--epochs", "1", "--device", "cpu", "--no-progress"]


def compare(*argv) -> int:
    return run_cli(main, [*map(str, argv), *CHEAP])


@pytest.mark.parametrize("argv, message", [
    (["--presets", "lenet5,no-such-preset"], "unknown preset 'no-such-preset'"),
    (["--presets", "lenet5,lenet5"], "'lenet5' is listed twice"),
    (["--presets", "lenet5,,ff-2x250"], "empty item"),
    (["--seeds", "0,x"], "'x' is not an integer in 0..4294967295"),
    (["--seeds", "0,-1"], "'-1' is not an integer in 0..4294967295"),
    (["--seeds", "1,01"], "'1,01': '01' is listed twice"),
    (["--presets", "lenet5", "--seed-ensembles", "ff-2x250"], "'ff-2x250' is not one of --presets"),
    (["--presets", "lenet5", "--k", "1"], "argument --k: '1' is not an integer in 2..10000"),
    (["--presets", "lenet5", "--tta", "0"], "argument --tta: '0' is not an integer >= 1"),
    (["--presets", "lenet5", "--epochs", "0"], "argument --epochs: '0' is not an integer >= 1"),
])
def test_usage_errors_name_the_value_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(main, ["--data", str(tmp_path / "missing"), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_kfold_compare_subcommand(tmp_path, capsys):
    assert cli.main(["compare", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--presets", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def _write(directory: Path, preset: str, test_probs: np.ndarray, oof_probs: np.ndarray, oof_labels: np.ndarray) -> None:
    classes = [str(c) for c in range(test_probs.shape[1])]
    write_probs(directory / f"{preset}-mean.npz", np.arange(len(test_probs)), test_probs, classes,
                {"kind": "test", "run": preset})
    write_probs(directory / f"{preset}-oof.npz", np.arange(len(oof_probs)), oof_probs, classes,
                {"kind": "oof", "run": preset}, labels=oof_labels)


def one_hot(classes, n_classes: int = 3, on: float = 0.8) -> np.ndarray:
    probs = np.full((len(classes), n_classes), (1 - on) / (n_classes - 1))
    probs[np.arange(len(classes)), classes] = on
    return probs


@pytest.fixture
def report_probs(tmp_path) -> Path:
    """Test predictions of the 4 report presets on 4 rows and OOF files where only alexnet7-adam is right.

    Row 0: three say 0, one says 1 -> vote 0. Row 1: 2-2 tie between classes 1 and 2. Rows 2, 3: unanimous.
    """
    rng = np.random.default_rng(0)
    oof_labels = rng.integers(0, 3, 30)
    predicted = {"alexnet5-sgd": [0, 1, 2, 0], "alexnet5-adam": [0, 1, 2, 0],
                 "alexnet7-sgd": [0, 2, 2, 0], "alexnet7-adam": [1, 2, 2, 0]}
    for preset, classes in predicted.items():
        test = one_hot(classes, on=rng.uniform(0.5, 0.9))
        oof = one_hot(oof_labels if preset == "alexnet7-adam" else (oof_labels + 1) % 3)
        _write(tmp_path, preset, test, oof, oof_labels)
    return tmp_path


def test_report_entries_vote_average_and_fitted_weights(report_probs):
    entries = {e.name: e for e in seed_entries(report_probs, list(REPORT_PRESETS), seed=3)}
    assert list(entries) == [*REPORT_PRESETS, VOTE_ENTRY, AVG_ENTRY, FITTED_ENTRY]
    # every preset's test probabilities are scaled by the temperature fitted on its own OOF file
    temperatures = {p: fit_temperature(read_probs(report_probs / f"{p}-oof.npz")) for p in REPORT_PRESETS}
    assert temperatures["alexnet7-adam"] < 1 < temperatures["alexnet5-sgd"]  # right out of fold: sharpen; wrong: flatten
    means = {p: apply_temperature(read_probs(report_probs / f"{p}-mean.npz").probs, temperatures[p]) for p in REPORT_PRESETS}
    for preset in REPORT_PRESETS:
        np.testing.assert_allclose(entries[preset].ensemble.probs, means[preset], atol=1e-6)
        assert entries[preset].ensemble.probs.argmax(1).tolist() == read_probs(report_probs / f"{preset}-mean.npz").predictions().tolist()
    vote = entries[VOTE_ENTRY]
    assert vote.ensemble.probs is None and vote.members == list(REPORT_PRESETS)
    assert vote.ensemble.categories[0] == 0 and vote.ensemble.categories[1] in (1, 2) and list(vote.ensemble.categories[2:]) == [2, 0]
    assert vote.ensemble.tied_rows == 1 and vote.ensemble.meta["seed"] == 3
    avg = entries[AVG_ENTRY]
    assert avg.members == list(REPORT_AVG_PRESETS)
    np.testing.assert_allclose(avg.ensemble.probs, (means["alexnet7-sgd"] + means["alexnet7-adam"]) / 2, atol=1e-6)
    fitted = entries[FITTED_ENTRY]  # only alexnet7-adam is right out of fold: it gets all the weight
    assert fitted.ensemble.meta["weights"] == [0.0, 0.0, 0.0, 1.0]
    np.testing.assert_allclose(fitted.ensemble.probs, means["alexnet7-adam"], atol=1e-6)


@pytest.mark.parametrize("presets, expected", [
    (list(REPORT_AVG_PRESETS), [*REPORT_AVG_PRESETS, AVG_ENTRY, FITTED_ENTRY]),
    (["alexnet5-sgd", "alexnet7-sgd"], ["alexnet5-sgd", "alexnet7-sgd", FITTED_ENTRY]),
    (["alexnet5-adam"], ["alexnet5-adam"]),
])
def test_entries_for_a_subset_of_presets(report_probs, presets, expected):
    assert [e.name for e in seed_entries(report_probs, presets, seed=0)] == expected


def test_write_entry_follows_the_sample_and_skips_probabilities_of_votes(report_probs, tmp_path):
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"Id": [3, 1, 0, 2], "Category": 0}).to_csv(sample, index=False)
    paths = [report_probs / f"{p}-mean.npz" for p in REPORT_PRESETS]
    vote = Entry("v", combine(paths, method="vote"), list(REPORT_PRESETS))
    assert write_entry(vote, tmp_path / "subs", sample) == tmp_path / "subs" / "v.csv"
    assert not (tmp_path / "subs" / "v.probs.npz").exists()
    mean = Entry("m", combine(paths), list(REPORT_PRESETS))
    scored = write_entry(mean, tmp_path / "subs", sample)
    assert scored == tmp_path / "subs" / "m.probs.npz"
    submission = read_submission(tmp_path / "subs" / "m.csv")
    assert list(submission.ids) == [3, 1, 0, 2]
    assert list(submission.categories) == list(read_probs(scored).probs.argmax(1)[[3, 1, 0, 2]])


def test_scoring_over_seeds_votes_have_no_log_loss(report_probs, tmp_path):
    solution = tmp_path / "solution.csv"
    pd.DataFrame({"Id": range(4), "Category": [0, 2, 2, 1], "Usage": ["Public", "Private", "Private", "Private"]}
                 ).to_csv(solution, index=False)
    boards, members = [], {}
    for seed in (0, 1):  # the seed only changes the vote's tie-break on row 1 (class 1 or 2)
        files = {}
        for entry in seed_entries(report_probs, list(REPORT_PRESETS), seed=seed):
            files[entry.name] = write_entry(entry, tmp_path / f"seed{seed}", None)
            members[entry.name] = entry.members
        board = score(files, read_solution(solution))
        markdown = write_board(board, tmp_path / f"seed{seed}")
        vote_line = next(line for line in markdown.splitlines() if f"| {VOTE_ENTRY} |" in line)
        assert vote_line.endswith("| n/a | n/a |") and markdown.count("n/a") == 2
        written = pd.read_csv(tmp_path / f"seed{seed}" / "leaderboard.csv").set_index("submission")
        assert np.isnan(written.loc[VOTE_ENTRY, "private_logloss"]) and written["private_logloss"].notna().sum() == len(written) - 1
        boards.append(board.assign(seed=seed))
    vote_private = [b.set_index("submission").loc[VOTE_ENTRY, "private"] for b in boards]
    seconds = pd.DataFrame([{"seed": s, "preset": p, "train_seconds": 10.0 * (i + 1) + s}
                            for s in (0, 1) for i, p in enumerate(REPORT_PRESETS)])
    table = comparison_table(pd.concat(boards, ignore_index=True), pd.DataFrame(), members, seconds).set_index("entry")
    assert table.loc[VOTE_ENTRY, "private"] == pytest.approx(np.mean(vote_private))
    assert table.loc[VOTE_ENTRY, "private_std"] == pytest.approx(np.std(vote_private, ddof=1))
    # alexnet7-adam is wrong on row 0 (Public) and right on rows 1-2 but not 3 (Private): 2/3 in both seeds
    assert table.loc["alexnet7-adam", "private"] == pytest.approx(2 / 3) and table.loc["alexnet7-adam", "public"] == 0
    assert table.loc[VOTE_ENTRY, "train_seconds"] == pytest.approx(10.5 + 20.5 + 30.5 + 40.5)
    assert table.loc[AVG_ENTRY, "train_seconds"] == pytest.approx(30.5 + 40.5)
    assert (table["n_seeds"] == 2).all() and np.isnan(table.loc[VOTE_ENTRY, "private_logloss"])
    vote_row = next(line for line in comparison_markdown(table.reset_index()).splitlines() if line.startswith(f"| {VOTE_ENTRY} |"))
    assert "| n/a |" in vote_row


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Path:
    return write_kmnist_comp(tmp_path_factory.mktemp("comp"), n_train=120, n_test=40, seed=1)


@pytest.fixture(scope="module")
def compared(comp, tmp_path_factory) -> tuple[Path, str]:
    """One comparison shared by the tests below: (output directory, what it printed)."""
    out = tmp_path_factory.mktemp("compare") / "out"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = compare("--data", comp, "--out", out, "--seeds", "0,1", "--presets", "lenet5,ff-2x250",
                     "--seed-ensembles", "lenet5")
    assert rc == 0
    return out, buffer.getvalue()


def private_scores(probs: np.ndarray, comp: Path) -> tuple[float, float]:
    solution = pd.read_csv(comp / "solution.csv")
    private = (solution["Usage"] == "Private").to_numpy()
    truth = solution["Category"].to_numpy()[private]
    probs = probs / probs.sum(axis=1, keepdims=True)  # float32 files: renormalised, as the leaderboard does
    return float((probs[private].argmax(1) == truth).mean()), float(log_loss(truth, probs[private], labels=range(10)))


def test_comparison_end_to_end(compared, comp):
    out, stdout = compared
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["entry"]) == {"lenet5", "ff-2x250", FITTED_ENTRY, "lenet5-seeds"}
    assert list(table["private"]) == sorted(table["private"], reverse=True)
    assert (table["n_seeds"] == 2).all() and table["private_logloss"].notna().all()
    rows = table.set_index("entry")
    # every preset of a seed shares the folds; the seeds split differently
    folds = {s: [pd.read_csv(out / f"seed{s}" / p / "folds.csv") for p in ("lenet5", "ff-2x250")] for s in (0, 1)}
    pd.testing.assert_frame_equal(*folds[0])
    pd.testing.assert_frame_equal(*folds[1])
    assert not folds[0][0]["fold"].equals(folds[1][0]["fold"])
    # scores recomputed from the probability files and solution.csv
    means = [apply_temperature(read_probs(out / f"seed{s}" / "probs" / "lenet5-mean.npz").probs,
                               fit_temperature(read_probs(out / f"seed{s}" / "probs" / "lenet5-oof.npz"))).astype(np.float64)
             for s in (0, 1)]  # temperature-scaled with the seed's own OOF
    accuracy, loss = np.mean([private_scores(m, comp) for m in means], axis=0)
    assert rows.loc["lenet5", "private"] == pytest.approx(accuracy)
    assert rows.loc["lenet5", "private_logloss"] == pytest.approx(loss, rel=1e-5)
    pooled = read_probs(out / "submissions" / "lenet5-seeds.probs.npz").probs
    np.testing.assert_allclose(pooled, (means[0] + means[1]) / 2, atol=1e-6)
    assert rows.loc["lenet5-seeds", "private"] == pytest.approx(private_scores(pooled, comp)[0])
    assert np.isnan(rows.loc["lenet5-seeds", "private_std"]) and rows.loc["lenet5", "private_std"] >= 0
    # training time from each run's summary.json
    seconds = {p: [json.loads((out / f"seed{s}" / p / "summary.json").read_text())["train_seconds"] for s in (0, 1)]
               for p in ("lenet5", "ff-2x250")}
    assert rows.loc["lenet5", "train_seconds"] == pytest.approx(np.mean(seconds["lenet5"]))
    assert rows.loc[FITTED_ENTRY, "train_seconds"] == pytest.approx(np.mean(seconds["lenet5"]) + np.mean(seconds["ff-2x250"]))
    assert rows.loc["lenet5-seeds", "train_seconds"] == pytest.approx(np.sum(seconds["lenet5"]))
    # per-seed submissions and leaderboards, the Markdown table printed and written, the chart
    for seed in (0, 1):
        board = pd.read_csv(out / f"seed{seed}" / "leaderboard.csv")
        assert set(board["submission"]) == {"lenet5", "ff-2x250", FITTED_ENTRY}
        assert {"public_low", "public_high", "private_low", "private_high"} <= set(board.columns)
        for entry in ("lenet5", "ff-2x250", FITTED_ENTRY):
            assert len(read_submission(out / f"seed{seed}" / "submissions" / f"{entry}.csv").ids) == 40
    markdown = (out / "comparison.md").read_text()
    assert markdown in stdout and markdown.count("\n") == 2 + len(table)
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_resumes_every_run_with_the_same_results(compared, comp, capsys):
    out, _ = compared
    before = pd.read_csv(out / "comparison.csv")
    assert compare("--data", comp, "--out", out, "--seeds", "0,1", "--presets", "lenet5,ff-2x250", "--seed-ensembles", "lenet5") == 0
    assert capsys.readouterr().out.count("already finished, skipping") == 2 * 2 * 2  # seeds x presets x folds
    pd.testing.assert_frame_equal(pd.read_csv(out / "comparison.csv"), before)


def test_runs_with_different_folds_are_refused(compared, comp, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(compared[0], out)
    path = out / "seed0" / "ff-2x250" / "folds.csv"
    folds = pd.read_csv(path)
    first_of = {f: int(folds.index[folds["fold"] == f][0]) for f in (0, 1)}
    folds.loc[[first_of[0], first_of[1]], "fold"] = [1, 0]
    folds.to_csv(path, index=False)
    assert compare("--data", comp, "--out", out, "--seeds", "0", "--presets", "lenet5,ff-2x250") == 1
    err = capsys.readouterr().err
    # an edited folds.csv is caught by the run's own fold-assignment hash, before any training or scoring
    assert f"{path}: the fold assignment was changed after the run was created" in err


def test_without_a_solution_nothing_is_scored(comp, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(comp, data)
    (data / "solution.csv").unlink()
    out = tmp_path / "out"
    assert compare("--data", data, "--out", out, "--seeds", "5", "--presets", "lenet5") == 0
    assert "no solution.csv: nothing to score" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "seed5" / "submissions").iterdir()) == ["lenet5.csv", "lenet5.probs.npz"]
    assert not (out / "comparison.csv").exists() and not (out / "seed5" / "leaderboard.csv").exists()
