"""train.py killed with SIGKILL at many points, restarted with --resume, ends bit-identical to an uninterrupted run.

Every training run is a separate process running train.py's ``main`` through ``run_cli``. The processes
come from a multiprocessing 'forkserver' whose server imports torch and kfold once, so each one starts in
milliseconds instead of seconds. A hook installed in the process sends SIGKILL to itself at an exact
point (mid-epoch, halfway through writing a file, right after a rename), so every point is hit
deterministically instead of by racing a timer. The kills form one chain: each restart with --resume is
itself killed at the next point, and the last one completes.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from safetensors.numpy import load_file
from synthetic import write_kmnist_comp

from kfold.errors import run_cli
from kfold.files.probs import read_probs

TRAIN_ARGS = ["--preset", "lenet5", "--aug", "none", "--k", "2", "--epochs", "3", "--batch-size", "16", "--lr", "0.05",
              "--seed", "7", "--no-progress", "--device", "cpu"]
PRELOAD = ["torch", "torch._dynamo", "torch._inductor", "kfold.commands.train", "kfold.flows.training", "kfold.nn.fold", "kfold.nn.engine", "kfold.figures",
           "kfold.nn.inference", "kfold.nn.predict", "kfold.commands.predict", "sklearn.metrics", "kornia", "albumentations"]


@dataclass(frozen=True)
class KillPoint:
    """Where a training process kills itself.

    ``mid-epoch``: at forward pass ``call`` of epoch ``epoch`` of ``target`` ("fold 0").
    ``mid-write``: when ``target`` (a path in the run directory) is about to be renamed into place, its
    temporary file is cut to half its size first, as if the process died while writing it.
    ``after-rename``: right after ``target`` was renamed into place.
    """

    kind: str
    target: str
    epoch: int = 0
    call: int = 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install(point: KillPoint, run_dir: Path) -> None:
    if point.kind == "mid-epoch":
        from kfold.nn.engine import FoldTrainer

        train_epoch = FoldTrainer.train_epoch

        def killing_epoch(self):
            if self.desc == point.target and self.state["epoch"] + 1 == point.epoch:
                forward, calls = self.forward, iter(range(1, 10**6))

                def killing_forward(x):
                    if next(calls) == point.call:
                        _die()
                    return forward(x)
                self.forward = killing_forward
            return train_epoch(self)
        FoldTrainer.train_epoch = killing_epoch
        return

    replace, target = os.replace, (run_dir / point.target).resolve()

    def killing_replace(src, dst, *args, **kwargs):
        hit = Path(dst).resolve() == target
        if hit and point.kind == "mid-write":
            os.truncate(src, os.path.getsize(src) // 2)
            _die()
        replace(src, dst, *args, **kwargs)
        if hit:
            _die()
    os.replace = killing_replace  # kfold.files.atomic renames every file it writes with os.replace


def _cli_process(module: str, argv: list[str], log: str, point: KillPoint | None) -> None:
    """Body of a child process: ``run_cli(<module>.main, argv)`` with output to ``log``, killed at ``point``."""
    import importlib

    import torch

    sys.stdout = sys.stderr = open(log, "w", buffering=1)
    torch.set_num_threads(1)
    if point is not None:
        _install(point, Path(argv[argv.index("--out") + 1]))
    sys.exit(run_cli(importlib.import_module(module).main, argv))


@pytest.fixture(scope="module")
def spawn():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*PRELOAD, __name__])  # this module too: it holds the children's code

    def run(argv: list, log: Path, point: KillPoint | None = None, module: str = "kfold.commands.train") -> int:
        process = context.Process(target=_cli_process, args=(module, [*map(str, argv)], str(log), point))
        process.start()
        process.join(timeout=300)
        assert process.exitcode is not None, f"training process hung: {log.read_text()}"
        return process.exitcode
    return run


# (kill point, a line the log of the process that is killed there must show, or None)
CHAIN = [
    (KillPoint("after-rename", "config.json"), None),
    (KillPoint("mid-epoch", "fold 0", epoch=1, call=3), None),  # no checkpoint yet
    (KillPoint("after-rename", "fold0/checkpoint.pt"), None),  # the first checkpoint just landed
    (KillPoint("mid-write", "fold0/checkpoint.pt"), "fold 0: resuming after epoch 1"),  # epoch 2's checkpoint
    (KillPoint("mid-write", "fold0/model.safetensors"), "fold 0: resuming after epoch 1"),
    (KillPoint("mid-write", "fold0/learning_curve.png"), "fold 0: resuming after epoch 3"),
    (KillPoint("after-rename", "fold0/meta.json"), "fold 0: resuming after epoch 3"),  # between the folds
    (KillPoint("mid-epoch", "fold 1", epoch=2, call=4), "fold 0: already finished"),
    (KillPoint("mid-write", "summary.json"), "fold 1: resuming after epoch 1"),
]


def _assert_complete(run_dir: Path) -> None:
    """Every file under its final name is whole: it parses as what its name says."""
    for path in run_dir.rglob("*"):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            assert len(pd.read_csv(path)) > 0
        elif path.suffix == ".npz":
            read_probs(path)
        elif path.suffix == ".png":
            Image.open(path).verify()
        elif path.name == "model.safetensors":
            load_file(path)
        elif path.name == "checkpoint.pt":  # torch.save writes a zip archive: check every member's CRC
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None
        else:
            raise AssertionError(f"unexpected file {path}")


def _without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["seconds"])


def _summary(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("train_seconds")
    for fold in summary["folds"]:
        fold.pop("seconds")
    return summary


def test_sigkill_anywhere_then_resume_is_bit_identical(spawn, tmp_path):
    data = write_kmnist_comp(tmp_path / "data", n_train=200, n_test=60, seed=3)
    reference, killed = tmp_path / "reference" / "run", tmp_path / "killed" / "run"
    assert spawn(["--data", data, *TRAIN_ARGS, "--out", reference], tmp_path / "reference.log") == 0

    for step, (point, expected_line) in enumerate(CHAIN):
        log = tmp_path / f"killed{step}.log"
        resume = ["--resume"] if step else []
        code = spawn(["--data", data, *TRAIN_ARGS, "--out", killed, *resume], log, point)
        text = log.read_text()
        assert code == -signal.SIGKILL, f"{point} was never reached (exit {code}):\n{text}"
        assert expected_line is None or expected_line in text, text
        _assert_complete(killed)
    # each cut temporary file stays behind under a hidden name until the next run of train.py removes it (its
    # process is gone): only the last killed run's remains, and the files it was meant to become are whole
    assert [p.name.split(".")[1] for p in killed.rglob(".*")] == ["summary"]
    log = tmp_path / "resumed.log"
    assert spawn(["--data", data, *TRAIN_ARGS, "--out", killed, "--resume"], log) == 0, log.read_text()
    assert "fold 0: already finished" in log.read_text() and "fold 1: already finished" in log.read_text()
    _assert_complete(killed)
    assert list(killed.rglob(".*")) == []

    assert (killed / "folds.csv").read_bytes() == (reference / "folds.csv").read_bytes()
    assert _summary(killed) == _summary(reference)
    assert not list(killed.rglob("checkpoint.pt"))  # also fold0's, killed between its meta.json and its deletion
    for name in ("oof.npz", "fold0/oof.npz", "fold1/oof.npz"):
        a, b = read_probs(killed / name), read_probs(reference / name)
        assert a.probs.tobytes() == b.probs.tobytes() and a.ids.tobytes() == b.ids.tobytes()
        assert a.labels.tobytes() == b.labels.tobytes()
    for fold in ("fold0", "fold1"):
        a, b = load_file(killed / fold / "model.safetensors"), load_file(reference / fold / "model.safetensors")
        assert a.keys() == b.keys() and all(a[key].tobytes() == b[key].tobytes() for key in a)
        assert (killed / fold / "confusion.csv").read_bytes() == (reference / fold / "confusion.csv").read_bytes()
        pd.testing.assert_frame_equal(_without_timings(pd.read_csv(killed / fold / "metrics.csv")),
                                      _without_timings(pd.read_csv(reference / fold / "metrics.csv")))

    for run in (reference, killed):  # test probabilities of every fold model, their mean, and the re-exported OOF
        log = run.parent / "predict.log"
        assert spawn([run, "--data", data, "--out", run.parent / "probs", "--device", "cpu"], log,
                     module="kfold.commands.predict") == 0, log.read_text()
    written = sorted(p.name for p in (reference.parent / "probs").iterdir())
    assert written == ["run-fold0.npz", "run-fold1.npz", "run-mean.npz", "run-oof.npz"]
    assert sorted(p.name for p in (killed.parent / "probs").iterdir()) == written
    for name in written:
        a, b = read_probs(killed.parent / "probs" / name), read_probs(reference.parent / "probs" / name)
        assert a.probs.tobytes() == b.probs.tobytes() and a.ids.tobytes() == b.ids.tobytes() and a.meta == b.meta
