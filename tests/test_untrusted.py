"""Untrusted files: pickles never run, damaged or foreign weights are refused, names never leave --out, no secrets.

A planted pickle whose unpickling writes a marker file is first loaded with the permissive loader (the
marker appears: the payload is live), then given to kfold, which must refuse it without the marker
appearing. Every refusal is one error line with exit status 1 and leaves no output behind.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from synthetic import write_kmnist_comp
from test_reliability import assert_one_line_error, run

from kfold import kaggle_api
from kfold.config import resolve_config
from kfold.nn.engine import FoldTrainer
from kfold.files.probs import read_probs, write_probs

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--preset", "lenet5", "--aug", "none", "--epochs", 1, "--k", 2, "--batch-size", 16, "--no-progress",
         "--device", "cpu"]
SECRETS = {"KAGGLE_USERNAME": "kfold_tester_u7Q2x", "KAGGLE_KEY": "f00dfacecafe1234beef5ecret99"}


class Exploit:
    """Unpickling this object writes ``marker``: what a malicious checkpoint or array file would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-fold run on synthetic data, trained with Kaggle credentials in the environment."""
    root = tmp_path_factory.mktemp("trained")
    data = write_kmnist_comp(root / "data", n_train=60, n_test=20, seed=0)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        assert run("train", ["--data", data, "--out", root / "run", *TRAIN]) == 0
    return data, root / "run"


@pytest.fixture
def run_copy(trained, tmp_path):
    data, run_dir = trained
    shutil.copytree(run_dir, tmp_path / "run")
    return data, tmp_path / "run"


def error_line(err: str) -> str:
    """predict.py's stderr without the progress bar tqdm draws there (cleared on a terminal)."""
    assert "Traceback" not in err
    return "\n".join(line for line in err.splitlines() if line.strip() and not line.startswith("predict ")) + "\n"


def _snapshot(directory: Path) -> dict:
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


# ---- pickles -----------------------------------------------------------------------------------------------

def _plant_checkpoint(data: Path, fold_dir: Path, marker: Path, kind: str) -> None:
    """Put a checkpoint.pt into an unfinished fold: a pickle payload, another model's, or a truncated one."""
    (fold_dir / "meta.json").unlink()
    path = fold_dir / "checkpoint.pt"
    if kind == "pickle-payload":
        torch.save({"model": Exploit(marker)}, path)
        torch.load(path, weights_only=False)  # the permissive loader runs the payload
        assert marker.read_text() == "pwned"
        marker.unlink()
        return
    images, labels = np.load(data / "kmnist-train-imgs.npy"), np.load(data / "kmnist-train-labels.npy")
    preset = "ff-2x250" if kind == "another-model" else "lenet5"
    rows = np.arange(len(labels))
    FoldTrainer(resolve_config(preset, None, {"epochs": 1}), images, labels, 10, rows, rows, torch.device("cpu"),
                seed=0, work_dir=fold_dir, progress=False).save_checkpoint()
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("kind, reason", [
    ("pickle-payload", "UnpicklingError: Weights only load failed"),
    ("another-model", "RuntimeError: Error(s) in loading state_dict"),
    ("truncated", "cannot resume from this checkpoint"),
])
def test_resume_refuses_untrusted_checkpoints(kind, reason, run_copy, tmp_path, capsys):
    data, run_dir = run_copy
    marker = tmp_path / "pwned.txt"
    _plant_checkpoint(data, run_dir / "fold1", marker, kind)
    before = _snapshot(run_dir)
    capsys.readouterr()
    assert run("train", ["--data", data, "--out", run_dir, *TRAIN, "--resume"]) == 1
    assert_one_line_error(capsys.readouterr().err, f"{run_dir / 'fold1' / 'checkpoint.pt'}: cannot resume", reason)
    assert not marker.exists()
    assert _snapshot(run_dir) == before


def test_pickled_arrays_are_refused_and_never_run(tmp_path, capsys):
    marker = tmp_path / "pwned.txt"
    payload = np.array([Exploit(marker)], dtype=object)
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20, seed=0)
    np.save(data / "kmnist-test-imgs.npy", payload, allow_pickle=True)
    probs = tmp_path / "evil.npz"
    np.savez(probs, ids=np.arange(1), probs=payload, classes=np.array(["a", "b"]), meta=np.array('{"kind": "test"}'))
    for load in (lambda: np.load(data / "kmnist-test-imgs.npy", allow_pickle=True),
                 lambda: np.load(probs, allow_pickle=True)["probs"]):
        load()  # the permissive loader runs the payload
        assert marker.read_text() == "pwned"
        marker.unlink()
    capsys.readouterr()
    assert run("train", ["--data", data, "--out", tmp_path / "run", *TRAIN]) == 1
    assert_one_line_error(capsys.readouterr().err, "kmnist-test-imgs.npy: not a readable .npy file",
                          "Object arrays cannot be loaded")
    assert run("ensemble", [probs, "--out", tmp_path / "sub.csv"]) == 1
    assert_one_line_error(capsys.readouterr().err, "evil.npz: contains pickled object arrays, which kfold never loads")
    assert not marker.exists() and not (tmp_path / "run").exists() and not (tmp_path / "sub.csv").exists()


# ---- weights given to predict.py ---------------------------------------------------------------------------

def _weights(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["kfold"])
    return load_file(path), meta


def _damage(kind: str, path: Path, marker: Path) -> None:
    tensors, meta = _weights(path)
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "header-length-lie":
        path.write_bytes((1 << 40).to_bytes(8, "little") + b'{"a": 1}')
    elif kind == "torch-pickle":
        torch.save({"model": Exploit(marker)}, path)
    elif kind == "no-kfold-metadata":
        save_file(tensors, str(path))
    elif kind == "metadata-not-json":
        save_file(tensors, str(path), metadata={"kfold": "{'model': 'lenet5'"})
    elif kind == "metadata-missing-keys":
        save_file(tensors, str(path), metadata={"kfold": json.dumps({k: v for k, v in meta.items() if k != "normalization"})})
    elif kind == "unknown-model":
        save_file(tensors, str(path), metadata={"kfold": json.dumps({**meta, "config": {**meta["config"], "model": "gpt9"}})})
    elif kind == "another-architecture":  # weights of a feed-forward net under the run's lenet5 metadata
        from kfold.nn.models import create_model

        other = {k: v.contiguous() for k, v in create_model("ff-2x250", 10).state_dict().items()}
        save_file(other, str(path), metadata={"kfold": json.dumps(meta)})
    else:  # trained on other data
        save_file(tensors, str(path), metadata={"kfold": json.dumps({**meta, "fingerprint": "0123456789abcdef"})})


@pytest.mark.parametrize("kind, reason", [
    ("truncated", "not a valid safetensors file"),
    ("garbage", "not a valid safetensors file"),
    ("header-length-lie", "not a valid safetensors file"),
    ("torch-pickle", "not a valid safetensors file"),
    ("no-kfold-metadata", "no kfold metadata in the safetensors header"),
    ("metadata-not-json", "bad kfold metadata in the safetensors header (JSONDecodeError"),
    ("metadata-missing-keys", "bad kfold metadata in the safetensors header (KeyError: 'normalization')"),
    ("unknown-model", "bad kfold metadata in the safetensors header (UsageError: unknown model 'gpt9'"),
    ("another-architecture", "weights do not fit model 'lenet5'"),
    ("other-data", "trained on different data (fingerprint 0123456789abcdef"),
])
def test_predict_refuses_damaged_or_foreign_weights(kind, reason, run_copy, tmp_path, capsys):
    """fold1's weights are bad: nothing is written, not even fold0's probabilities (predicted first)."""
    data, run_dir = run_copy
    marker = tmp_path / "pwned.txt"
    _damage(kind, run_dir / "fold1" / "model.safetensors", marker)
    capsys.readouterr()
    assert run("predict", [run_dir, "--data", data, "--out", tmp_path / "probs", "--device", "cpu"]) == 1
    where = run_dir / "fold1" if kind == "other-data" else run_dir / "fold1" / "model.safetensors"
    assert_one_line_error(error_line(capsys.readouterr().err), f"{where}: {reason}")
    assert not (tmp_path / "probs").exists() and not marker.exists()


# ---- paths -------------------------------------------------------------------------------------------------

def test_output_names_never_leave_the_output_directory(run_copy, tmp_path, capsys):
    """'../' in metadata, a run path with '..', and symlinks planted in --out write nothing outside --out.

    Weights whose metadata names another fold, model, preset or seed are refused as another run's (issue 24);
    the out-of-fold file's ``run`` field is kept as data, never used as a path."""
    data, run_dir = run_copy
    originals = {fold: (run_dir / fold / "model.safetensors").read_bytes() for fold in ("fold0", "fold1")}
    for fold in ("fold0", "fold1"):
        tensors, meta = _weights(run_dir / fold / "model.safetensors")
        meta.update(fold="../../escaped", model="../../escaped", preset="/tmp/escaped", seed="../escaped")
        save_file(tensors, str(run_dir / fold / "model.safetensors"), metadata={"kfold": json.dumps(meta)})
    oof = read_probs(run_dir / "oof.npz")
    write_probs(run_dir / "oof.npz", oof.ids, oof.probs, oof.classes, {**oof.meta, "run": "../../escaped"}, labels=oof.labels)
    out = tmp_path / "probs"
    out.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("an earlier result\n")
    (out / "run-fold0.npz").symlink_to(precious)
    (tmp_path / "elsewhere").mkdir()
    before = _snapshot(tmp_path)
    argv = [tmp_path / "elsewhere" / ".." / "run", "--data", data, "--out", out, "--device", "cpu"]
    assert run("predict", argv) == 1
    assert_one_line_error(error_line(capsys.readouterr().err), "fold0/model.safetensors", "a file of another")
    assert _snapshot(tmp_path) == before
    for fold, content in originals.items():
        (run_dir / fold / "model.safetensors").write_bytes(content)
    before = _snapshot(tmp_path)
    assert run("predict", argv) == 0
    new = {path for path in _snapshot(tmp_path) if path not in before or path == out / "run-fold0.npz"}
    assert {path.relative_to(out).as_posix() for path in new} == {"run-fold0.npz", "run-fold1.npz", "run-mean.npz", "run-oof.npz"}
    assert precious.read_text() == "an earlier result\n" and not (out / "run-fold0.npz").is_symlink()
    assert read_probs(out / "run-oof.npz").meta["run"] == "../../escaped"  # kept as data, never as a path
    assert not list(tmp_path.parent.glob("escaped*")) and not Path("/tmp/escaped").exists()


def test_two_runs_with_one_name_write_nothing(trained, tmp_path, capsys):
    data, run_dir = trained
    shutil.copytree(run_dir, tmp_path / "other" / run_dir.name)
    capsys.readouterr()
    assert run("predict", [run_dir, tmp_path / "other" / run_dir.name, "--data", data, "--out", tmp_path / "probs",
                           "--device", "cpu"]) == 2
    assert_one_line_error(error_line(capsys.readouterr().err), "two runs would both write",
                          "run-fold0.npz: give run directories distinct names")
    assert not (tmp_path / "probs").exists()


class FakeApi:
    """The kaggle client at the boundary: downloads an archive whose member names try to escape."""

    def __init__(self, escape: str):
        self.escape = escape

    def competition_download_files(self, competition, path=None, force=False, quiet=True):
        with zipfile.ZipFile(Path(path) / f"{competition}.zip", "w") as archive:
            archive.writestr("../../" + self.escape, "outside?\n")
            archive.writestr("/tmp/" + self.escape, "absolute?\n")
            archive.writestr("train/sample_submission.csv", "Id,Category\n0,0\n")


def test_downloaded_archive_cannot_write_outside_the_data_dir(tmp_path, monkeypatch, capsys):
    """An archive with a member that tries to escape is refused as a whole: nothing written anywhere."""
    escape = f"escaped-{tmp_path.name}.txt"
    monkeypatch.setattr(kaggle_api, "_client", lambda: FakeApi(escape))
    data_dir = tmp_path / "a" / "b" / "data"
    assert run("kfold", ["download", "kmnist", "--data-dir", data_dir]) == 1
    captured = capsys.readouterr()
    assert_one_line_error(error_line(captured.err), "kmnist.zip (downloaded): member", "points outside the folder")
    assert captured.out == "" and not data_dir.exists()
    assert not list(tmp_path.rglob(escape)) and not (Path("/tmp") / escape).exists()
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")] == ["a", "a/b"]  # no temporary left


# ---- credentials -------------------------------------------------------------------------------------------

FAKE_KAGGLE = '''
"""A chatty stand-in for the kaggle package: authenticates from the environment like the real one."""
import os
import sys
import zipfile

print("kaggle: credentials", os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"])


class KaggleApi:
    args = []

    def authenticate(self):
        self.config_values = {"username": os.environ["KAGGLE_USERNAME"], "key": os.environ["KAGGLE_KEY"]}
        print("authenticated with", self.config_values, file=sys.stderr)

    def competition_get_submission_limits(self, competition):
        print("limits for", self.config_values)
        return type("Limits", (), {"num_today": 0, "num_total": 0, "num_allowed_now": 5, "limited_by_total": False})()

    def build_kaggle_client(self):  # kfold asks whether the competition takes CSV uploads (GetCompetition)
        import contextlib

        print("client for", self.config_values)
        service = type("Service", (), {"get_competition": lambda self, request: type(
            "Competition", (), {"is_kernels_submissions_only": False})()})()
        client = type("Client", (), {"competitions": type("Competitions", (), {"competition_api_client": service})()})()
        return contextlib.nullcontext(client)

    def competition_submit(self, file_name, message, competition, quiet=False):
        user, key = self.config_values["username"], self.config_values["key"]
        if competition == "closed":
            raise RuntimeError(f"403 Forbidden for url https://{user}:{key}@www.kaggle.com/api/v1/submit/{competition}")
        return type("Response", (), {"message": f"Successfully submitted to {competition} as {user}"})()

    def competition_download_files(self, competition, path=None, force=False, quiet=True):
        with zipfile.ZipFile(os.path.join(path, competition + ".zip"), "w") as archive:
            archive.writestr("sample_submission.csv", "Id,Category\\n0,0\\n")
'''

CALLS = """
import sys
from kfold.commands.main import main
print("exit", main(["submit", sys.argv[1], "-c", "kmnist", "-m", "mean of 5"]))
print("exit", main(["submit", sys.argv[1], "-c", "closed", "-m", "mean of 5"]))
print("exit", main(["download", "kmnist", "--data-dir", sys.argv[2]]))
"""


def test_credentials_are_never_printed_or_written(trained, tmp_path):
    fake = tmp_path / "fake"
    for package in ("kaggle", "kaggle/api"):
        (fake / package).mkdir(parents=True)
        (fake / package / "__init__.py").write_text("")
    (fake / "kaggle" / "api" / "kaggle_api_extended.py").write_text(FAKE_KAGGLE)
    sub = tmp_path / "sub.csv"
    sub.write_text("Id,Category\n0,1\n1,2\n")
    env = {**os.environ, **SECRETS, "PYTHONPATH": os.pathsep.join([str(fake), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", CALLS, str(sub), str(tmp_path / "data")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    unchecked = "no sample_submission.csv found: Ids not checked (give --sample or --data)"
    limits = "kaggle: 0 submission(s) used today, 5 left today"
    assert done.stdout.splitlines() == [f"ok: {sub}: 2 rows", unchecked, limits,
                                        "submitted: Successfully submitted to kmnist as ***", "logged in "
                                        f"{Path('submissions/log/kmnist.csv')}", "exit 0",
                                        f"ok: {sub}: 2 rows", unchecked, limits, "exit 1",
                                        f"wrote {tmp_path / 'data' / 'sample_submission.csv'}",
                                        f"no layout kfold reads recognised in {tmp_path / 'data'} (arrays, "
                                        "MNIST-MIX, pixel CSVs, image files with a labels CSV, class folders); "
                                        f"'kfold inspect {tmp_path / 'data'}' says what is missing; see README "
                                        "(Your own competition)", "exit 0"]
    assert done.stderr == (f"error: kaggle: submitting {sub} to 'closed' failed: 403 Forbidden for url "
                           "https://***:***@www.kaggle.com/api/v1/submit/closed\n")
    _, run_dir = trained  # trained with the same credentials in its environment
    for secret in SECRETS.values():
        assert secret not in done.stdout + done.stderr
        for directory in (tmp_path / "data", run_dir, tmp_path / "submissions"):
            assert not [path for path, content in _snapshot(directory).items() if secret.encode() in content]
