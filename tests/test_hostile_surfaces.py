"""A hostile corpus of the newer surfaces (issue 24): the Python API, ``kfold run``, ``report``, ``errors``,
``learning-curve``, ``make-competition``, ``download`` and run directories edited after training.

Every case goes through a real entry point (``kfold ...`` in-process through ``run_cli``, ``kfold download`` as a
subprocess against the loopback Kaggle fake, the API ``kfold.train/predict/ensemble/leaderboard/load_run``) and
checks the contract of tests/test_hostile.py: the exit status, exactly one ``error:`` line naming the file, field
or parameter, and a file tree exactly as before. Cases are generated per class (several values and shapes each).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kaggle_fake import fake_kaggle  # noqa: F401  (fixture, used through fake_kaggle_env)
from runs import fake_run
from synthetic import write_kmnist_comp
from test_hostile import npy_bytes, tree
from test_reliability import TRAIN, assert_one_line_error, run

import kfold
from kfold.errors import DataError, UsageError
from kfold.files.probs import read_probs, write_probs

REPO = Path(__file__).resolve().parents[1]


def refused(root: Path, capsys, argv: list, code: int, *fragments, name: str = "kfold") -> str:
    """``kfold ARGV`` fails with ``code`` and one error line holding ``fragments``; nothing under ``root`` changes."""
    before = tree(root)
    capsys.readouterr()
    assert run(name, argv) == code
    line = assert_one_line_error(capsys.readouterr().err, *fragments)
    assert tree(root) == before
    return line


def api_refused(root: Path, call, error, *fragments) -> str:
    """The API call raises ``error`` whose one-line message holds ``fragments``; nothing under ``root`` changes."""
    before = tree(root)
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert tree(root) == before
    return message


def outside(tmp_path: Path) -> Path:
    """A folder outside every output, holding one precious file; a planted link points here."""
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "precious.txt").write_text("keep\n")
    return folder


def plant(link: Path, target: Path) -> Path:
    """Replace ``link`` (a folder or file, if any) with a symbolic link to ``target``."""
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    elif link.exists() or link.is_symlink():
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=target.is_dir())
    return link


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data, run, other): a finished 2-fold lenet5 run and a run of the same recipe with another seed."""
    root = tmp_path_factory.mktemp("surfaces")
    data = write_kmnist_comp(root / "data", n_train=60, n_test=20, seed=0)
    for name, seed in (("run", 0), ("other", 1)):
        assert run("train", ["--data", data, "--out", root / name, *TRAIN, "--threads", 1, "--seed", seed]) == 0
    return data, root / "run", root / "other"


@pytest.fixture
def copied(trained, tmp_path):
    """A private copy of the trained run (and its data) in tmp_path."""
    data, run_dir, other = trained
    return (shutil.copytree(data, tmp_path / "data"), shutil.copytree(run_dir, tmp_path / "run"),
            shutil.copytree(other, tmp_path / "other"))


def good_probs(path: Path, n: int = 20, seed: int = 0, classes=None) -> Path:
    rng = np.random.default_rng(seed)
    p = rng.random((n, 10))
    write_probs(path, np.arange(n), p / p.sum(1, keepdims=True), classes or [str(i) for i in range(10)],
                {"kind": "test", "run": "r", "fold": 0})
    return path


# ==== 1: one output guard, used by every writer =====================================================================
#
# Each writer: (a) an output that is, or resolves to, one of its inputs (spelled through a symbolic link, a hard
# link or '..'), (b) a folder symlink planted where it writes. ``download`` has no (a): its only input is the
# archive kfold itself saves into a hidden folder.

def _link_input(how: str, link: Path, source: Path) -> Path:
    """Make ``link`` name ``source``: a symlink, a hard link or a '..' spelling; returns the output path to give."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if how == "symlink":
        link.symlink_to(source.resolve())
        return link
    if how == "hardlink":
        os.link(source, link)
        return link
    return source.parent / "x" / ".." / source.name  # '..': the input itself, spelled another way


def writer_same_as_input(writer: str, how: str, tmp_path: Path, copied) -> tuple[list, int, str, Path]:
    """(argv, exit status, error fragment, input that must stay unchanged) of case (a) for ``writer``."""
    data, run_dir, _ = copied
    (run_dir / "x").mkdir(exist_ok=True)
    (data / "x").mkdir(exist_ok=True)
    if writer == "report":
        out = _link_input(how, tmp_path / "r.html", run_dir / "summary.json")
        if how == "dots":
            out = run_dir / "x" / ".." / "summary.json"
        return ["report", run_dir, "--out", out], 2, "summary.json", run_dir / "summary.json"
    if writer == "errors":
        out = tmp_path / "analysis"
        target = _link_input(how, out / "errors.csv", run_dir / "oof.npz")
        if how == "dots":
            out = run_dir / "x" / ".."
            (run_dir / "errors.csv").write_text("a file of the run\n")  # kept: the analysis must not replace it
            return ["errors", run_dir, "--out", out], 2, "errors.csv", run_dir / "errors.csv"
        return ["errors", run_dir, "--out", out], 2, "errors.csv", target
    if writer == "run":
        subs = tmp_path / "subs"
        out = _link_input(how, subs / "run-mean.csv", data / "sample_submission.csv")
        if how == "dots":
            subs = data / "x" / ".."
            (data / "run-mean.csv").write_text("Id,Category\n")  # a file of the data folder
            return (["run", "--data", data, "--out", run_dir, *TRAIN, "--threads", 1, "--submissions", subs], 2,
                    "run-mean.csv", data / "run-mean.csv")
        return ["run", "--data", data, "--out", run_dir, *TRAIN, "--threads", 1, "--submissions", subs], 2, \
            "run-mean.csv", out
    if writer == "learning-curve":
        out = tmp_path / "curve"
        _link_input(how, out / "learning_curve.csv", run_dir / "summary.json")
        if how == "dots":
            (run_dir / "learning_curve.csv").write_text("kept\n")
            out = run_dir / "x" / ".."
            return ["learning-curve", run_dir, "--out", out], 2, "learning_curve.csv", run_dir / "learning_curve.csv"
        return ["learning-curve", run_dir, "--out", out], 2, "learning_curve.csv", run_dir / "summary.json"
    if writer == "make-competition":
        out = {"symlink": tmp_path / "comp-link", "hardlink": data, "dots": data / "x" / ".."}[how]
        if how == "symlink":
            out.symlink_to(data.resolve(), target_is_directory=True)
        return ["make-competition", "--data", data, "--out", out], 2, "kmnist-", \
            data / "kmnist-train-imgs.npy"
    if writer == "ensemble":
        a, b = good_probs(tmp_path / "a.npz", seed=1), good_probs(tmp_path / "b.npz", seed=2)
        sub = tmp_path / "in.csv"
        sub.write_text("Id,Category\n" + "".join(f"{i},{i % 10}\n" for i in range(20)))
        out = _link_input(how, tmp_path / "out.csv", sub)
        return ["ensemble", sub, a, b, "--method", "vote", "--out", out], 2, "in.csv", sub
    if writer == "predict":
        pred = tmp_path / "pred"
        out = _link_input(how, pred / "run-oof.npz", run_dir / "oof.npz")
        if how == "dots":
            return ["predict", run_dir, "--data", data, "--out", run_dir / "x" / "..", "--device", "cpu"], 1, \
                "oof.npz", run_dir / "oof.npz"
        return ["predict", run_dir, "--data", data, "--out", pred, "--device", "cpu"], 2, "run-oof.npz", out
    if writer == "leaderboard":
        board = tmp_path / "board"
        solution = data / "solution.csv"
        _link_input(how, board / "leaderboard.csv", solution)
        if how == "dots":
            board = data / "x" / ".."
            shutil.copy(solution, data / "leaderboard.csv")
            solution = data / "leaderboard.csv"
        sub = tmp_path / "s.csv"
        sub.write_text("Id,Category\n" + "".join(f"{i},{i % 10}\n" for i in range(20)))
        return ["leaderboard", sub, "--solution", solution, "--out", board, "--bootstrap", 10], 2, "leaderboard.csv", \
            solution
    if writer == "train":
        target = _link_input(how, run_dir / "summary.json.new", data / "sample_submission.csv")
        run_dir.joinpath("summary.json").unlink()
        if how == "dots":
            shutil.copy(data / "sample_submission.csv", data / "summary.json")
            return ["train", "--data", data, "--out", data / "x" / "..", *TRAIN], 1, "summary.json", \
                data / "summary.json"
        target.rename(run_dir / "summary.json")
        return ["train", "--data", data, "--out", run_dir, *TRAIN, "--resume"], 1, "summary.json", \
            data / "sample_submission.csv"
    if writer == "compare":
        out = tmp_path / "cmp"
        _link_input(how, out / "comparison.csv", data / "solution.csv")
        if how == "dots":
            shutil.copy(data / "solution.csv", data / "comparison.csv")
            out = data / "x" / ".."
            return ["compare", "--data", data, "--out", out, "--presets", "lenet5", "--seeds", "0", "--k", 2,
                    "--epochs", 1, "--device", "cpu"], 1, "comparison.csv", data / "comparison.csv"
        return ["compare", "--data", data, "--out", out, "--presets", "lenet5", "--seeds", "0", "--k", 2,
                "--epochs", 1, "--device", "cpu"], 1, "comparison.csv", data / "solution.csv"
    raise AssertionError(writer)


WRITERS = ["report", "errors", "run", "learning-curve", "make-competition", "ensemble", "predict", "leaderboard",
           "train", "compare"]  # and download: test_download_refuses_a_planted_folder_link below


# '..' spellings where an output can carry an input's name: a named file, or a folder holding the inputs
DOTS = {"report", "run", "make-competition", "leaderboard", "compare"}
SAME_AS_INPUT = [(w, how) for w in WRITERS for how in ("symlink", "hardlink", "dots") if how != "dots" or w in DOTS]


@pytest.mark.parametrize("writer, how", SAME_AS_INPUT, ids=[f"{w}-{h}" for w, h in SAME_AS_INPUT])
def test_no_writer_replaces_one_of_its_inputs(writer, how, tmp_path, capsys, copied):
    argv, code, fragment, kept = writer_same_as_input(writer, how, tmp_path, copied)
    before = kept.read_bytes()
    line = refused(tmp_path, capsys, [writer, *argv[1:]], code, fragment)
    assert "would overwrite the input" in line or "already holds" in line, line
    assert kept.read_bytes() == before


def writer_planted_link(writer: str, where: str, tmp_path: Path, copied, target: Path) -> tuple[list, int, Path]:
    """(argv, exit status, the planted link) of case (b): ``where`` names one of the writer's output folders."""
    data, run_dir, _ = copied
    train = [*TRAIN, "--threads", 1]
    if writer == "report":
        link = plant(run_dir / "analysis", target)
        return ["report", run_dir], 2, link
    if writer == "errors":
        folder = {"default": run_dir / "analysis", "out": tmp_path / "an"}[where]
        link = plant(folder, target)
        return ["errors", run_dir, *(["--out", folder] if where == "out" else [])], 2, link
    if writer == "run":
        folder = {"leaderboard": run_dir / "leaderboard", "report-mean": run_dir / "report-mean",
                  "probs": run_dir / "probs", "subs": tmp_path / "subs", "fold1": run_dir / "fold1"}[where]
        link = plant(folder, target)
        return ["run", "--data", data, "--out", run_dir, *train, "--submissions", tmp_path / "subs"], \
            2 if where == "subs" else 1, link
    if writer in ("learning-curve", "make-competition", "predict", "leaderboard"):
        link = plant(tmp_path / "out", target)
        sub = tmp_path / "s.csv"
        sub.write_text("Id,Category\n" + "".join(f"{i},{i % 10}\n" for i in range(20)))
        return {"learning-curve": ["learning-curve", run_dir, "--out", link],
                "make-competition": ["make-competition", "--data", data, "--out", link],
                "predict": ["predict", run_dir, "--data", data, "--out", link, "--device", "cpu"],
                "leaderboard": ["leaderboard", sub, "--solution", data / "solution.csv", "--out", link]}[writer], 2, link
    if writer == "ensemble":
        link = plant(tmp_path / "rep", target)
        return ["ensemble", good_probs(tmp_path / "a.npz"), good_probs(tmp_path / "b.npz", seed=1), "--out",
                tmp_path / "e.csv", "--report", link], 2, link
    if writer == "train":
        link = plant(run_dir / where, target)
        return ["train", "--data", data, "--out", run_dir, *train, "--resume"], 1, link
    if writer == "mnist-mix":
        out = tmp_path / "mix"
        link = plant(out if where == "out" else out / "compare" / "tables", target)
        return ["mnist-mix", "compare", "--data", data, "--out", out, "--quick"], 2, link
    if writer == "compare":
        out = tmp_path / "cmp"
        link = plant(out / where, target)
        return ["compare", "--data", data, "--out", out, "--presets", "lenet5", "--seeds", "0", "--k", 2, "--epochs", 1,
                "--device", "cpu"], 1, link
    raise AssertionError(writer)


PLANTED = [("report", "analysis"), ("errors", "default"), ("errors", "out"), ("run", "leaderboard"),
           ("run", "report-mean"), ("run", "probs"), ("run", "subs"), ("run", "fold1"), ("learning-curve", "out"),
           ("make-competition", "out"), ("ensemble", "report"), ("predict", "out"), ("leaderboard", "out"),
           ("train", "fold1"), ("train", "full"), ("compare", "seed0"), ("compare", "submissions"),
           ("mnist-mix", "out"), ("mnist-mix", "inside")]


def test_the_writer_list_covers_every_command_that_writes():
    """Every ``kfold`` command is either in the writer list (or download, tested below) or writes nothing;
    submit/submissions write the Kaggle submission log (tests/test_kaggle_loop.py)."""
    from kfold.commands.main import COMMANDS, DELEGATED

    read_only = {"validate", "presets", "models", "inspect"}  # inspect writes only the decode cache
    searches = {"tune"}  # guarded in kfold.flows.tune (tests/test_competitions_end_to_end.py: its output guard)
    kaggle_log = {"submit", "submissions"}
    # package: its --out must be new or empty and not a link (tests/test_code_package.py); rehearse writes nothing
    code = {"package", "rehearse"}
    tracking = {"track"}  # track sync writes only to the MLflow store (tests/test_tracking.py)
    assert set(COMMANDS) | set(DELEGATED) == (set(WRITERS) | {"mnist-mix", "download"} | read_only | kaggle_log | searches
                                              | code | tracking)


@pytest.mark.parametrize("target_kind", ["outside", "inside"])
@pytest.mark.parametrize("writer, where", PLANTED, ids=[f"{w}-{p}" for w, p in PLANTED])
def test_no_writer_writes_through_a_planted_folder_link(writer, where, target_kind, tmp_path, capsys, copied):
    assert set(WRITERS) | {"mnist-mix"} == {w for w, _ in PLANTED}
    target = outside(tmp_path) if target_kind == "outside" else copied[1] / "fold0"  # even a folder of the run
    argv, code, link = writer_planted_link(writer, where, tmp_path, copied, target)
    before = tree(target)
    line = refused(tmp_path, capsys, argv, code, f"{link}: is a symbolic link to")
    assert "never through a link" in line
    assert tree(target) == before


@pytest.fixture
def fake_kaggle_env(request):
    if importlib.util.find_spec("kaggle") is None:
        pytest.skip("kaggle not installed")
    return request.getfixturevalue("fake_kaggle")


def kfold_process(*args, cwd: Path, umask: int = 0o022, fresh: bool = True) -> subprocess.CompletedProcess:
    """``python -m kfold ARGS`` under ``umask`` (``fresh=False``: in this process, ``tests/inproc.py``)."""
    if not fresh:
        from inproc import kfold as kfold_here

        return kfold_here(*args, cwd=cwd, umask=umask)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "kfold", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180, preexec_fn=lambda: os.umask(umask))


def kaggle_zip(members: dict[str, bytes]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


KAGGLE_MEMBERS = {"kmnist/sample_submission.csv": b"Id,Category\n0,0\n", "kmnist/train/a.csv": b"x\n", "readme.txt": b"r"}


@pytest.mark.parametrize("where", ["data", "data/kmnist", "data/kmnist/train"])
def test_download_refuses_a_planted_folder_link(where, fake_kaggle_env, tmp_path):
    fake_kaggle_env.add("kmnist", data_zip=kaggle_zip(KAGGLE_MEMBERS))
    target = outside(tmp_path)
    (tmp_path / "data").mkdir()
    plant(tmp_path / where, target)
    before = tree(tmp_path)
    done = kfold_process("download", "-c", "kmnist", "--data", "data", cwd=tmp_path, fresh=where == "data")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "symbolic link" in done.stderr and where in done.stderr
    assert tree(tmp_path) == before


# ==== 3: files of another run or fold ==============================================================================

def foreign_oof(kind: str, run_dir: Path, other: Path) -> None:
    """Replace RUN/oof.npz with one of another run, or one edited to look like one."""
    mine = read_probs(run_dir / "oof.npz")
    if kind == "other-run":
        shutil.copy(other / "oof.npz", run_dir / "oof.npz")
    elif kind == "other-fingerprint":
        write_probs(run_dir / "oof.npz", mine.ids, mine.probs, mine.classes, {**mine.meta, "fingerprint": "0" * 16},
                    labels=mine.labels)
    elif kind == "a-fold-file":
        shutil.copy(run_dir / "fold1" / "oof.npz", run_dir / "oof.npz")
    elif kind == "other-preset":
        write_probs(run_dir / "oof.npz", mine.ids, mine.probs, mine.classes, {**mine.meta, "preset": "fast"},
                    labels=mine.labels)
    elif kind == "same-meta-other-rows":  # the metadata copied over, the predictions of the other run
        theirs = read_probs(other / "oof.npz")
        write_probs(run_dir / "oof.npz", theirs.ids, theirs.probs, theirs.classes, mine.meta, labels=theirs.labels)
    elif kind == "rows-dropped":
        write_probs(run_dir / "oof.npz", mine.ids[:-7], mine.probs[:-7], mine.classes, mine.meta, labels=mine.labels[:-7])
    else:
        raise AssertionError(kind)


FOREIGN_OOF = ["other-run", "other-fingerprint", "a-fold-file", "other-preset", "same-meta-other-rows", "rows-dropped"]


@pytest.mark.parametrize("kind", FOREIGN_OOF)
@pytest.mark.parametrize("command", ["errors", "report", "predict"])
def test_a_foreign_out_of_fold_file_is_refused(kind, command, tmp_path, capsys, copied):
    data, run_dir, other = copied
    foreign_oof(kind, run_dir, other)
    argv = {"errors": ["errors", run_dir, "--out", tmp_path / "an"], "report": ["report", run_dir],
            "predict": ["predict", run_dir, "--data", data, "--out", tmp_path / "p", "--device", "cpu"]}[command]
    line = refused(tmp_path, capsys, argv, 1, "oof.npz")
    assert "another" in line or "fold" in line, line


def swap_weights(kind: str, run_dir: Path, other: Path) -> None:
    if kind == "fold0-as-fold1":
        shutil.copy(run_dir / "fold0" / "model.safetensors", run_dir / "fold1" / "model.safetensors")
    elif kind == "fold1-as-fold0":
        shutil.copy(run_dir / "fold1" / "model.safetensors", run_dir / "fold0" / "model.safetensors")
    elif kind == "other-run":
        shutil.copy(other / "fold1" / "model.safetensors", run_dir / "fold1" / "model.safetensors")
    elif kind == "full-as-fold0":
        from safetensors.torch import load_file, save_file
        from safetensors import safe_open

        path = run_dir / "fold0" / "model.safetensors"
        with safe_open(str(path), "pt") as fh:
            metadata = fh.metadata()
        meta = json.loads(metadata["kfold"])
        save_file(load_file(str(path)), str(path), metadata={**metadata, "kfold": json.dumps({**meta, "fold": "full"})})
    else:
        raise AssertionError(kind)


SWAPS = ["fold0-as-fold1", "fold1-as-fold0", "other-run", "full-as-fold0"]


@pytest.mark.parametrize("kind", SWAPS)
def test_predict_refuses_weights_of_another_fold_or_run(kind, tmp_path, capsys, copied):
    data, run_dir, other = copied
    swap_weights(kind, run_dir, other)
    line = refused(tmp_path, capsys, ["predict", run_dir, "--data", data, "--out", tmp_path / "p", "--device", "cpu"], 1,
                   "model.safetensors")
    assert "another" in line, line
    message = api_refused(tmp_path, lambda: kfold.load_run(run_dir).predict(tmp_path / "q", device="cpu"), DataError,
                          "model.safetensors")
    assert "another" in message


META_SWAPS = ["fold0-as-fold1", "other-run-fold1"]


@pytest.mark.parametrize("kind", META_SWAPS)
@pytest.mark.parametrize("command", ["train", "learning-curve"])
def test_a_fold_folder_holding_another_folds_metadata_is_refused(kind, command, tmp_path, capsys, copied):
    data, run_dir, other = copied
    source = run_dir / "fold0" if kind == "fold0-as-fold1" else other / "fold1"
    shutil.copy(source / "meta.json", run_dir / "fold1" / "meta.json")
    if kind == "other-run-fold1":
        shutil.copy(source / "oof.npz", run_dir / "fold1" / "oof.npz")
    argv = (["train", "--data", data, "--out", run_dir, *TRAIN, "--threads", 1, "--resume"] if command == "train"
            else ["learning-curve", run_dir, copied[2], "--out", tmp_path / "lc"])
    if command == "learning-curve" and kind == "other-run-fold1":
        pytest.skip("the learning curve reads only train_rows of meta.json, which both runs share")
    line = refused(tmp_path, capsys, argv, 1, "fold1/")
    assert "another" in line, line


# ==== 4: damaged run files: one error naming file and field, nothing written =========================================

def edit_json(path: Path, edit) -> None:
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


SUMMARY_EDITS = [
    ("k-string", lambda s: s.update(k="2"), "'k'"),
    ("k-one", lambda s: s.update(k=1), "'k'"),
    ("k-missing", lambda s: s.pop("k"), "'k'"),
    ("folds-done-negative", lambda s: s.update(folds_done=-1), "'folds_done'"),
    ("folds-done-float", lambda s: s.update(folds_done=2.5), "'folds_done'"),
    ("accuracy-1.7", lambda s: s.update(oof_accuracy=1.7), "'oof_accuracy'"),
    ("accuracy-text", lambda s: s.update(oof_accuracy="high"), "'oof_accuracy'"),
    ("accuracy-null", lambda s: s.update(oof_accuracy=None), "'oof_accuracy'"),
    ("logloss-negative", lambda s: s.update(oof_logloss=-0.5), "'oof_logloss'"),
    ("rows-text", lambda s: s.update(oof_rows="60"), "'oof_rows'"),
    ("folds-not-list", lambda s: s.update(folds="0,1"), "'folds'"),
    ("fold-row-accuracy", lambda s: s["folds"][1].update(val_accuracy=-0.1), "'folds[1].val_accuracy'"),
    ("fold-row-missing", lambda s: s["folds"][0].pop("seconds"), "'folds[0].seconds'"),
    ("fold-row-not-object", lambda s: s["folds"].__setitem__(0, 3), "'folds[0]'"),
    ("seconds-bool", lambda s: s.update(train_seconds=True), "'train_seconds'"),
    ("group-accuracy", lambda s: s.update(oof_accuracy_by_group={"Arabic": 2}), "'oof_accuracy_by_group.Arabic'"),
]


@pytest.mark.parametrize("edit, field", [c[1:] for c in SUMMARY_EDITS], ids=[c[0] for c in SUMMARY_EDITS])
def test_report_refuses_a_damaged_summary(edit, field, tmp_path, capsys):
    run_dir, _ = fake_run(tmp_path)
    edit_json(run_dir / "summary.json", edit)
    refused(tmp_path, capsys, ["report", run_dir], 1, "summary.json", field)


@pytest.mark.parametrize("value", [1.7, -0.2, "0.9", None, [0.9]])
@pytest.mark.parametrize("field", ["oof_accuracy_last_epoch", "oof_rows", "seed"])
def test_learning_curve_refuses_a_damaged_summary(field, value, tmp_path, capsys):
    first, _ = fake_run(tmp_path / "a", k=2)
    second, _ = fake_run(tmp_path / "b", k=3)
    edit_json(second / "summary.json", lambda s: s.update({field: value}))
    for fold in range(3):
        for run_dir, k in ((first, 2), (second, 3)):
            if fold < k:
                (run_dir / f"fold{fold}" / "meta.json").write_text(json.dumps({"fold": fold, "train_rows": 60}))
    refused(tmp_path, capsys, ["learning-curve", first, second, "--out", tmp_path / "lc"], 1, "b/run/summary.json",
            f"'{field}'")


METRICS_EDITS = [
    ("empty-file", ""),
    ("header-only", "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n"),
    ("column-missing", "epoch,train_loss,train_accuracy,val_loss,lr\n1,2,0.5,1,0.1\n"),
    ("text-cell", "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr\n1,2,0.5,1,high,0.1\n"),
    ("accuracy-1.5", "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr\n1,2,1.5,1,0.5,0.1\n"),
    ("infinite-loss", "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr\n1,2,0.5,inf,0.5,0.1\n"),
    ("epoch-fraction", "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr\n1.5,2,0.5,1,0.5,0.1\n"),
    ("binary", b"\xff\xfe\x00garbage"),
]


@pytest.mark.parametrize("content", [c[1] for c in METRICS_EDITS], ids=[c[0] for c in METRICS_EDITS])
def test_report_refuses_a_damaged_metrics_file(content, tmp_path, capsys):
    run_dir, _ = fake_run(tmp_path)
    path = run_dir / "fold1" / "metrics.csv"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    refused(tmp_path, capsys, ["report", run_dir], 1, "fold1/metrics.csv")


def with_agreement(run_dir: Path, content: str) -> None:
    (run_dir / "report-mean").mkdir()
    (run_dir / "report-mean" / "agreement.csv").write_text(content)


AGREEMENT_EDITS = [
    ("not-square", ",a,b\na,1.0,0.5\n"),
    ("names-differ", ",a,b\na,1.0,0.5\nc,0.5,1.0\n"),
    ("text-value", ",a,b\na,1.0,high\nb,0.5,1.0\n"),
    ("above-one", ",a,b\na,1.0,1.3\nb,1.3,1.0\n"),
    ("empty", ""),
    ("header-only", ",a,b\n"),
]


@pytest.mark.parametrize("content", [c[1] for c in AGREEMENT_EDITS], ids=[c[0] for c in AGREEMENT_EDITS])
def test_report_refuses_a_damaged_agreement_file(content, tmp_path, capsys):
    run_dir, _ = fake_run(tmp_path)
    with_agreement(run_dir, content)
    refused(tmp_path, capsys, ["report", run_dir], 1, "report-mean/agreement.csv")


BOARD_HEADER = "submission,public_rank,public,public_low,public_high,private,private_low,private_high,private_rank"
BOARD_EDITS = [
    ("no-columns", "a,b\n1,2\n", "column 'submission'"),
    ("rank-missing", BOARD_HEADER.replace(",private_rank", "") + "\ns.csv,1,0.5,0.4,0.6,0.5,0.4,0.6\n", "'private_rank'"),
    ("text-score", BOARD_HEADER + "\ns.csv,1,high,0.4,0.6,0.5,0.4,0.6,1\n", "'public'"),
    ("score-above-one", BOARD_HEADER + "\ns.csv,1,0.5,0.4,0.6,1.5,0.4,0.6,1\n", "'private'"),
    ("rank-fraction", BOARD_HEADER + "\ns.csv,1.5,0.5,0.4,0.6,0.5,0.4,0.6,1\n", "'public_rank'"),
    ("empty", "", "damaged CSV"),
    ("logloss-text", BOARD_HEADER + ",public_logloss\ns.csv,1,0.5,0.4,0.6,0.5,0.4,0.6,1,x\n", "'public_logloss'"),
]


@pytest.mark.parametrize("where", ["run", "flag"])
@pytest.mark.parametrize("content, fragment", [c[1:] for c in BOARD_EDITS], ids=[c[0] for c in BOARD_EDITS])
def test_report_refuses_a_damaged_leaderboard(content, fragment, where, tmp_path, capsys):
    run_dir, _ = fake_run(tmp_path)
    folder = run_dir / "leaderboard" if where == "run" else tmp_path / "board"
    folder.mkdir()
    (folder / "leaderboard.csv").write_text(content)
    argv = ["report", run_dir, *(["--leaderboard", folder] if where == "flag" else [])]
    refused(tmp_path, capsys, argv, 1, "leaderboard.csv", fragment)


CONFIG_EDITS = [
    ("k-string", lambda c: c.update(k="2"), "'k'"),
    ("k-missing", lambda c: c.pop("k"), "'k'"),
    ("data-number", lambda c: c.update(data=5), "'data'"),
    ("classes-numbers", lambda c: c.update(classes=[1, 2]), "'classes'"),
    ("seed-negative", lambda c: c.update(seed=-3), "'seed'"),
    ("fingerprint-list", lambda c: c.update(fingerprint=["x"]), "'fingerprint'"),
]


@pytest.mark.parametrize("command", ["report", "errors"])
@pytest.mark.parametrize("edit, field", [c[1:] for c in CONFIG_EDITS], ids=[c[0] for c in CONFIG_EDITS])
def test_report_and_errors_refuse_a_damaged_config(edit, field, command, tmp_path, capsys):
    run_dir, _ = fake_run(tmp_path)
    edit_json(run_dir / "config.json", edit)
    refused(tmp_path, capsys, [command, run_dir], 1, "config.json", field)


META_EDITS = [
    ("missing-best-epoch", lambda m: m.pop("best_epoch"), "'best_epoch'"),
    ("missing-val-rows", lambda m: m.pop("val_rows"), "'val_rows'"),
    ("best-epoch-text", lambda m: m.update(best_epoch="3"), "'best_epoch'"),
    ("seconds-negative", lambda m: m.update(seconds=-1), "'seconds'"),
    ("val-accuracy-2", lambda m: m.update(val_accuracy=2.0), "'val_accuracy'"),
    ("val-rows-float", lambda m: m.update(val_rows=3.5), "'val_rows'"),
    ("fold-text", lambda m: m.update(fold="one"), "'fold'"),
    ("threads-zero-text", lambda m: m.update(threads="1"), "'threads'"),
]


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize("edit, field", [c[1:] for c in META_EDITS], ids=[c[0] for c in META_EDITS])
def test_a_damaged_fold_metadata_is_one_line(edit, field, command, tmp_path, capsys, copied):
    data, run_dir, _ = copied
    edit_json(run_dir / "fold1" / "meta.json", edit)
    train = [*TRAIN, "--threads", 1]
    argv = (["run", "--data", data, "--out", run_dir, *train, "--submissions", tmp_path / "subs"] if command == "run"
            else ["train", "--data", data, "--out", run_dir, *train, "--resume"])
    refused(tmp_path, capsys, argv, 1, "fold1/meta.json", field)


@pytest.mark.parametrize("content", ["", "epoch,val_accuracy\n", "epoch,train_accuracy,val_accuracy,val_loss\n1,0.5,x,1\n"])
def test_resume_refuses_a_damaged_metrics_file_before_writing(content, tmp_path, capsys, copied):
    data, run_dir, _ = copied
    (run_dir / "fold0" / "metrics.csv").write_text(content)
    refused(tmp_path, capsys, ["train", "--data", data, "--out", run_dir, *TRAIN, "--threads", 1, "--resume"], 1,
            "fold0/metrics.csv")


# ==== 5: checked before the run folder exists =========================================================================

def _has(device: str) -> bool:
    import torch

    return torch.cuda.is_available() if device == "cuda" else torch.backends.mps.is_available()


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_an_absent_device_is_refused_before_the_run_folder_exists(device, command, tmp_path, capsys):
    if _has(device):
        pytest.skip(f"{device} is available here")
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20)
    argv = [command, "--data", data, "--out", tmp_path / "run", *[a for a in TRAIN if a not in ("--device", "cpu")],
            "--device", device, "--submissions", tmp_path / "subs"]
    if command == "train":
        argv.remove("--submissions")
        argv.remove(tmp_path / "subs")
    refused(tmp_path, capsys, argv, 2, f"device '{device}'")
    assert not (tmp_path / "run").exists()


ADDRESSES = ["not a host", "10.0.0.5", "host:0", "host:70000", "http://host:6379", ":6379", "a b:1", "host:port"]


@pytest.mark.parametrize("address", ADDRESSES)
@pytest.mark.parametrize("command", ["train", "run", "compare"])
def test_a_malformed_ray_address_is_a_usage_error(address, command, tmp_path, capsys):
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20)
    argv = {"train": ["train", "--data", data, "--out", tmp_path / "run", *TRAIN],
            "run": ["run", "--data", data, "--out", tmp_path / "run", *TRAIN],
            "compare": ["compare", "--data", data, "--out", tmp_path / "run", "--presets", "lenet5", "--seeds", "0"]}[command]
    refused(tmp_path, capsys, [*argv, "--backend", "ray", "--address", address], 2, "--address", repr(address))
    with pytest.raises(UsageError, match="address="):
        kfold.train(str(data), "lenet5", k=2, out=tmp_path / "api", backend="ray", address=address, epochs=1)
    assert not (tmp_path / "run").exists() and not (tmp_path / "api").exists()


@pytest.mark.parametrize("kind", ["file", "csv", "link-to-file"])
def test_submissions_naming_a_file_is_refused_before_training(kind, tmp_path, capsys):
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20)
    target = tmp_path / ("subs.csv" if kind == "csv" else "subs")
    if kind == "link-to-file":
        (tmp_path / "f").write_text("x")
        target.symlink_to(tmp_path / "f")
    else:
        target.write_text("Id,Category\n")
    refused(tmp_path, capsys, ["run", "--data", data, "--out", tmp_path / "run", *TRAIN, "--submissions", target], 2,
            "--submissions", "is a file")
    assert not (tmp_path / "run").exists()


API_TRAIN_BAD = [
    ("backend", 5), ("backend", "slurm"), ("backend", None), ("device", "gpu"), ("device", 0), ("device", "cuda:x"),
    ("threads", 0), ("threads", -2), ("threads", "4"), ("threads", 2.0), ("folds", ["a"]), ("folds", "a,b"),
    ("folds", [0.5]), ("folds", []), ("folds", 3), ("k", "5"), ("k", 1), ("k", True), ("seed", -1), ("seed", "0"),
    ("seed", 2 ** 32), ("resume", "yes"), ("progress", 1), ("cpus_per_fold", "1"), ("cpus_per_fold", float("nan")),
    ("gpus_per_fold", -1), ("max_retries", 1.5), ("out", 5), ("config", 3), ("preset", 7), ("address", 6379),
]


@pytest.mark.parametrize("name, value", API_TRAIN_BAD, ids=[f"{n}={v!r}" for n, v in API_TRAIN_BAD])
def test_api_train_names_the_parameter_of_a_wrong_argument(name, value, tmp_path):
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20)
    kwargs = {"k": 2, "out": tmp_path / "run", "epochs": 1, "progress": False, name: value}
    preset = kwargs.pop("preset", "lenet5")
    api_refused(tmp_path, lambda: kfold.train(str(data), preset, **kwargs), UsageError, f"{name}=")
    assert not (tmp_path / "run").exists()


def test_api_backend_options_without_ray_and_device_checks(tmp_path):
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20)
    for kwargs, fragment in (({"cpus_per_fold": 2}, "cpus_per_fold"), ({"max_retries": 1}, "max_retries"),
                             ({"address": "h:1"}, "address")):
        api_refused(tmp_path, lambda: kfold.train(str(data), "lenet5", k=2, out=tmp_path / "run", **kwargs),
                    UsageError, fragment)


# ==== 7: contradictions and dangling flags are usage errors ===========================================================

CONTRADICTIONS = [
    (["run", "--seeds", "0,1", "--seed", "3"], "--seed or --seeds"),
    (["run", "--seed", "0", "--seeds", "0"], "--seed or --seeds"),
    (["train", "--full", "--folds", "0"], "--folds 0"),
    (["train", "--full", "--folds", "0,1"], "--folds 0,1"),
    (["report", "RUN", "--leaderboard", "nowhere"], "nowhere: holds no leaderboard.csv"),
    (["report", "RUN", "--leaderboard", "RUN"], "holds no leaderboard.csv"),
    (["ensemble", "A", "B", "--out", "e.csv", "--tiebreak", "prob"], "--tiebreak"),
    (["ensemble", "A", "B", "--out", "e.csv", "--method", "geomean", "--tiebreak", "random"], "--tiebreak"),
    (["ensemble", "A", "B", "--out", "e.csv", "--fit-rounds", "5"], "--fit-weights"),
    (["ensemble", "A", "B", "--out", "e.csv", "--fit-metric", "logloss"], "--fit-weights"),
    (["compare", "--seeds", "0", "--seed-ensembles", "lenet5", "--presets", "lenet5"], "--seed-ensembles"),
    (["train", "--address", "h:1"], "--address needs --backend ray"),
]


@pytest.mark.parametrize("argv, fragment", CONTRADICTIONS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CONTRADICTIONS])
def test_contradicting_or_dangling_flags_are_usage_errors(argv, fragment, tmp_path, capsys):
    run_dir, data = fake_run(tmp_path)
    a, b = good_probs(tmp_path / "a.npz"), good_probs(tmp_path / "b.npz", seed=1)
    names = {"RUN": run_dir, "A": a, "B": b, "nowhere": tmp_path / "nowhere", "e.csv": tmp_path / "e.csv"}
    argv = [names.get(arg, arg) for arg in argv]
    if argv[0] in ("run", "train", "compare"):
        argv += ["--data", data, "--out", tmp_path / "out", *(TRAIN[:4] if argv[0] != "compare" else [])]
    refused(tmp_path, capsys, argv, 2, fragment.replace("RUN", str(run_dir)))


# ==== 8: the folder kfold download creates follows the umask ==========================================================

@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002, 0o077])
def test_download_folder_and_contents_follow_the_umask(umask, fake_kaggle_env, tmp_path):
    fake_kaggle_env.add("kmnist", data_zip=kaggle_zip(KAGGLE_MEMBERS))
    done = kfold_process("download", "-c", "kmnist", "--data", "data/km", cwd=tmp_path, umask=umask,
                         fresh=umask == 0o022)  # the others in this process, under their umask
    assert done.returncode == 0, done.stderr
    root = tmp_path / "data" / "km"
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(folders) == 3 and len(files) == 3
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask, folder
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


# ==== 9: messages ===================================================================================================

API_MESSAGES = [
    ("leaderboard", {"bootstrap": "10"}, "bootstrap="),
    ("leaderboard", {"bootstrap": 0}, "bootstrap="),
    ("leaderboard", {"bootstrap": 2.5}, "bootstrap="),
    ("leaderboard", {"seed": "1"}, "seed="),
    ("leaderboard", {"submissions": 5}, "submissions="),
    ("leaderboard", {"submissions": [3]}, "submissions:"),
    ("ensemble", {"method": "median"}, "method="),
    ("ensemble", {"seed": -1}, "seed="),
    ("ensemble", {"weights": "1,2"}, "weights="),
    ("ensemble", {"weights": [1, "x"]}, "weights="),
    ("ensemble", {"tiebreak": "first"}, "tiebreak="),
    ("ensemble", {"inputs": 5}, "inputs="),
    ("ensemble", {"inputs": []}, "inputs="),
    ("ensemble", {"out": 3}, "out="),
]


@pytest.mark.parametrize("function, kwargs, fragment", API_MESSAGES,
                         ids=[f"{f}-{list(k)[0]}={list(k.values())[0]!r}" for f, k, _ in API_MESSAGES])
def test_api_messages_name_the_parameter(function, kwargs, fragment, tmp_path):
    a, b = good_probs(tmp_path / "a.npz"), good_probs(tmp_path / "b.npz", seed=1)
    solution = tmp_path / "solution.csv"
    solution.write_text("Id,Category,Usage\n" + "".join(f"{i},{i % 10},{'Public' if i % 2 else 'Private'}\n"
                                                         for i in range(20)))
    if function == "leaderboard":
        args = {"submissions": [a, b], **kwargs}
        call = lambda: kfold.leaderboard(solution, args.pop("submissions"), out=tmp_path / "board", **args)  # noqa: E731
    else:
        args = {"inputs": [a, b], "out": tmp_path / "e.csv", **kwargs}
        call = lambda: kfold.ensemble(args.pop("inputs"), **args)  # noqa: E731
    api_refused(tmp_path, call, UsageError, fragment)


@pytest.mark.parametrize("threads", [0, -1, "2", 1.5, True])
def test_run_predict_threads_is_checked_without_a_torch_error(threads, copied, tmp_path):
    data, run_dir, _ = copied
    api_refused(tmp_path, lambda: kfold.load_run(run_dir).predict(tmp_path / "p", threads=threads, device="cpu"),
                UsageError, "threads=")


@pytest.mark.parametrize("kwargs, fragment", [({"device": "gpu"}, "device="), ({"fmt": "parquet"}, "fmt="),
                                              ({"tta": 0}, "tta="), ({"tta": "2"}, "tta="), ({"out": 4}, "out=")])
def test_run_predict_arguments_name_the_parameter(kwargs, fragment, copied, tmp_path):
    _, run_dir, _ = copied
    api_refused(tmp_path, lambda: kfold.load_run(run_dir).predict(**{"out": tmp_path / "p", **kwargs}), UsageError,
                fragment)


@pytest.mark.parametrize("spelling", ["str", "path", "list-of-one"])
def test_api_ensemble_takes_a_list_of_paths_never_a_bare_one(spelling, tmp_path):
    """A list of one path is an ensemble of one; a bare path (a glob string, say) is a TypeError (issue 31)."""
    a = good_probs(tmp_path / "one.npz")
    inputs = {"str": str(a), "path": a, "list-of-one": [str(a)]}[spelling]
    if spelling != "list-of-one":
        api_refused(tmp_path, lambda: kfold.ensemble(inputs, out=tmp_path / "e.csv"), TypeError, "inputs=")
        return
    made = kfold.ensemble(inputs, out=tmp_path / "e.csv")
    assert made.submission.is_file() and len(made.ids) == 20
    assert (made.categories == read_probs(a).probs.argmax(1)).all()


@pytest.mark.parametrize("where", ["top", "nested", "file-in-folder"])
@pytest.mark.parametrize("length", [256, 300, 1000])
def test_a_too_long_member_name_names_the_member(length, where, tmp_path):
    from kfold.files.archive import extract_zip

    name = "n" * length
    member = {"top": name, "nested": f"sub/{name}", "file-in-folder": f"{name}/x.csv"}[where]
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.csv", "a")
        zf.writestr(member, "b")
    before = tree(tmp_path)
    with pytest.raises(DataError) as caught:
        extract_zip(archive, tmp_path / "data")
    message = str(caught.value)
    assert f"member '{member}'" in message and ".extract-" not in message
    assert tree(tmp_path) == before and not (tmp_path / "data").exists()


@pytest.mark.parametrize("layout", ["file-then-folder", "folder-then-file"])
def test_a_member_colliding_with_an_existing_path_extracts_nothing(layout, tmp_path):
    from kfold.files.archive import extract_zip

    data = tmp_path / "data"
    data.mkdir()
    if layout == "file-then-folder":
        (data / "b").write_text("a file where the archive has a folder\n")
        members = [("a.csv", "a"), ("b/c.csv", "c")]
    else:
        (data / "b.csv").mkdir()
        members = [("a.csv", "a"), ("b.csv", "c")]
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in members:
            zf.writestr(name, content)
    before = tree(tmp_path)
    with pytest.raises(DataError, match="exists and is not a"):
        extract_zip(archive, data, force=True)
    assert tree(tmp_path) == before and not (data / "a.csv").exists()


UNTOKENIZABLE = [b"{'descr': '''<u1", b"{'descr': '<u1', 'fortran_order': False, 'shape': (1,(",
                 b"{" + b"(" * 300 + b"}", b"{'descr': '<u1', 'fortran_order': False, 'shape': (\\\n",
                 b"{'descr': \"<u1", b"{'descr': '<u1', 'shape': (60, 28, 28), 'fortran_order': False, 'x': 1e999999}"]


def raw_npy(header: bytes) -> bytes:
    padded = header + b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded + b"\0" * 64


@pytest.mark.parametrize("name", ["kmnist-train-imgs.npy", "kmnist-test-imgs.npy"])
@pytest.mark.parametrize("header", UNTOKENIZABLE, ids=[f"header{i}" for i in range(len(UNTOKENIZABLE))])
def test_an_npy_header_python_cannot_tokenize_is_one_line(header, name, tmp_path, capsys):
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20)
    (data / name).write_bytes(raw_npy(header))
    refused(tmp_path, capsys, ["train", "--data", data, "--out", tmp_path / "run", *TRAIN], 1, name)


def test_npy_header_helper_matches_numpy_for_a_good_header():
    """The raw header builder above writes what numpy writes for a valid header (so the cases differ only there)."""
    import io

    good = npy_bytes((2,), "|u1", b"\0\0")
    loaded = np.load(io.BytesIO(good))
    assert loaded.shape == (2,)
    assert np.load(io.BytesIO(raw_npy(b"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }"))).shape == (2,)


@pytest.mark.parametrize("where", ["out-link", "out-link-to-data"])
def test_tune_refuses_an_output_through_a_folder_link(where, tmp_path, capsys):
    """`kfold tune`'s output guard: its --out may not be a link (to a folder elsewhere, or to the data)."""
    pytest.importorskip("optuna")
    from kfold.commands.main import main as kfold_main
    from kfold.data.toy import make_toy_competition

    comp = make_toy_competition(tmp_path / "comp")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "search"
    out.symlink_to(elsewhere if where == "out-link" else comp, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in comp.iterdir()}
    code = kfold_main(["tune", "--data", str(comp), "--out", str(out), "--preset", "lenet5", "--trials", "1",
                       "--epochs", "1", "--k", "2", "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "link" in err[0], err
    assert list(elsewhere.iterdir()) == [] and {p.name: p.read_bytes() for p in comp.iterdir()} == before
