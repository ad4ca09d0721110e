"""kfold package: a tiny real run packaged and rehearsed offline (byte-identical to the local submission, which
is what kfold predict + ensemble give), and a hostile corpus of arguments, runs and models refused before the
first byte is written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from packages import train_tiny_run

from kfold.commands.main import main as kfold_main
from kfold.errors import DataError, UsageError
from kfold.files import package as pk

pytest.importorskip("nbclient")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny_run(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def packaged(trained, tmp_path_factory):
    from kfold.flows.package import package

    run, comp = trained
    out = tmp_path_factory.mktemp("packaged") / "pkg"
    lines = []
    result = package([run], "toy-practice", "alice", out, threads=1, echo=lines.append)
    result.echoed = lines
    return result


def test_package_is_rehearsed_offline_byte_identical(packaged):
    rehearsal = packaged.rehearsal
    assert rehearsal.identical and rehearsal.ok and rehearsal.differing_rows == 0, rehearsal.lines
    assert rehearsal.lines[0].startswith("network: blocked (")
    assert "byte-identical to" in rehearsal.lines[1] and "20 rows" in rehearsal.lines[1]
    assert rehearsal.execution.error is None and rehearsal.execution.peak_mib > 50
    assert rehearsal.reference.endswith("local/submission.csv")
    stdout = rehearsal.execution.stdout
    assert "files verified" in stdout and "kfold 0." in stdout and "device cpu" in stdout
    assert f"output sha256 {packaged.manifest['local_submission']['sha256']}" in stdout


def test_the_package_reads_back_and_holds_what_the_contract_says(trained, packaged):
    package = pk.read_package(packaged.path)
    manifest = package.manifest
    assert package.dataset_id == "alice/toy-practice-kfold" and package.kernel_id == "alice/toy-practice-kfold-predict"
    assert manifest["recipe"] == {"method": "mean", "tta": 1, "seed": 0, "tiebreak": "random", "threads": 1,
                                  "batch_size": 2048, "device": "auto"}
    assert manifest["local_submission"]["rows"] == 20 and manifest["schema"]["target"] == "label"
    files = set(manifest["files"])
    assert {"models/run/fold0/model.safetensors", "models/run/fold1/model.safetensors", "models/run/config.json",
            "dataset-metadata.json"} <= files
    assert [f for f in files if f.startswith("wheels/")] == ["wheels/kfold_kaggle-0.2.0-py3-none-any.whl"]
    assert not any(f.endswith(".csv") for f in files)  # no Ids of the test set travel in the package
    assert package.local_data == str(trained[1].resolve())  # kept in PKG/local, never uploaded
    assert str(trained[1]) not in (package.dataset_dir / pk.MANIFEST).read_text()
    kernel = json.loads((package.kernel_dir / pk.KERNEL_METADATA).read_text())
    assert kernel["enable_internet"] is False and kernel["is_private"] is True and kernel["enable_gpu"] is False
    assert kernel["competition_sources"] == ["toy-practice"] and kernel["dataset_sources"] == ["alice/toy-practice-kfold"]


def test_the_notebook_is_readable_and_offline(packaged):
    import nbformat

    notebook = nbformat.read(pk.read_package(packaged.path).notebook, as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert notebook.cells[0].cell_type == "markdown" and len(code) == 6
    assert all(source.startswith("# ") for source in code)  # a short comment heads each cell
    text = "\n".join(code)
    for needed in ("--no-index", "--no-deps", "NO_ALBUMENTATIONS_UPDATE", "KFOLD_KAGGLE_ROOT", "sha256",
                   "predict_offline", '"datasets"', "/kaggle"):
        assert needed in text, needed
    assert text.index("sha256(path) != expected") < text.index('"pip", "install"')  # verified before installing


def test_local_submission_is_what_kfold_predict_and_ensemble_give(trained, packaged, tmp_path):
    from kfold.data.jobs import TaskSpec
    from kfold.files.rundir import PredDir
    from kfold.flows.ensembling import make_submission
    from kfold.nn.predict import predict_run

    run, comp = trained
    task = TaskSpec(str(comp)).load()
    predict_run([run], task, tmp_path / "probs", threads=1, echo=lambda line: None)
    folds = [PredDir(tmp_path / "probs").fold("run", fold) for fold in range(2)]
    made = make_submission(folds, tmp_path / "sub.csv", method="mean", sample=task.sample_submission,
                           schema=task.schema, plot=False)
    assert made.submission.read_bytes() == (packaged.path / "local" / "submission.csv").read_bytes()


def _copy_run(run: Path, where: Path, name: str) -> Path:
    target = where / "copy" / name
    shutil.copytree(run, target)
    return target


def _edit_config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config))


def _rewrite_header(weights: Path, **changes) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(weights), framework="pt") as handle:
        header = handle.metadata()
    meta = json.loads(header["kfold"])
    meta["config"].update(changes.pop("config", {}))
    meta.update(changes)
    save_file(load_file(str(weights)), str(weights), metadata={**header, "kfold": json.dumps(meta)})


def _setup(name: str, run: Path, comp: Path, tmp: Path) -> dict:
    """The package() arguments of hostile case ``name`` (files changed in copies, never the trained run)."""
    args = {"runs": [run], "competition": "toy-practice", "owner": "alice", "out": tmp / "pkg", "threads": 1,
            "rehearse": False}
    if name in ("incomplete run", "config without its data", "runs of two competitions", "runs of other classes", "unreadable model",
                "model of another architecture", "model of another image size", "run named twice"):
        copy = _copy_run(run, tmp, run.name if name == "run named twice" else "run2")
        args["runs"] = [run, copy] if name in ("runs of two competitions", "runs of other classes",
                                               "run named twice") else [copy]
        if name == "incomplete run":
            (copy / "fold1" / "meta.json").unlink()
        elif name == "config without its data":
            config = json.loads((copy / "config.json").read_text())
            del config["data"]
            (copy / "config.json").write_text(json.dumps(config))
        elif name == "runs of two competitions":
            _edit_config(copy, fingerprint="0123456789abcdef", data=str(tmp / "elsewhere"))
        elif name == "runs of other classes":
            _edit_config(copy, classes=[str(c) for c in range(9)])
        elif name == "unreadable model":
            (copy / "fold0" / "model.safetensors").write_bytes(b"\x00" * 64)
        elif name == "model of another architecture":
            _rewrite_header(copy / "fold0" / "model.safetensors", config={"model": "resnet999"})
        elif name == "model of another image size":
            _rewrite_header(copy / "fold0" / "model.safetensors", image_size=32)
    elif name == "out not empty":
        (tmp / "pkg").mkdir()
        (tmp / "pkg" / "keep.txt").write_text("mine")
    elif name == "out is a file":
        (tmp / "pkg").write_text("mine")
    elif name == "out a link to an empty folder":
        (tmp / "elsewhere").mkdir()
        (tmp / "pkg").symlink_to(tmp / "elsewhere", target_is_directory=True)
    elif name == "out the competition folder":
        args["out"] = comp
    elif name == "not a run":
        args["runs"] = [comp]
    elif name == "data of another competition":
        from kfold.data.toy import make_toy_competition

        args["data"] = make_toy_competition(tmp / "other", n_train=40, n_test=20, seed=5)
    elif name == "data not a folder":
        args["data"] = tmp / "nothing"
    elif name == "test folder outside the competition":
        args["load_options"] = {"test_dir": str(tmp)}
    else:
        key, value = HOSTILE[name][2]
        args[key] = value
    return args


HOSTILE = {  # name -> (error, words of the one line, (argument, value) for plain argument cases)
    "owner with a slash": (UsageError, "owner='al/ice'", ("owner", "al/ice")),
    "slug too short": (UsageError, "Kaggle takes 6 to 50", ("slug", "kmnst")),
    "slug too long": (UsageError, "51 characters", ("slug", "k" * 51)),
    "slug upper case": (UsageError, "lower-case letters", ("slug", "KMNIST-models")),
    "slug with underscores": (UsageError, "try 'kmnist-models'", ("slug", "kmnist_models")),
    "competition not a slug": (UsageError, "competition=", ("competition", "Toy Practice")),
    "accelerator unknown": (UsageError, "not an accelerator Kaggle knows", ("accelerator", "NvidiaA100")),
    "accelerator a TPU": (UsageError, "a TPU", ("accelerator", "TpuV5E8")),
    "accelerator empty": (UsageError, "accelerator=''", ("accelerator", "")),
    "method unknown": (UsageError, "method='median'", ("method", "median")),
    "tta zero": (UsageError, "tta=0", ("tta", 0)),
    "tta ten": (UsageError, "tta=10", ("tta", 10)),
    "seed negative": (UsageError, "seed", ("seed", -1)),
    "no runs": (UsageError, "at least one run", ("runs", [])),
    "out not empty": (UsageError, "not empty", None),
    "out is a file": (UsageError, "not a folder", None),
    "out a link to an empty folder": (UsageError, "is a symbolic link", None),
    "out the competition folder": (UsageError, "not empty", None),
    "not a run": (DataError, "not a kfold run directory", None),
    "incomplete run": (DataError, "folds 1 of 2 are not finished", None),
    "config without its data": (UsageError, "does not name the training data", None),
    "runs of two competitions": (DataError, "trained on other data", None),
    "runs of other classes": (DataError, "trained on other classes", None),
    "run named twice": (UsageError, "both named 'run'", None),
    "data of another competition": (DataError, "not the data the runs were trained on", None),
    "data not a folder": (UsageError, "not a competition folder", None),
    "unreadable model": (DataError, "model.safetensors: not a valid safetensors file", None),
    "model of another architecture": (DataError, "model.safetensors: bad kfold metadata", None),
    "model of another image size": (DataError, "model.safetensors: weights do not fit", None),
    "test folder outside the competition": (UsageError, "outside the competition folder", None),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_package_requests_are_refused_before_anything_is_written(trained, tmp_path, name):
    from kfold.flows.package import package

    run, comp = trained
    error, words, _ = HOSTILE[name]
    args = _setup(name, run, comp, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error) as raised:
        package(args.pop("runs"), args.pop("competition"), args.pop("owner"), args.pop("out"), **args)
    assert words in str(raised.value) and "\n" not in str(raised.value), str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no package, no staging folder left
    out = tmp_path / "pkg"
    assert out.is_symlink() or not out.is_dir() or [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not any((tmp_path / "elsewhere").iterdir()) if (tmp_path / "elsewhere").is_dir() else True


def test_the_command_names_flags_and_exits_2(trained, tmp_path, capsys):
    run, _ = trained
    code = kfold_main(["package", str(run), "-c", "toy-practice", "--owner", "alice", "--out", str(tmp_path / "p"),
                       "--accelerator", "gpu", "--no-rehearse"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --accelerator 'gpu': not an accelerator Kaggle knows"), err
    assert not (tmp_path / "p").exists()


def test_the_command_packages_without_rehearsal(trained, tmp_path, capsys):
    run, _ = trained
    out = tmp_path / "p"
    out.mkdir()  # an empty folder is taken
    code = kfold_main(["package", str(run), "-c", "toy-practice", "--owner", "alice", "--out", str(out),
                       "--slug", "toy-models", "--accelerator", "nvidiateslat4", "--threads", "1", "--no-rehearse"])
    printed = capsys.readouterr().out
    assert code == 0 and f"not rehearsed: kfold rehearse {out}" in printed
    package = pk.read_package(out)
    assert package.dataset_id == "alice/toy-models" and package.manifest["accelerator"] == "NvidiaTeslaT4"
    kernel = json.loads((package.kernel_dir / pk.KERNEL_METADATA).read_text())
    assert kernel["enable_gpu"] is True and kernel["machine_shape"] == "NvidiaTeslaT4"
