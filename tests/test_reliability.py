"""Bad input through the real command lines, full or unwritable output directories, reproducibility.

The corpus below runs every malformed input through the ``main`` of train.py, predict.py, ensemble.py
and ``kfold validate`` / ``kfold leaderboard`` (in-process, through ``run_cli`` as the scripts do; a few
also as real subprocesses) and checks the contract of every CLI: exit status 1 for bad data and 2 for bad
usage, exactly one stderr line that names the file, row or value, no traceback, and no output file.
Reader-level tests of the same formats live in test_data.py, test_probs.py, test_submission.py,
test_config_folds.py and test_ensemble.py.
"""
from __future__ import annotations

import ast
import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from synthetic import write_kmnist_comp

from kfold.commands import main as cli
from kfold.commands import ensemble as ensemble_cli
from kfold.commands import predict
from kfold.commands import train as training
from kfold.scoring.ensemble import combine
from kfold.errors import run_cli
from kfold.scoring.leaderboard import Solution, score_submission
from kfold.files.probs import MAGIC, ProbFile, write_probs
from kfold.files.submission import Submission

REPO = Path(__file__).resolve().parents[1]
MAINS = {"train": training.main, "predict": predict.main, "ensemble": ensemble_cli.main}
CLASSES = ["a", "b", "c"]


def run(name: str, argv: list) -> int:
    """Exit status of ``train``/``predict``/``ensemble`` (as the scripts run them) or of ``kfold``."""
    argv = [str(arg) for arg in argv]
    return cli.main(argv) if name == "kfold" else run_cli(MAINS[name], argv)


def assert_one_line_error(err: str, *fragments: str) -> str:
    """``err`` is a single 'error: ...' line without a traceback that contains every fragment."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    return lines[0]


# ---- builders of malformed inputs: each returns (cli name, argv, output path that must not appear) ----------

def text(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def prob_csv(path: Path, rows: str, classes=CLASSES, kind: str = "test", labels: bool = False) -> Path:
    """A probability CSV written by hand (no validation), ``rows`` being the lines after the header."""
    header = ",".join(["Id", *classes] + (["label"] if labels else []))
    return text(path, f"{MAGIC} {json.dumps({'kind': kind, 'classes': list(classes)})}\n{header}\n{rows}")


def prob_npz(path: Path, ids, probs, classes=CLASSES) -> Path:
    """A probability .npz written by hand (no validation)."""
    np.savez(path, ids=np.asarray(ids), probs=np.asarray(probs, dtype=np.float32),
             classes=np.array(classes), meta=np.array(json.dumps({"kind": "test"})))
    return path


GOOD_ROWS = "0,0.7,0.2,0.1\n1,0.1,0.8,0.1\n2,0.2,0.2,0.6\n3,0.3,0.3,0.4\n"


TRAIN = ["--preset", "lenet5", "--epochs", 1, "--k", 2, "--no-progress", "--device", "cpu"]


def train_case(*extra, edit: Callable[[Path], object] | None = None, config: str | None = None):
    def build(tmp: Path):
        data = write_kmnist_comp(tmp / "data", n_train=60, n_test=20, seed=0)  # 6 images per class
        if edit is not None:
            edit(data)
        if config is not None:
            extra_config = ["--config", text(tmp / "config.json", config)]
        return "train", ["--data", data, "--out", tmp / "run", *TRAIN, *extra,
                         *(extra_config if config is not None else [])], tmp / "run"
    return build


def save(name: str, array: np.ndarray):
    return lambda data: np.save(data / name, array)


def cut(name: str):
    return lambda data: text(data / name, (data / name).read_bytes()[: (data / name).stat().st_size // 2])


def predict_case(*extra, run: Callable[[Path], object] = lambda run_dir: run_dir.mkdir()):
    def build(tmp: Path):
        data = write_kmnist_comp(tmp / "data", n_train=60, n_test=20, seed=0)
        run(tmp / "run")
        return "predict", [tmp / "run", "--data", data, "--out", tmp / "probs", "--device", "cpu", *extra], tmp / "probs"
    return build


def ensemble_case(*inputs: Callable[[Path], Path], extra=(), out: str = "sub.csv"):
    def build(tmp: Path):
        return "ensemble", [*(make(tmp) for make in inputs), "--out", tmp / out, *extra], tmp / out
    return build


def good(name: str = "good.csv", classes=CLASSES, kind: str = "test"):
    rows = GOOD_ROWS if kind == "test" else "".join(f"{line},{i % 3}\n" for i, line in enumerate(GOOD_ROWS.split()))
    return lambda tmp: prob_csv(tmp / name, rows, classes=classes, kind=kind, labels=kind == "oof")


def bad_csv(rows: str, name: str = "bad.csv"):
    return lambda tmp: prob_csv(tmp / name, rows)


def validate_case(content: str | bytes, *extra):
    def build(tmp: Path):
        sample = text(tmp / "sample_submission.csv", "Id,Category\n0,0\n1,0\n2,0\n3,0\n")
        return "kfold", ["validate", text(tmp / "sub.csv", content), "--sample", sample, "--num-classes", 10, *extra], None
    return build


SOLUTION = "Id,Category,Usage\n0,1,Public\n1,2,Private\n2,0,Private\n3,1,Public\n"


def leaderboard_case(submission: str | Callable[[Path], Path] = "Id,Category\n0,1\n1,2\n2,0\n3,1\n",
                     solution: str = SOLUTION, extra=()):
    def build(tmp: Path):
        sub = submission(tmp) if callable(submission) else text(tmp / "sub.csv", submission)
        return "kfold", ["leaderboard", sub, "--solution", text(tmp / "solution.csv", solution),
                         "--out", tmp / "board", "--bootstrap", 10, *extra], tmp / "board"
    return build


def run_without_models(run_dir: Path) -> None:
    text(run_dir / "config.json", "{}")
    (run_dir / "fold0").mkdir()


# (id, builder, exit status, fragments of the error line)
CORPUS = [
    # train.py: image and label files
    ("truncated-images", train_case(edit=cut("kmnist-train-imgs.npy")), 1,
     ["kmnist-train-imgs.npy: not a readable .npy file", "truncated or damaged"]),
    ("flat-images", train_case(edit=save("kmnist-train-imgs.npy", np.zeros((60, 784), np.uint8))), 1,
     ["kmnist-train-imgs.npy", "shape (60, 784)"]),
    ("negative-label", train_case(edit=save("kmnist-train-labels.npy", np.r_[np.arange(59) % 10, -1].astype(np.int8))), 1,
     ["kmnist-train-labels.npy", "label -1 at row 59"]),
    ("label-out-of-range", train_case(edit=save("kmnist-train-labels.npy", np.r_[10, np.arange(59) % 10].astype(np.uint8))), 1,
     ["kmnist-train-labels.npy", "label 10 at row 0 is outside 0..9"]),
    ("more-labels-than-images", train_case(edit=save("kmnist-train-labels.npy", np.arange(61) % 10)), 1,
     ["kmnist-train-labels.npy: 61 labels", "kmnist-train-imgs.npy has 60 images"]),
    ("test-images-other-size", train_case(edit=save("kmnist-test-imgs.npy", np.zeros((20, 32, 32), np.uint8))), 1,
     ["kmnist-test-imgs.npy: images are 32x32"]),
    ("data-is-a-csv-file", lambda tmp: ("train", ["--data", text(tmp / "x.csv", "a,b\n"), "--out", tmp / "run", *TRAIN],
                                        tmp / "run"), 1, ["x.csv: not a dataset"]),
    # train.py: config files and flags
    ("config-unknown-key", train_case(config='{"learning_rate": 0.1}'), 2, ["config.json: unknown config key 'learning_rate'"]),
    ("config-wrong-type", train_case(config='{"momentum": "high"}'), 2, ["config key 'momentum' expects float, got 'high'"]),
    ("config-not-json", train_case(config='{"epochs": 3,}'), 2, ["config.json: not valid JSON"]),
    ("config-not-an-object", train_case(config='[1, 2]'), 2, ["config.json: a config file must hold a JSON object"]),
    ("k-one", train_case("--k", 1), 2, ["argument --k: '1' is not an integer in 2..10000"]),
    ("k-larger-than-a-class", train_case("--k", 7), 2, ["k=7 is larger than the 6 training images of class 0"]),
    ("negative-epochs", train_case("--epochs", -2), 2, ["argument --epochs: '-2' is not an integer >= 1"]),
    ("unknown-preset", train_case("--preset", "resnet-huge"), 2, ["unknown preset 'resnet-huge'; available:"]),
    ("unknown-device", train_case("--device", "tpu"), 2, ["unknown device 'tpu'; available: auto, cpu, cuda, mps"]),
    ("fold-outside-k", train_case("--folds", "0,2"), 2, ["--folds '0,2': folds must be in 0..1"]),
    ("zero-batch-size", train_case("--batch-size", 0), 2, ["argument --batch-size: '0' is not an integer >= 1"]),
    ("negative-lr", train_case("--lr", -0.1), 2, ["argument --lr: '-0.1' is not a finite number in (0, 10]"]),
    ("missing-data-dir", lambda tmp: ("train", ["--data", tmp / "nope", "--out", tmp / "run", *TRAIN], tmp / "run"), 2,
     ["dataset", "nope", "no such directory"]),
    ("wrong-task", train_case("--task", "mnist-mix"), 2, ["--task mnist-mix: --data", "holds a"]),
    # predict.py
    ("not-a-run-dir", predict_case(), 1, ["run: not a kfold run directory (no config.json)"]),
    ("run-without-models", predict_case(run=run_without_models), 1, ["run: no finished models"]),
    ("zero-tta", predict_case("--tta", 0), 2, ["argument --tta: '0' is not an integer in 1..9"]),
    ("zero-predict-batch", predict_case("--batch-size", 0), 2, ["argument --batch-size: '0' is not an integer >= 1"]),
    ("unknown-predict-device", predict_case("--device", "tpu"), 2, ["unknown device 'tpu'"]),
    # ensemble.py: probability files and submissions
    ("nan-probability", ensemble_case(good(), lambda tmp: prob_npz(tmp / "nan.npz", range(4), [[0.7, 0.2, 0.1], [np.nan, 0.5, 0.5],
                                                                                      [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])),
     1, ["nan.npz: row 1 (Id 1), column 'a': probability nan is not a finite number"]),
    ("negative-probability", ensemble_case(good(), bad_csv(GOOD_ROWS.replace("1,0.1,0.8,0.1", "1,-0.1,1.0,0.1"))), 1,
     ["bad.csv: line 4 (Id 1), column 'a': probability -0.1 is negative"]),
    ("unnormalised-row", ensemble_case(good(), bad_csv(GOOD_ROWS.replace("2,0.2,0.2,0.6", "2,0.2,0.2,0.5"))), 1,
     ["bad.csv: line 5 (Id 2): probabilities sum to 0.9"]),
    ("duplicate-id-in-probs", ensemble_case(good(), bad_csv(GOOD_ROWS.replace("\n3,", "\n1,"))), 1,
     ["bad.csv: line 6 (Id 1): duplicate Id 1"]),
    ("blank-line-in-probs", ensemble_case(good(), bad_csv(GOOD_ROWS.replace("\n2,", "\n\n2,"))), 1, ["bad.csv: line 5 is blank"]),
    ("classes-differ", ensemble_case(good(), good("other.csv", classes=["a", "b", "z"])), 1,
     ["other.csv: classes differ from", "at column 2"]),
    ("extra-id", ensemble_case(good(), bad_csv(GOOD_ROWS.replace("\n3,", "\n9,"))), 1,
     ["bad.csv: row 3: Id 9 is not in the first input"]),
    ("missing-id", ensemble_case(good(), bad_csv(GOOD_ROWS.replace("3,0.3,0.3,0.4\n", ""))), 1,
     ["bad.csv: Id 3 from the first input", "is missing"]),
    ("oof-mixed-with-test", ensemble_case(good(), good("oof.csv", kind="oof")), 1,
     ["oof.csv holds out-of-fold predictions but", "good.csv holds test predictions"]),
    ("submission-wrong-header", ensemble_case(good(), lambda tmp: text(tmp / "s.csv", "id,label\n0,1\n1,1\n2,1\n3,1\n"),
                                              extra=["--method", "vote"]), 1,
     ["s.csv: line 1: header 'id,label' must be 'Id,Category'"]),
    ("hard-labels-for-mean", ensemble_case(good(), lambda tmp: text(tmp / "s.csv", "Id,Category\n0,1\n1,1\n2,1\n3,1\n")), 2,
     ["s.csv is a hard-label submission; --method 'mean' needs probability files"]),
    ("out-not-csv", ensemble_case(good(), good("g2.csv"), out="sub.txt"), 2, ["--out must be a .csv file"]),
    ("zero-fit-rounds", ensemble_case(good(), extra=["--fit-weights", "oof.csv", "--fit-rounds", 0]), 2,
     ["argument --fit-rounds: '0' is not an integer in 1..100000"]),
    # kfold validate: submission CSVs
    ("semicolon-header", validate_case("Id;Category\n0;1\n1;1\n2;1\n3;1\n"), 1,
     ["sub.csv: line 1: header 'Id;Category' must be 'Id,Category'"]),
    ("missing-submission-id", validate_case("Id,Category\n0,1\n1,1\n2,1\n"), 1, ["sub.csv", "Id 3 from the sample"]),
    ("extra-submission-id", validate_case("Id,Category\n0,1\n1,1\n2,1\n3,1\n7,1\n"), 1, ["sub.csv: line 6: Id 7 is not in the sample"]),
    ("duplicate-submission-id", validate_case("Id,Category\n0,1\n1,1\n1,2\n3,1\n"), 1, ["sub.csv: line 4: duplicate Id 1"]),
    ("non-integer-category", validate_case("Id,Category\n0,1\n1,2.5\n2,1\n3,1\n"), 1,
     ["sub.csv: line 3, column 'Category': '2.5' is not an integer Category"]),
    ("category-out-of-range", validate_case("Id,Category\n0,1\n1,1\n2,10\n3,1\n"), 1,
     ["sub.csv: line 4 (Id 2), column 'Category': 10 is not in 0..9"]),
    ("blank-line-in-submission", validate_case("Id,Category\n0,1\n\n1,1\n2,1\n3,1\n"), 1, ["sub.csv: line 3 is blank"]),
    ("utf16-bom", validate_case("Id,Category\n0,1\n1,1\n2,1\n3,1\n".encode("utf-16")), 1, ["sub.csv: not UTF-8 text (byte 0)"]),
    ("bom-inside-the-file", validate_case("Id,Category\n0,1\n\ufeff1,1\n2,1\n3,1\n"), 1,
     ["sub.csv: line 3, column 'Id':", "is not an integer Id"]),
    ("num-classes-one", validate_case("Id,Category\n0,0\n1,0\n2,0\n3,0\n", "--num-classes", 1), 2,
     ["argument --num-classes: '1' is not an integer in 2..1000000"]),
    # kfold leaderboard: solutions and what is scored against them
    ("usage-lowercase", leaderboard_case(solution=SOLUTION.replace("0,1,Public", "0,1,public")), 1,
     ["solution.csv: line 2 (Id 0), column 'Usage': 'public' is not one of Public, Private, Ignored"]),
    ("no-private-rows", leaderboard_case(solution=SOLUTION.replace("Private", "Public")), 1,
     ["solution.csv: no Private rows in the Usage column"]),
    ("negative-solution-category", leaderboard_case(solution=SOLUTION.replace("2,0,Private", "2,-1,Private")), 1,
     ["solution.csv: line 4 (Id 2): Category -1 is negative"]),
    ("submission-misses-solution-id", leaderboard_case("Id,Category\n0,1\n1,2\n3,1\n"), 1,
     ["sub.csv: Id 2 from the solution", "is missing"]),
    ("probs-with-too-few-classes", leaderboard_case(lambda tmp: prob_csv(tmp / "p.csv", "0,0.5,0.5\n1,0.5,0.5\n2,0.5,0.5\n3,0.5,0.5\n",
                                                                         classes=["a", "b"]),
                                                    solution=SOLUTION.replace("1,2,Private", "1,3,Private")), 1,
     ["p.csv: 2 classes but the solution has Category 3"]),
    ("public-fraction-above-one", leaderboard_case(solution="Id,Category\n0,1\n1,2\n2,0\n3,1\n",
                                                   extra=["--public-fraction", 1.5]), 2,
     ["argument --public-fraction: '1.5' is not a finite number in (0, 1)"]),
    ("zero-bootstrap", leaderboard_case(extra=["--bootstrap", 0]), 2, ["argument --bootstrap: '0' is not an integer in 1..10000000"]),
]


@pytest.mark.parametrize("build, code, fragments", [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS])
def test_malformed_input_is_one_line_and_writes_nothing(build, code, fragments, tmp_path, capsys):
    name, argv, out = build(tmp_path)
    assert run(name, argv) == code
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, *fragments)
    assert out is None or not out.exists()


def test_corpus_is_large_and_covers_every_cli():
    assert len(CORPUS) >= 30 and len({case[0] for case in CORPUS}) == len(CORPUS)


def test_interrupted_then_tampered_run(tmp_path, capsys, monkeypatch):
    """Ctrl-C during training is one line (exit 130); a folds.csv edited afterwards stops --resume and changes nothing."""
    from kfold.nn.engine import FoldTrainer

    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20, seed=0)
    out = tmp_path / "run"
    argv = ["--data", data, "--out", out, *TRAIN]
    with monkeypatch.context() as patch:
        patch.setattr(FoldTrainer, "fit", lambda self, resume=False: (_ for _ in ()).throw(KeyboardInterrupt))
        assert run("train", argv) == 130
    err = capsys.readouterr().err  # one line that says how to continue
    assert err.startswith("error: interrupted in fold 0, epoch 1 of ") and err.count("\n") == 1
    assert "run the same command again with --resume" in err
    assert (out / "config.json").is_file() and (out / "folds.csv").is_file()
    folds = (out / "folds.csv").read_text().splitlines()
    row = folds[6].split(",")  # Id 5
    folds[6] = ",".join([row[0], str((int(row[1]) + 1) % 10), row[2]])
    text(out / "folds.csv", "\n".join(folds) + "\n")
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert run("train", [*argv, "--resume"]) == 1
    assert_one_line_error(capsys.readouterr().err, "run/folds.csv: row Id 5 has label")
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    text(out / "config.json", "{not json")
    assert run("train", [*argv, "--resume"]) == 1
    assert_one_line_error(capsys.readouterr().err, "run/config.json: damaged run config; use a new --out directory")


# ---- the real entry points, as separate processes ------------------------------------------------------------

def _python(*args, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_scripts_exit_with_one_line_and_write_nothing(tmp_path):
    """predict.py, ensemble.py and python -m kfold as real processes (train.py's own are in test_training.py)."""
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20, seed=0)
    nan = prob_npz(tmp_path / "nan.npz", range(4), [[0.7, 0.2, 0.1], [np.nan, 0.5, 0.5], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
    sub = text(tmp_path / "sub.csv", "Id,Category\n0,1\n0,2\n")
    cases = [  # started together, then awaited: the interpreters start up in parallel
        (_python(REPO / "predict.py", tmp_path / "run", "--data", data, "--out", tmp_path / "probs", "--tta", 0,
                 cwd=tmp_path), 2, "argument --tta: '0' is not an integer in 1..9", tmp_path / "probs"),
        (_python(REPO / "ensemble.py", good()(tmp_path), nan, "--out", tmp_path / "ens.csv", cwd=tmp_path), 1,
         "nan.npz: row 1 (Id 1), column 'a': probability nan is not a finite number", tmp_path / "ens.csv"),
        (_python("-m", "kfold", "leaderboard", sub, "--solution", text(tmp_path / "solution.csv", SOLUTION), "--out",
                 tmp_path / "board", cwd=tmp_path), 1, "sub.csv: line 3: duplicate Id 0", tmp_path / "board"),
    ]
    for process, code, message, out in cases:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == code, stderr
        assert_one_line_error(stderr, message)
        assert stdout == "" and not out.exists()


# ---- full, read-only or misplaced output directories ---------------------------------------------------------

@pytest.fixture
def board(tmp_path):
    """A leaderboard already written into tmp/board, and the argv that writes it again."""
    argv = ["leaderboard", text(tmp_path / "sub.csv", "Id,Category\n0,1\n1,0\n2,0\n3,1\n"), "--solution",
            text(tmp_path / "solution.csv", SOLUTION), "--out", tmp_path / "board", "--bootstrap", 10]
    assert run("kfold", argv) == 0
    return argv, tmp_path / "board"


def _snapshot(directory: Path) -> dict:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def test_disk_full_keeps_earlier_results(board, monkeypatch, capsys):
    argv, out = board
    before = _snapshot(out)
    text(argv[1], "Id,Category\n0,1\n1,2\n2,0\n3,1\n")  # a better submission to score
    capsys.readouterr()

    def full(fd):  # what the kernel reports when the data of a file cannot be stored
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    assert run("kfold", argv) == 1
    assert_one_line_error(capsys.readouterr().err, f"No space left on device: {out / 'leaderboard.csv'}")
    assert _snapshot(out) == before  # the earlier leaderboard, and no temporary file


def test_read_only_output_directory_keeps_earlier_results(board, monkeypatch, capsys):
    argv, out = board
    before = _snapshot(out)
    capsys.readouterr()

    def read_only(*args, dir=None, prefix="", suffix="", **kwargs):  # tempfile.mkstemp in a read-only directory
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.path.join(dir, prefix + "XXXXXXXX" + suffix))
    monkeypatch.setattr("tempfile.mkstemp", read_only)
    assert run("kfold", argv) == 1
    assert_one_line_error(capsys.readouterr().err, "Permission denied", str(out / "leaderboard.csv"))
    assert _snapshot(out) == before


@pytest.mark.parametrize("name", ["ensemble", "kfold", "train"])
def test_output_under_a_file_is_one_line(name, tmp_path, capsys):
    blocker = text(tmp_path / "results", "an earlier result, not a directory\n")
    if name == "ensemble":
        argv = [good()(tmp_path), "--out", blocker / "sub.csv"]
    elif name == "kfold":
        argv = ["leaderboard", text(tmp_path / "sub.csv", "Id,Category\n0,1\n1,2\n2,0\n3,1\n"), "--solution",
                text(tmp_path / "solution.csv", SOLUTION), "--out", blocker / "board", "--bootstrap", 10]
    else:
        argv = ["--data", write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20), "--out", blocker / "run", *TRAIN]
    capsys.readouterr()
    assert run(name, argv) == 1
    assert_one_line_error(capsys.readouterr().err, str(blocker))
    assert blocker.read_text() == "an earlier result, not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


WRITERS = {"write_text", "write_bytes", "save", "savez", "savez_compressed", "savefig", "save_file", "dump", "tofile"}


def _unguarded_writes(path: Path) -> list[str]:
    """Calls in ``path`` that write a file but are not inside a ``with atomic_path(...)`` block."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def guarded(node) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.With) and any(isinstance(item.context_expr, ast.Call)
                                                  and getattr(item.context_expr.func, "id", "") == "atomic_path"
                                                  for item in node.items):
                return True
        return False

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        mode = next((arg.value for arg in node.args[1:2] if isinstance(arg, ast.Constant)), "") or next(
            (kw.value.value for kw in node.keywords if kw.arg == "mode" and isinstance(kw.value, ast.Constant)), "")
        wandb_upload = name == "save" and any(kw.arg == "policy" for kw in node.keywords)  # W&B's run.save: no write
        writes = ((name in WRITERS and not wandb_upload and (isinstance(node.func, ast.Attribute) or name == "save_file"))
                  or (name == "open" and any(flag in str(mode) for flag in "wax+"))
                  or (name == "to_csv" and (node.args or any(kw.arg == "path_or_buf" for kw in node.keywords))))
        if writes and not guarded(node):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_every_file_kfold_writes_goes_through_an_atomic_rename(tmp_path):
    """A static check of the package: no file is opened for writing outside ``kfold.files.atomic.atomic_path``."""
    sources = sorted((REPO / "kfold").rglob("*.py"))
    assert len(sources) > 20
    assert [line for path in sources for line in _unguarded_writes(path)] == []
    example = text(tmp_path / "example.py", "with atomic_path(p) as tmp:\n    np.save(tmp, a)\nnp.save(p, a)\n"
                   "open(p, 'w')\nopen(p)\nframe.to_csv(p)\nframe.to_csv()\nPath(p).write_text('x')\n")
    assert sorted(int(line.split(":")[1]) for line in _unguarded_writes(example)) == [3, 4, 6, 8]


# ---- reproducibility ------------------------------------------------------------------------------------------

def test_vote_tie_breaks_are_identical_across_processes(tmp_path):
    """Three inputs that disagree everywhere: every row is a tie broken by the seeded generator."""
    rng = np.random.default_rng(0)
    inputs = []
    for k in range(3):
        probs = np.full((300, 3), 0.1, np.float32)
        probs[np.arange(300), k] = 0.8
        inputs.append(tmp_path / f"m{k}.npz")
        write_probs(inputs[-1], rng.permutation(300) if k else np.arange(300), probs, CLASSES, {"kind": "test"})
    outs = [tmp_path / "a.csv", tmp_path / "b.csv"]
    processes = [_python(REPO / "ensemble.py", *inputs, "--method", "vote", "--seed", 0, "--out", out, cwd=tmp_path)
                 for out in outs]
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0 and "300 tied rows broken by random" in stdout, stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert run("ensemble", [*inputs, "--method", "vote", "--seed", 1, "--out", tmp_path / "c.csv"]) == 0
    assert outs[0].read_bytes() != (tmp_path / "c.csv").read_bytes()  # the seed decides the ties


PROPERTY = settings(max_examples=40, deadline=None)


@st.composite
def weighted_inputs(draw, min_rows=1):
    """K probability files over the same Ids in one shuffled row order, and K positive weights."""
    k, n, c = draw(st.integers(2, 5)), draw(st.integers(min_rows, 25)), draw(st.integers(2, 5))
    raw = draw(arrays(np.float32, (k, n, c), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0])))
    raw[..., 0] += 0.25
    ids = np.asarray(draw(st.permutations(range(n))))
    files = [ProbFile(ids=ids, probs=p, classes=[f"c{i}" for i in range(c)], meta={"kind": "test"})
             for p in raw / raw.sum(axis=2, keepdims=True)]
    return files, draw(st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=k, max_size=k))


@PROPERTY
@given(weighted_inputs(), st.data(), st.integers(0, 2**31))
def test_weighted_ensembles_do_not_depend_on_input_order(inputs, data, seed):
    """Permuting the inputs together with their weights changes no probability and no vote, ties included."""
    files, weights = inputs
    order = data.draw(st.permutations(range(len(files))))
    for method in ("mean", "geomean", "vote"):
        a = combine(files, method, weights=weights, seed=seed)
        b = combine([files[i] for i in order], method, weights=[weights[i] for i in order], seed=seed)
        if method == "vote":
            assert np.array_equal(a.categories, b.categories) and a.tied_rows == b.tied_rows
            assert np.array_equal(combine(files, method, weights=weights, seed=seed).categories, a.categories)
        else:
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


@PROPERTY
@given(weighted_inputs(min_rows=2), st.data())
def test_a_probability_file_scores_like_its_argmax_submission(inputs, data):
    probs = inputs[0][0]
    n = len(probs.ids)
    truth = np.asarray(data.draw(st.lists(st.integers(0, probs.num_classes - 1), min_size=n, max_size=n)))
    solution = Solution(ids=np.arange(n), categories=truth,
                        usage=np.where(np.arange(n) % 2 == 0, "Public", "Private").astype(object))
    as_probs = score_submission(probs, solution, n_bootstrap=20)
    as_labels = score_submission(Submission(ids=probs.ids, categories=probs.predictions()), solution, n_bootstrap=20)
    for key in ("public", "private", "public_low", "public_high", "private_low", "private_high"):
        assert as_probs[key] == as_labels[key]
