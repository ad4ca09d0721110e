"""Local leaderboard: solution files, Public/Private scores, bootstrap intervals, ranks, CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from kfold.commands.main import main as kfold_main
from kfold.errors import DataError, UsageError
from kfold.scoring.leaderboard import (leaderboard, make_solution, random_usage, read_solution, score_submission,
                               write_leaderboard)
from kfold.files.probs import write_probs


def _submission(path, ids, categories):
    pd.DataFrame({"Id": ids, "Category": categories}).to_csv(path, index=False)
    return path


@pytest.fixture
def real_solution(kmnist_comp):
    return kmnist_comp / "solution.csv"


@pytest.fixture
def noisy(tmp_path, real_solution):
    """The real solution with 20% of the labels shifted by one class (seeded)."""
    truth = pd.read_csv(real_solution)
    flip = np.random.default_rng(0).random(len(truth)) < 0.2
    categories = truth["Category"].to_numpy().copy()
    categories[flip] = (categories[flip] + 1) % 10
    shuffled = np.random.default_rng(1).permutation(len(truth))  # row order must not matter
    return _submission(tmp_path / "noisy.csv", truth["Id"].to_numpy()[shuffled], categories[shuffled]), truth, flip


def test_real_solution_perfect_and_noisy(tmp_path, real_solution, noisy):
    noisy_path, truth, flip = noisy
    perfect = _submission(tmp_path / "perfect.csv", truth["Id"], truth["Category"])
    solution = read_solution(real_solution)
    assert (solution.public.sum(), solution.private.sum()) == (900, 2100) and not solution.split_generated

    best = score_submission(perfect, solution)
    assert best["public"] == best["private"] == 1.0
    assert best["public_low"] == best["public_high"] == 1.0
    assert best["n_public"] == 900 and np.isnan(best["public_logloss"])

    score = score_submission(noisy_path, solution)
    public = truth["Usage"].to_numpy() == "Public"
    assert score["public"] == pytest.approx(1 - flip[public].mean())
    assert score["private"] == pytest.approx(1 - flip[~public].mean())
    for split in ("public", "private"):
        assert score[f"{split}_low"] < score[split] < score[f"{split}_high"]
        assert score[f"{split}_high"] - score[f"{split}_low"] < 0.1  # about 4 standard errors at n >= 900
    assert score_submission(noisy_path, solution) == score  # seeded bootstrap

    table = leaderboard([noisy_path, perfect], solution)
    assert table["submission"].tolist() == [str(perfect), str(noisy_path)]
    assert table["public_rank"].tolist() == [1, 2] and table["rank_shift"].tolist() == [0, 0]


def test_probability_file_gets_log_loss(tmp_path, real_solution):
    truth = pd.read_csv(real_solution)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=len(truth)).astype(np.float32)
    path = tmp_path / "p.npz"
    write_probs(path, truth["Id"], probs, [str(i) for i in range(10)], {"kind": "test"})
    score = score_submission(path, read_solution(real_solution))
    private = truth["Usage"] == "Private"
    p64 = probs[private].astype(np.float64)
    assert score["private_logloss"] == pytest.approx(log_loss(truth["Category"][private], p64 / p64.sum(1, keepdims=True)))
    assert score["private"] == pytest.approx((probs[private].argmax(1) == truth["Category"][private]).mean())


def test_rank_shift_and_ties(tmp_path):
    solution_path = tmp_path / "solution.csv"
    # Ids 0-3 Public, 4-9 Private
    pd.DataFrame({"Id": range(10), "Category": [0] * 10,
                  "Usage": ["Public"] * 4 + ["Private"] * 6}).to_csv(solution_path, index=False)
    a = _submission(tmp_path / "a.csv", range(10), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # public 1.0, private 0
    b = _submission(tmp_path / "b.csv", range(10), [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # public .5, private 1
    c = _submission(tmp_path / "c.csv", range(10), [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # same as b
    table = leaderboard([a, b, c], read_solution(solution_path), n_bootstrap=200)
    assert table["submission"].str.endswith(("a.csv", "b.csv", "c.csv")).all()
    assert table["public_rank"].tolist() == [1, 2, 2]
    assert table["private_rank"].tolist() == [3, 1, 1]
    assert table["rank_shift"].tolist() == [-2, 1, 1]


def test_make_solution_split_is_seeded(tmp_path):
    ids, labels = np.arange(1000), np.arange(1000) % 10
    frame = make_solution(ids, labels, seed=3)
    assert list(frame.columns) == ["Id", "Category", "Usage"]
    assert (frame["Usage"] == "Public").sum() == 300 and frame["Category"].tolist() == labels.tolist()
    assert frame.equals(make_solution(ids, labels, seed=3))
    assert not frame["Usage"].equals(make_solution(ids, labels, seed=4)["Usage"])
    assert (make_solution(ids, labels, seed=3, public_fraction=0.5)["Usage"] == "Public").sum() == 500
    with pytest.raises(UsageError, match="public_fraction must be between 0 and 1"):
        make_solution(ids, labels, seed=0, public_fraction=1.0)
    with pytest.raises(DataError, match="row 2: duplicate Id 0"):
        make_solution([0, 1, 0], [1, 1, 1], seed=0)


def test_solution_without_usage_gets_the_make_solution_split(tmp_path):
    path = tmp_path / "solution.csv"
    pd.DataFrame({"Id": range(200), "Category": np.arange(200) % 3}).to_csv(path, index=False)
    solution = read_solution(path, public_fraction=0.25, seed=5)
    assert solution.split_generated and solution.public.sum() == 50
    np.testing.assert_array_equal(solution.usage, random_usage(200, 5, 0.25))
    np.testing.assert_array_equal(solution.usage, make_solution(range(200), np.zeros(200), seed=5,
                                                                public_fraction=0.25)["Usage"])


@pytest.mark.parametrize("text, message", [
    ("Id,Label,Split\n0,1,Public\n", "line 1: header 'Id,Label,Split': cannot tell the label column among 'Label', "
     "'Split' (a solution holds the Id column first, then one label column, then 'Usage'); keep one of them, or put a "
     "competition.json or the competition's sample_submission.csv and data beside it"),
    ("Id,Category,Usage\n0,1,Public\n1,1,Secret\n", "line 3 (Id 1), column 'Usage': 'Secret' is not one of Public, Private, Ignored"),
    ("Id,Category,Usage\n0,1,Public\n0,1,Private\n", "line 3: duplicate Id 0"),
    ("Id,Category,Usage\n0,1,Public\n1,-1,Private\n", "line 3 (Id 1): Category -1 is negative"),
    ("Id,Category,Usage\n0,1,Public\n1,1,Public\n", "no Private rows in the Usage column"),
    ("Id,Category,Usage\n0,1,Public\n\n1,1,Private\n", "line 3 is blank"),
    ("Id,Category,Usage\n", "no rows after the header"),
])
def test_malformed_solution(tmp_path, text, message):
    path = tmp_path / "solution.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_solution(path)
    assert str(err.value) == f"{path}: {message}"


def test_submission_must_cover_the_solution(tmp_path):
    path = tmp_path / "solution.csv"
    pd.DataFrame({"Id": range(4), "Category": 0, "Usage": ["Public", "Private"] * 2}).to_csv(path, index=False)
    sub = _submission(tmp_path / "s.csv", [0, 1, 2], [0, 0, 0])
    with pytest.raises(DataError, match="s.csv: Id 3 from the solution .* is missing"):
        score_submission(sub, path)
    probs = tmp_path / "p.npz"
    write_probs(probs, range(4), np.full((4, 2), 0.5), ["x", "y"], {"kind": "test"})
    pd.DataFrame({"Id": range(4), "Category": [0, 5, 0, 0], "Usage": ["Public", "Private"] * 2}).to_csv(path, index=False)
    with pytest.raises(DataError, match="p.npz: 2 classes but the solution has Category 5"):
        score_submission(probs, path)


def test_write_leaderboard_and_cli(tmp_path, real_solution, noisy, capsys):
    noisy_path, truth, _ = noisy
    perfect = _submission(tmp_path / "perfect.csv", truth["Id"], truth["Category"])
    out = tmp_path / "board"
    assert kfold_main(["leaderboard", "--solution", str(real_solution), "--bootstrap", "200", "--out", str(out),
                       str(noisy_path), str(perfect)]) == 0
    table = pd.read_csv(out / "leaderboard.csv")
    assert {"submission", "public", "private", "public_low", "private_high", "rank_shift",
            "public_logloss"} <= set(table.columns)
    assert table.loc[0, "public"] == 1.0 and table.loc[0, "submission"].endswith("perfect.csv")
    markdown = (out / "leaderboard.md").read_text()
    assert markdown.splitlines()[0].startswith("| # | submission | public (95% CI) | private (95% CI)")
    assert "| perfect.csv | 1.0000 [1.0000, 1.0000] |" in markdown
    assert markdown in capsys.readouterr().out
    assert write_leaderboard(leaderboard([perfect], read_solution(real_solution), 50), tmp_path) == \
        (tmp_path / "leaderboard.md").read_text()


def test_cli_leaderboard_errors(tmp_path, capsys):
    solution = tmp_path / "solution.csv"
    solution.write_text("Id,Category\n0,1\n1,1\n")
    sub = _submission(tmp_path / "s.csv", [0, 1], [1, 1])
    assert kfold_main(["leaderboard", "--solution", str(solution), "--public-fraction", "2", str(sub),
                       "--out", str(tmp_path / "o")]) == 2
    assert "argument --public-fraction: '2' is not a finite number in (0, 1)" in capsys.readouterr().err
    bad = _submission(tmp_path / "bad.csv", [0, 1], [1, "x"])
    assert kfold_main(["leaderboard", "--solution", str(solution), str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {bad}: line 3, column 'Category': 'x' is not an integer Category\n"
    assert not (tmp_path / "o").exists()


def test_single_row_split_has_a_degenerate_interval(tmp_path):
    """Found by hypothesis: scipy's bootstrap refuses one observation; the interval is then the value itself."""
    path = tmp_path / "solution.csv"
    path.write_text("Id,Category,Usage\n0,1,Public\n1,1,Private\n2,0,Private\n")
    score = score_submission(_submission(tmp_path / "s.csv", [0, 1, 2], [0, 1, 0]), path)
    assert (score["public"], score["public_low"], score["public_high"]) == (0.0, 0.0, 0.0)
    assert score["private"] == 1.0 and score["n_public"] == 1
