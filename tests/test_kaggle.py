"""The kaggle boundary: the client is replaced at kfold.kaggle_api._client; missing package/credentials for real."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kfold import kaggle_api
from kfold.commands.main import main as kfold_main

REPO = Path(__file__).resolve().parents[1]


class FakeApi:
    COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE = "Could not submit to competition"

    def __init__(self, reply="Successfully submitted to KMNIST", error=None):
        self.reply, self.error, self.calls = reply, error, []

    def competition_get_submission_limits(self, competition):
        self.calls.append(("limits", competition))
        return type("Limits", (), {"num_today": 1, "num_total": 1, "num_allowed_now": 4, "limited_by_total": False})()

    def competition_submit(self, file_name, message, competition, quiet=False):
        self.calls.append(("submit", file_name, message, competition))
        if self.error:
            raise self.error
        return type("Response", (), {"message": self.reply, "ref": 123})()

    def build_kaggle_client(self):  # kfold asks whether the competition takes CSV uploads (GetCompetition)
        service = type("Service", (), {"get_competition": lambda self, request: type(
            "Competition", (), {"is_kernels_submissions_only": False})()})()
        client = type("Client", (), {"competitions": type("Competitions", (), {"competition_api_client": service})()})()
        return contextlib.nullcontext(client)

    def competition_download_files(self, competition, path=None, force=False, quiet=True):
        self.calls.append(("download", competition, path))
        if self.error:
            raise self.error
        with zipfile.ZipFile(Path(path) / f"{competition}.zip", "w") as zf:
            zf.writestr("sample_submission.csv", "Id,Category\n0,0\n")
            zf.writestr("train/kmnist-train-imgs.npy", b"\x93NUMPY")


@pytest.fixture
def fake(monkeypatch):
    api = FakeApi()
    monkeypatch.setattr(kaggle_api, "_client", lambda: api)
    return api


@pytest.fixture
def good_sub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the submission log goes to ./submissions/log/
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("Id,Category\n0,0\n1,0\n")
    sub = tmp_path / "sub.csv"
    sub.write_text("Id,Category\n1,3\n0,2\n")
    return sub, sample


def test_submit_validates_then_uploads(fake, good_sub, capsys):
    sub, sample = good_sub
    assert kfold_main(["submit", str(sub), "-c", "kmnist", "-m", "mean of 5", "--sample", str(sample),
                       "--num-classes", "10"]) == 0
    assert fake.calls == [("limits", "kmnist"), ("submit", str(sub), "mean of 5", "kmnist")]
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {sub}: 2 rows", f"Ids match {sample}", "kaggle: 1 submission(s) used today, 4 left today",
        "submitted: Successfully submitted to KMNIST (ref 123)", f"logged in {Path('submissions/log/kmnist.csv')}"]
    import pandas as pd

    log = pd.read_csv(sub.parent / "submissions" / "log" / "kmnist.csv", dtype=str, keep_default_na=False)
    assert log[["file", "ref", "message", "local_cv"]].values.tolist() == [[str(sub), "123", "mean of 5", ""]]


@pytest.mark.parametrize("text, message", [
    ("Id,Category\n0,2\n", "1 rows but the sample has 2: Id 1 from the sample"),
    ("Id,Category\n0,2\n1,10\n", "line 3 (Id 1), column 'Category': 10 is not in 0..9"),
    ("Id,Category\n0,2\n\n1,1\n", "line 3 is blank"),
])
def test_invalid_submission_is_never_uploaded(fake, good_sub, capsys, text, message):
    sub, sample = good_sub
    sub.write_text(text)
    assert kfold_main(["submit", str(sub), "-c", "kmnist", "-m", "x", "--sample", str(sample),
                       "--num-classes", "10"]) == 1
    assert fake.calls == []
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_client_errors_become_one_line(monkeypatch, good_sub, capsys):
    sub, _ = good_sub
    monkeypatch.setattr(kaggle_api, "_client", lambda: FakeApi(error=RuntimeError("403 Forbidden\nrules not accepted")))
    assert kfold_main(["submit", str(sub), "-c", "kmnist", "-m", "x"]) == 1
    assert capsys.readouterr().err == f"error: kaggle: submitting {sub} to 'kmnist' failed: 403 Forbidden rules not accepted\n"
    monkeypatch.setattr(kaggle_api, "_client", lambda: FakeApi(reply=FakeApi.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE))
    assert kfold_main(["submit", str(sub), "-c", "kmnist", "-m", "x"]) == 1
    assert "Could not submit to competition" in capsys.readouterr().err


def test_download_unpacks_the_archive(fake, tmp_path, capsys):
    data_dir = tmp_path / "data"
    assert kfold_main(["download", "kmnist", "--data-dir", str(data_dir)]) == 0
    [(what, competition, staging)] = fake.calls
    assert (what, competition, Path(staging).parent) == ("download", "kmnist", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # the download's temporary folder is gone
    assert (data_dir / "sample_submission.csv").read_text() == "Id,Category\n0,0\n"
    assert (data_dir / "train" / "kmnist-train-imgs.npy").is_file()
    assert not (data_dir / "kmnist.zip").exists()
    assert capsys.readouterr().out.splitlines() == [f"wrote {data_dir / 'sample_submission.csv'}",
                                                    f"wrote {data_dir / 'train' / 'kmnist-train-imgs.npy'}",
                                                    f"no layout kfold reads recognised in {data_dir} (arrays, "
                                                    "MNIST-MIX, pixel CSVs, image files with a labels CSV, class "
                                                    f"folders); 'kfold inspect {data_dir}' says what is missing; "
                                                    "see README (Your own competition)"]


def test_download_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(kaggle_api, "_client", lambda: FakeApi(error=OSError("404 Not Found")))
    assert kfold_main(["download", "nope", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: kaggle: downloading 'nope' failed: 404 Not Found\n"


def test_missing_package_is_one_clear_line(monkeypatch, good_sub, capsys):
    monkeypatch.setitem(sys.modules, "kaggle", None)  # makes any import of kaggle fail like a missing package
    sub, _ = good_sub
    assert kfold_main(["submit", str(sub), "-c", "kmnist", "-m", "x"]) == 2
    assert capsys.readouterr().err == f"error: {kaggle_api.MISSING_PACKAGE}\n"


def test_missing_credentials_for_real(tmp_path, good_sub):
    """With the real kaggle client and an empty HOME: one line, exit 2, none of kaggle's help text."""
    if importlib.util.find_spec("kaggle") is None:  # not importorskip: that would import kaggle with the real HOME
        pytest.skip("kaggle not installed")
    sub, _ = good_sub
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(home), KAGGLE_CONFIG_DIR=str(home / ".kaggle"), PYTHONPATH=str(REPO))
    code = f"import sys; from kfold.commands.main import main; sys.exit(main(['submit', {str(sub)!r}, '-c', 'kmnist', '-m', 'x']))"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: {kaggle_api.MISSING_CREDENTIALS}\n"
    assert done.stdout == f"ok: {sub}: 2 rows\nno sample_submission.csv found: Ids not checked (give --sample or --data)\n"
    assert not (home / ".kaggle").exists() or not any((home / ".kaggle").iterdir())
