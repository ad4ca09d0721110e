"""The review's multi-label and target-shape findings, each with a test that failed before its fix.

A: one-hot training columns (Plant Pathology 2020: ``image_id,healthy,multiple_diseases,rust,scab`` with one 1 per
   row, a sample with one probability column per class) load, run and submit; bad cells are one line each.
B: ``--target multilabel-probs`` (and ``probs``) forces either target on a sample of several probability columns.
C: multi-label ensembles are told to the tracker (``kfold run`` and ``kfold ensemble``).
D: one tag rule (thresholds, top-1 fallback) for every path that scores tags from probabilities.
E: ``kfold leaderboard --solution`` (and ``validate --sample``) learn a schema without decoding an image.
F: the leaderboard command calls one flow; report file names only in ``kfold.files.rundir``.
Tiny competitions (a few 28x28 images), lenet5, one epoch, one thread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic import SQUARE_CLASSES, squares_task

from kfold.commands.main import main as kfold
from kfold.data.make_competition import MakeOptions, make_competition
from kfold.data.task import Task

CLASSES = SQUARE_CLASSES


@pytest.fixture(scope="module")
def source() -> Task:
    return squares_task(24, 12)


def one_hot_competition(directory: Path, source: Task, layout: str = "image-files") -> Path:
    """A Plant-Pathology-shaped competition: the training labels as one 0/1 column per class (one 1 per row), a
    sample with one probability column per class, no competition.json (Kaggle ships none)."""
    make_competition(source, directory, options=MakeOptions(layout=layout, target="probs", class_values="names"))
    train = pd.read_csv(directory / "train.csv", dtype=str, keep_default_na=False)
    labels = train.pop("label")
    position = 1 if "id" in train.columns else 0
    for name in reversed(CLASSES):  # in another order than the sample's: columns are matched by name
        train.insert(position, name, (labels == name).astype(int))
    train.to_csv(directory / "train.csv", index=False)
    (directory / "competition.json").unlink()
    return directory


def _inspect(folder: Path, capsys, *flags: str) -> tuple[int, str, str]:
    code = kfold(["inspect", str(folder), "--no-progress", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- A: one-hot training columns ------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["image-files", "pixel-csv"])
def test_one_hot_training_columns_are_the_probability_target(tmp_path, source, layout, capsys):
    from kfold.data import load_task

    comp = one_hot_competition(tmp_path / "comp", source, layout)
    code, out, err = _inspect(comp, capsys)
    assert code == 0, err
    assert "training labels: 0/1 columns a, b, c, d" in out
    assert "target: a, b, c, d (one probability column per class)" in out and "metric: logloss" in out
    assert "one-hot" in out
    task = load_task(comp, progress=False)
    assert task.schema.target == "probs" and task.class_names == CLASSES
    assert task.train_labels.tolist() == source.train_labels.tolist()


def test_one_hot_competition_runs_to_a_probability_submission_validate_accepts(tmp_path, source, capsys):
    comp = one_hot_competition(tmp_path / "comp", source)
    subs = tmp_path / "subs"
    code = kfold(["run", "--data", str(comp), "--preset", "lenet5", "--k", "2", "--epochs", "1", "--threads", "1",
                  "--out", str(tmp_path / "run"), "--submissions", str(subs), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    written = sorted(p.name for p in subs.glob("*.csv"))
    assert written == ["run-mean.csv"]  # a probability target: the mean only
    sub, sample = pd.read_csv(subs / "run-mean.csv"), pd.read_csv(comp / "sample_submission.csv")
    assert list(sub.columns) == list(sample.columns) and sub["id"].tolist() == sample["id"].tolist()
    assert np.allclose(sub[CLASSES].sum(axis=1), 1.0)
    assert "local Public" in out  # the solution.csv beside it is scored
    assert kfold(["validate", str(subs / "run-mean.csv"), "--sample", str(comp / "sample_submission.csv")]) == 0
    assert "ok:" in capsys.readouterr().out


def _edit(comp: Path, row: int, values: dict) -> int:
    """Set the cells of training row ``row`` (0-based); returns its line number in train.csv."""
    train = pd.read_csv(comp / "train.csv", dtype=str, keep_default_na=False)
    for column, value in values.items():
        train.loc[row, column] = value
    train.to_csv(comp / "train.csv", index=False)
    return row + 2


HOSTILE = [  # (case, cells of row 5, --target, what the error names)
    ("two ones, forced probs", {"a": "1", "b": "1", "c": "0", "d": "0"}, "probs", ("columns 'a', 'b'", "2 ones")),
    ("no one, forced probs", {"a": "0", "b": "0", "c": "0", "d": "0"}, "probs",
     ("columns 'a', 'b', 'c', 'd'", "no 1")),
    ("a 2", {"c": "2"}, None, ("column 'c'", "'2' is not 0 or 1")),
    ("a 2, forced probs", {"c": "2"}, "probs", ("column 'c'", "'2' is not 0 or 1")),
    ("a word", {"d": "yes"}, None, ("column 'd'", "'yes' is not 0 or 1")),
    ("a fraction", {"a": "0.5"}, None, ("column 'a'", "'0.5' is not 0 or 1")),
    ("minus one", {"b": "-1"}, "probs", ("column 'b'", "'-1' is not 0 or 1")),
    ("nan", {"b": "nan"}, None, ("column 'b'", "'nan' is not 0 or 1")),
]


@pytest.mark.parametrize("layout", ["image-files", "pixel-csv"])
@pytest.mark.parametrize("case, cells, target, named", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_bad_one_hot_cells_are_one_error_line_naming_file_line_and_column(tmp_path, source, layout, case, cells,
                                                                           target, named, capsys):
    comp = one_hot_competition(tmp_path / "comp", source, layout)
    line = _edit(comp, 5, cells)
    code, out, err = _inspect(comp, capsys, *(["--target", target] if target else []))
    assert code == 1 and out == "", (out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert f"{comp / 'train.csv'}: line {line}, " in err, err
    assert all(piece in err for piece in named), err
    assert "Traceback" not in err


@pytest.mark.parametrize("layout", ["image-files", "pixel-csv"])
@pytest.mark.parametrize("cells", [{"a": "1", "b": "1"}, {"a": "0", "b": "0", "c": "0", "d": "0"}],
                         ids=["two ones", "no one"])
def test_rows_that_are_not_one_hot_make_the_multilabel_target_unless_probs_is_forced(tmp_path, source, layout, cells,
                                                                                       capsys):
    """README: label columns whose every row holds exactly one 1 are the multi-class probability target; a row with
    no 1 or several makes them independent labels (CheXpert)."""
    comp = one_hot_competition(tmp_path / "comp", source, layout)
    _edit(comp, 5, cells)
    code, out, err = _inspect(comp, capsys)
    assert code == 0, err
    assert "one independent probability column per label" in out and "why: training row 5 holds" in out
    assert "metric: mean-auc" in out


# -- B: --target forces either target of a sample with several probability columns ------------------------------
@pytest.fixture()
def chexpert(tmp_path, source) -> Path:
    bigger = squares_task(48, 24, seed=1)
    comp = tmp_path / "chexpert"
    make_competition(bigger, comp, options=MakeOptions(layout="image-files", target="multilabel-probs",
                                                        class_values="names"))
    (comp / "competition.json").unlink()
    return comp


def test_target_multilabel_probs_is_accepted_where_it_is_detected(chexpert, capsys):
    plain = _inspect(chexpert, capsys)
    forced = _inspect(chexpert, capsys, "--target", "multilabel-probs")
    assert plain[0] == 0 and forced[0] == 0, (plain[2], forced[2])
    for _, out, _ in (plain, forced):
        assert "one independent probability column per label" in out and "metric: mean-auc" in out


def test_target_multilabel_probs_forces_independent_labels_on_one_hot_columns(tmp_path, source, capsys):
    comp = one_hot_competition(tmp_path / "comp", source)
    code, out, err = _inspect(comp, capsys, "--target", "multilabel-probs")
    assert code == 0, err
    assert "one independent probability column per label" in out and "target 'multilabel-probs' given" in out


def test_target_probs_on_rows_with_several_ones_names_the_row(chexpert, capsys):
    code, out, err = _inspect(chexpert, capsys, "--target", "probs")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"{chexpert / 'train.csv'}: line 2, columns " in err and "ones in one row" in err


@pytest.mark.parametrize("target", ["label", "binary", "tags"])
def test_a_target_several_probability_columns_cannot_hold_is_refused_naming_both(chexpert, target, capsys):
    code, out, err = _inspect(chexpert, capsys, "--target", target)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--target '{target}'" in err and "so its target is 'probs' or 'multilabel-probs'" in err


# -- C: multi-label ensembles are told to the tracker --------------------------------------------------------------
class Recorder:
    """A tracker recording the ensembles it is told (the rest as NullTracker: nothing)."""

    def __new__(cls):
        from kfold.flows.tracking import NullTracker

        class _Recorder(NullTracker):
            def __init__(self):
                self.ensembles = []

            def __bool__(self):
                return True

            def ensemble_done(self, submission, inputs, method, *, public=None, private=None, report=None):
                self.ensembles.append({"submission": Path(submission).name, "inputs": [Path(p) for p in inputs],
                                       "method": method, "public": public, "private": private,
                                       "report": None if report is None else Path(report)})
        return _Recorder()


@pytest.fixture(scope="module")
def planet_run(tmp_path_factory, source):
    """A Planet-shaped (tags) competition trained once (k=2, one epoch) with a recording tracker."""
    from kfold.config import resolve_config
    from kfold.flows.pipeline import run_competition
    from kfold.flows.training import RunRequest, TaskSpec

    tmp = tmp_path_factory.mktemp("planet")
    comp = tmp / "planet"
    make_competition(source, comp, options=MakeOptions(layout="image-files", target="tags", metric="f2-samples",
                                                       id_column="image_name", label_column="tags", string_ids=True,
                                                       class_values="names"))
    spec = TaskSpec(str(comp))
    request = RunRequest(resolve_config("lenet5", overrides={"epochs": 1}), spec, preset="lenet5", k=2, device="cpu",
                         threads=1, progress=False)
    tracker = Recorder()
    result = run_competition(request, spec.load(progress=False), tmp / "run", submissions=tmp / "subs",
                             echo=lambda line: None, tracker=tracker)
    return comp, tmp, result, tracker


def test_run_competition_tells_the_tracker_each_multilabel_ensemble_with_its_local_scores(planet_run):
    comp, tmp, result, tracker = planet_run
    assert [e["method"] for e in tracker.ensembles] == ["mean", "vote"]
    board = result.leaderboard.set_index("submission")
    for entry in tracker.ensembles:
        target = result.submissions[entry["method"]]
        assert entry["submission"] == target.name
        assert entry["inputs"] == [tmp / "run" / "probs" / f"run-fold{f}.npz" for f in range(2)]
        assert entry["report"] == tmp / "run" / f"report-{entry['method']}"
        assert entry["public"] == pytest.approx(board.loc[str(target), "public"])
        assert entry["private"] == pytest.approx(board.loc[str(target), "private"])
        assert 0 <= entry["public"] <= 1


def test_make_submission_tells_the_tracker_a_multilabel_ensemble_with_its_local_scores(planet_run):
    from kfold.flows.ensembling import make_submission
    from kfold.scoring.leaderboard import leaderboard, read_solution

    comp, tmp, result, _ = planet_run
    inputs = [tmp / "run" / "probs" / f"run-fold{f}.npz" for f in range(2)]
    tracker = Recorder()
    out = tmp / "again" / "vote.csv"
    make_submission(inputs, out, method="vote", sample=comp / "sample_submission.csv", solution=comp / "solution.csv",
                    report=tmp / "again" / "report", seed=3, tracker=tracker)
    assert len(tracker.ensembles) == 1
    entry = tracker.ensembles[0]
    assert (entry["submission"], entry["method"], entry["inputs"]) == ("vote.csv", "vote", inputs)
    row = leaderboard([out], read_solution(comp / "solution.csv")).iloc[0]
    assert entry["public"] == pytest.approx(row["public"]) and entry["private"] == pytest.approx(row["private"])
    without = Recorder()  # no solution: told, without scores
    make_submission(inputs, tmp / "again" / "mean.csv", sample=comp / "sample_submission.csv", tracker=without)
    assert [(e["method"], e["public"], e["private"]) for e in without.ensembles] == [("mean", None, None)]


# -- D: one tag rule wherever tags come from probabilities ----------------------------------------------------------
def _case(labels, probs):
    return np.array(labels, dtype=np.int64), np.array(probs, dtype=np.float64)


TAG_CASES = {  # (labels, probabilities) of rows, scored by a tag metric on a multilabel-probs target
    "every row below 0.5": _case([[1, 0, 0], [0, 1, 0]], [[0.4, 0.1, 0.2], [0.1, 0.3, 0.2]]),
    "some rows below 0.5": _case([[1, 0, 1], [0, 1, 0], [0, 0, 1]], [[0.8, 0.1, 0.6], [0.2, 0.45, 0.1], [0.6, 0.1, 0.3]]),
    "a tie in an empty row": _case([[0, 1, 0], [1, 0, 0]], [[0.3, 0.3, 0.1], [0.25, 0.25, 0.25]]),
    "exactly 0.5": _case([[1, 1, 0], [0, 0, 1]], [[0.5, 0.5, 0.5], [0.49, 0.2, 0.5]]),
    "all above": _case([[1, 1, 1], [1, 0, 1]], [[0.9, 0.8, 0.7], [0.6, 0.55, 0.99]]),
    "seeded, mostly low": _case(np.random.default_rng(4).integers(0, 2, size=(30, 5)),
                                np.round(np.random.default_rng(5).uniform(0, 0.7, size=(30, 5)), 2)),
}
TAG_METRICS = ["f1-samples", "f2-samples", "micro-f1"]


def _schema(metric: str, tags: int):
    from kfold.files.schema import Schema

    names = tuple(f"t{j}" for j in range(tags))
    return Schema(id_column="id", target_columns=names, classes=names, target="multilabel-probs", id_kind="int",
                  class_kind="str", metric=metric)


@pytest.mark.parametrize("metric", TAG_METRICS)
@pytest.mark.parametrize("case", list(TAG_CASES))
def test_every_path_scores_probability_columns_by_one_tag_rule(tmp_path, case, metric):
    """The out-of-fold score (kfold run), kfold tune's trial value, the metrics table and the leaderboard (a
    submission CSV and a probability file) agree on the same labels and probabilities: 0.5 with the top-1 fallback."""
    from kfold.files.probs import write_probs
    from kfold.files.rundir import RunDir
    from kfold.flows.tune.driver import _oof_score
    from kfold.metrics import score, tags_from_probs
    from kfold.scoring.leaderboard import read_solution, score_many
    from kfold.scoring.multilabel import fast_score, oof_summary

    labels, probs = TAG_CASES[case]
    labels, probs = np.concatenate([labels, labels]), np.concatenate([probs, probs])  # Public and Private rows
    schema = _schema(metric, labels.shape[1])
    expected = fast_score(metric, labels, tags_from_probs(probs))
    ids = np.arange(len(labels))
    solution = pd.DataFrame({"id": ids, **{c: labels[:, j] for j, c in enumerate(schema.classes)},
                             "Usage": ["Public", "Private"] * (len(ids) // 2)})
    solution.to_csv(tmp_path / "solution.csv", index=False)
    pd.DataFrame({"id": ids, **{c: probs[:, j] for j, c in enumerate(schema.classes)}}).to_csv(
        tmp_path / "sub.csv", index=False)
    meta = {"schema": schema.to_dict(), "kind": "test"}
    write_probs(tmp_path / "test.npz", ids, probs, schema.classes, meta)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    write_probs(run.fold_oof(0), ids, probs, schema.classes, {**meta, "kind": "oof"}, labels=labels)
    run.meta(0).parent.mkdir(parents=True, exist_ok=True)
    run.meta(0).write_text("{}")
    board = score_many([tmp_path / "sub.csv", tmp_path / "test.npz"], read_solution(tmp_path / "solution.csv", schema=schema),
                       n_bootstrap=1)
    values = {"metrics.score": score(metric, labels, probs), "kfold run out-of-fold": oof_summary(labels, probs, schema)["oof_score"],
              "kfold tune": _oof_score(run, [0], metric, schema.num_classes, schema.target)[0],
              "leaderboard (csv)": board["overall"].iloc[0], "leaderboard (npz)": board["overall"].iloc[1]}
    assert values == pytest.approx({name: expected for name in values}, abs=1e-9), values


def test_the_tag_rule_gives_every_row_a_tag_and_keeps_decided_tags_as_they_are():
    from kfold.metrics import score

    labels = np.array([[1, 0, 0], [0, 1, 0]])
    assert score("f1-samples", labels, np.array([[0.4, 0.1, 0.2], [0.1, 0.3, 0.2]])) == 1.0  # top-1 fallback
    assert score("f1-samples", labels, np.array([[1, 0, 0], [0, 0, 0]])) == 0.5  # integer tags: an empty row stays empty


# -- E: the leaderboard learns the competition's schema without decoding an image ------------------------------------
@pytest.mark.parametrize("layout", ["image-files", "class-folders", "pixel-csv", "one-hot image-files"])
def test_leaderboard_reads_the_schema_beside_the_solution_without_decoding_images(tmp_path, source, layout, capsys,
                                                                                  monkeypatch):
    """A probability-target competition without competition.json: its solution (id,label,Usage) is scored against
    the sample's probability columns, learnt from the sample and the training labels; every image is unreadable and
    decoding or reading a pixel fails the test."""
    from kfold.data import decode, pixel_csv

    comp = tmp_path / "comp"
    if layout.startswith("one-hot"):
        one_hot_competition(comp, source)
    else:
        make_competition(source, comp, options=MakeOptions(layout=layout, target="probs", class_values="names"))
        (comp / "competition.json").unlink()
    for image in [p for p in comp.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")]:
        image.write_bytes(b"not an image")

    def refuse(*args, **kwargs):
        raise AssertionError("the leaderboard decoded images or read pixels to learn a schema")

    monkeypatch.setattr(decode, "decode_images", refuse)
    monkeypatch.setattr(pixel_csv, "read_pixel_csv", refuse)
    solution = pd.read_csv(comp / "solution.csv", dtype=str)
    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    truth = solution.set_index("id").loc[sample["id"], "label"].to_numpy()
    sub = pd.DataFrame({"id": sample["id"], **{c: (truth == c).astype(float) for c in CLASSES}})
    sub.to_csv(tmp_path / "sub.csv", index=False)
    code = kfold(["leaderboard", str(tmp_path / "sub.csv"), "--solution", str(comp / "solution.csv"),
                  "--out", str(tmp_path / "board"), "--bootstrap", "10"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    assert board["public"].tolist() == [pytest.approx(0.0, abs=1e-6)]  # log loss of the true classes at 1
    # kfold validate --sample (and kfold submit) learn the same schema the same way
    assert kfold(["validate", str(tmp_path / "sub.csv"), "--sample", str(comp / "sample_submission.csv")]) == 0
    assert "submission in the competition's columns (id,a,b,c,...), 12 rows, probabilities" in capsys.readouterr().out


# -- F: the leaderboard command calls one flow; report file names only in kfold.files.rundir ------------------------
def test_the_leaderboard_command_calls_one_flow_that_tells_the_tracker(tmp_path, capsys):
    import ast
    import inspect

    from kfold.commands import main as commands
    from kfold.flows.leaderboard import local_leaderboard

    body = ast.parse(inspect.getsource(commands.cmd_leaderboard))
    called = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
              for node in ast.walk(body) if isinstance(node, ast.Call)}
    assert "local_leaderboard" in called and not called & {"scored", "leaderboard", "read_solution",
                                                           "write_leaderboard", "guard_leaderboard"}, called
    pd.DataFrame({"Id": range(4), "Category": [0, 1, 1, 0], "Usage": ["Public", "Private"] * 2}).to_csv(
        tmp_path / "solution.csv", index=False)
    pd.DataFrame({"Id": range(4), "Category": [0, 1, 0, 0]}).to_csv(tmp_path / "sub.csv", index=False)

    from kfold.flows.tracking import NullTracker

    class Scored(NullTracker):
        def __init__(self):
            self.calls = []

        def __bool__(self):
            return True

        def scored(self, submission, public, private):
            self.calls.append((Path(submission).name, public, private))

    tracker = Scored()
    board = local_leaderboard([tmp_path / "sub.csv"], tmp_path / "solution.csv", tmp_path / "board", bootstrap=10,
                              tracker=tracker)
    assert tracker.calls == [("sub.csv", 0.5, 1.0)]
    assert [p.name for p in board.written] == ["leaderboard.csv", "leaderboard.md"] and all(p.is_file() for p in board.written)
    assert kfold(["leaderboard", str(tmp_path / "sub.csv"), "--solution", str(tmp_path / "solution.csv"),
                  "--out", str(tmp_path / "cli"), "--bootstrap", "10"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {tmp_path / 'cli' / 'leaderboard.csv'} and "
                                                     f"{tmp_path / 'cli' / 'leaderboard.md'}")


def test_multilabel_report_file_names_are_spelled_only_in_the_run_directory_module():
    import ast

    import kfold
    from kfold.files.rundir import LEADERBOARD_FILES, MULTILABEL_REPORT_FILES

    names = {"agreement_tags.csv", "agreement_models.csv"}
    assert names <= set(MULTILABEL_REPORT_FILES) and "leaderboard.md" in LEADERBOARD_FILES
    found = []
    for path in Path(kfold.__file__).parent.rglob("*.py"):
        if path.name == "rundir.py" and path.parent.name == "files":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(n in node.value for n in names):
                found.append(f"{path}:{node.lineno}")
    assert found == []


def test_finish_competition_is_typed():
    import inspect

    from kfold.flows.multilabel import finish_competition

    signature = inspect.signature(finish_competition)
    untyped = [name for name, p in signature.parameters.items() if p.annotation is inspect.Parameter.empty]
    assert untyped == [] and signature.return_annotation is not inspect.Signature.empty


@pytest.mark.parametrize("name", ["kfold.flows.leaderboard", "kfold.metrics"])
def test_docstring_examples_of_new_code(name):
    """tests/test_doctests.py's check for the modules these fixes added examples to that its list does not name."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
