"""Hand-made code-competition packages (the contract's layout, ``kfold.files.package``'s manifest) with a tiny
notebook, and a code competition for the loopback fake: public files (what Kaggle's editor shows), a larger
hidden test set (the scoring re-run) and its solution. No training: the "model" is a rule in the dataset
(``Category = (7 * Id + shift) % 10``), so a run of the notebook takes a second.

The notebook finds its inputs wherever Kaggle mounts them (``KFOLD_KAGGLE_ROOT``, default ``/kaggle``: the
manifest and the competition's sample anywhere under ``input/``), predicts every sample row it finds and writes
``working/submission.csv``. ``mode`` makes it misbehave like a real one can: ``error`` (raises), ``no-output``,
``header`` (another header), ``differ`` (``differ`` rows changed), ``network`` (opens a connection to the internet).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nbformat

from kfold.files import package as pk
from kfold.files.schema import KMNIST

SHIFT = 3

NOTEBOOK = '''# find the package and the competition wherever Kaggle mounts them
import csv, json, os
from pathlib import Path
ROOT = Path(os.environ.get("KFOLD_KAGGLE_ROOT", "/kaggle"))
manifest = next((ROOT / "input").rglob("kfold-package.json"))
sample = next((ROOT / "input").rglob("sample_submission.csv"))
rule = json.loads((manifest.parent / "models" / "run" / "config.json").read_text())
print("package", manifest.parent, "sample", sample)'''

PREDICT = '''# predict every row of the sample found at run time, write the output file
MODE, DIFFER = {mode!r}, {differ}
with sample.open(newline="") as fh:
    header, *rows = list(csv.reader(fh))
out = [[r[0], str((7 * int(r[0]) + rule["shift"]) % 10)] for r in rows]
if MODE == "error":
    raise ValueError("the model does not fit these images")
if MODE == "network":
    import socket
    socket.create_connection(("93.184.216.34", 80), timeout=5)
if MODE == "differ":
    for row in out[:DIFFER]:
        row[1] = str((int(row[1]) + 1) % 10)
if MODE == "header":
    header = ["image", "label"]
if MODE != "no-output":
    with open(ROOT / "working" / "submission.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\\n").writerows([header, *out])
print("wrote", len(out), "rows")'''


def predictions(ids, shift: int = SHIFT) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["Id", "Category"], *[[i, (7 * i + shift) % 10] for i in ids]])
    return text.getvalue()


def make_code_competition(root: Path, n_public: int = 6, n_hidden: int = 20) -> dict:
    """``root``/public (sample of ``n_public`` Ids), ``root``/hidden (``n_hidden`` Ids), the hidden solution
    (the rule's answers except Ids 3, 8, 13, 18: 80% right in both halves; Usage Public for odd Ids)."""
    public, hidden = root / "public", root / "hidden"
    public.mkdir(parents=True)
    hidden.mkdir()
    (public / "sample_submission.csv").write_text("Id,Category\n" + "".join(f"{i},0\n" for i in range(n_public)))
    (hidden / "sample_submission.csv").write_text("Id,Category\n" + "".join(f"{i},0\n" for i in range(n_hidden)))
    truth = [(i, (7 * i + SHIFT + (1 if i % 5 == 3 else 0)) % 10, "Public" if i % 2 else "Private")
             for i in range(n_hidden)]
    solution = root / "solution.csv"
    solution.write_text("Id,Category,Usage\n" + "".join(f"{i},{c},{u}\n" for i, c, u in truth))
    return {"public": public, "hidden": hidden, "solution": solution, "n_public": n_public, "n_hidden": n_hidden}


def scorer(solution: Path):
    """Kaggle's scoring of a re-run's output: the local leaderboard's Public/Private accuracy, or its error."""
    def score(output: Path):
        from kfold.scoring.leaderboard import score_submission

        try:
            scores = score_submission(output, solution, n_bootstrap=1)
        except Exception as exc:
            return ("ERROR", f"Submission Scoring Error: {exc}")
        return ("COMPLETE", f"{scores['public']:.5f}", f"{scores['private']:.5f}")
    return score


def write_code_package(out: Path, competition: str, owner: str, n_public: int = 6, mode: str = "ok",
                       differ: int = 1, slug: str = "tiny-kfold-models", local_shift: int = SHIFT) -> Path:
    """A package for ``competition`` whose notebook reproduces its local submission on the public sample."""
    dataset, kernel, local = out / pk.DATASET, out / pk.KERNEL, out / pk.LOCAL
    for folder in (dataset / pk.WHEELS, dataset / pk.MODELS / "run" / "fold0", kernel, local):
        folder.mkdir(parents=True)
    (dataset / pk.WHEELS / "placeholder-0.1-py3-none-any.whl").write_bytes(b"PK\x05\x06" + bytes(18))
    (dataset / pk.MODELS / "run" / "fold0" / "model.safetensors").write_bytes(b"\x08" + bytes(15))
    (dataset / pk.MODELS / "run" / "config.json").write_text(json.dumps({"shift": SHIFT}))
    (dataset / pk.DATASET_METADATA).write_text(json.dumps(pk.dataset_metadata(owner, slug, "Tiny kfold models")))
    meta = pk.kernel_metadata(owner, "Tiny kfold predict", competition, f"{owner}/{slug}")
    (kernel / pk.KERNEL_METADATA).write_text(json.dumps(meta))
    cells = [nbformat.v4.new_code_cell(NOTEBOOK), nbformat.v4.new_code_cell(PREDICT.format(mode=mode, differ=differ))]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), kernel / meta["code_file"])
    (local / pk.LOCAL_SUBMISSION).write_text(predictions(range(n_public), local_shift))
    manifest = {"kfold_version": "0.2.0", "competition": competition, "owner": owner, "dataset": f"{owner}/{slug}",
                "kernel": meta["id"], "output_file": "submission.csv", "schema": KMNIST.to_dict(),
                "recipe": {"method": "mean", "tta": 1, "seed": 0}, "accelerator": "none",
                "classes": list(KMNIST.classes), "sample": "sample_submission.csv",
                "models": [{"run": "run", "dir": "models/run", "folds": [0]}],
                "local_submission": {"sha256": pk.sha256_file(local / pk.LOCAL_SUBMISSION), "rows": n_public}}
    pk.write_manifest(dataset, manifest)
    return out
