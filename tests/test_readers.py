"""Other tools' files (probability CSVs without kfold's marker, .npy with --ids), log-probabilities, the
fast submission reader (same answers as the strict one), and the rank ensemble."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from kfold.commands.ensemble import main as ensemble_main
from kfold.commands.main import main as kfold_main
from kfold.errors import DataError, KfoldError
from kfold.files.probs import read_probs, write_probs
from kfold.files.readers import read_foreign_csv, read_npy, read_submission_fast
from kfold.files.submission import read_submission
from kfold.scoring.ensemble import average_ranks, combine, load_input


def _probs(n, c, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(c), n).astype(np.float32)


def test_foreign_csv_with_positional_class_headers_lines_up_with_kfold_files(tmp_path):
    p, q = _probs(20, 3, 0), _probs(20, 3, 1)
    write_probs(tmp_path / "k.npz", range(20), p, ["o", "ki", "su"], {"kind": "test"})
    frame = pd.DataFrame(q, columns=["0", "1", "2"])
    frame.insert(0, "Id", np.arange(20)[::-1])
    frame.to_csv(tmp_path / "other.csv", index=False)
    item = load_input(tmp_path / "other.csv")
    assert item.classes == ["0", "1", "2"] and item.meta["positional_classes"]
    ens = combine([tmp_path / "k.npz", tmp_path / "other.csv"], "mean")
    assert ens.classes == ["o", "ki", "su"]
    np.testing.assert_allclose(ens.probs, (p + q[::-1]) / 2, atol=1e-6)


def test_foreign_csv_with_class_names_in_another_order_is_reordered(tmp_path):
    p = _probs(10, 3, 0)
    write_probs(tmp_path / "k.npz", range(10), p, ["a", "b", "c"], {"kind": "test"})
    frame = pd.DataFrame({"Id": range(10), "c": p[:, 2], "a": p[:, 0], "b": p[:, 1]})
    frame.to_csv(tmp_path / "other.csv", index=False)
    ens = combine([tmp_path / "k.npz", tmp_path / "other.csv"], "mean")
    np.testing.assert_allclose(ens.probs, p, atol=1e-6)
    frame.rename(columns={"c": "z"}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="bad.csv: classes differ from .*k.npz at column 0"):
        combine([tmp_path / "k.npz", tmp_path / "bad.csv"], "mean")


def test_npy_needs_ids_and_reads_with_them(tmp_path, capsys):
    p = _probs(12, 4, 0)
    np.save(tmp_path / "m.npy", p)
    ids = np.arange(100, 112)
    pd.DataFrame({"Id": ids, "Category": 0}).to_csv(tmp_path / "sample.csv", index=False)
    with pytest.raises(DataError, match="m.npy: a .npy file holds no Ids: give them with ids=FILE"):
        load_input(tmp_path / "m.npy")
    got = read_npy(tmp_path / "m.npy", ids)
    np.testing.assert_array_equal(got.ids, ids)
    np.testing.assert_allclose(got.probs, p)
    out = tmp_path / "e.csv"
    assert ensemble_main([str(tmp_path / "m.npy"), str(tmp_path / "m.npy"), "--out", str(out), "--sample",
                          str(tmp_path / "sample.csv")]) == 0
    assert pd.read_csv(out)["Category"].tolist() == p.argmax(1).tolist()
    np.save(tmp_path / "ids.npy", ids)
    assert kfold_main(["validate", str(tmp_path / "m.npy"), "--ids", str(tmp_path / "ids.npy")]) == 0
    assert "m.npy: probability file (test), 12 rows x 4 classes" in capsys.readouterr().out
    assert kfold_main(["validate", str(tmp_path / "m.npy")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--ids FILE" in err
    np.save(tmp_path / "short.npy", ids[:5])
    with pytest.raises(DataError, match="12 rows but ids/sample gives 5 Ids"):
        read_npy(tmp_path / "m.npy", np.load(tmp_path / "short.npy"))
    np.save(tmp_path / "flat.npy", p.ravel())
    with pytest.raises(DataError, match="expected a 2-D float array"):
        read_npy(tmp_path / "flat.npy", ids)


def test_csv_without_id_column_names_what_is_missing(tmp_path):
    pd.DataFrame(_probs(5, 3, 0), columns=["0", "1", "2"]).to_csv(tmp_path / "noid.csv", index=False)
    with pytest.raises(DataError, match="noid.csv: no Id column .*give the row Ids with ids=FILE or sample"):
        load_input(tmp_path / "noid.csv")
    assert read_foreign_csv(tmp_path / "noid.csv", ids=np.arange(5)).ids.tolist() == [0, 1, 2, 3, 4]
    (tmp_path / "odd.csv").write_text("Id,Label,Extra\n0,1,2\n")
    with pytest.raises(DataError, match="odd.csv: line 2 \\(Id 0\\): probabilities sum to 3, not 1"):
        load_input(tmp_path / "odd.csv")


def test_log_probabilities_are_recognised_and_read_with_the_flag(tmp_path, capsys):
    p = _probs(8, 3, 0)
    frame = pd.DataFrame(np.log(p), columns=["0", "1", "2"])
    frame.insert(0, "Id", range(8))
    frame.to_csv(tmp_path / "logp.csv", index=False)
    with pytest.raises(DataError, match="look like log-probabilities .*pass log_probs=True"):
        load_input(tmp_path / "logp.csv")
    np.testing.assert_allclose(load_input(tmp_path / "logp.csv", log_probs=True).probs, p, rtol=1e-5)
    write_probs(tmp_path / "k.npz", range(8), p, ["a", "b", "c"], {"kind": "test"})
    np.savez(tmp_path / "klog.npz", **{k: v for k, v in np.load(tmp_path / "k.npz").items() if k != "probs"},
             probs=np.log(p))
    with pytest.raises(DataError, match="pass log_probs=True"):
        read_probs(tmp_path / "klog.npz")
    np.testing.assert_allclose(read_probs(tmp_path / "klog.npz", log_probs=True).probs, p, rtol=1e-5)
    assert kfold_main(["validate", str(tmp_path / "logp.csv")]) == 1
    assert "pass --log-probs" in capsys.readouterr().err
    assert kfold_main(["validate", "--log-probs", str(tmp_path / "logp.csv")]) == 0
    with pytest.raises(DataError, match="is not a log-probability \\(log_probs=True given\\)"):
        load_input(tmp_path / "k.npz", log_probs=True)


def _rank_of(arrays):
    return (sum(average_ranks(np.asarray(a, dtype=np.float64)) for a in arrays)).argmax(1)


def test_rank_is_the_mean_of_per_class_ranks_and_ignores_calibration():
    from kfold.files.probs import ProbFile

    def pf(p, ids=None):
        p = np.asarray(p, dtype=np.float32)
        return ProbFile(ids=np.arange(len(p)) if ids is None else np.asarray(ids), probs=p, classes=["a", "b", "c"],
                        meta={"kind": "test"})

    np.testing.assert_array_equal(average_ranks(np.array([[0.1], [0.5], [0.5], [0.2]])), [[1], [3.5], [3.5], [2]])
    a, b = _probs(50, 3, 1), _probs(50, 3, 2)
    ranks = (average_ranks(a) + average_ranks(b)) / 2
    ens = combine([pf(a), pf(b)], "rank")
    np.testing.assert_array_equal(ens.categories, ranks.argmax(1))
    assert ens.probs is None and ens.method == "rank"
    # calibration does not matter: a monotone map of each class column keeps every rank (not a probability
    # file any more, so compared through the ranks directly)
    recalibrated = np.sqrt(a) * np.array([0.5, 1.0, 2.0])
    np.testing.assert_array_equal(_rank_of([recalibrated, b]), ens.categories)
    perm = np.random.default_rng(0).permutation(50)
    shuffled = combine([pf(a[perm], ids=perm), pf(b)], "rank")
    np.testing.assert_array_equal(shuffled.categories, ens.categories[perm])  # rows follow the first input


def test_rank_cli_writes_no_probability_file(tmp_path):
    for k in range(2):
        write_probs(tmp_path / f"m{k}.npz", range(10), _probs(10, 3, k), list("abc"), {"kind": "test"})
    out = tmp_path / "r.csv"
    assert ensemble_main([str(tmp_path / "m0.npz"), str(tmp_path / "m1.npz"), "--method", "rank", "--out", str(out)]) == 0
    assert out.exists() and not (tmp_path / "r.probs.npz").exists()


# ---------------------------------------------------------------- fast submission reader


def _strict_or_error(reader, path):
    try:
        sub = reader(path, num_classes=10)
        return ("ok", sub.ids.tolist(), sub.categories.tolist())
    except KfoldError as exc:
        return ("error", type(exc).__name__, str(exc))


LINES = st.one_of(
    st.tuples(st.integers(-5, 40), st.integers(-2, 12)).map(lambda t: f"{t[0]},{t[1]}"),
    st.sampled_from(["", "3.0,1", "4,x", "5,1,2", ",1", "1,", " 7,1", "8, 1", '"9",1', "-,1", "10-,1", "007,3",
                     "99999999999999999999,1", "1e3,1", "12\r"]),
)


@settings(max_examples=300, deadline=None)
@given(header=st.sampled_from(["Id,Category", "\ufeffId,Category", "Id,Cat", "Id,Category,Usage"]),
       lines=st.lists(LINES, max_size=8), crlf=st.booleans(), final_newline=st.booleans())
def test_fast_submission_reader_gives_the_strict_readers_answers(tmp_path_factory, header, lines, crlf, final_newline):
    path = tmp_path_factory.mktemp("fast") / "s.csv"
    end = "\r\n" if crlf else "\n"
    text = end.join([header, *lines]) + (end if final_newline else "")
    path.write_bytes(text.encode("utf-8"))
    assert _strict_or_error(read_submission_fast, path) == _strict_or_error(read_submission, path)
