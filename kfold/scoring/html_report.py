"""``kfold report RUN_DIR``: one self-contained HTML page per run.

The page holds the run summary, the learning curves with the learning rate, the out-of-fold confusion matrix,
per-class accuracy, the gallery of misclassified out-of-fold images, the fold table and, when present, the
ensembles' agreement (``RUN_DIR/report-*/``, written by ``kfold run`` / ``ensemble.py --report``) and the
leaderboard (``RUN_DIR/leaderboard/`` or ``--leaderboard DIR``) and a search's results (``--tune DIR``, the folder
``kfold tune --out`` wrote: its trials, best trials and figures; ``kfold report TUNE_DIR`` alone gives a page of
that section only). Every image is embedded as base64 PNG:
the file opens from disk with no server and no network. A short inline script checks on load that every
image decoded and writes the result into ``<body data-images=...>`` (and shows a warning when one did not).
Nothing here imports torch.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.files.rundir import RunDir, TuneDir, check_fields, read_metrics, read_table
from kfold.errors import DataError, UsageError, param
from kfold.files.atomic import write_text
from kfold.files.schema import ID_COLUMN
from kfold.scoring.errors_analysis import RunAnalysis, analyze_run, guard_analysis, write_analysis

__all__ = ["build_report", "CHECK_IMAGES", "curves_section", "embedded_font_css", "ensembles_section",
           "errors_section", "folds_section", "html_table", "leaderboard_section", "read_tune", "STYLE",
           "summary_section", "tune_section", "write_html_report"]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; } .warning { background: #fee; border: 1px solid #c00; padding: 0.5em; }
nav a { margin-right: 1em; }
"""

CHECK_IMAGES = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
  document.body.setAttribute("data-images", broken.length ? "broken " + broken.length + "/" + images.length
                                                           : "ok " + images.length);
  if (broken.length) {
    var box = document.createElement("p");
    box.className = "warning";
    box.textContent = broken.length + " of " + images.length + " images could not be shown.";
    document.body.insertBefore(box, document.body.firstChild);
  }
});
"""


def embedded_font_css(text: str) -> str:
    """An ``@font-face`` rule with the Japanese font (matplotlib-fontja's IPAexGothic) cut down to the non-ASCII
    characters of ``text`` and embedded, so that hiragana class names show in any browser, offline; '' when the
    page has none or the font is not installed."""
    from kfold.figures import JAPANESE_FONT, japanese_font_path

    characters = sorted({char for char in text if ord(char) > 0x7F})
    path = japanese_font_path() if characters else None
    if path is None:
        return ""
    from fontTools import subset  # a dependency of matplotlib

    options = subset.Options()
    options.flavor = None
    font = subset.load_font(path, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(char) for char in characters])
    subsetter.subset(font)
    buffer = io.BytesIO()
    subset.save_font(font, buffer, options)
    uri = "data:font/ttf;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    ranges = ",".join(f"U+{ord(char):04X}" for char in characters)
    return (f'@font-face {{ font-family: "kfold-{JAPANESE_FONT}"; src: url("{uri}") format("truetype"); '
            f'unicode-range: {ranges}; font-display: block; }}\n'
            f'body {{ font-family: "kfold-{JAPANESE_FONT}", system-ui, -apple-system, "Segoe UI", sans-serif; }}\n')


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure_uri(draw, *args, **kwargs) -> str:
    """Draw a kfold.figures function into memory (its own atomic file write goes to a temporary folder)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kfold-report-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(*args, path, **kwargs)
        return _png_data_uri(path)


def _image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _cell(value, floatfmt: str) -> tuple[str, bool]:
    if isinstance(value, (float, np.floating)):
        return ("" if math.isnan(value) else format(value, floatfmt)), False
    if isinstance(value, (int, np.integer)):
        return str(value), False
    return html.escape(str(value)), True


def html_table(frame: pd.DataFrame, floatfmt: str = ".4f", index: bool = False) -> str:
    if index:
        frame = frame.rename_axis("").reset_index()
    head = "".join(f'<th class="text">{html.escape(str(c))}</th>' for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = [_cell(v, floatfmt) for v in row]
        rows.append("<tr>" + "".join(f'<td{" class=text" if text else ""}>{v}</td>' for v, text in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def summary_section(run_dir: Path, summary: dict, config: dict) -> str:
    cfg = config.get("config", {})
    rows = [("run directory", str(run_dir)), ("data", config.get("data", "")), ("task", summary.get("task", "")),
            ("preset", summary.get("preset", "")), ("model", summary.get("model", "")),
            ("epochs / schedule", f"{cfg.get('epochs', '')} / {cfg.get('schedule', '')}"),
            ("folds (k) / seed", f"{summary.get('folds_done', '')} of {summary.get('k', '')} / {summary.get('seed', '')}"),
            ("kept epoch", summary.get("keep", ""))]
    if "oof_accuracy" in summary:
        rows += [("out-of-fold accuracy", f"{summary['oof_accuracy']:.4f}"),
                 ("out-of-fold accuracy, last epoch", f"{summary['oof_accuracy_last_epoch']:.4f}"),
                 ("out-of-fold log loss", f"{summary['oof_logloss']:.4f}"), ("out-of-fold rows", str(summary["oof_rows"]))]
        rows += [(f"accuracy {name}", f"{acc:.4f}") for name, acc in summary.get("oof_accuracy_by_group", {}).items()]
    rows.append(("training time", _seconds(float(summary.get("train_seconds", 0.0)))))
    return "<h2 id=summary>Summary</h2>" + html_table(pd.DataFrame(rows, columns=["", "value"]))


def read_histories(run: RunDir, k: int) -> dict[str, pd.DataFrame]:
    """Every finished fold's metrics.csv, each checked (``read_metrics``)."""
    return {f"fold {fold}": read_metrics(run.metrics(fold)) for fold in range(k) if run.metrics(fold).is_file()}


def curves_section(run_dir: Path, histories: dict[str, pd.DataFrame]) -> str:
    from kfold.figures import plot_run_curves

    if not histories:
        return "<h2 id=curves>Learning curves</h2><p class=note>no finished fold</p>"
    uri = _figure_uri(plot_run_curves, histories, title=run_dir.name)
    return ("<h2 id=curves>Learning curves</h2><p class=note>validation (solid) and training (dotted) accuracy, "
            "validation loss, and the learning rate of each epoch's last step (dashed, right axis).</p>"
            + _image(uri, "learning curves and learning rate"))


def folds_section(summary: dict) -> str:
    if not summary.get("folds"):
        return ""
    table = pd.DataFrame(summary["folds"]).rename(columns={"best_epoch": "kept epoch", "val_accuracy": "val accuracy",
                                                           "val_loss": "val loss"})
    table["seconds"] = table["seconds"].map(_seconds)
    return "<h2 id=folds>Folds</h2>" + html_table(table)


def errors_section(analysis: RunAnalysis, files: dict[str, Path]) -> str:
    if getattr(analysis, "multilabel", False):  # per-tag precision/recall/F1 and support instead of a confusion matrix
        return _multilabel_errors_section(analysis, files)
    parts = ["<h2 id=confusion>Out-of-fold confusion matrix</h2>",
             _image(_png_data_uri(files["confusion"]), "out-of-fold confusion matrix"),
             "<h2 id=classes>Accuracy per class</h2>",
             _image(_png_data_uri(files["per_class"]), "per-class accuracy"),
             html_table(analysis.per_class.rename(columns={"confused_rows": "rows confused"})),
             "<h2 id=errors>Misclassified out-of-fold images</h2>"]
    if "gallery" in files:
        parts.append(_image(_png_data_uri(files["gallery"]), "misclassified out-of-fold images"))
    parts += [f"<p class=note>{html.escape(note)}</p>" for note in analysis.notes]
    if len(analysis.errors):
        shown = analysis.errors.head(20)[[ID_COLUMN, "true_name", "predicted_name", "confidence", "true_probability"]]
        parts.append(f"<p class=note>{len(analysis.errors)} of {len(analysis.labels)} rows wrong; the most confident:</p>"
                     + html_table(shown, floatfmt=".3f"))
    return "".join(parts)


def _multilabel_errors_section(analysis, files: dict[str, Path]) -> str:
    parts = [f"<h2 id=confusion>Per tag (out-of-fold {html.escape(analysis.metric)} {analysis.score:.4f})</h2>",
             html_table(analysis.per_class.drop(columns=["name", "accuracy"]), floatfmt=".3f"),
             "<h2 id=classes>F1 per tag</h2>", _image(_png_data_uri(files["per_class"]), "out-of-fold F1 per tag"),
             "<h2 id=errors>Images with the most wrong tags</h2>"]
    if "gallery" in files:
        parts.append(_image(_png_data_uri(files["gallery"]), "out-of-fold images with missed and spurious tags"))
    parts += [f"<p class=note>{html.escape(note)}</p>" for note in analysis.notes or []]
    if len(analysis.errors):
        shown = analysis.errors.head(20)[[ID_COLUMN, "true_name", "predicted_name", "missed", "spurious", "wrong_tags"]]
        parts.append(f"<p class=note>{len(analysis.errors)} of {len(analysis.labels)} images with a wrong tag; the "
                     "worst:</p>" + html_table(shown, floatfmt=".3f"))
    return "".join(parts)


def read_ensembles(run_dir: Path) -> list[tuple[str, str | None, pd.DataFrame, pd.DataFrame | None]]:
    """(folder name, agreement heatmap URI, agreement matrix, inputs table) of every RUN_DIR/report-*/, checked:
    the matrix square, its rows and columns the same predictors, every value a fraction in [0, 1]."""
    found = []
    for folder in sorted(run_dir.glob("report-*")):
        agreement = folder / "agreement.csv"
        if not agreement.is_file():
            continue
        matrix = read_table(agreement, {}, index_col=0, allow_empty=False)
        if matrix.shape[0] != matrix.shape[1] or [str(c) for c in matrix.index] != [str(c) for c in matrix.columns]:
            raise DataError(f"{agreement}: not a square agreement matrix (rows {matrix.shape[0]}, columns "
                            f"{matrix.shape[1]}, the same predictors in both)")
        matrix = read_table(agreement, {str(c): "fraction" for c in matrix.columns}, index_col=0)
        inputs = read_table(folder / "inputs.csv", {}, allow_empty=True) if (folder / "inputs.csv").is_file() else None
        png = folder / "agreement.png"
        found.append((folder.name, _png_data_uri(png) if png.is_file() else None, matrix, inputs))
    return found


def ensembles_section(ensembles) -> str:
    parts = []
    for name, uri, matrix, inputs in ensembles:
        parts.append(f"<h3>{html.escape(name)}</h3>")
        if uri is not None:
            parts.append(_image(uri, f"agreement {name}"))
        parts.append(html_table(matrix, floatfmt=".3f", index=True))
        if inputs is not None:
            parts.append(html_table(inputs))
    return ("<h2 id=ensembles>Ensemble agreement</h2>" + "".join(parts)) if parts else ""


BOARD_COLUMNS = {"public_rank": "count", "public": "fraction", "public_low": "fraction", "public_high": "fraction",
                 "private": "fraction", "private_low": "fraction", "private_high": "fraction", "private_rank": "count"}


def read_board(directory: Path | None) -> pd.DataFrame | None:
    """RUN_DIR/leaderboard/leaderboard.csv (or --leaderboard DIR), its columns checked; None when absent."""
    if directory is None or not (directory / "leaderboard.csv").is_file():
        return None
    path = directory / "leaderboard.csv"
    table = read_table(path, {"submission": "text", **BOARD_COLUMNS}, text=("submission",))
    extra = {c: "number?" for c in table.columns if c.endswith("_logloss")}
    extra.update({c: "fraction?" for c in table.columns if c.startswith("accuracy_")})
    return read_table(path, {"submission": "text", **BOARD_COLUMNS, **extra}, text=("submission",))


def leaderboard_section(directory: Path | None, table: pd.DataFrame | None) -> str:
    if table is None:
        return ""
    shown = pd.DataFrame({"#": table["public_rank"].astype(int),
                          "submission": [Path(str(name)).name for name in table["submission"]]})
    for split in ("public", "private"):
        shown[f"{split} [95% interval]"] = [f"{v:.4f} [{lo:.4f}, {hi:.4f}]" for v, lo, hi in
                                            zip(table[split], table[f"{split}_low"], table[f"{split}_high"])]
    shown["private #"] = table["private_rank"].astype(int)
    for column in [c for c in ("public_logloss", "private_logloss") if c in table.columns] + \
            [c for c in table.columns if c.startswith("accuracy_")]:
        shown[column.replace("_", " ")] = table[column]
    return (f"<h2 id=leaderboard>Leaderboard</h2><p class=note>{html.escape(str(directory / 'leaderboard.csv'))}, "
            "ranked by Public accuracy; 95% bootstrap intervals.</p>" + html_table(shown))


TUNE_TOP = 10  # trials shown in the tuning section


def read_tune(directory: str | Path | None) -> dict | None:
    """A ``kfold tune --out`` folder's results for the report, every file checked: the trials table (see
    ``kfold.files.tune_results``), ``best.json`` (the best complete trial's config) and the figures present; None when ``directory`` is None."""
    if directory is None:
        return None
    tune = TuneDir(directory)
    if not tune.is_tune():
        raise DataError(f"{tune.trials_csv}: missing (is {tune} a folder 'kfold tune --out' wrote?)")
    from kfold.files.tune_results import read_results
    from kfold.metrics import METRICS

    table, best = read_results(tune)
    metric = table.attrs["metric"]
    figures = [(path.stem, _png_data_uri(path)) for path in tune.figures if path.is_file()]
    return {"dir": tune.path, "table": table, "metric": metric, "direction": METRICS[metric].direction,
            "best": best, "figures": figures}


def tune_section(tune: dict | None) -> str:
    """The search's section: counts by state, the best trials with their parameters, the figures."""
    if tune is None:
        return ""
    table, metric, direction = tune["table"], tune["metric"], tune["direction"]
    counts = table["state"].astype(str).value_counts()
    states = ", ".join(f"{int(counts[s])} {s}" for s in TuneDir.STATES if s in counts)
    done = table[table["state"].astype(str) == "complete"]
    top = done.sort_values([metric, "number"], ascending=[direction == "minimize", True]).head(TUNE_TOP)
    params = [c for c in table.columns[5:] if c not in ("partial_metric", "reason", "dir")]
    shown = top[["number", metric, "folds_done", "seconds", *params]].copy()
    shown["number"] = shown["number"].astype(int)
    parts = [f"<h2 id=tuning>Tuning</h2><p class=note>{html.escape(str(tune['dir']))}: {len(table)} trials "
             f"({states or 'none'}); objective {html.escape(metric)} ({direction}).</p>"]
    if shown.empty:
        parts.append("<p class=note>no trial completed</p>")
    else:
        parts.append(f"<h3>Best {len(shown)} trials by {html.escape(metric)}</h3>" + html_table(shown, floatfmt=".4g"))
    failed = table[table["state"].astype(str) == "failed"]
    if len(failed):
        reasons = failed[["number", "reason"]].copy()
        reasons["number"] = reasons["number"].astype(int)
        parts.append("<h3>Failed trials</h3>" + html_table(reasons.head(TUNE_TOP)))
    for name, uri in tune["figures"]:
        parts.append(_image(uri, f"tuning {name}"))
    if tune["best"] is not None:
        best = {key: tune["best"][key] for key in params if key in tune["best"]}
        if best:
            parts.append("<h3>best.json (the searched fields; use the file as --config)</h3>" + html_table(
                pd.DataFrame({"field": list(best), "value": [json.dumps(v) for v in best.values()]})))
    return "".join(parts)


def report_inputs(run: RunDir, board: Path | None, tune_dir: Path | None = None) -> list[Path]:
    """Every file the report reads: the run's own, its ensembles' reports, the leaderboard and the search's."""
    files = run.inputs() + sorted(p for p in run.path.glob("report-*/*") if p.is_file())
    if board is not None:
        files.append(board / "leaderboard.csv")
    if tune_dir is not None:
        files += TuneDir(tune_dir).inputs()
    return files


TITLES = [("summary", "Summary"), ("curves", "Learning curves"), ("confusion", "Confusion"), ("classes", "Per class"),
          ("errors", "Errors"), ("folds", "Folds"), ("ensembles", "Ensembles"), ("leaderboard", "Leaderboard"),
          ("tuning", "Tuning")]


def _page(name: str, sections: list[str]) -> str:
    body = "".join(sections)
    nav = "".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in TITLES if f"id={anchor}>" in body)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    style = STYLE + embedded_font_css(body)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>kfold report: {html.escape(name)}</title>"
            f"<meta name=viewport content=\"width=device-width, initial-scale=1\"><style>{style}</style></head>"
            f"<body><h1>kfold report: {html.escape(name)}</h1><p class=note>written {when}</p><nav>{nav}</nav>"
            f"{body}<script>{CHECK_IMAGES}</script></body></html>\n")


def is_tune_only(run_dir: str | Path) -> bool:
    """RUN_DIR is a search's folder (``kfold tune --out``), not a trained run."""
    return TuneDir(run_dir).is_tune() and not RunDir(run_dir).summary.is_file()


def build_report(run_dir: str | Path, leaderboard_dir: str | Path | None = None, data: str | None = None,
                 analysis_dir: str | Path | None = None, tune_dir: str | Path | None = None,
                 ) -> tuple[str, RunAnalysis | None, dict[str, Path]]:
    """The HTML text of a run's report, its error analysis, and the analysis files written on the way.

    Every file the page shows is read and checked first; the analysis files are written only then. For a search's
    folder (``kfold tune --out``) alone, the page holds the tuning section, and there is no analysis (None)."""
    run_dir = Path(run_dir)
    if is_tune_only(run_dir):
        for name, value in (("leaderboard_dir", leaderboard_dir), ("data", data)):
            if value is not None:
                raise UsageError(f"{param(name)}={str(value)!r}: {run_dir} is a search's folder (kfold tune --out); "
                                 "this belongs to the report of a trained run")
        return _page(run_dir.name, [tune_section(read_tune(run_dir))]), None, {}
    run = RunDir(run_dir)
    if leaderboard_dir is not None and not (Path(leaderboard_dir) / "leaderboard.csv").is_file():
        raise UsageError(f"{param('leaderboard_dir')}={str(leaderboard_dir)!r}: holds no leaderboard.csv (give the folder that "
                         "'kfold leaderboard --out' or 'kfold run' wrote)")
    board_dir = Path(leaderboard_dir) if leaderboard_dir is not None else run.leaderboard
    if not run.summary.is_file():
        raise DataError(f"{run.summary}: missing (is {run_dir} a trained kfold run?)")
    summary = run.read_summary()
    if "oof_accuracy" in summary:  # the summary table shows these with it
        check_fields(run.summary, summary, {"oof_rows": "count", "oof_accuracy_last_epoch": "fraction",
                                            "oof_logloss": "nonneg"})
    config = run.read_config() if run.config.is_file() else {}
    histories = read_histories(run, summary["k"])
    ensembles = read_ensembles(run_dir)
    board = read_board(board_dir)
    tune = read_tune(tune_dir)
    analysis = analyze_run(run_dir, data=data)
    files = write_analysis(analysis, analysis_dir)
    sections = [summary_section(run_dir, summary, config), curves_section(run_dir, histories),
                errors_section(analysis, files), folds_section(summary), ensembles_section(ensembles),
                leaderboard_section(board_dir, board), tune_section(tune)]
    return _page(run_dir.name, sections), analysis, files


def write_html_report(run_dir: str | Path, out: str | Path | None = None, leaderboard_dir: str | Path | None = None,
                      data: str | None = None, tune_dir: str | Path | None = None) -> tuple[Path, RunAnalysis | None]:
    """Write RUN_DIR/report.html (or ``out``) and the error analysis in RUN_DIR/analysis; every output is checked
    against every input (and for planted links) before anything is read.

    ``tune_dir`` (a ``kfold tune --out`` folder) adds the search's section; a search's folder given as ``run_dir``
    gets a page of that section alone (no error analysis: the analysis returned is None)."""
    from kfold.files.atomic import guard_outputs
    from kfold.files.rundir import data_inputs

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory")
    if tune_dir is not None and not TuneDir(tune_dir).is_tune():
        raise UsageError(f"{param('tune_dir')}={str(tune_dir)!r}: holds no {TuneDir.TRIALS_CSV} (give the folder that "
                         "'kfold tune --out' wrote)")
    out = Path(out) if out is not None else run_dir / "report.html"
    if is_tune_only(run_dir):
        if tune_dir is not None:
            raise UsageError(f"{param('tune_dir')}={str(tune_dir)!r}: {run_dir} is itself a search's folder; give a trained "
                             "run as RUN_DIR to add a search's section to its report")
        inputs = TuneDir(run_dir).inputs()
        guard_outputs([out], inputs, root=run_dir)
    else:
        run = RunDir(run_dir)
        board = Path(leaderboard_dir) if leaderboard_dir is not None else run.leaderboard
        inputs = [*report_inputs(run, board, None if tune_dir is None else Path(tune_dir)), *data_inputs(data)]
        guard_analysis(run_dir, None, inputs)
        guard_outputs([out], inputs, root=run_dir)  # an --out spelled inside the run: no planted folder link on the way
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{param('out')}={str(out)!r}: the report is an HTML file; give a name ending in .html")
    page, analysis, _ = build_report(run_dir, leaderboard_dir, data, tune_dir=tune_dir)
    write_text(out, page)
    return out, analysis
