"""Multi-label competitions end to end (issue 32): make-competition mosaics -> kfold run -> submission in the
sample's exact format -> kfold validate -> local leaderboard by the competition's metric. Tiny and on the CPU."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthetic import squares_task

from kfold.data.make_competition import MakeOptions, make_competition
from kfold.data.task import Task


@pytest.fixture(scope="module")
def source() -> Task:
    return squares_task(48, 24)


def _run(directory, out, subs):
    from kfold.config import resolve_config
    from kfold.flows.pipeline import run_competition
    from kfold.flows.training import RunRequest, TaskSpec

    spec = TaskSpec(str(directory))
    cfg = resolve_config("lenet5", overrides={"epochs": 1})
    request = RunRequest(cfg, spec, preset="lenet5", k=2, device="cpu", threads=1, progress=False)
    lines = []
    return run_competition(request, spec.load(progress=False), out, submissions=subs, echo=lines.append), lines


def test_planet_shaped_competition_runs_end_to_end(tmp_path, source):
    from kfold.commands.main import main as kfold

    comp = tmp_path / "planet"
    make_competition(source, comp, options=MakeOptions(layout="image-files", target="tags", metric="f2-samples",
                                                       id_column="image_name", label_column="tags", string_ids=True,
                                                       class_values="names"))
    assert (comp / "train.csv").read_text().splitlines()[0] == "image_name,tags"
    result, lines = _run(comp, tmp_path / "run", tmp_path / "subs")
    sample = (comp / "sample_submission.csv").read_text().splitlines()
    for method in ("mean", "vote"):
        written = result.submissions[method].read_text().splitlines()
        assert written[0] == sample[0] and len(written) == len(sample)
        assert [line.split(",")[0] for line in written] == [line.split(",")[0] for line in sample]
        assert all(set(line.split(",")[1].split()) <= {"a", "b", "c", "d"} and line.split(",")[1] for line in written[1:])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metric"] == "f2-samples" and len(summary["thresholds"]["per_tag"]) == 4
    probs = np.load(tmp_path / "run" / "probs" / "run-fold0.npz")
    assert json.loads(str(probs["meta"]))["thresholds"] == summary["thresholds"]
    assert result.leaderboard.attrs["metric"] == "f2-samples" and len(result.leaderboard) == 4
    assert 0 <= result.leaderboard["public"].min() <= result.leaderboard["public"].max() <= 1
    assert any("f2-samples" in line for line in result.lines)
    assert kfold(["validate", str(result.submissions["mean"]), "--sample", str(comp / "sample_submission.csv")]) == 0
    # the same seed gives the same submission, byte for byte
    again, _ = _run(comp, tmp_path / "run2", tmp_path / "subs2")
    assert again.submissions["vote"].read_bytes() == result.submissions["vote"].read_bytes()
    assert again.submissions["mean"].read_bytes() == result.submissions["mean"].read_bytes()


def test_chexpert_shaped_competition_runs_end_to_end(tmp_path, source):
    from kfold.data import load_task
    from kfold.data.layouts import describe

    comp = tmp_path / "chexpert"
    make_competition(source, comp, options=MakeOptions(layout="image-files", target="multilabel-probs",
                                                       class_values="names"))
    described = "\n".join(describe(load_task(comp, progress=False)))
    assert "one independent probability column per label" in described and "why: " in described
    result, _ = _run(comp, tmp_path / "run", tmp_path / "subs")
    assert list(result.submissions) == ["mean"]
    frame = pd.read_csv(result.submissions["mean"])
    assert list(frame.columns) == ["id", "a", "b", "c", "d"]
    values = frame[["a", "b", "c", "d"]].to_numpy()
    assert ((values >= 0) & (values <= 1)).all() and not np.allclose(values.sum(axis=1), 1)
    assert result.leaderboard.attrs["metric"] == "mean-auc"
    assert (tmp_path / "run" / "report-mean" / "agreement_tags.csv").is_file()


def test_ensemble_command_writes_a_multilabel_vote(tmp_path, source):
    from kfold.commands.ensemble import main as ensemble

    comp = tmp_path / "planet"
    make_competition(source, comp, options=MakeOptions(layout="image-files", target="tags"))
    _run(comp, tmp_path / "run", tmp_path / "subs")
    inputs = [str(tmp_path / "run" / "probs" / f"run-fold{f}.npz") for f in range(2)]
    out = tmp_path / "vote.csv"
    assert ensemble([*inputs, "--method", "vote", "--out", str(out), "--sample", str(comp / "sample_submission.csv"),
                     "--report", str(tmp_path / "report")]) == 0
    assert out.read_text().splitlines()[0] == "id,label"
    assert (tmp_path / "report" / "agreement_models.csv").is_file()
    from kfold import api  # the Python API: the same ensemble

    made = api.ensemble(inputs, method="mean", out=tmp_path / "api.csv", sample=comp / "sample_submission.csv")
    assert list(made.frame.columns) == ["id", "label"] and made.categories.shape == (len(made.frame), 4)
