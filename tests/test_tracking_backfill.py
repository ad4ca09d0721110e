"""``kfold track sync`` backfills what a run made while it was not tracked: its ensembles (found from the run's
``report-{method}/`` folders and leaderboard, ``kfold.files.past_ensembles``) with their local scores and links to
the run, idempotently; ensembles that cannot be found whole are named with the reason. ``kfold compare`` tells
the tracker each fold as it finishes (not each run at its end). Against a real MLflow store (copied from a
template), read back through ``MlflowClient``."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
pytest.importorskip("mlflow")

from test_tracking import runs_of, store, template_db  # noqa: E402,F401  (fixtures)

from kfold.commands.main import main as kfold_main  # noqa: E402
from kfold.data.toy import make_toy_competition  # noqa: E402
from kfold.files.past_ensembles import past_ensembles  # noqa: E402
from kfold.flows.tracking import NullTracker  # noqa: E402


@pytest.fixture(scope="module")
def untracked(tmp_path_factory):
    """A finished ``kfold run`` (lenet5, 1 epoch, k = 2) made WITHOUT tracking: the project folder (runs/toy,
    subs/toy-mean.csv, subs/toy-vote.csv, its leaderboard). Tests copy it."""
    root = tmp_path_factory.mktemp("untracked")
    comp = make_toy_competition(root / "comp")
    here = Path.cwd()
    os.chdir(root)
    try:
        assert kfold_main(["run", "--data", str(comp), "--preset", "lenet5", "--epochs", "1", "--k", "2",
                           "--threads", "1", "--no-progress", "--out", "runs/toy", "--submissions", "subs"]) == 0
    finally:
        os.chdir(here)
    return root


@pytest.fixture
def project(untracked, tmp_path, monkeypatch):
    """A copy of the untracked project, the working directory."""
    copy = tmp_path / "project"
    shutil.copytree(untracked, copy)
    monkeypatch.chdir(copy)
    return copy


def test_sync_backfills_a_runs_ensembles_with_their_local_scores_and_links_once(project, store, capsys):  # noqa: F811
    uri, client = store
    assert kfold_main(["track", "sync", "runs/toy"]) == 0
    out = capsys.readouterr().out
    assert "synced ensemble subs/toy-mean.csv (mean of 2 files)" in out.replace(str(project) + "/", "")
    (run,) = runs_of(client, "run")
    ensembles = {e.data.params["method"]: e for e in runs_of(client, "ensemble")}
    assert sorted(ensembles) == ["mean", "vote"]
    board = pd.read_csv(project / "runs" / "toy" / "leaderboard" / "leaderboard.csv")
    for method, ens in ensembles.items():
        row = board[board["submission"] == f"subs/toy-{method}.csv"].iloc[0]
        assert ens.data.metrics["local_public"] == pytest.approx(row["public"])
        assert ens.data.metrics["local_private"] == pytest.approx(row["private"])
        assert ens.data.tags["kfold.input_run_ids"] == run.info.run_id
        assert ens.data.params["input_files"] == "toy-fold0.npz,toy-fold1.npz"
        assert ens.info.status == "FINISHED"
        assert f"toy-{method}.csv" in {a.path for a in client.list_artifacts(ens.info.run_id)}
    # idempotent: a second sync logs nothing new
    assert kfold_main(["track", "sync", "runs/toy"]) == 0
    assert len(runs_of(client, "ensemble")) == 2 and len(runs_of(client, "run")) == 1


def _break(project: Path, how: str) -> str:
    run = project / "runs" / "toy"
    if how == "submission moved":
        (project / "subs" / "toy-vote.csv").rename(project / "elsewhere.csv")
        return "its submission toy-vote.csv was not found"
    if how == "input missing":
        (run / "probs" / "toy-fold1.npz").unlink()
        return "input toy-fold1.npz is missing"
    if how == "inputs.csv unreadable":
        (run / "report-vote" / "inputs.csv").write_bytes(b"\xff\xfe\x00garbage\n\x00\x01")
        return "its inputs.csv cannot be read"
    if how == "inputs.csv without its column":
        (run / "report-vote" / "inputs.csv").write_text("file,weight\ntoy-fold0.npz,1\n")
        return "its inputs.csv cannot be read"
    if how == "inputs.csv empty of rows":
        (run / "report-vote" / "inputs.csv").write_text("input,weight\n")
        return "input (none) is missing"
    if how == "input outside the run":
        (run / "report-vote" / "inputs.csv").write_text("input,weight\n../../../comp/train.csv,1\n")
        return "is not a file name"
    raise AssertionError(how)


HOSTILE = ["submission moved", "input missing", "inputs.csv unreadable", "inputs.csv without its column",
           "inputs.csv empty of rows", "input outside the run"]


@pytest.mark.parametrize("how", HOSTILE)
def test_an_ensemble_that_cannot_be_found_whole_is_named_with_its_reason_and_the_rest_is_synced(
        project, how):
    reason = _break(project, how)
    found = past_ensembles(project / "runs" / "toy")
    methods = [e.method for e in found.ensembles]
    skipped = {report.name: why for report, why in found.skipped}
    if how == "input missing":  # both ensembles combined fold1
        assert methods == [] and set(skipped) == {"report-mean", "report-vote"}
    else:
        assert methods == ["mean"] and list(skipped) == ["report-vote"]
    assert all(reason in why for why in skipped.values()), skipped


@pytest.mark.parametrize("board", ["missing", "garbage", "no score columns", "non-numbers"])
def test_a_missing_or_broken_leaderboard_leaves_the_scores_out(project, board):
    path = project / "runs" / "toy" / "leaderboard" / "leaderboard.csv"
    if board == "missing":
        path.unlink()
    elif board == "garbage":
        path.write_bytes(b"\x00\x01\x02\xff")
    elif board == "no score columns":
        path.write_text("submission,other\nsubs/toy-mean.csv,1\n")
    else:
        table = pd.read_csv(path)
        table["public"] = "n/a"
        table["private"] = "inf"
        table.to_csv(path, index=False)
    run = project / "runs" / "toy"
    if board == "missing":  # no leaderboard to say where subs/ was: found only when the folder is given
        assert [r.name for r, _ in past_ensembles(run).skipped] == ["report-mean", "report-vote"]
    found = past_ensembles(run, submissions=project / "subs")
    assert [e.method for e in found.ensembles] == ["mean", "vote"] and not found.skipped
    assert all(e.public is None and e.private is None for e in found.ensembles)


def test_past_ensembles_finds_submissions_from_another_working_directory(project, monkeypatch):
    monkeypatch.chdir(project / "runs")  # the leaderboard's relative paths no longer resolve from here
    found = past_ensembles(Path("toy"))
    assert [e.submission.resolve() for e in found.ensembles] == [
        (project / "subs" / f"toy-{m}.csv").resolve() for m in ("mean", "vote")]
    # subs/ is not the default submissions/ folder: found through the leaderboard's paths from the project folder
    assert not found.skipped


class Recorder(NullTracker):
    """A tracker that records the calls it gets, in order."""

    def __init__(self):
        self.calls = []

    def __bool__(self):
        return True

    def run_started(self, run_dir):
        self.calls.append(("run_started", Path(run_dir).name))

    def fold_done(self, run_dir, fold):
        self.calls.append(("fold_done", fold))

    def run_done(self, run_dir):
        self.calls.append(("run_done", Path(run_dir).name))


def test_compare_tells_the_tracker_each_fold_as_it_finishes(tmp_path, capsys):
    from kfold.flows.compare import compare

    comp = make_toy_competition(tmp_path / "comp")
    tracker = Recorder()
    compare(str(comp), tmp_path / "cmp", presets=["lenet5"], seeds=[0], k=2, epochs=1, threads=1, progress=False,
            tracker=tracker)
    assert tracker.calls == [("run_started", "lenet5"), ("fold_done", 0), ("fold_done", 1), ("run_done", "lenet5")]


def test_sync_takes_the_submissions_folder_when_nothing_recorded_it(project, store, capsys):  # noqa: F811
    uri, client = store
    (project / "runs" / "toy" / "leaderboard" / "leaderboard.csv").unlink()  # a competition without a solution
    assert kfold_main(["track", "sync", "runs/toy"]) == 0
    out = capsys.readouterr().out
    assert out.count("not synced: ensemble report-") == 2 and "give its folder with --submissions" in out
    assert runs_of(client, "ensemble") == []
    assert kfold_main(["track", "sync", "runs/toy", "--submissions", "subs"]) == 0
    ensembles = runs_of(client, "ensemble")
    assert sorted(e.data.params["method"] for e in ensembles) == ["mean", "vote"]
    assert all("local_public" not in e.data.metrics for e in ensembles)  # no leaderboard: no local score


@pytest.mark.parametrize("folder", ["no/such/folder", "subs/toy-mean.csv"])
def test_sync_refuses_a_submissions_folder_that_is_not_one_before_logging(project, store, folder, capsys):  # noqa: F811
    uri, client = store
    assert kfold_main(["track", "sync", "runs/toy", "--submissions", folder]) == 2  # one error line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and folder in err and err.count("\n") == 1
    assert runs_of(client) == []


def test_a_search_synced_from_another_working_directory_finds_its_trials_and_never_duplicates_them(
        tmp_path, store, monkeypatch):  # noqa: F811
    """trials.csv records each trial's folder relative to where the search ran; a sync from elsewhere (or of a moved
    search) must find the trials in the search's own trials/ folder, not log them again as trials without a run."""
    from test_tracking import finished_run

    uri, client = store
    project = tmp_path / "project"
    tune = project / "runs" / "tune"
    (tune / "trials").mkdir(parents=True)
    for number in (0, 1):
        made = finished_run(tmp_path, f"t{number}")
        shutil.move(str(made), tune / "trials" / f"{number:04d}")
    rows = [{"number": n, "state": "complete", "accuracy": 0.8 + n / 100, "folds_done": 2, "seconds": 1.0, "lr": 0.1,
             "partial_metric": None, "reason": "", "dir": f"runs/tune/trials/{n:04d}"} for n in (0, 1)]
    pd.DataFrame(rows).to_csv(tune / "trials.csv", index=False)
    for where in (project, tmp_path, tune):  # where the search ran, and two other working directories
        monkeypatch.chdir(where)
        assert kfold_main(["track", "sync", str(tune), "--uri", uri]) == 0
        trials = [r for r in runs_of(client) if "kfold.trial" in r.data.tags]
        assert sorted(r.data.tags["kfold.trial"] for r in trials) == ["0", "1"], where
        assert all(r.data.tags["kfold.kind"] == "run" for r in trials)  # each trial is its kfold run, with its folds
        assert len(runs_of(client, "fold")) == 4
