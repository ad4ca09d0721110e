"""``kfold report RUN_DIR``: one self-contained HTML page per run.

The page holds the run summary, the learning curves with the learning rate, the out-of-fold confusion matrix,
per-class accuracy, the gallery of misclassified out-of-fold images, the fold table and, when present, the
ensembles' agreement (``RUN_DIR/report-*/``, written by ``kfold run`` / ``ensemble.py --report``) and the
leaderboard (``RUN_DIR/leaderboard/`` or ``--leaderboard DIR``). Every image is embedded as base64 PNG:
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

from kfold.files.rundir import RunDir
from kfold.errors import DataError
from kfold.files.atomic import write_text
from kfold.files.schema import ID_COLUMN
from kfold.scoring.errors_analysis import RunAnalysis, analyze_run, write_analysis

__all__ = ["build_report", "CHECK_IMAGES", "curves_section", "embedded_font_css", "ensembles_section",
           "errors_section", "folds_section", "html_table", "leaderboard_section", "STYLE", "summary_section",
           "write_html_report"]

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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{path}: missing or damaged") from None


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


def curves_section(run_dir: Path, k: int) -> str:
    from kfold.figures import plot_run_curves

    histories = {}
    for fold in range(k):
        path = RunDir(run_dir).metrics(fold)
        if path.is_file():
            histories[f"fold {fold}"] = pd.read_csv(path)
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


def ensembles_section(run_dir: Path) -> str:
    parts = []
    for folder in sorted(run_dir.glob("report-*")):
        agreement = folder / "agreement.csv"
        if not agreement.is_file():
            continue
        parts.append(f"<h3>{html.escape(folder.name)}</h3>")
        if (folder / "agreement.png").is_file():
            parts.append(_image(_png_data_uri(folder / "agreement.png"), f"agreement {folder.name}"))
        parts.append(html_table(pd.read_csv(agreement, index_col=0), floatfmt=".3f", index=True))
        if (folder / "inputs.csv").is_file():
            parts.append(html_table(pd.read_csv(folder / "inputs.csv")))
    return ("<h2 id=ensembles>Ensemble agreement</h2>" + "".join(parts)) if parts else ""


def leaderboard_section(directory: Path | None) -> str:
    if directory is None or not (directory / "leaderboard.csv").is_file():
        return ""
    table = pd.read_csv(directory / "leaderboard.csv")
    shown = pd.DataFrame({"#": table["public_rank"], "submission": [Path(str(name)).name for name in table["submission"]]})
    for split in ("public", "private"):
        shown[f"{split} [95% interval]"] = [f"{v:.4f} [{lo:.4f}, {hi:.4f}]" for v, lo, hi in
                                            zip(table[split], table[f"{split}_low"], table[f"{split}_high"])]
    shown["private #"] = table["private_rank"]
    for column in ("public_logloss", "private_logloss", *[c for c in table.columns if c.startswith("accuracy_")]):
        shown[column.replace("_", " ")] = table[column]
    return (f"<h2 id=leaderboard>Leaderboard</h2><p class=note>{html.escape(str(directory / 'leaderboard.csv'))}, "
            "ranked by Public accuracy; 95% bootstrap intervals.</p>" + html_table(shown))


def build_report(run_dir: str | Path, leaderboard_dir: str | Path | None = None, data: str | None = None,
                 analysis_dir: str | Path | None = None) -> tuple[str, RunAnalysis, dict[str, Path]]:
    """The HTML text of a run's report, its error analysis, and the analysis files written on the way."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    summary = _read_json(run.summary)
    config = _read_json(run.config) if run.config.is_file() else {}
    analysis = analyze_run(run_dir, data=data)
    files = write_analysis(analysis, analysis_dir)
    board = Path(leaderboard_dir) if leaderboard_dir is not None else run.leaderboard
    sections = [summary_section(run_dir, summary, config), curves_section(run_dir, int(summary.get("k", 0))),
                errors_section(analysis, files), folds_section(summary), ensembles_section(run_dir),
                leaderboard_section(board)]
    titles = [("summary", "Summary"), ("curves", "Learning curves"), ("confusion", "Confusion"), ("classes", "Per class"),
              ("errors", "Errors"), ("folds", "Folds"), ("ensembles", "Ensembles"), ("leaderboard", "Leaderboard")]
    body = "".join(sections)
    nav = "".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in titles if f"id={anchor}>" in body)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    style = STYLE + embedded_font_css(body)
    page = (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>kfold report: {html.escape(run_dir.name)}</title>"
            f"<meta name=viewport content=\"width=device-width, initial-scale=1\"><style>{style}</style></head>"
            f"<body><h1>kfold report: {html.escape(run_dir.name)}</h1><p class=note>written {when}</p><nav>{nav}</nav>"
            f"{body}<script>{CHECK_IMAGES}</script></body></html>\n")
    return page, analysis, files


def write_html_report(run_dir: str | Path, out: str | Path | None = None, leaderboard_dir: str | Path | None = None,
                 data: str | None = None) -> tuple[Path, RunAnalysis]:
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    page, analysis, _ = build_report(run_dir, leaderboard_dir, data)
    write_text(out, page)
    return out, analysis


