"""Submission CSVs: reading, validation against a sample, writing in sample order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kfold.errors import DataError
from kfold.files.submission import read_submission, validate_submission, write_submission

SAMPLE = "Id,Category\n0,0\n1,0\n2,0\n3,0\n"


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample_submission.csv"
    path.write_text(SAMPLE)
    return path


def _sub(tmp_path, text, name="sub.csv", raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_valid_submission_any_row_order(tmp_path, sample):
    path = _sub(tmp_path, "Id,Category\n3,9\n1,2\n0,0\n2,5\n")
    sub = validate_submission(path, sample, num_classes=10)
    assert sub.ids.tolist() == [3, 1, 0, 2] and sub.categories.tolist() == [9, 2, 0, 5]
    assert sub.ids.dtype == np.int64 and sub.categories.dtype == np.int64


def test_bom_and_crlf_are_accepted(tmp_path, sample):
    path = _sub(tmp_path, None, raw=b"\xef\xbb\xbfId,Category\r\n0,1\r\n1,1\r\n2,1\r\n3,1\r\n")
    assert validate_submission(path, sample, num_classes=2).categories.tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("text, message", [
    ("id,category\n0,1\n", "line 1: header 'id,category' must be 'Id,Category': no column 'Id', 'Category'; "
                             "unexpected column 'id', 'category' ('id' for 'Id'; 'category' for 'Category': another "
                             "case or spaces)"),
    ("Id,Category,Extra\n0,1,2\n", "line 1: header 'Id,Category,Extra' must be 'Id,Category': unexpected column 'Extra'"),
    ("Id\n0\n", "line 1: header 'Id' must be 'Id,Category': no column 'Category'"),
    ("Category,Id\n1,0\n", "line 1: header 'Category,Id' must be 'Id,Category': the Id column 'Id' must come first "
                            "(it is column 2); reordering the columns fixes it"),
    ("Id,Category,Id\n0,1,0\n", "line 1: column 'Id' appears twice in the header"),
    ("Id,Category\n", "no rows after the header"),
    ("", "empty file, expected a header line"),
    ("Id,Category\n0,1\n\n1,1\n", "line 3 is blank"),
    ("Id,Category\n0,1\n1,1\n2,1\n3,1\n\n", "line 6 is blank"),
    ("Id,Category\n0,1\n1,1.5\n", "line 3, column 'Category': '1.5' is not an integer Category"),
    ("Id,Category\n0,1\n1,cat\n", "line 3, column 'Category': 'cat' is not an integer Category"),
    ("Id,Category\n0,1\n1,\n", "line 3, column 'Category': a blank value is not an integer Category"),
    ("Id,Category\n0,1\n1\n", "line 3, column 'Category': a blank value is not an integer Category"),
    ("Id,Category\n0,1\nx,1\n", "line 3, column 'Id': 'x' is not an integer Id"),
    ("Id,Category\n0,1\n1,10\n", "line 3 (Id 1), column 'Category': 10 is not in 0..9"),
    ("Id,Category\n0,1\n1,-1\n", "line 3 (Id 1), column 'Category': -1 is not in 0..9"),
    ("Id,Category\n0,1\n1,2\n0,3\n", "line 4: duplicate Id 0"),
    ("Id,Category\n0,1\n1,2,3\n", "line 3: malformed CSV (3 fields, but the header on line 1 has 2)"),
])
def test_malformed_submission(tmp_path, text, message):
    path = _sub(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_submission(path, num_classes=10)
    assert str(err.value) == f"{path}: {message}"


def test_not_utf8(tmp_path):
    path = _sub(tmp_path, None, raw=b"Id,Category\n0,\xff\n")
    with pytest.raises(DataError, match="not UTF-8 text"):
        read_submission(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="submission not found"):
        read_submission(tmp_path / "nope.csv")


@pytest.mark.parametrize("text, message", [
    ("Id,Category\n0,1\n1,1\n2,1\n", "3 rows but the sample has 4: Id 3 from the sample"),
    ("Id,Category\n0,1\n1,1\n2,1\n3,1\n4,1\n", "5 rows but the sample has 4: line 6: Id 4 is not in the sample"),
    ("Id,Category\n0,1\n1,1\n2,1\n7,1\n", "line 5: Id 7 is not in the sample"),
])
def test_ids_must_match_sample(tmp_path, sample, text, message):
    path = _sub(tmp_path, text)
    with pytest.raises(DataError) as err:
        validate_submission(path, sample)
    assert message in str(err.value) and str(err.value).startswith(str(path))


def test_without_num_classes_only_negative_is_out_of_range(tmp_path):
    assert read_submission(_sub(tmp_path, "Id,Category\n0,123\n")).categories.tolist() == [123]
    with pytest.raises(DataError, match="-2 is not a non-negative class index"):
        read_submission(_sub(tmp_path, "Id,Category\n0,-2\n"))


def test_write_in_sample_order(tmp_path, sample):
    out = tmp_path / "out" / "sub.csv"
    write_submission(out, [2, 0, 3, 1], [7, 5, 8, 6], sample_path=sample)
    assert out.read_text() == "Id,Category\n0,5\n1,6\n2,7\n3,8\n"
    assert validate_submission(out, sample, num_classes=10).categories.tolist() == [5, 6, 7, 8]


def test_write_refuses_mismatched_ids_and_leaves_nothing(tmp_path, sample):
    out = tmp_path / "sub.csv"
    with pytest.raises(DataError, match="Id 3 from the sample .* is missing"):
        write_submission(out, [0, 1, 2], [1, 1, 1], sample_path=sample)
    with pytest.raises(DataError, match="row 1: duplicate Id 0"):
        write_submission(out, [0, 0], [1, 1])
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["sample_submission.csv"]


def test_real_sample_submission(kmnist_comp):
    sub = validate_submission(kmnist_comp / "sample_submission.csv", kmnist_comp / "sample_submission.csv", 10)
    solution = pd.read_csv(kmnist_comp / "solution.csv")
    assert len(sub.ids) == len(solution) == 3000
