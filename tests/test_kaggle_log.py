"""The submission log is read strictly and checked before anything is uploaded or written (issue 24, items 1-2).

A family of damaged logs (a trailing comma, a missing or extra field, a wrong header, a non-number, inf and
nan, a binary file, an empty file, a folder, a symlink, ...) goes through the real ``kfold submit`` and
``kfold submissions`` (the real kaggle client against the loopback fake; the first case of each command in a fresh
interpreter, the others in this process as a fresh ``python -m kfold`` would run them: ``tests/inproc.py``): one
``error:`` line naming the file, line and column, nothing sent to Kaggle, nothing written, the log unchanged.
The same family through the library: ``append_log`` never rewrites a log that did not read cleanly.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from inproc import kfold as kfold_here
from kaggle_fake import fake_kaggle  # noqa: F401  (fixture)
from test_kaggle_loop import kfold, one_error_line

from kfold.errors import DataError
from kfold.files.submission_log import LOG_COLUMNS, append_log, read_log

needs_kaggle = pytest.mark.skipif(importlib.util.find_spec("kaggle") is None, reason="kaggle not installed")

ROWS = [{"time": "2024-01-01T00:00:00Z", "competition": "kmnist", "file": "a.csv", "sha256": hashlib.sha256(b"a").hexdigest(),
         "rows": 3, "message": "first", "ref": 50000001, "method": "mean", "inputs": ["p0.npz", "p1.npz"],
         "weights": ["1", "3"], "runs": ["r0"], "presets": ["fast"], "seeds": ["0"], "folds": ["mean"],
         "local_cv": 0.95, "local_cv_source": "OOF accuracy of run r0", "local_public": 0.5, "local_private": 1.0,
         "solution": "solution.csv"},
        {"time": "2024-01-02T10:00:00Z", "competition": "kmnist", "file": "b.csv", "sha256": hashlib.sha256(b"b").hexdigest(),
         "rows": 3, "message": "second, with a comma", "ref": 50000002}]


def good_log(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    for row in ROWS:
        append_log(path, row)
    return path.read_text()


def _field(line: str, column: str, value: str | None) -> str:
    """``line`` with the field of ``column`` replaced (``None``: removed); fields here hold no quotes or commas
    except the quoted message of row 2, which no case touches."""
    import csv
    import io

    fields = next(csv.reader([line]))
    index = LOG_COLUMNS.index(column)
    if value is None:
        del fields[index]
    else:
        fields[index] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def edit(line_no: int, column: str, value: str | None):
    def damage(path: Path) -> None:
        lines = path.read_text().split("\n")
        lines[line_no - 1] = _field(lines[line_no - 1], column, value)
        path.write_text("\n".join(lines))
    return damage


def text(content: str | bytes):
    def damage(path: Path) -> None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def on_line(line_no: int, change):
    def damage(path: Path) -> None:
        lines = path.read_text().split("\n")
        lines[line_no - 1] = change(lines[line_no - 1])
        path.write_text("\n".join(lines))
    return damage


def folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside.csv").write_text("x\n")


def symlink(path: Path) -> None:
    target = path.with_name("real-log.csv")
    path.rename(target)
    path.symlink_to(target.name)


def dangling(path: Path) -> None:
    path.unlink()
    path.symlink_to("nowhere.csv")


HEADER = ",".join(LOG_COLUMNS)
# (case, damage, fragments of the one error line after the log's path)
DAMAGED = [
    ("trailing comma", on_line(3, lambda line: line + ","),
     ["line 3: malformed CSV (20 fields, but the header on line 1 has 19) (a trailing comma?)"]),
    ("trailing comma on the header", on_line(1, lambda line: line + ","),
     ["line 2: malformed CSV (19 fields, but the header on line 1 has 20)"]),
    ("missing field", edit(2, "message", None), ["line 2: malformed CSV (18 fields, but the header on line 1 has 19)"]),
    ("missing last field", on_line(3, lambda line: line.rsplit(",", 1)[0]), ["line 3: malformed CSV (18 fields"]),
    ("extra field", on_line(3, lambda line: line.replace(",50000002,", ",50000002,extra,")),
     ["line 3: malformed CSV (20 fields"]),
    ("wrong header: a submission", text("Id,Category\n0,1\n1,2\n"),
     ["line 1: not a submission log (column(s) time, competition, file", f"must start with '{HEADER}'"]),
    ("wrong header: columns swapped", on_line(1, lambda line: line.replace("time,competition", "competition,time")),
     ["line 1: not a submission log (its columns are out of order"]),
    ("wrong header: a renamed column", on_line(1, lambda line: line.replace("local_cv,", "cv,")),
     ["line 1: not a submission log (column(s) local_cv missing"]),
    ("not a number: local_cv", edit(2, "local_cv", "abc"), ["line 2, column 'local_cv': 'abc' is not a finite number"]),
    ("not a number: a decimal comma", edit(2, "local_public", "0,5"),
     ["line 2, column 'local_public': '0,5' is not a finite number"]),
    ("not a number: rows", edit(3, "rows", "3.5"), ["line 3, column 'rows': '3.5' is not a whole number of rows"]),
    ("not a number: ref", edit(3, "ref", "ref-7"), ["line 3, column 'ref': 'ref-7' is not a Kaggle submission ref"]),
    ("not a number: weights", edit(2, "weights", "1;two"), ["line 2, column 'weights': '1;two' is not a ';'-separated"]),
    ("inf: local_cv", edit(2, "local_cv", "inf"), ["line 2, column 'local_cv': 'inf' is not a finite number"]),
    ("inf: local_public", edit(3, "local_public", "-Infinity"),
     ["line 3, column 'local_public': '-Infinity' is not a finite number"]),
    ("inf: overflow", edit(2, "local_private", "1e999"), ["line 2, column 'local_private': '1e999' is not a finite"]),
    ("nan: local_cv", edit(3, "local_cv", "nan"), ["line 3, column 'local_cv': 'nan' is not a finite number"]),
    ("nan: local_private", edit(2, "local_private", "NaN"), ["line 2, column 'local_private': 'NaN' is not a finite"]),
    ("not a time", edit(2, "time", "yesterday"), ["line 2, column 'time': 'yesterday' is not an ISO 8601 time"]),
    ("not a sha256", edit(3, "sha256", "abc"), ["line 3, column 'sha256': 'abc' is not a SHA-256"]),
    ("no file", edit(3, "file", ""), ["line 3, column 'file': empty, expected a value"]),
    ("a ref twice", edit(3, "ref", "50000001"), ["line 3, column 'ref': ref 50000001 is logged twice (also line 2)"]),
    ("blank line", on_line(2, lambda line: ""), ["line 2 is blank"]),
    ("binary: a PNG", text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"), ["not UTF-8 text (byte 0)"]),
    ("binary: gzipped log", lambda path: path.write_bytes(gzip.compress(path.read_bytes(), mtime=0)),
     ["not UTF-8 text (byte 1)"]),
    ("empty file", text(""), ["empty file, expected a header line"]),
    ("only blank lines", text("\n\n\n"), ["empty file, expected a header line"]),
    ("a folder", folder, ["is a folder, not a submission log"]),
    ("a symlink", symlink, ["the submission log is a symbolic link", "give the file it points to"]),
    ("a dangling symlink", dangling, ["the submission log is a symbolic link"]),
]


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` with its bytes (files), its target (links) or 'dir'."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = (f"-> {os.readlink(path)}" if path.is_symlink() else "dir" if path.is_dir()
                    else path.read_bytes())
    return out


@pytest.fixture
def damaged(tmp_path, request):
    """tmp_path with a sample, a valid submission and logs/kmnist.csv damaged by ``request.param``."""
    case, damage, fragments = request.param
    (tmp_path / "sample_submission.csv").write_text("Id,Category\n0,0\n1,0\n2,0\n")
    (tmp_path / "sub.csv").write_text("Id,Category\n0,3\n1,1\n2,9\n")
    log = tmp_path / "logs" / "kmnist.csv"
    good_log(log)
    damage(log)
    return log, fragments


@pytest.mark.parametrize("damaged", DAMAGED, indirect=True, ids=[case for case, _, _ in DAMAGED])
def test_a_damaged_log_is_refused_and_never_rewritten(damaged):
    log, fragments = damaged
    before = snapshot(log.parent)
    with pytest.raises(DataError) as refused:
        read_log(log)
    message = str(refused.value)
    assert message.startswith(f"{log}: ") and "\n" not in message
    assert all(fragment in message for fragment in fragments), message
    with pytest.raises(DataError, match="^" + re.escape(str(log))):
        append_log(log, ROWS[0] | {"ref": 50000009})
    assert snapshot(log.parent) == before


@needs_kaggle
@pytest.mark.parametrize("command", ["submit", "submissions"])
@pytest.mark.parametrize("damaged", DAMAGED, indirect=True, ids=[case for case, _, _ in DAMAGED])
def test_the_commands_refuse_a_damaged_log_before_kaggle_and_write_nothing(fake_kaggle, damaged, command):
    log, fragments = damaged
    fake_kaggle.add("kmnist")
    root = log.parent.parent
    before = snapshot(root)
    args = (["submit", "sub.csv", "-c", "kmnist", "-m", "x", "--sample", "sample_submission.csv"]
            if command == "submit" else ["submissions", "-c", "kmnist"])
    fresh = fragments is DAMAGED[0][2]  # the first case of each command: a fresh interpreter
    done = (kfold if fresh else kfold_here)(*args, "--log", "logs/kmnist.csv", cwd=root)
    assert done.returncode == 1, done.stderr
    one_error_line(done, "error: logs/kmnist.csv: ", *fragments)
    assert fake_kaggle.requests == []  # checked before the limits call, before the upload, before the list
    assert snapshot(root) == before  # the log as it was, no CSV, no picture, no submissions/ folder


def test_a_valid_log_reads_back_as_written_with_a_users_extra_column(tmp_path):
    log = tmp_path / "kmnist.csv"
    good_log(log)
    frame = read_log(log)
    assert list(frame.columns) == LOG_COLUMNS and len(frame) == 2
    assert frame.loc[0, ["rows", "ref", "weights", "local_cv", "local_public"]].tolist() == [
        "3", "50000001", "1;3", "0.950000", "0.500000"]
    assert frame.loc[1, "message"] == "second, with a comma" and frame.loc[1, "local_cv"] == ""
    lines = log.read_text().split("\n")  # a column added by hand after the log's own is kept
    log.write_text("\n".join([lines[0] + ",note", lines[1] + ",kept", lines[2] + ",", *lines[3:]]))
    append_log(log, ROWS[0] | {"ref": 50000003, "message": "third\nline"})
    again = read_log(log)
    assert list(again.columns) == [*LOG_COLUMNS, "note"] and again["note"].tolist() == ["kept", "", ""]
    assert again.loc[2, "message"] == "third line"  # one log line per row


@pytest.mark.parametrize("value, column", [(float("inf"), "local_cv"), (float("-inf"), "local_public"),
                                           ("12a", "ref"), (-1, "rows")])
def test_a_row_that_would_not_read_back_is_never_appended(tmp_path, value, column):
    log = tmp_path / "kmnist.csv"
    good_log(log)
    before = log.read_bytes()
    with pytest.raises(DataError, match=f"kmnist.csv: the new row: line 4, column '{column}'"):
        append_log(log, ROWS[1] | {"ref": 50000004, column: value})
    assert log.read_bytes() == before


def test_a_log_damaged_while_uploading_names_the_ref_and_is_kept(tmp_path, monkeypatch, capsys):
    """Checked before the upload, damaged by another process during it: the upload is reported, the log kept."""
    from test_kaggle import FakeApi

    from kfold import kaggle_api
    from kfold.commands.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub.csv").write_text("Id,Category\n0,3\n1,1\n")
    log = tmp_path / "submissions" / "log" / "kmnist.csv"
    good_log(log)
    api = FakeApi()
    upload = api.competition_submit

    def submit_and_damage(*args, **kwargs):
        log.write_text(log.read_text() + "oops,\n")
        return upload(*args, **kwargs)

    api.competition_submit = submit_and_damage
    monkeypatch.setattr(kaggle_api, "_client", lambda: api)
    damaged = log.read_bytes() + b"oops,\n"
    assert main(["submit", "sub.csv", "-c", "kmnist", "-m", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: kaggle: submitted as ref 123, but not logged: ") and err.count("\n") == 1, err
    assert f"{Path('submissions/log/kmnist.csv')}: line 4: malformed CSV" in err
    assert log.read_bytes() == damaged


def test_submit_checks_the_log_before_the_submission_and_kaggle(tmp_path, monkeypatch, capsys):
    """A --log that is another CSV is found before anything is computed; the client is never created."""
    from kfold import kaggle_api
    from kfold.commands.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(kaggle_api, "_client", lambda: pytest.fail("the kaggle client was created"))
    (tmp_path / "sub.csv").write_text("Id,Category\n0,3\n1,1\n")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert main(["submit", "sub.csv", "-c", "kmnist", "-m", "x", "--log", "other.csv"]) == 1
    assert capsys.readouterr().err.startswith("error: other.csv: line 1: not a submission log (column(s) time")
    assert (tmp_path / "other.csv").read_text() == "a,b\n1,2\n" and not (tmp_path / "submissions").exists()


@needs_kaggle
@pytest.mark.parametrize("case", ["submissions csv is the log", "submissions out through a folder link",
                                  "submit log is the submission", "submit log is the sample",
                                  "remote leaderboard is the solution", "remote ranks are a SUB file"])
def test_an_output_that_is_an_input_is_refused_before_anything_runs(fake_kaggle, tmp_path, case):
    fake_kaggle.add("kmnist")
    (tmp_path / "sample_submission.csv").write_text("Id,Category\n0,0\n1,0\n2,0\n")
    (tmp_path / "sub.csv").write_text("Id,Category\n0,3\n1,1\n2,9\n")
    (tmp_path / "solution.csv").write_text("Id,Category,Usage\n0,3,Public\n1,0,Public\n2,9,Private\n")
    logs = tmp_path / "logs"
    good_log(logs / "kmnist-submissions.csv")
    if case == "submissions csv is the log":
        args, victim = ["submissions", "-c", "kmnist", "--log", "logs/kmnist-submissions.csv"], "logs/kmnist-submissions.csv"
    elif case == "submissions out through a folder link":
        (tmp_path / "view").symlink_to("logs")
        args = ["submissions", "-c", "kmnist", "--log", "logs/kmnist-submissions.csv", "--out", "view"]
        victim = "view/kmnist-submissions.csv"
    elif case == "submit log is the submission":
        args, victim = ["submit", "sub.csv", "-c", "kmnist", "-m", "x", "--log", "sub.csv"], "sub.csv"
    elif case == "submit log is the sample":
        args = ["submit", "sub.csv", "-c", "kmnist", "-m", "x", "--sample", "sample_submission.csv", "--log",
                "./sample_submission.csv"]
        victim = "./sample_submission.csv"
    elif case == "remote leaderboard is the solution":
        (tmp_path / "kaggle-leaderboard.csv").symlink_to("solution.csv")
        args = ["leaderboard", "-c", "kmnist", "--remote", "--solution", "solution.csv", "--out", ".",
                "--log", "logs/kmnist-submissions.csv", "sub.csv"]
        victim = "kaggle-leaderboard.csv"
    else:
        args = ["leaderboard", "-c", "kmnist", "--remote", "--solution", "solution.csv", "--out", "lb",
                "--log", "logs/kmnist-submissions.csv", "lb/kaggle-ranks.csv"]
        (tmp_path / "lb").mkdir()
        (tmp_path / "lb" / "kaggle-ranks.csv").write_text("Id,Category\n0,3\n1,1\n2,9\n")
        victim = "lb/kaggle-ranks.csv"
    before = snapshot(tmp_path)
    done = (kfold if case == "submissions out through a folder link" else kfold_here)(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    one_error_line(done, f"error: {os.path.normpath(victim) if case.startswith('submit log') else victim}: "
                         "output would overwrite the input")
    assert fake_kaggle.requests == [] and snapshot(tmp_path) == before


def test_refused_logs_name_the_log_in_the_api_words(tmp_path):
    """The library's reader on a log written by hand in pandas: the same rules, no command needed."""
    frame = pd.DataFrame([{column: "" for column in LOG_COLUMNS}])
    path = tmp_path / "by-hand.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"by-hand\.csv: line 2, column 'time': empty, expected a value"):
        read_log(path)
