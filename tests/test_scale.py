"""Issue 16 (scoring at scale) and the scoring items of issue 14: paired comparisons, Overall column,
side probability files, data fingerprints, canonical vote tie-breaks, Ignored rows in reports, seeds,
empty generated splits, the bootstrap and agreement shortcuts against their plain definitions."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from kfold.commands.ensemble import main as ensemble_main
from kfold.commands.main import main as kfold_main
from kfold.errors import DataError, UsageError, run_cli
from kfold.files.probs import write_probs
from kfold.scoring.ensemble import combine
from kfold.scoring.leaderboard import (bootstrap_counts, bootstrap_means, leaderboard, leaderboard_markdown,
                                       mcnemar_exact, read_solution, write_leaderboard)
from kfold.scoring.report import agreement_counts, cluster_order


def _sub(path, ids, categories):
    pd.DataFrame({"Id": ids, "Category": categories}).to_csv(path, index=False)
    return path


def _solution(path, labels, usage=None):
    frame = pd.DataFrame({"Id": np.arange(len(labels)), "Category": labels})
    if usage is not None:
        frame["Usage"] = usage
    frame.to_csv(path, index=False)
    return path


def _one_line_error(capsys, fragment):
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------- paired comparisons


@pytest.fixture
def planted(tmp_path):
    """3,000 rows (1,000 Public / 2,000 Private); 'base' 95% right, 'worse' = base with 2% more rows wrong."""
    rng = np.random.default_rng(0)
    n = 3000
    labels = rng.integers(0, 10, n)
    usage = np.where(np.arange(n) % 3 == 0, "Public", "Private")
    solution = _solution(tmp_path / "solution.csv", labels, usage)
    base = labels.copy()
    wrong = rng.choice(n, 150, replace=False)
    base[wrong] = (labels[wrong] + 1) % 10
    worse = base.copy()
    right_rows = np.setdiff1d(np.arange(n), wrong)
    extra = rng.choice(right_rows, 60, replace=False)  # 2% of 3,000 rows, spread over both splits
    worse[extra] = (labels[extra] + 2) % 10
    return solution, labels, usage, _sub(tmp_path / "base.csv", np.arange(n), base), \
        _sub(tmp_path / "worse.csv", np.arange(n), worse)


def test_a_submission_compared_with_itself_is_never_significant(planted, tmp_path):
    solution, _, _, base, _ = planted
    copy = shutil.copyfile(base, tmp_path / "copy.csv")
    for seed in range(5):
        table = leaderboard([base, copy], read_solution(solution), n_bootstrap=300, seed=seed)
        for split in ("public", "private"):
            assert (table[f"{split}_diff"] == 0).all() and (table[f"{split}_p"] == 1.0).all()
            assert (table[f"{split}_diff_low"] == 0).all() and (table[f"{split}_diff_high"] == 0).all()
            assert not table[f"{split}_significant"].any()


def test_a_planted_two_percent_difference_on_3000_rows_is_significant(planted):
    solution, _, usage, base, worse = planted
    table = leaderboard([worse, base], read_solution(solution), n_bootstrap=1000)
    assert table["submission"].iloc[0].endswith("base.csv")  # the best Public one is the reference, listed first
    row = table.set_index(table["submission"].str.rsplit("/", n=1).str[-1]).loc["worse.csv"]
    overall_diff = row["public_diff"] * 1000 / 3000 + row["private_diff"] * 2000 / 3000
    assert overall_diff == pytest.approx(-0.02)
    assert row["private_significant"] and row["private_p"] < 1e-6
    assert row["private_diff_high"] < 0 < -row["private_diff_low"]
    markdown = leaderboard_markdown(table)
    assert "| public vs #1 (95% CI) | private vs #1 (95% CI) |" in markdown.splitlines()[0]
    worse_line = next(line for line in markdown.splitlines() if "worse.csv" in line)
    assert worse_line.count(" *") >= 1 and "McNemar" in markdown


def test_mcnemar_exact_equals_scipy_binomtest():
    for wins, losses in [(0, 0), (0, 1), (1, 0), (3, 3), (0, 60), (60, 0), (7, 19), (140, 160), (500, 430), (2, 2000)]:
        expected = binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else 1.0
        assert mcnemar_exact(np.array([wins]), np.array([losses]))[0] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_shared_bootstrap_equals_the_plain_definition():
    rng = np.random.default_rng(3)
    n = 700
    correct = rng.random((6, n)) < np.array([0.99, 0.9, 0.5, 0.2, 1.0, 0.0])[:, None]
    means = bootstrap_means(correct, 250, np.random.default_rng(11))
    draws = np.concatenate(list(bootstrap_counts(n, 250, np.random.default_rng(11))))
    np.testing.assert_allclose(means, draws @ correct.T.astype(np.float64) / n, atol=1e-12)
    dense = bootstrap_means(rng.random((3, n)) < 0.5, 50, np.random.default_rng(0))  # the matrix-product path
    assert dense.shape == (50, 3) and (0 <= dense).all() and (dense <= 1).all()
    # one resampling shared by all: identical submissions get identical resamples
    twins = np.vstack([correct[1], correct[1]])
    boot = bootstrap_means(twins, 100, np.random.default_rng(0))
    np.testing.assert_array_equal(boot[:, 0], boot[:, 1])


def test_overall_column_scores_public_and_private_rows_only(tmp_path):
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    usage = ["Public", "Public", "Private", "Private", "Private", "Ignored", "Ignored", "Private"]
    solution = _solution(tmp_path / "solution.csv", labels, usage)
    guess = labels.copy()
    guess[[0, 2, 5, 6]] = (guess[[0, 2, 5, 6]] + 1) % 3  # wrong on 1 Public, 1 Private, 2 Ignored rows
    table = leaderboard([_sub(tmp_path / "s.csv", np.arange(8), guess)], read_solution(solution), n_bootstrap=50)
    assert table.loc[0, "public"] == 0.5 and table.loc[0, "private"] == 0.75
    assert table.loc[0, "overall"] == pytest.approx(4 / 6) and table.loc[0, "n_overall"] == 6
    assert table.loc[0, "overall_low"] <= table.loc[0, "overall"] <= table.loc[0, "overall_high"]
    assert "| overall (95% CI) |" in leaderboard_markdown(table).splitlines()[0]


def test_leaderboard_png_is_bounded(planted, tmp_path):
    solution, _, _, base, worse = planted
    table = leaderboard([base, worse] * 1, read_solution(solution), n_bootstrap=100)
    big = pd.concat([table] * 100, ignore_index=True)  # 200 rows
    big["submission"] = [f"s{i}.csv" for i in range(len(big))]
    write_leaderboard(big, tmp_path / "board", plot=True)
    from matplotlib.image import imread

    height, width = imread(tmp_path / "board" / "leaderboard.png").shape[:2]
    assert height <= 1400 and width <= 1400


# ---------------------------------------------------------------- log loss from OUT.probs.npz


def test_leaderboard_reads_the_ensembles_side_probability_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    solution = _solution(tmp_path / "solution.csv", labels, ["Public"] * 12 + ["Private"] * 28)
    inputs = []
    for k in range(2):
        p = rng.dirichlet(np.ones(3), 40)
        p[np.arange(40), labels] += 1.0
        write_probs(tmp_path / f"m{k}.npz", np.arange(40), p / p.sum(1, keepdims=True), list("abc"), {"kind": "test"})
        inputs.append(str(tmp_path / f"m{k}.npz"))
    out = tmp_path / "ens.csv"
    assert ensemble_main([*inputs, "--out", str(out)]) == 0
    table = leaderboard([out, tmp_path / "ens.probs.npz"], read_solution(solution), n_bootstrap=50)
    by_name = table.set_index("submission")
    csv_row, npz_row = by_name.loc[str(out)], by_name.loc[str(tmp_path / "ens.probs.npz")]
    assert np.isfinite(csv_row["private_logloss"]) and csv_row["logloss_from"].endswith("ens.probs.npz")
    for split in ("public", "private", "overall"):
        assert csv_row[f"{split}_logloss"] == pytest.approx(npz_row[f"{split}_logloss"])
    # a stale side file (predictions differ from the CSV's) is refused in one line
    _sub(out, np.arange(40), (pd.read_csv(out)["Category"] + 1) % 3)
    capsys.readouterr()
    assert kfold_main(["leaderboard", "--solution", str(solution), str(out), "--out", str(tmp_path / "b")]) == 1
    _one_line_error(capsys, "ens.probs.npz: predicts class")


# ---------------------------------------------------------------- issue 14: fingerprints, ties, Ignored, seeds, splits


def _probs_file(path, ids, probs, meta):
    write_probs(path, ids, probs, list("abc"), {"kind": "test", **meta})
    return path


def test_probability_files_of_different_data_are_not_mixed(tmp_path, capsys):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 10)
    a = _probs_file(tmp_path / "a.npz", range(10), p, {"task": "kmnist", "fingerprint": "aaaa"})
    b = _probs_file(tmp_path / "b.npz", range(10), p, {"task": "kmnist", "fingerprint": "bbbb"})
    c = _probs_file(tmp_path / "c.npz", range(10), p, {"task": "mnist-mix", "fingerprint": "aaaa"})
    same = _probs_file(tmp_path / "same.npz", range(10), p, {"task": "kmnist", "fingerprint": "aaaa"})
    assert combine([a, same], "mean").meta["fingerprint"] == "aaaa"
    for other, what in ((b, "task kmnist, fingerprint bbbb"), (c, "task mnist-mix, fingerprint aaaa")):
        with pytest.raises(DataError, match=f"predicted on other data \\({what}"):
            combine([a, other], "mean")
        assert run_cli(ensemble_main, [str(a), str(other), "--out", str(tmp_path / "o.csv")]) == 1
        _one_line_error(capsys, "refusing to mix them")
        assert not (tmp_path / "o.csv").exists()
    solution = _solution(tmp_path / "solution.csv", np.zeros(10, int), ["Public"] * 3 + ["Private"] * 7)
    assert kfold_main(["leaderboard", "--solution", str(solution), str(a), str(b), "--out", str(tmp_path / "lb")]) == 1
    _one_line_error(capsys, "b.npz: predicted on other data")
    assert not (tmp_path / "lb").exists()


def test_vote_tie_breaks_follow_ids_not_row_or_input_order(tmp_path):
    rng = np.random.default_rng(0)
    n = 64
    ids = np.arange(100, 100 + n)
    first, second = rng.integers(0, 4, n), rng.integers(0, 4, n)  # two inputs: every disagreement is a tie
    a = _sub(tmp_path / "a.csv", ids, first)
    perm = rng.permutation(n)
    b_shuffled = _sub(tmp_path / "b.csv", ids[perm], second[perm])
    b = _sub(tmp_path / "b_sorted.csv", ids, second)
    ref = combine([a, b], "vote", seed=5, num_classes=4)
    assert ref.tied_rows > 20
    expected = dict(zip(ref.ids.tolist(), ref.categories.tolist()))
    for inputs in ([a, b_shuffled], [b_shuffled, a], [b, a]):
        ens = combine(inputs, "vote", seed=5, num_classes=4)
        assert dict(zip(ens.ids.tolist(), ens.categories.tolist())) == expected


def test_report_with_solution_skips_ignored_rows_like_the_leaderboard(tmp_path):
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    usage = ["Public", "Private", "Private", "Ignored", "Ignored", "Ignored", "Public", "Private", "Private", "Private"]
    solution = _solution(tmp_path / "solution.csv", labels, usage)
    wrong_on_ignored = labels.copy()
    wrong_on_ignored[[3, 4, 5]] = (labels[[3, 4, 5]] + 1) % 3
    a = _sub(tmp_path / "a.csv", np.arange(10), wrong_on_ignored)
    b = _sub(tmp_path / "b.csv", np.arange(10), wrong_on_ignored)
    report = tmp_path / "report"
    assert ensemble_main([str(a), str(b), "--method", "vote", "--out", str(tmp_path / "v.csv"), "--solution",
                          str(solution), "--report", str(report)]) == 0
    inputs = pd.read_csv(report / "inputs.csv")
    board = leaderboard([a], read_solution(solution), n_bootstrap=20)
    assert inputs["accuracy"].tolist() == [1.0, 1.0] == [board.loc[0, "overall"]] * 2
    text = (report / "report.md").read_text()
    assert "- ensemble accuracy: 1.0000" in text and "- scored rows: 7" in text
    assert "a.csv, b.csv (byte-identical files)" in text


@pytest.mark.parametrize("argv", [
    ["ensemble", "A", "B", "--method", "vote", "--seed", "-1", "--out", "OUT"],
    ["ensemble", "A", "B", "--method", "vote", "--seed", str(2**32), "--out", "OUT"],
    ["leaderboard", "--solution", "SOL", "A", "--seed", "-3", "--out", "OUTDIR"],
    ["leaderboard", "--solution", "SOL", "A", "--seed", str(2**40), "--out", "OUTDIR"],
])
def test_seeds_outside_the_uint32_range_are_a_usage_error(tmp_path, capsys, argv):
    a = _sub(tmp_path / "a.csv", range(4), [0, 1, 0, 1])
    b = _sub(tmp_path / "b.csv", range(4), [0, 1, 1, 1])
    sol = _solution(tmp_path / "sol.csv", np.array([0, 1, 0, 1]), ["Public", "Private"] * 2)
    names = {"A": a, "B": b, "SOL": sol, "OUT": tmp_path / "o" / "v.csv", "OUTDIR": tmp_path / "o"}
    assert kfold_main([str(names.get(x, x)) for x in argv]) == 2
    _one_line_error(capsys, "is not an integer in 0..4294967295")
    assert not (tmp_path / "o").exists()
    with pytest.raises(UsageError):
        combine([a, b], "vote", seed=-1)


@pytest.mark.parametrize("rows, fraction, part", [(1, None, "Public"), (60, "0.005", "Public"), (60, "0.999", "Private")])
def test_a_generated_split_with_an_empty_part_is_one_error_line(tmp_path, capsys, rows, fraction, part):
    sol = _solution(tmp_path / "sol.csv", np.zeros(rows, int))
    sub = _sub(tmp_path / "s.csv", range(rows), np.zeros(rows, int))
    argv = ["leaderboard", "--solution", str(sol), str(sub), "--out", str(tmp_path / "o")]
    assert kfold_main(argv + (["--public-fraction", fraction] if fraction else [])) == 2
    _one_line_error(capsys, f"leaves no {part} rows")
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- report at scale


def test_agreement_counts_and_clustering_match_the_plain_definitions():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 5, 300)
    preds = np.array([np.where(rng.random(300) < 0.1 * (k % 4), rng.integers(0, 5, 300), base) for k in range(12)])
    plain = np.array([[np.sum(p == q) for q in preds] for p in preds])
    np.testing.assert_array_equal(agreement_counts(preds), plain)
    many = rng.integers(0, 300, (5, 50))  # the wide-class path
    np.testing.assert_array_equal(agreement_counts(many), [[np.sum(p == q) for q in many] for p in many])
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from scipy.spatial.distance import squareform

    matrix = plain / 300
    order, clusters = cluster_order(matrix, max_clusters=3)
    tree = linkage(squareform(np.clip(1 - matrix, 0, None), checks=False), method="average")
    np.testing.assert_array_equal(order, leaves_list(tree))
    reference = fcluster(tree, 3, criterion="maxclust")
    assert all((clusters[i] == clusters[j]) == (reference[i] == reference[j]) for i in range(12) for j in range(12))


def test_report_of_200_inputs_is_bounded_and_flags_identical_inputs(tmp_path):
    rng = np.random.default_rng(0)
    n_rows, truth = 500, rng.integers(0, 10, 500)
    paths = []
    for k in range(200):
        path = tmp_path / f"s{k:03d}.csv"
        if k % 50 == 49:
            shutil.copyfile(paths[-1], path)
        else:
            family = k % 5
            guess = np.where(rng.random(n_rows) < 0.02 + 0.02 * family, (truth + 1 + family) % 10, truth)
            _sub(path, range(n_rows), guess)
        paths.append(path)
    report = tmp_path / "report"
    assert ensemble_main([*map(str, paths), "--method", "vote", "--out", str(tmp_path / "v.csv"),
                          "--report", str(report), "--plot"]) == 0
    from matplotlib.image import imread

    height, width = imread(report / "agreement.png").shape[:2]
    assert height <= 1400 and width <= 1600
    inputs = pd.read_csv(report / "inputs.csv", keep_default_na=False)
    assert sorted(inputs["heatmap_position"]) == list(range(1, 201)) and inputs["cluster"].min() == 1
    assert inputs.loc[49, "identical_to"] == "s048.csv" and inputs.loc[0, "identical_to"] == ""
    text = (report / "report.md").read_text()
    assert "s048.csv, s049.csv (byte-identical files)" in text
    assert len(text) < 60_000  # no 201 x 201 Markdown matrix


def test_scale_benchmark_smoke(shared_data, tmp_path):
    """benchmarks/scale.py generates its inputs from the competition data and times a command with its floor."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("scale", Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py")
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    assert scale.main(["--data", str(shared_data), "--work", str(tmp_path), "--inputs", "3", "--rows", "3000",
                       "--repeats", "1", "--mix-files", "0", "--only", "validate,leaderboard"]) == 0
    results = json.loads((tmp_path / "scale-results.json").read_text())["results"]
    assert [r["command"] for r in results] == ["validate", "leaderboard"]
    assert all(r["floor_s"][0] > 0 and r["command_s"][0] > 0 and r["peak_mb"][0] > 10 for r in results)
    subs = [pd.read_csv(tmp_path / f"sub{k:03d}.csv") for k in range(3)]
    assert all(len(sub) == 3000 for sub in subs) and not subs[0].equals(subs[1])
