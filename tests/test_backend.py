"""The ``Backend`` protocol (kfold.flows.backend) and the ``RunRequest``: the flows train and predict only through
the backend they are given, each fold job carries the request's config itself, a request is checked when made."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from kfold.config import resolve_config
from kfold.data.jobs import FoldJob, TaskSpec
from kfold.data.toy import make_toy_competition
from kfold.errors import UsageError
from kfold.files.rundir import RunDir
from kfold.flows.backend import Backend, LocalBackend
from kfold.flows.pipeline import run_competition
from kfold.flows.training import RunRequest, train_run


class FakeBackend:
    """A backend that trains nothing: it records what the flow asks of it."""

    def __init__(self, threads: int = 3):
        self.calls: list[tuple] = []
        self.closed = False
        self._threads = threads

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.closed = True

    def threads(self, requested):
        return self._threads if requested is None else requested

    def check(self, cfg, task, spec, device):
        self.calls.append(("check", cfg, spec, device))

    def train_folds(self, jobs, task):
        self.calls.append(("train", list(jobs), task))

    def predict(self, runs, task, out, *, spec=None, tta=None, device="auto", threads=None, fmt="npz", echo=None):
        self.calls.append(("predict", [Path(r) for r in runs], out, spec, tta, device, threads))
        return []


class Recording(LocalBackend):
    """A LocalBackend that records the calls of the protocol (and then does the real work)."""

    def __init__(self, echo):
        super().__init__(echo=echo)
        self.calls: list[str] = []

    def check(self, cfg, task, spec, device):
        self.calls.append("check")
        super().check(cfg, task, spec, device)

    def train_folds(self, jobs, task):
        self.calls.append(f"train {[job.fold for job in jobs]}")
        super().train_folds(jobs, task)

    def predict(self, runs, task, out, **kwargs):
        self.calls.append(f"predict {[Path(r).name for r in runs]} tta={kwargs['tta']} threads={kwargs['threads']}")
        return super().predict(runs, task, out, **kwargs)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    spec = TaskSpec(str(make_toy_competition(tmp_path_factory.mktemp("backend") / "comp")))
    return spec, spec.load()


def test_fake_and_real_backends_satisfy_the_protocol():
    assert isinstance(FakeBackend(), Backend) and isinstance(LocalBackend(), Backend)
    assert not isinstance(object(), Backend) and not isinstance(lambda jobs, task: None, Backend)


def test_ray_backend_satisfies_the_protocol():
    pytest.importorskip("ray")
    from kfold.flows.ray_backend import RayBackend, RayOptions

    with RayBackend(RayOptions(cpus_per_fold=2), progress=False) as backend:  # not started: nothing to connect
        assert isinstance(backend, Backend)
        assert backend.threads(None) == 2 and backend.threads(5) == 5
    assert not backend.started


def test_local_backend_is_a_context_manager_that_closes():
    with LocalBackend(echo=lambda _: None) as backend:
        assert not backend.closed and backend.threads(None) is None and backend.threads(4) == 4
    assert backend.closed
    with pytest.raises(RuntimeError):
        with LocalBackend() as other:
            raise RuntimeError("boom")
    assert other.closed


def test_train_run_hands_typed_jobs_with_the_request_config_to_the_backend(toy, tmp_path):
    spec, task = toy
    cfg = resolve_config("lenet5", overrides={"epochs": 1})
    request = RunRequest(cfg, spec, preset="lenet5", k=2, seed=7, folds=[1], device="cpu")
    fake = FakeBackend(threads=3)
    summary = train_run(request, task, tmp_path / "run", backend=fake, echo=lambda _: None)
    (check, check_cfg, check_spec, device), (train, jobs, passed_task) = fake.calls
    assert (check, train) == ("check", "train") and check_cfg is cfg and check_spec is spec and device == "cpu"
    assert passed_task is task
    [job] = jobs
    assert isinstance(job, FoldJob) and job.fold == 1 and job.k == 2 and job.seed == 7 and job.preset == "lenet5"
    assert job.config is cfg  # the validated config itself: not resolved again through a dict
    assert job.task is spec and job.threads == 3 and job.device == "cpu" and job.run_dir == str(tmp_path / "run")
    assert json.loads(RunDir(tmp_path / "run").config.read_text())["threads"] == 3  # the backend's threads recorded
    assert summary["folds_done"] == 0 and not fake.closed  # a backend passed in is the caller's to close


def test_train_run_full_gives_the_full_job_its_epochs_and_leaves_the_request_alone(toy, tmp_path):
    spec, task = toy
    cfg = resolve_config("lenet5", overrides={"epochs": 1})
    request = RunRequest(cfg, spec, preset="lenet5", k=2, full=True, full_epochs=3, threads=1)
    fake = FakeBackend()
    train_run(request, task, tmp_path / "run", backend=fake, echo=lambda _: None)
    [job] = fake.calls[1][1]
    assert job.fold == "full" and job.config.epochs == 3 and job.threads == 1
    assert {**job.config.to_dict(), "epochs": 1} == cfg.to_dict() and cfg.epochs == 1


def test_run_competition_with_folds_left_asks_the_backend_for_no_prediction(toy, tmp_path):
    spec, task = toy
    request = RunRequest(resolve_config("lenet5", overrides={"epochs": 1}), spec, preset="lenet5", k=2, folds=[0])
    fake = FakeBackend()
    result = run_competition(request, task, tmp_path / "toy", seeds=[0, 1], submissions=tmp_path / "subs", backend=fake,
                             echo=lambda _: None)
    kinds = [call[0] for call in fake.calls]
    assert kinds == ["check", "train", "check", "train"]  # one run per seed, each through the backend
    assert [job.seed for call in fake.calls if call[0] == "train" for job in call[1]] == [0, 1]
    assert result.submissions == {} and not (tmp_path / "subs").exists()


def test_run_competition_trains_and_predicts_through_the_backend(toy, tmp_path, capsys):
    spec, task = toy
    request = RunRequest(resolve_config("lenet5", overrides={"epochs": 1, "batch_size": 8}), spec, preset="lenet5", k=2,
                         device="cpu", threads=1, progress=False, tta=2)
    lines: list[str] = []
    backend = Recording(echo=lines.append)
    result = run_competition(request, task, tmp_path / "toy", submissions=tmp_path / "subs", backend=backend,
                             echo=lines.append)
    assert backend.calls == ["check", "train [0, 1]", "predict ['toy'] tta=2 threads=1"]
    assert sorted(result.probability_files) == sorted((tmp_path / "toy" / "probs").iterdir())
    assert any(line.startswith("fold 0: lenet5 with ") for line in lines)  # train_fold's header through echo
    assert any(line.startswith("fold 1 done: ") for line in lines)  # the local backend's line through echo
    assert "lenet5 with" not in capsys.readouterr().out


def test_a_run_request_is_checked_when_made():
    cfg, spec = resolve_config("lenet5"), TaskSpec("kmnist")
    with pytest.raises(UsageError, match=r"folds='0,5': folds must be in 0..4"):
        RunRequest(cfg, spec, folds=[0, 5])
    with pytest.raises(UsageError, match=r"threads=0: must be an integer >= 1"):
        RunRequest(cfg, spec, threads=0)
    with pytest.raises(UsageError, match=r"1: k-fold needs an integer k in 2..10000"):
        RunRequest(cfg, spec, k=1)
    request = RunRequest(cfg, spec, k=3, folds="2,0")
    assert request.fold_list == [0, 2] and RunRequest(cfg, spec, k=3).fold_list == [0, 1, 2]
    with pytest.raises(UsageError, match="folds must be in 0..1"):
        request.replace(k=2)  # a changed copy is checked again
    with pytest.raises(AttributeError):
        request.k = 7  # frozen: checked once, then as it was made


def _train_args(*extra: str) -> argparse.Namespace:
    from kfold.commands.train import build_parser

    return build_parser().parse_args(["--data", "kmnist", "--out", "x", "--preset", "lenet5", *extra])


def test_open_run_builds_the_request_once_from_the_shared_flags():
    from kfold.commands import args as flags

    request, backend = flags.open_run(_train_args("--k", "3", "--epochs", "2", "--threads", "2", "--device", "cpu"),
                                      seed=5, folds=[2])
    assert isinstance(backend, LocalBackend) and not backend.closed
    assert request.cfg == resolve_config("lenet5", overrides={"epochs": 2})
    assert (request.preset, request.k, request.seed, request.fold_list, request.threads, request.device) == \
        ("lenet5", 3, 5, [2], 2, "cpu")
    assert request.task_spec == TaskSpec("kmnist")


def test_open_run_closes_its_backend_when_the_request_is_refused(monkeypatch):
    from kfold.commands import args as flags

    opened: list[LocalBackend] = []
    monkeypatch.setattr(flags, "open_backend", lambda args, progress=True: opened.append(LocalBackend()) or opened[-1])
    with pytest.raises(UsageError, match="folds must be in 0..2"):
        flags.open_run(_train_args("--k", "3"), folds=[3])
    assert len(opened) == 1 and opened[0].closed
