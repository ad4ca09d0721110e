"""THE loop of a code competition, end to end, with nothing stubbed between the commands (issue 30):

train a tiny run -> ``kfold package`` (rehearsed offline) -> ``kfold rehearse`` on a larger hidden test set ->
``kfold submit --code`` through the real kaggle client against the loopback fake -> scored.

The fake runs the pushed notebook as Kaggle does (``kfold.flows.rehearse.execute_notebook``: nbclient, a fresh
environment holding only Kaggle's image, the network blocked): on the competition's public files when it is
pushed, whose output must match the package's local submission; then, for the code submission, on a hidden test
set larger than the public one, whose output is scored against a hidden solution. The score Kaggle reports must
be the score of kfold's own prediction on those hidden images.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from code_packages import scorer
from kaggle_fake import USERNAME, fake_kaggle  # noqa: F401  (fixture)
from packages import bigger_test_set, train_tiny_run
from test_kaggle_loop import kfold

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("kaggle") is None, reason="kaggle not installed"),
              pytest.mark.skipif(importlib.util.find_spec("nbclient") is None, reason="nbclient not installed")]

COMP = "toy-practice"
N_HIDDEN = 32


def kaggle_executor(notebook: Path, root: Path) -> tuple[bool, str, str]:
    """The fake's kernel runner through kfold's own offline executor (a fresh Kaggle environment per run)."""
    from kfold.flows.rehearse import execute_notebook

    run = execute_notebook(notebook, root, timeout=600)
    log = json.dumps([{"stream_name": "stdout", "time": 0.0, "data": run.stdout}])
    return run.error is None, run.error or "", log


def hidden_solution(comp: Path, hidden: Path, out: Path) -> Path:
    """The hidden test set's answers: the public ones, then those of the images the extra ones were made from
    (``bigger_test_set`` draws them with seed 7), Public for every third Id."""
    public = pd.read_csv(comp / "solution.csv")
    label = public.columns[1]
    extra = np.random.default_rng(7).integers(0, len(public), N_HIDDEN - len(public))
    labels = np.concatenate([public[label].to_numpy(), public[label].to_numpy()[extra]])
    ids = pd.read_csv(hidden / "sample_submission.csv").iloc[:, 0].to_numpy()
    frame = pd.DataFrame({public.columns[0]: ids, label: labels,
                          "Usage": ["Public" if i % 3 == 0 else "Private" for i in range(len(ids))]})
    frame.to_csv(out, index=False)
    return out


def test_train_package_rehearse_submit_code_scored_on_the_hidden_test_set(fake_kaggle, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    run, comp = train_tiny_run(tmp_path / "train")
    public = tmp_path / "kaggle-public"  # what Kaggle's editor mounts: the competition without the answers
    shutil.copytree(comp, public, ignore=shutil.ignore_patterns("solution.csv"))
    hidden = bigger_test_set(comp, tmp_path / "kaggle-hidden", N_HIDDEN)
    solution = hidden_solution(comp, hidden, tmp_path / "hidden-solution.csv")
    competition = fake_kaggle.add(COMP, code_only=True, public_files=public, hidden_files=hidden,
                                  scorer=scorer(solution))
    fake_kaggle.executor = kaggle_executor

    packaged = kfold("package", run, "-c", COMP, "--owner", USERNAME, "--out", "pkg", "--threads", "1", cwd=work,
                     timeout=900)
    assert packaged.returncode == 0, packaged.stderr + packaged.stdout
    assert "byte-identical" in packaged.stdout
    rehearsed = kfold("rehearse", "pkg", "--data", hidden, cwd=work, timeout=900)  # Kaggle's re-run, rehearsed here
    assert rehearsed.returncode == 0, rehearsed.stderr + rehearsed.stdout
    assert "byte-identical" in rehearsed.stdout and f"{N_HIDDEN} rows" in rehearsed.stdout

    done = kfold("submit", "--code", "--package", "pkg", "-c", COMP, "-m", "tiny lenet, 2 folds", "--wait", "600",
                 "--poll-interval", "0.2", cwd=work, timeout=1500)
    assert done.returncode == 0, done.stderr + done.stdout
    kernel = json.loads((work / "pkg/kernel/kernel-metadata.json").read_text())["id"]
    version = fake_kaggle.kernels[kernel][0]
    local = (work / "pkg/local/submission.csv").read_bytes()
    assert version.run.status == "COMPLETE" and version.run.outputs["submission.csv"] == local  # the public run
    assert version.request["enableInternet"] is False
    sub = competition.submissions[0]
    assert sub["status"] == "COMPLETE", sub
    # the hidden re-run's output is kfold's prediction on the hidden images: Kaggle's score is its score
    from kfold.flows.offline import predict_offline
    from kfold.scoring.leaderboard import score_submission

    here = predict_offline(work / "pkg/dataset", hidden, tmp_path / "hidden-here.csv", echo=lambda line: None)
    scores = score_submission(here.output, solution, n_bootstrap=1)
    assert (sub["result"][1], sub["result"][2]) == (f"{scores['public']:.5f}", f"{scores['private']:.5f}")
    assert f"public score: {scores['public']:.5f}" in done.stdout
    assert "the kernel's output matches the local submission (20 rows)" in done.stdout
    log = pd.read_csv(work / "submissions/log" / f"{COMP}.csv", dtype=str, keep_default_na=False)
    assert log.loc[0, ["kernel", "version", "ref"]].tolist() == [kernel, "1", str(sub["ref"])]
