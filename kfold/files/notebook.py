"""The offline notebook of a code-competition package, built with nbformat: short cells, a comment each.

The notebook needs nothing of kfold's repository: it finds the package's dataset under ``<root>/input`` (Kaggle's
current mount ``input/datasets/<owner>/<slug>``, the legacy ``input/<slug>``, else wherever its manifest is),
checks every file's sha256 against the manifest *before* installing anything, installs kfold's wheel with
``pip install --no-index --no-deps``, then predicts through ``kfold.flows.offline.predict_offline`` (the function
``kfold package`` ran for the local submission) and prints the versions and the output's sha256. ``<root>`` is
``$KFOLD_KAGGLE_ROOT`` or ``/kaggle``. Torch-free.
"""
from __future__ import annotations

__all__ = ["build_notebook", "TIMING_PREFIX", "VERSIONS"]

TIMING_PREFIX = "kfold-timing "  # the last cell prints this prefix and a JSON object of seconds
VERSIONS = ("kfold-kaggle", "torch", "numpy", "pandas", "scikit-learn", "albumentations", "kornia", "safetensors",
            "pillow", "opencv-python-headless")

_SETTINGS = '''\
# The package's ids, where Kaggle mounts the inputs, and every library's network calls off
import os, sys, tempfile, time
started = time.perf_counter()
DATASET, COMPETITION, OUTPUT = {dataset!r}, {competition!r}, {output!r}
ROOT = os.environ.get("KFOLD_KAGGLE_ROOT", "/kaggle")
os.environ.update({{"NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "MPLBACKEND": "Agg"}})
os.environ.setdefault("KFOLD_CACHE", tempfile.mkdtemp(prefix="kfold-cache-"))  # /kaggle/input is read-only'''

_FIND = '''\
# The dataset: input/datasets/<owner>/<slug> (current mounts), input/<slug> (legacy), else wherever its manifest is
import json
from pathlib import Path
INPUTS = Path(ROOT) / "input"
owner, slug = DATASET.split("/")
def candidates():  # the usual mounts first; a search (four levels down) only when they fail
    yield from (INPUTS / "datasets" / owner / slug, INPUTS / slug)
    for depth in ("*", "*/*", "*/*/*", "*/*/*/*"):
        yield from sorted(p.parent for p in INPUTS.glob(f"{{depth}}/{manifest}"))
DATASET_DIR = next((p for p in candidates() if (p / "{manifest}").is_file()
                    and json.loads((p / "{manifest}").read_text()).get("dataset") == DATASET), None)
if DATASET_DIR is None:
    raise SystemExit(f"error: no kfold package {{DATASET}} under {{INPUTS}}: attach the dataset to the notebook")
manifest = json.loads((DATASET_DIR / "{manifest}").read_text())
print("dataset:", DATASET_DIR)'''

_VERIFY = '''\
# Every file against the manifest's sha256, before anything is installed: a tampered or partial dataset stops here
import hashlib
def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
for rel, expected in sorted(manifest["files"].items()):
    path = DATASET_DIR / rel
    if rel in {not_uploaded!r} and not path.exists():
        continue  # the kaggle client does not upload its metadata file
    if not path.is_file():
        raise SystemExit(f"error: {{path}}: missing (a truncated dataset; package and upload it again)")
    if sha256(path) != expected:
        raise SystemExit(f"error: {{path}}: sha256 differs from the manifest (a tampered dataset)")
print(len(manifest["files"]), "files verified")'''

_INSTALL = '''\
# kfold (and any pure-Python dependency Kaggle lacks) from the dataset's wheels: offline, nothing else touched
import importlib, subprocess
install_started = time.perf_counter()
wheels = sorted(str(p) for p in (DATASET_DIR / "{wheels}").glob("*.whl"))
subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", *wheels], check=True)
importlib.invalidate_caches()
import kfold
install_seconds = time.perf_counter() - install_started
print("kfold", kfold.__version__, "installed from", len(wheels), "wheel(s)")'''

_PREDICT = '''\
# The test images and sample rows found now (the hidden test set when Kaggle scores), the packaged recipe; CUDA if any
from kfold.errors import KfoldError
from kfold.flows.offline import find_competition, predict_offline
predict_started = time.perf_counter()
try:
    competition_dir = find_competition(INPUTS, COMPETITION, manifest["sample"])
    result = predict_offline(DATASET_DIR, competition_dir, Path(ROOT) / "working" / OUTPUT)
except KfoldError as exc:
    raise SystemExit(f"error: {exc}") from None
predict_seconds = time.perf_counter() - predict_started
print(result.line())'''

_REPORT = '''\
# Versions, the output's sha256 (the local submission's is in the manifest) and the seconds spent
import importlib.metadata, platform
for name in {versions!r}:
    try:
        print(f"{{name}} {{importlib.metadata.version(name)}}")
    except importlib.metadata.PackageNotFoundError:
        print(f"{{name}} not installed")
print("python", platform.python_version(), "| device", result.device, "| competition", competition_dir)
print("output sha256", result.sha256, "| local submission sha256", manifest["local_submission"]["sha256"])
print({timing!r} + json.dumps({{"install": install_seconds, "predict": predict_seconds, "rows": result.rows,
      "total": time.perf_counter() - started, **{{f"predict.{{k}}": v for k, v in result.seconds.items()}}}}))'''


def build_notebook(manifest: dict, title: str, *, manifest_name: str, wheels: str, not_uploaded: list[str]):
    """The notebook (an ``nbformat`` v4 node) for a package's manifest; ``nbformat.write`` writes it. The
    dataset's names come from :mod:`kfold.files.package` (``manifest_name``, the ``wheels`` folder, the files
    the kaggle client does not upload)."""
    import nbformat

    recipe = manifest["recipe"]
    n_models = sum(len(entry["folds"]) for entry in manifest["models"])
    intro = (f"# {title}\n\nkfold {manifest['kfold_version']}: the {recipe['method']} of {n_models} fold models "
             f"(TTA {recipe['tta']}) for the code competition `{manifest['competition']}`, from the dataset "
             f"`{manifest['dataset']}`. Runs with the internet off: it checks every file's sha256, installs kfold "
             f"from the dataset's wheel, predicts whatever test images the competition holds when it runs, and "
             f"writes `/kaggle/working/{manifest['output_file']}`. Written by `kfold package`; "
             f"`kfold rehearse` ran it offline before it was uploaded.")
    cells = [nbformat.v4.new_markdown_cell(intro),
             nbformat.v4.new_code_cell(_SETTINGS.format(dataset=manifest["dataset"],
                                                        competition=manifest["competition"],
                                                        output=manifest["output_file"])),
             nbformat.v4.new_code_cell(_FIND.format(manifest=manifest_name)),
             nbformat.v4.new_code_cell(_VERIFY.format(not_uploaded=list(not_uploaded))),
             nbformat.v4.new_code_cell(_INSTALL.format(wheels=wheels)),
             nbformat.v4.new_code_cell(_PREDICT),
             nbformat.v4.new_code_cell(_REPORT.format(versions=list(VERSIONS), timing=TIMING_PREFIX))]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    return notebook
