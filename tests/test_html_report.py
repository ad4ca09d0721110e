"""Issue 18 item 8: ``kfold report RUN_DIR`` writes one self-contained HTML page; checked in headless Chromium
(skips where no browser is installed): it loads without a console message, every image decodes, a screenshot."""
from __future__ import annotations

import base64
import contextlib
import io
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from runs import fake_run

from kfold.commands.main import main as kfold_main
from kfold.scoring.leaderboard import leaderboard, make_solution, write_leaderboard
from kfold.figures import agreement_heatmap
from kfold.scoring.report import agreement_matrix

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium installed (apt-get install chromium)")


def run_browser(args: list[str], page) -> subprocess.CompletedProcess:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions", "--no-first-run",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def console_messages(stderr: str) -> list[str]:
    """Console output of the page (console.log/error, uncaught exceptions) as Chromium logs it to stderr."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def with_ensembles_and_leaderboard(run) -> None:
    rng = np.random.default_rng(1)
    predictions = rng.integers(0, 10, (3, 50))
    for method in ("mean", "vote"):
        folder = run / f"report-{method}"
        folder.mkdir()
        matrix = agreement_matrix(predictions, ["run-fold0.npz", "run-fold1.npz", "ensemble"])
        matrix.to_csv(folder / "agreement.csv", index_label="")
        pd.DataFrame({"input": ["run-fold0.npz", "run-fold1.npz"], "weight": [0.5, 0.5]}).to_csv(folder / "inputs.csv", index=False)
        agreement_heatmap(matrix.to_numpy(), list(matrix.index), folder / "agreement.png",
                          title=f"Pairwise agreement: 2 inputs and their {method} ensemble")
    solution = make_solution(range(40), rng.integers(0, 10, 40), seed=0)
    solution.to_csv(run / "solution.csv", index=False)
    (run / "run-mean.csv").write_text("Id,Category\n" + "".join(f"{i},{c}\n" for i, c in zip(solution["Id"], solution["Category"])))
    from kfold.scoring.leaderboard import read_solution
    write_leaderboard(leaderboard([run / "run-mean.csv"], read_solution(run / "solution.csv"), n_bootstrap=20), run / "leaderboard")


def images_of(page_text: str) -> list[bytes]:
    sources = re.findall(r'<img src="([^"]*)"', page_text)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    return [base64.b64decode(src.split(",", 1)[1]) for src in sources]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """(run directory, what ``kfold report RUN`` printed): a run with ensembles and a leaderboard and its report,
    made once; the tests below only read them (the browser's screenshot goes to each test's own folder)."""
    run, _ = fake_run(tmp_path_factory.mktemp("full-report"))
    with_ensembles_and_leaderboard(run)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert kfold_main(["report", str(run)]) == 0
    return run, printed.getvalue()


def test_report_is_self_contained(full_report):
    run, printed = full_report
    assert f"wrote {run / 'report.html'}" in printed
    text = (run / "report.html").read_text(encoding="utf-8")
    for section in ("Summary", "Learning curves", "Out-of-fold confusion matrix", "Accuracy per class",
                    "Misclassified out-of-fold images", "Folds", "Ensemble agreement", "Leaderboard"):
        assert f">{section}</h2>" in text, section
    assert "report-mean" in text and "report-vote" in text and "run-mean.csv" in text
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from the network
    assert "@font-face" in text and "data:font/ttf;base64," in text  # the hiragana font travels inside
    images = images_of(text)
    assert len(images) == 6  # curves, confusion, per class, gallery, 2 agreement heatmaps
    for data in images:
        assert matplotlib.image.imread(io.BytesIO(data), format="png").shape[0] > 50
    assert "161.934" not in text and "162 s" in text  # seconds with sensible precision


def test_report_without_extras_and_errors(tmp_path, capsys):
    run, _ = fake_run(tmp_path)
    out = tmp_path / "elsewhere" / "r.html"
    assert kfold_main(["report", str(run), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Ensemble agreement" not in text and "Leaderboard</h2>" not in text and len(images_of(text)) == 4
    capsys.readouterr()
    assert kfold_main(["report", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_report_in_headless_chromium(full_report, tmp_path):
    run, _ = full_report
    page = run / "report.html"
    done = run_browser(["--dump-dom"], page)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-images="ok 6"' in done.stdout, re.findall(r"data-images=\"[^\"]*\"", done.stdout)
    assert console_messages(done.stderr) == []
    shot = tmp_path / "report.png"
    done = run_browser(["--hide-scrollbars", "--window-size=1280,3000", f"--screenshot={shot}"], page)
    assert done.returncode == 0 and shot.is_file()
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (3000, 1280) and pixels.std() > 0.05  # not a blank page


def test_the_browser_check_catches_a_broken_page(tmp_path):
    """The same checks on a page with a console error and an image that does not decode must fail."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
                    '<script>console.error("boom");' + _check_script() + "</script></body></html>")
    done = run_browser(["--dump-dom"], page)
    assert 'data-images="broken 1/1"' in done.stdout
    assert any("boom" in line for line in console_messages(done.stderr))


def _check_script() -> str:
    from kfold.scoring.html_report import CHECK_IMAGES
    return CHECK_IMAGES
