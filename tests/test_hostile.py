"""A hostile corpus (issue 14): malformed, huge, foreign and planted inputs, faults and closed pipes.

Every case goes through a real command line -- the ``main`` of train.py, predict.py, ensemble.py and
``kfold`` in-process through ``run_cli`` as the scripts run it, a few as real subprocesses -- and checks
the contract: the exit status (1 bad data, 2 bad usage, 130 interrupted), exactly one ``error:`` line
without a traceback, and a file tree that is exactly as before (outputs absent or unchanged, inputs
unchanged byte for byte and mode for mode, no hidden temporary file). Cases are generated per class
(every numeric flag x hostile values, CSV variants x lines, npy headers x files ...), not listed one by one.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from synthetic import KMNIST_CLASSMAP, write_kmnist_comp, write_kmnist_npz
from test_reliability import CORPUS, GOOD_ROWS, MAGIC, SOLUTION, TRAIN, assert_one_line_error, good, prob_csv, run, text

from kfold.errors import run_cli
from kfold.files.probs import read_probs, write_probs

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["a", "b", "c"]


# ---- the contract ---------------------------------------------------------------------------------------------

def tree(root: Path) -> dict:
    """path -> (sha256, mode) of every file and link under ``root`` (links by target, not followed; not directories)."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            state[path] = ("link", os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            state[path] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(st.st_mode))
    return state  # directories are not compared: an empty output directory may be created


def refused(tmp_path: Path, capsys, name: str, argv: list, code: int, *fragments, root: Path | None = None) -> str:
    """Run a command that must fail: exit ``code``, one error line with ``fragments``, ``root`` unchanged."""
    root = root or tmp_path
    before = tree(root)
    capsys.readouterr()
    assert run(name, argv) == code
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if not line.startswith("predict "))
    line = assert_one_line_error(err + "\n", *fragments)
    assert tree(root) == before
    return line


def npy_bytes(shape, dtype="|u1", data: bytes = b"", version=(1, 0)) -> bytes:
    """A .npy file whose header claims ``shape`` of ``dtype`` followed by ``data`` (no check that they agree)."""
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    stream = io.BytesIO()
    writer = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
    writer(stream, header)
    return stream.getvalue() + data


def data_dir(tmp_path: Path, **edits) -> Path:
    data = write_kmnist_comp(tmp_path / "data", n_train=60, n_test=20, seed=0)
    for name, content in edits.items():
        (data / name).write_bytes(content) if isinstance(content, bytes) else (data / name).write_text(content)
    return data


def train_argv(tmp_path: Path, data: Path, *extra) -> list:
    return ["--data", data, "--out", tmp_path / "run", *TRAIN, *extra]


# ---- 18: numeric flags and config values: finite and in range -----------------------------------------------

FLOAT_FLAGS = ["lr", "momentum", "weight-decay", "label-smoothing", "dropout", "mixup", "cutmix", "ema",
               "warmup-epochs", "pseudo-label", "pseudo-start"]
FLOAT_VALUES = ["nan", "inf", "-inf", "1e308", "-1"]
INT_FLAGS = ["epochs", "batch-size", "eval-batch-size", "early-stopping", "num-workers", "tta", "k", "seed",
             "threads", "parallel-folds"]
INT_VALUES = ["-1", "1000000000000", "x", "1.5"]
FLAG_CASES = ([(f, v) for f in FLOAT_FLAGS for v in FLOAT_VALUES + ["x"]]
              + [(f, v) for f in INT_FLAGS for v in INT_VALUES])


@pytest.mark.parametrize("flag, value", FLAG_CASES, ids=[f"--{f}={v}" for f, v in FLAG_CASES])
def test_numeric_flag_out_of_range_is_usage_error(flag, value, tmp_path, capsys):
    data = data_dir(tmp_path)
    line = refused(tmp_path, capsys, "train", train_argv(tmp_path, data, f"--{flag}", value), 2)
    assert flag.replace("-", "_") in line or f"--{flag}" in line, line


CONFIG_KEYS = ["lr", "momentum", "weight_decay", "label_smoothing", "dropout", "mixup", "cutmix", "ema", "warmup_epochs",
               "pseudo_label", "pseudo_start", "step_gamma", "mix_prob"]
CONFIG_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400]
CONFIG_CASES = [(k, v) for k in CONFIG_KEYS for v in CONFIG_VALUES] + [
    ("eval_batch_size", "1000000000"), ("batch_size", "1e3"), ("tta", "10"), ("tta", "\"4\""), ("step_gamma", "0"),
    ("step_gamma", "2"), ("lr", "11"), ("momentum", "1"), ("num_workers", "100000"), ("keep", "\"best \"")]


@pytest.mark.parametrize("key, value", CONFIG_CASES, ids=[f"{k}={v[:12]}" for k, v in CONFIG_CASES])
def test_config_file_value_out_of_range_is_usage_error(key, value, tmp_path, capsys):
    data = data_dir(tmp_path)
    config = text(tmp_path / "config.json", '{"%s": %s}' % (key, value))
    refused(tmp_path, capsys, "train", train_argv(tmp_path, data, "--config", config), 2, key)


@pytest.mark.parametrize("flag, value", [("--tta", 10), ("--tta", -1), ("--batch-size", 0)])
def test_predict_flags_out_of_range(flag, value, tmp_path, capsys):
    data = data_dir(tmp_path)
    text(tmp_path / "run" / "config.json", "{}")
    refused(tmp_path, capsys, "predict", [tmp_path / "run", "--data", data, "--out", tmp_path / "p", flag, value], 2)


# ---- 10, 11: strict CSV lines and exact 64-bit Ids ----------------------------------------------------------------

SAMPLE = "Id,Category\n0,0\n1,0\n2,0\n3,0\n"
ROWS = ["0,1", "1,1", "2,1", "3,1"]


def submission(rows) -> str:
    return "Id,Category\n" + "\n".join(rows) + "\n"


def with_row(line: int, row: str) -> list[str]:
    rows = list(ROWS)
    rows[line - 2] = row
    return rows


CSV_CASES = []
for _line in (2, 3, 4, 5):
    _id = ROWS[_line - 2].split(",")[0]
    CSV_CASES += [
        (f"extra-field-line{_line}", submission(with_row(_line, f"{_id},1,7")), [f"line {_line}: malformed CSV (3 fields"]),
        (f"trailing-comma-line{_line}", submission(with_row(_line, f"{_id},1,")), [f"line {_line}:", "trailing comma"]),
        (f"index-shift-line{_line}", submission(with_row(_line, f"9,{_id},1")), [f"line {_line}: malformed CSV"]),
    ]
    for _bad in ("9223372036854775808", "18446744073709551615", "1e19", "-9223372036854775809", "99999999999999999999999",
                 "1e400", "-1e999999999", "9.3e18"):
        CSV_CASES.append((f"huge-id-{_bad[:8]}-line{_line}", submission(with_row(_line, f"{_bad},1")),
                          [f"line {_line}, column 'Id'", "outside the signed 64-bit integer range"]))
    for _bad in ("1_000", "0x10", "inf", "nan", "-infinity", "3.5", "Id", "٣", "+-1", "1e", "1e-400", " ", "0.5e1x"):
        CSV_CASES.append((f"bad-id-{_bad}-line{_line}", submission(with_row(_line, f"{_bad},1")),
                          [f"line {_line}, column 'Id'", "is not an integer Id"]))
    for _bad in ("9223372036854775808", "1e19"):
        CSV_CASES.append((f"huge-category-{_bad[:4]}-line{_line}", submission(with_row(_line, f"{_id},{_bad}")),
                          [f"line {_line}, column 'Category'", "outside the signed 64-bit integer range"]))
CSV_CASES += [
    ("every-line-trailing-comma", "Id,Category,\n0,1,\n1,1,\n2,1,\n3,1,\n", ["line 1: header 'Id,Category,'"]),
    ("shuffled-with-extra-field", "Id,Category\n3,1,0\n1,1,0\n0,1,0\n2,1,0\n", ["line 2: malformed CSV (3 fields"]),
    ("quoted-newline", 'Id,Category\n0,1\n"1\n",1\n2,1\n3,1\n', ["line 3: a quoted field spans several lines"]),
    ("duplicate-after-trailing-comma", "Id,Category\n0,1\n1,1\n2,1,\n3,1\n", ["line 4: malformed CSV"]),
    ("duplicate-column", "Id,Id\n0,1\n1,1\n2,1\n3,1\n", ["line 1: column 'Id' appears twice"]),
    ("huge-duplicate-ids", "Id,Category\n9223372036854775807,1\n9223372036854775807,1\n2,1\n3,1\n",
     ["line 3: duplicate Id 9223372036854775807"]),
    ("near-duplicate-above-2-53", "Id,Category\n9007199254740993,1\n9007199254740992,1\n9007199254740993,1\n3,1\n",
     ["line 4: duplicate Id 9007199254740993"]),
]


@pytest.mark.parametrize("content, fragments", [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_validate_refuses_malformed_csv_with_the_exact_line(content, fragments, tmp_path, capsys):
    sample = text(tmp_path / "sample_submission.csv", SAMPLE)
    sub = text(tmp_path / "sub.csv", content)
    line = refused(tmp_path, capsys, "kfold", ["validate", sub, "--sample", sample, "--num-classes", 10], 1, *fragments)
    assert "sub.csv" in line


@pytest.mark.parametrize("content", [c[1] for c in CSV_CASES[:24]], ids=[c[0] for c in CSV_CASES[:24]])
def test_leaderboard_refuses_the_same_submissions(content, tmp_path, capsys):
    sub = text(tmp_path / "sub.csv", content)
    solution = text(tmp_path / "solution.csv", SOLUTION)
    refused(tmp_path, capsys, "kfold", ["leaderboard", sub, "--solution", solution, "--out", tmp_path / "b",
                                       "--bootstrap", 5], 1, "sub.csv: line")


def test_numpy_prints_no_warning_for_huge_ids(tmp_path):
    sub = text(tmp_path / "sub.csv", submission(with_row(3, "18446744073709551615,1")))
    result = subprocess.run([sys.executable, "-m", "kfold", "validate", str(sub)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert_one_line_error(result.stderr, "line 3, column 'Id': '18446744073709551615' is outside")


UINT_IDS = [("uint64-max", np.array([0, 1, 2, 2**64 - 1], dtype=np.uint64), "outside the signed 64-bit range"),
            ("uint64-2-63", np.array([0, 1, 2**63, 3], dtype=np.uint64), "outside the signed 64-bit range"),
            ("float-1e19", np.array([0, 1, 2, 1e19]), "integers that a float holds exactly"),
            ("float-2-53-plus", np.array([0, 1, 2, 2.0**54]), "integers that a float holds exactly"),
            ("float-half", np.array([0, 1, 2, 2.5]), "integers that a float holds exactly")]


@pytest.mark.parametrize("ids, fragment", [c[1:] for c in UINT_IDS], ids=[c[0] for c in UINT_IDS])
@pytest.mark.parametrize("command", ["validate", "ensemble"])
def test_probability_npz_ids_never_wrap(ids, fragment, command, tmp_path, capsys):
    path = tmp_path / "p.npz"
    np.savez(path, ids=ids, probs=np.full((4, 3), 1 / 3, np.float32), classes=np.array(CLASSES),
             meta=np.array(json.dumps({"kind": "test"})))
    argv = ["validate", path] if command == "validate" else ["ensemble", good()(tmp_path), path, "--out", tmp_path / "e.csv"]
    refused(tmp_path, capsys, "kfold", argv, 1, "p.npz", fragment)


# ---- 22: the sample submission is checked once, when the task loads, with validate's rules -------------------

SAMPLE_CASES = [
    ("string-id", "Id,Category\n" + "".join(f"img_{i:03d},0\n" for i in range(20)), "'img_000' is not an integer Id"),
    ("id-2-64", "Id,Category\n18446744073709551616,0\n" + "".join(f"{i},0\n" for i in range(1, 20)), "outside the signed"),
    ("id-1e19", "Id,Category\n1e19,0\n" + "".join(f"{i},0\n" for i in range(1, 20)), "outside the signed"),
    ("blank-line", "Id,Category\n" + "".join(f"{i},0\n" for i in range(20)) + "\n", "line 22 is blank"),
    ("duplicate", "Id,Category\n" + "".join(f"{i % 19},0\n" for i in range(20)), "line 21: duplicate Id 0"),
    ("header", "id,category\n" + "".join(f"{i},0\n" for i in range(20)), "line 1: header 'id,category'"),
    ("extra-field", "Id,Category\n" + "".join(f"{i},0\n" for i in range(19)) + "19,0,0\n", "line 21: malformed CSV"),
    ("too-few-rows", "Id,Category\n" + "".join(f"{i},0\n" for i in range(19)), "19 rows but"),
]


@pytest.mark.parametrize("content, fragment", [c[1:] for c in SAMPLE_CASES], ids=[c[0] for c in SAMPLE_CASES])
@pytest.mark.parametrize("command", ["train", "predict"])
def test_sample_submission_refused_when_the_task_loads(content, fragment, command, tmp_path, capsys):
    data = data_dir(tmp_path, **{"sample_submission.csv": content})
    if command == "train":
        argv = train_argv(tmp_path, data)
    else:
        text(tmp_path / "run" / "config.json", "{}")
        argv = [tmp_path / "run", "--data", data, "--out", tmp_path / "p"]
    refused(tmp_path, capsys, command, argv, 1, "sample_submission.csv", fragment)


# ---- 16, 23: array headers that claim more than the file holds -----------------------------------------------

HEADERS = [
    ("2-31-images", (2**31, 28, 28), "|u1"),
    ("huge-1d", (10**12,), "|u1"),
    ("truncated", (60, 28, 28), "|u1"),
    ("wide-dtype", (60, 28, 28), "<f8"),
    ("u2-labels", (2**40,), "<u2"),
    ("many-dims", (2**10, 2**10, 2**10, 2**10), "|u1"),
]


@pytest.mark.parametrize("shape, dtype", [h[1:] for h in HEADERS], ids=[h[0] for h in HEADERS])
@pytest.mark.parametrize("name", ["kmnist-train-imgs.npy", "kmnist-train-labels.npy", "kmnist-test-imgs.npy"])
def test_npy_header_claiming_too_much_is_refused_before_allocating(shape, dtype, name, tmp_path, capsys):
    data = data_dir(tmp_path, **{name: npy_bytes(shape, dtype, b"\0" * 1024)})
    refused(tmp_path, capsys, "train", train_argv(tmp_path, data), 1, name, "truncated or damaged")


@pytest.mark.parametrize("shape, dtype", [h[1:] for h in HEADERS], ids=[h[0] for h in HEADERS])
@pytest.mark.parametrize("name", ["kmnist-train-imgs.npz", "kmnist-test-imgs.npz"])
def test_official_npz_member_claiming_too_much_is_refused(shape, dtype, name, tmp_path, capsys):
    data = write_kmnist_npz(tmp_path / "data", n_train=60, n_test=20)
    with zipfile.ZipFile(data / name, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("arr_0.npy", npy_bytes(shape, dtype, b"\0" * 1024))
    refused(tmp_path, capsys, "train", train_argv(tmp_path, data), 1, name, "truncated or damaged array 'arr_0'")


PROB_ARRAYS = [("probs", (2**31, 3), "<f4"), ("probs", (4, 3), "<f4"), ("ids", (2**40,), "<i8"), ("ids", (4,), "<i8")]


@pytest.mark.parametrize("member, shape, dtype", PROB_ARRAYS, ids=[f"{m}-{s[0]}" for m, s, _ in PROB_ARRAYS])
@pytest.mark.parametrize("command", ["validate", "ensemble", "leaderboard"])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_probability_npz_with_a_truncated_array_says_truncated(member, shape, dtype, command, compression, tmp_path, capsys):
    path = tmp_path / "p.npz"
    write_probs(path, range(4), np.full((4, 3), 1 / 3), CLASSES, {"kind": "test"})
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members[f"{member}.npy"] = npy_bytes(shape, dtype, b"\0" * 8)  # the data cut short
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    argv = {"validate": ["validate", path],
            "ensemble": ["ensemble", good()(tmp_path), path, "--out", tmp_path / "e.csv"],
            "leaderboard": ["leaderboard", path, "--solution", text(tmp_path / "solution.csv", SOLUTION),
                            "--out", tmp_path / "b", "--bootstrap", 5]}[command]
    line = refused(tmp_path, capsys, "kfold", argv, 1, "p.npz", f"truncated or damaged array '{member}'")
    assert "pickled" not in line


# ---- 27: class names that collide with CSV columns ------------------------------------------------------------

@pytest.mark.parametrize("collision", ["Id", "label", "dup"])
def test_classmap_names_colliding_with_columns_are_refused_before_training(collision, tmp_path, capsys):
    classmap = KMNIST_CLASSMAP.copy()
    classmap.loc[3, "char"] = classmap.loc[1, "char"] if collision == "dup" else collision
    data = data_dir(tmp_path, **{"kmnist_classmap.csv": classmap.to_csv(index=False)})
    refused(tmp_path, capsys, "train", train_argv(tmp_path, data), 1, "kmnist_classmap.csv: line 5: class name")


@pytest.mark.parametrize("collision", ["Id", "label"])
@pytest.mark.parametrize("command", ["validate", "ensemble"])
def test_probability_classes_colliding_with_columns_are_refused(collision, command, tmp_path, capsys):
    path = prob_csv(tmp_path / "p.csv", GOOD_ROWS, classes=["a", collision, "c"])
    argv = ["validate", path] if command == "validate" else ["ensemble", path, "--out", tmp_path / "e.csv"]
    refused(tmp_path, capsys, "kfold", argv, 1, f"class name '{collision}' collides")


def test_writing_probabilities_with_a_reserved_class_name_is_refused(tmp_path):
    from kfold.errors import DataError

    for suffix in (".csv", ".npz"):
        with pytest.raises(DataError, match="collides"):
            write_probs(tmp_path / f"p{suffix}", range(2), [[0.5, 0.5], [0.5, 0.5]], ["Id", "x"], {"kind": "test"})
    assert list(tmp_path.iterdir()) == []


# ---- 13: image sizes ----------------------------------------------------------------------------------------------

SIZE_CASES = [(model, size) for model in ("lenet5", "alexnet5", "alexnet7", "ff-2x100", "resnet9") for size in (2, 4, 7)]


@pytest.mark.parametrize("preset_model, size", SIZE_CASES, ids=[f"{m}-{s}" for m, s in SIZE_CASES])
def test_images_a_model_cannot_take_are_refused_before_anything_is_written(preset_model, size, tmp_path, capsys):
    data = data_dir(tmp_path, **{name: npy_bytes((n, size, size), "|u1", bytes(n * size * size))
                                 for name, n in (("kmnist-train-imgs.npy", 60), ("kmnist-test-imgs.npy", 20))})
    refused(tmp_path, capsys, "train", train_argv(tmp_path, data, "--model", preset_model), 2, f"model '{preset_model}'")


def test_non_square_images_are_refused(tmp_path, capsys):
    data = data_dir(tmp_path, **{name: npy_bytes((n, 28, 20), "|u1", bytes(n * 28 * 20))
                                 for name, n in (("kmnist-train-imgs.npy", 60), ("kmnist-test-imgs.npy", 20))})
    refused(tmp_path, capsys, "train", train_argv(tmp_path, data), 1, "images are 28x20; the models need square images")


@pytest.mark.parametrize("model", ["lenet5", "alexnet5", "alexnet7", "ff-2x100", "resnet9", "resnet8", "vgg_bn",
                                   "preact_resnet18"])
@pytest.mark.parametrize("size", [16, 20, 32, 36])
def test_models_take_their_input_size_from_the_task(model, size):
    import torch

    from kfold.nn.models import create_model

    with torch.device("meta"):  # shapes only: what the refusal before training checks, without the cost
        net = create_model(model, 10, image_size=size).eval()
        assert net(torch.empty(2, 1, size, size)).shape == (2, 10)


def test_training_and_predicting_on_16x16_images(tmp_path, capsys):
    from synthetic import pattern_images

    data = data_dir(tmp_path)
    labels = np.load(data / "kmnist-train-labels.npy")
    np.save(data / "kmnist-train-imgs.npy", pattern_images(labels, np.random.default_rng(0), size=16))
    np.save(data / "kmnist-test-imgs.npy", pattern_images(np.arange(20) % 10, np.random.default_rng(1), size=16))
    assert run("train", train_argv(tmp_path, data, "--threads", 1)) == 0
    assert run("predict", [tmp_path / "run", "--data", data, "--out", tmp_path / "probs", "--device", "cpu"]) == 0
    assert read_probs(tmp_path / "probs" / "run-mean.npz").probs.shape == (20, 10)


# ---- 17: damaged or foreign weights and checkpoints ------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-fold lenet5 run, and an interrupted one with fold0/checkpoint.pt after epoch 1 of 2."""
    from kfold.nn.engine import FoldTrainer

    root = tmp_path_factory.mktemp("hostile")
    data = write_kmnist_comp(root / "data", n_train=60, n_test=20, seed=0)
    assert run("train", ["--data", data, "--out", root / "run", *TRAIN, "--threads", 1]) == 0
    original = FoldTrainer.save_checkpoint

    def save_then_stop(self):
        original(self)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FoldTrainer, "save_checkpoint", save_then_stop)
        argv = ["--data", data, "--out", root / "killed", *TRAIN, "--epochs", 2, "--threads", 1]
        assert run("train", argv) == 130
    assert (root / "killed" / "fold0" / "checkpoint.pt").is_file()
    return data, root


def _edit_weights(path: Path, edit) -> None:
    from safetensors.torch import load_file, safe_open, save_file

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["kfold"])
    tensors = load_file(path)
    result = edit(meta, tensors)
    save_file(tensors, str(path), metadata={"kfold": result if isinstance(result, str) else json.dumps(meta)})


def _set(path: str, value):
    def edit(meta, tensors):
        target = meta
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _drop(key: str):
    return lambda meta, tensors: meta.pop(key) and None


WEIGHT_CASES = [
    ("normalization-string", _set("normalization", "imagenet"), "normalization"),
    ("normalization-empty", _set("normalization", {}), "normalization"),
    ("normalization-nan-mean", _set("normalization", {"mean": float("nan"), "std": 0.3}), "normalization"),
    ("normalization-zero-std", _set("normalization", {"mean": 0.1, "std": 0}), "normalization"),
    ("normalization-string-std", _set("normalization", {"mean": 0.1, "std": "0.3"}), "normalization"),
    ("tta-string", _set("config.tta", "4"), "config.tta"),
    ("tta-zero", _set("config.tta", 0), "config.tta"),
    ("tta-huge", _set("config.tta", 10**6), "config.tta"),
    ("tta-float", _set("config.tta", 1.5), "config.tta"),
    ("channels-last", _set("config.channels_last", 1), "channels_last"),
    ("num-classes-huge", _set("num_classes", 10**9), "num_classes"),
    ("num-classes-string", _set("num_classes", "10"), "num_classes"),
    ("num-classes-one", _set("num_classes", 1), "num_classes"),
    ("num-classes-other", _set("num_classes", 12), "weights do not fit"),
    ("width-huge", _set("config.model_kwargs", {"width": 10**9}), "metadata"),
    ("model-unknown", _set("config.model", "gpt"), "unknown model"),
    ("model-other", _set("config.model", "resnet9"), "weights do not fit model 'resnet9'"),
    ("model-kwargs-list", _set("config.model_kwargs", [1]), "model_kwargs"),
    ("batch-norm-string", _set("config.batch_norm", "yes"), "batch_norm"),
    ("image-size-string", _set("image_size", "28"), "image_size"),
    ("image-size-other", _set("image_size", 32), "weights do not fit"),
    ("fingerprint-number", _set("fingerprint", 7), "fingerprint"),
    ("config-list", _set("config", [1]), "config"),
    ("meta-not-object", lambda meta, tensors: "[1, 2]", "not a JSON object"),
    ("meta-not-json", lambda meta, tensors: "{oops", "JSONDecodeError"),
    *[(f"missing-{key}", _drop(key), key) for key in ("config", "num_classes", "model", "fold", "preset", "seed",
                                                       "fingerprint", "normalization")],
    ("tensor-dropped", lambda meta, tensors: tensors.pop(sorted(tensors)[0]), "weights do not fit"),
]


@pytest.mark.parametrize("edit, fragment", [c[1:] for c in WEIGHT_CASES], ids=[c[0] for c in WEIGHT_CASES])
def test_damaged_or_foreign_weights_are_refused(edit, fragment, trained, tmp_path, capsys):
    data, root = trained
    run_dir = shutil.copytree(root / "run", tmp_path / "run")
    _edit_weights(run_dir / "fold1" / "model.safetensors", edit)
    refused(tmp_path, capsys, "predict", [run_dir, "--data", data, "--out", tmp_path / "probs", "--device", "cpu"], 1,
            "fold1/model.safetensors", fragment)


def test_fold_outside_the_run_with_tta_is_refused(trained, tmp_path, capsys):
    data, root = trained
    run_dir = shutil.copytree(root / "run", tmp_path / "run")
    _edit_weights(run_dir / "fold1" / "model.safetensors", _set("fold", 7))
    refused(tmp_path, capsys, "predict", [run_dir, "--data", data, "--out", tmp_path / "probs", "--device", "cpu",
                                          "--tta", 2], 1, "fold1/model.safetensors", "holds fold 7")  # issue 24


def _edit_checkpoint(path: Path, edit) -> None:
    import torch

    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)


CHECKPOINT_CASES = [
    *[(f"missing-{key}", lambda p, key=key: p.pop(key)) for key in
      ("model", "optimizer", "best_state", "best_probs", "cpu_rng", "shuffle_rng", "state_json")],
    ("state-empty", lambda p: p.update(state_json="{}")),
    ("state-not-json", lambda p: p.update(state_json="{epoch")),
    ("state-list", lambda p: p.update(state_json="[]")),
    ("state-epoch-negative", lambda p: p.update(state_json=json.dumps({**json.loads(p["state_json"]), "epoch": -1}))),
    ("state-epoch-beyond", lambda p: p.update(state_json=json.dumps({**json.loads(p["state_json"]), "epoch": 99}))),
    ("state-epoch-string", lambda p: p.update(state_json=json.dumps({**json.loads(p["state_json"]), "epoch": "1"}))),
    ("cpu-rng-short", lambda p: p.update(cpu_rng=p["cpu_rng"][:100])),
    ("shuffle-rng-short", lambda p: p.update(shuffle_rng=p["shuffle_rng"][:7])),
    ("shuffle-rng-float", lambda p: p.update(shuffle_rng=p["shuffle_rng"].float())),
    ("best-probs-shape", lambda p: p.update(best_probs=p["best_probs"][:3])),
    ("payload-list", lambda p: (p.clear(), p.update(model=[]))),
]


@pytest.mark.parametrize("edit", [c[1] for c in CHECKPOINT_CASES], ids=[c[0] for c in CHECKPOINT_CASES])
def test_damaged_checkpoints_are_refused_on_resume(edit, trained, tmp_path, capsys):
    data, root = trained
    run_dir = shutil.copytree(root / "killed", tmp_path / "run")
    _edit_checkpoint(run_dir / "fold0" / "checkpoint.pt", edit)
    argv = ["--data", data, "--out", run_dir, *TRAIN, "--epochs", 2, "--threads", 1, "--resume"]
    refused(tmp_path, capsys, "train", argv, 1, "fold0/checkpoint.pt: cannot resume from this checkpoint")


# ---- 9: symbolic links planted in a run or a download directory ---------------------------------------------------

@pytest.mark.parametrize("name", ["fold0", "fold1", "full", "summary.json", "oof.npz"])
def test_resume_never_writes_through_a_link_out_of_the_run(name, trained, tmp_path, capsys):
    data, root = trained
    run_dir = shutil.copytree(root / "killed", tmp_path / "run", symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep\n")
    target = run_dir / name
    if target.is_dir():
        shutil.rmtree(target)
    target.symlink_to(outside if "." not in name else outside / "precious.txt")
    argv = ["--data", data, "--out", run_dir, *TRAIN, "--epochs", 2, "--threads", 1, "--resume"]
    refused(tmp_path, capsys, "train", argv, 1, f"run/{name}: is a symbolic link to", "outside")


# ``kfold download`` (symlinks planted in --data, size limit, nothing half-extracted) goes through the real kaggle
# client against a loopback fake: tests/test_kaggle_archive.py and tests/test_kaggle_loop.py.


# ---- 12, 24: disk full ------------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KB tmpfs (root only); skipped cleanly without the permission to mount it."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_training_on_a_full_disk_is_one_line_naming_the_checkpoint(tiny_tmpfs, tmp_path, capsys):
    data = data_dir(tmp_path)
    assert run("train", ["--data", data, "--out", tiny_tmpfs / "run", *TRAIN, "--threads", 1]) == 1
    line = assert_one_line_error(capsys.readouterr().err, "No space left on device", str(tiny_tmpfs / "run"))
    assert ".checkpoint.pt." not in line and ".model.safetensors." not in line
    assert [p for p in tiny_tmpfs.rglob(".*")] == []  # no temporary file left on the full disk


@pytest.mark.parametrize("writer, error", [
    ("torch.save", lambda: RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 320 vs 256")),
    ("torch.save", lambda: RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed")),
    ("save_file", lambda: __import__("safetensors").SafetensorError("Error while serializing: IoError(No space left on device)")),
    ("save_file", lambda: __import__("safetensors").SafetensorError("Error while serializing: IoError(Input/output error)")),
])
def test_checkpoint_and_weights_write_failures_are_one_line(writer, error, tmp_path, capsys, monkeypatch):
    from kfold.nn import engine

    def fail(*args, **kwargs):
        raise error()

    if writer == "torch.save":
        monkeypatch.setattr(engine.torch, "save", fail)
        name = "checkpoint.pt"
    else:
        monkeypatch.setattr(engine, "save_file", fail)
        name = "model.safetensors"
    data = data_dir(tmp_path)
    assert run("train", train_argv(tmp_path, data, "--threads", 1)) == 1
    assert_one_line_error(capsys.readouterr().err, str(tmp_path / "run" / "fold0" / name))
    assert [p for p in (tmp_path / "run").rglob(".*")] == []


# ---- 25: output names in errors ---------------------------------------------------------------------------------------

def _inputs(tmp_path):
    return [good()(tmp_path), good("g2.csv")(tmp_path)]


OUTPUT_CASES = [
    ("too-long", lambda t: t / ("x" * 300 + ".csv"), "File name too long"),
    ("is-a-directory", lambda t: (t / "out.csv").mkdir() or t / "out.csv", "Is a directory"),
    ("under-a-file", lambda t: text(t / "blocker", "x") / "out.csv", "blocker"),
]


@pytest.mark.parametrize("make, fragment", [c[1:] for c in OUTPUT_CASES], ids=[c[0] for c in OUTPUT_CASES])
@pytest.mark.parametrize("command", ["ensemble", "leaderboard"])
def test_output_errors_name_the_output_never_the_temporary_file(make, fragment, command, tmp_path, capsys):
    inputs = _inputs(tmp_path)
    out = make(tmp_path)
    if command == "ensemble":
        argv = ["ensemble", *inputs, "--out", out]
    else:
        out = out.parent / out.name.replace(".csv", "")
        argv = ["leaderboard", text(tmp_path / "sub.csv", "Id,Category\n0,1\n1,2\n2,0\n3,1\n"), "--solution",
                text(tmp_path / "solution.csv", SOLUTION), "--out", out, "--bootstrap", 5]
        if fragment == "Is a directory":
            (out / "leaderboard.csv").mkdir(parents=True)
    line = refused(tmp_path, capsys, "kfold", argv, 1, fragment)
    assert "/." not in line.split("error: ", 1)[1]  # no hidden temporary name


def test_read_only_directory_names_the_output(tmp_path, capsys, monkeypatch):
    inputs = _inputs(tmp_path)

    def read_only(*args, dir=None, prefix="", suffix="", **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.path.join(dir, prefix + "XXXXXXXX" + suffix))
    monkeypatch.setattr("tempfile.mkstemp", read_only)
    line = refused(tmp_path, capsys, "ensemble", [*inputs, "--out", tmp_path / "sub.csv"], 1, "Permission denied")
    assert line.endswith(str(tmp_path / "sub.csv"))


# ---- 28: outputs appear together or not at all ----------------------------------------------------------------------

@pytest.mark.parametrize("fail_on", ["sub.probs.npz", "sub.csv", "report.md", "agreement.png", "inputs.csv"])
@pytest.mark.parametrize("earlier", [False, True])
def test_ensemble_outputs_appear_together_or_not_at_all(fail_on, earlier, tmp_path, capsys, monkeypatch):
    import kfold.files.atomic as atomic

    inputs = _inputs(tmp_path)
    argv = [*inputs, "--out", tmp_path / "sub.csv", "--report", tmp_path / "report", "--plot"]
    if earlier:
        assert run("ensemble", argv) == 0
        text(inputs[1], (inputs[1].read_text()).replace("0,0.7,0.2,0.1", "0,0.1,0.2,0.7"))
    real_chmod = os.chmod

    def chmod(path, mode, *args, **kwargs):
        if Path(path).name.startswith(f".{fail_on}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "chmod", chmod)
    refused(tmp_path, capsys, "ensemble", argv, 1, f"No space left on device: ", fail_on)


def test_predict_outputs_appear_together_or_not_at_all(trained, tmp_path, capsys, monkeypatch):
    """The third of four renames fails: the two files already renamed are taken back (earlier ones restored)."""
    import kfold.files.atomic as atomic

    data, root = trained
    out = tmp_path / "probs"
    argv = [root / "run", "--data", data, "--out", out, "--device", "cpu"]
    assert run("predict", argv) == 0
    (out / "run-fold0.npz").unlink()  # one output new, the others replaced
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    refused(tmp_path, capsys, "predict", argv, 1, "Input/output error", str(out), root=out)


def test_predict_writes_nothing_when_one_write_fails(trained, tmp_path, capsys, monkeypatch):
    import kfold.files.probs as probs

    data, root = trained
    real_savez, count = np.savez, []

    def savez(*args, **kwargs):
        count.append(1)
        if len(count) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_savez(*args, **kwargs)

    monkeypatch.setattr(probs.np, "savez", savez)
    out = tmp_path / "probs"
    capsys.readouterr()
    assert run("predict", [root / "run", "--data", data, "--out", out, "--device", "cpu"]) == 1
    assert_one_line_error(capsys.readouterr().err, "No space left on device", str(out))
    assert list(out.iterdir()) == []


# ---- 29: stale hidden temporary files ------------------------------------------------------------------------------

def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("name", ["sub.csv", "sub.probs.npz"])
def test_the_next_run_removes_stale_temporary_files_it_owns(name, tmp_path, capsys):
    inputs = _inputs(tmp_path)
    dead, alive = _dead_pid(), os.getppid()
    stale = text(tmp_path / f".{name}.{dead}-abcdefgh{Path(name).suffix}.tmp", "cut short")
    live = text(tmp_path / f".{name}.{alive}-abcdefgh{Path(name).suffix}.tmp", "another process is writing")
    foreign = text(tmp_path / f".{name}.notapid.tmp", "not ours")
    assert run("ensemble", [*inputs, "--out", tmp_path / "sub.csv"]) == 0
    assert not stale.exists() and live.exists() and foreign.exists()


# ---- 20, 21: Ctrl-C during imports, closed pipes (real processes) -------------------------------------------------

INTERRUPT = """
import builtins, runpy, sys
real = builtins.__import__
first = sys.argv.pop(1)
def interrupted(name, *args, **kwargs):
    if name == first:
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = interrupted
sys.argv = sys.argv[1:]
if sys.argv[0] == '-m':
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
else:
    runpy.run_path(sys.argv[0], run_name='__main__')
"""
SCRIPTS = {"train.py": ["--data", "d", "--out", "o"], "predict.py": ["r", "--data", "d", "--out", "o"], "ensemble.py": ["x.npz", "--out", "y.csv"],
           "compare.py": ["--data", "d", "--out", "o"], "mnist_mix.py": ["compare", "--data", "d", "--out", "o"],
           "-m kfold": ["validate", "x.csv"]}


@pytest.mark.parametrize("module", ["kfold.errors", "numpy"])
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_ctrl_c_while_importing_is_one_line_and_130(script, module, tmp_path):
    """Ctrl-C at the first import of kfold (the script's own first line) or of numpy (seconds later)."""
    args = ["-m", "kfold"] if script == "-m kfold" else [str(REPO / script)]
    result = subprocess.run([sys.executable, "-c", INTERRUPT, module, *args, *SCRIPTS[script]], capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "error: interrupted\n" and result.stdout == ""


def test_a_closed_pipe_is_quiet_and_every_output_is_written(tmp_path):
    inputs = _inputs(tmp_path)
    process = subprocess.Popen([sys.executable, str(REPO / "ensemble.py"), *map(str, inputs), "--out",
                                str(tmp_path / "sub.csv"), "--report", str(tmp_path / "report"), "--plot"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    process.stdout.close()  # like `| head -0`: the reader is gone before the first line
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    assert process.returncode == 141 and stderr == ""
    assert (tmp_path / "sub.csv").is_file() and (tmp_path / "sub.probs.npz").is_file()
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["agreement.csv", "agreement.png", "inputs.csv", "report.md"]


@pytest.mark.parametrize("command", ["validate", "leaderboard"])
def test_a_closed_pipe_in_process_exits_141_without_a_line(command, tmp_path, capsys, monkeypatch):
    sub = text(tmp_path / "sub.csv", "Id,Category\n0,1\n1,2\n2,0\n3,1\n")

    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    from kfold.commands.main import _main

    argv = ["validate", sub] if command == "validate" else \
        ["leaderboard", sub, "--solution", text(tmp_path / "solution.csv", SOLUTION), "--out", tmp_path / "b", "--bootstrap", 5]
    monkeypatch.setattr(sys, "stdout", Closed())
    assert run_cli(_main, [str(a) for a in argv]) == 141
    assert capsys.readouterr().err == ""
    if command == "leaderboard":
        assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["leaderboard.csv", "leaderboard.md"]


# ---- the existing classes (test_reliability's corpus) with the stricter tree check ----------------------------------

EXISTING = [case for case in CORPUS if case[0] not in ("k-larger-than-a-class",)]


@pytest.mark.parametrize("build, code, fragments", [c[1:] for c in EXISTING], ids=[c[0] for c in EXISTING])
def test_existing_corpus_leaves_every_file_as_it_was(build, code, fragments, tmp_path, capsys):
    name, argv, out = build(tmp_path)
    refused(tmp_path, capsys, name, argv, code, *fragments)


def test_corpus_size():
    """Issue 14 asks for at least 300 hostile cases across the classes."""
    import inspect

    counts = 0
    for test in [value for key, value in globals().items() if key.startswith("test_") and callable(value)]:
        marks = getattr(test, "pytestmark", [])
        size = 1
        for mark in marks:
            if mark.name == "parametrize":
                size *= len(mark.args[1])
        counts += size if marks else 1
    assert counts >= 300, counts
