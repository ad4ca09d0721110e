"""A code-competition package on disk: its layout, manifest, hashes and Kaggle metadata. Torch-free.

``kfold package ... --out PKG`` writes::

    PKG/dataset/                  the Kaggle dataset OWNER/SLUG (``kaggle datasets create -p PKG/dataset``)
        dataset-metadata.json     {"title", "id": "OWNER/SLUG", "licenses": [{"name"}]}
        kfold-package.json        the manifest: format "kfold-package/1", the sha256 of every other file of dataset/
        wheels/*.whl              kfold's wheel (built from the installed source) and pure-Python deps Kaggle lacks
        models/<run>/...          each run's config.json and fold<i>/ (model.safetensors, meta.json)
    PKG/kernel/                   the notebook (``kaggle kernels push -p PKG/kernel``)
        kernel-metadata.json      id, title (its slug is the kernel's), code_file, "enable_internet": false, ...
        <kernel_slug>.ipynb
    PKG/local/submission.csv      the local submission of the same recipe: what the notebook must reproduce

:func:`read_package` reads one strictly (every key, every hash, the kernel's metadata); the writers' helpers
(:func:`hash_files`, :func:`dataset_metadata`, :func:`kernel_metadata`, :func:`check_slug` ...) keep Kaggle's
rules in one place. The rules come from the kaggle client's own checks (``kaggle`` 2.x: a dataset slug and title
of 6 to 50 characters, one licence; a kernel title of at least 5 characters whose slug is the kernel's slug).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kfold.errors import DataError, UsageError, param
from kfold.files.package_fields import MODELS, check_fields

__all__ = ["ACCELERATORS", "DATASET", "DATASET_METADATA", "FORMAT", "KERNEL", "KERNEL_METADATA", "LOCAL", "LOCAL_INFO",
           "LOCAL_SUBMISSION", "MANIFEST", "MODELS", "Package", "WHEELS", "accelerator_settings",
           "check_accelerator", "check_dataset_metadata", "check_kernel_metadata", "check_manifest",
           "check_owner", "check_slug", "check_title", "content_hash", "dataset_metadata", "hash_files", "kaggle_image",
           "kernel_metadata", "read_package", "sha256_file", "slugify", "verify_files", "write_json_file",
           "write_kernel", "write_manifest"]

FORMAT = "kfold-package/1"
DATASET, KERNEL, LOCAL = "dataset", "kernel", "local"
MANIFEST, DATASET_METADATA, KERNEL_METADATA = "kfold-package.json", "dataset-metadata.json", "kernel-metadata.json"
LOCAL_SUBMISSION = "submission.csv"
LOCAL_INFO = "package.json"  # PKG/local/: where the package was made from (kept here: local paths are not uploaded)
WHEELS = "wheels"
LICENSE = "CC0-1.0"

# Kaggle's accelerators (the kaggle client's ``machine_shape``) that a torch notebook can use: name -> (enable_gpu,
# machine_shape or None). NvidiaTeslaP100 is retired (the client warns; sessions run on a T4). TPUs are refused:
# kfold's notebook runs torch on CUDA or the CPU, not on torch_xla.
ACCELERATORS = {
    "none": (False, None),
    "NvidiaTeslaT4": (True, "NvidiaTeslaT4"),
    "NvidiaTeslaP100": (True, "NvidiaTeslaP100"),
    "NvidiaL4": (True, "NvidiaL4"),
    "NvidiaL4X1": (True, "NvidiaL4X1"),
}
_TPUS = ("TpuV38", "Tpu1VmV38", "TpuV5E8", "TpuV6E8")

DATASET_SLUG_LENGTH = (6, 50)   # the kaggle client: "The dataset slug must be between 6 and 50 characters"
DATASET_TITLE_LENGTH = (6, 50)  # "The dataset title must be between 6 and 50 characters"
KERNEL_TITLE_LENGTH = (5, 50)   # "Title must be at least five characters"; Kaggle's editor stops at 50
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,49}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


# ---- Kaggle's naming rules ----------------------------------------------------------------------------------

def slugify(title: str) -> str:
    """The slug Kaggle derives from an ASCII title: lower case, every run of other characters one hyphen.

    >>> slugify("KMNIST kfold: 5 folds (v2)")
    'kmnist-kfold-5-folds-v2'
    """
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def check_slug(slug: str, name: str = "slug", length: tuple[int, int] = DATASET_SLUG_LENGTH) -> str:
    """``slug`` as Kaggle takes it: lower-case letters, digits and single inner hyphens, ``length`` characters.

    >>> check_slug("kmnist-kfold-models")
    'kmnist-kfold-models'
    >>> check_slug("KMNIST")
    Traceback (most recent call last):
    kfold.errors.UsageError: slug='KMNIST': Kaggle slugs are lower-case letters, digits and inner hyphens (try 'kmnist')
    """
    low, high = length
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        hint = f" (try {slugify(slug)!r})" if isinstance(slug, str) and slugify(slug) else ""
        raise UsageError(f"{param(name)}={slug!r}: Kaggle slugs are lower-case letters, digits and inner hyphens{hint}")
    if not low <= len(slug) <= high:
        raise UsageError(f"{param(name)}={slug!r}: {len(slug)} characters; Kaggle takes {low} to {high}")
    return slug


def check_title(title: str, name: str = "title", length: tuple[int, int] = DATASET_TITLE_LENGTH) -> str:
    """A printable ASCII title of ``length`` characters whose slug is not empty."""
    low, high = length
    if not isinstance(title, str) or not title.isascii() or not title.isprintable() or not slugify(title):
        raise UsageError(f"{param(name)}={title!r}: a title is printable ASCII text with letters or digits")
    if not low <= len(title) <= high:
        raise UsageError(f"{param(name)}={title!r}: {len(title)} characters; Kaggle takes {low} to {high}")
    return title


def check_owner(owner: str, name: str = "owner") -> str:
    """A Kaggle user name (letters, digits, '-' and '_')."""
    if not isinstance(owner, str) or not _OWNER.fullmatch(owner):
        raise UsageError(f"{param(name)}={owner!r}: not a Kaggle user name (letters, digits, '-', '_')")
    return owner


def check_accelerator(name: str) -> str:
    """One of Kaggle's accelerator names (case as Kaggle spells it; any case accepted).

    >>> check_accelerator("nvidiateslat4"), check_accelerator("none")
    ('NvidiaTeslaT4', 'none')
    """
    if isinstance(name, str):
        for known in ACCELERATORS:
            if known.lower() == name.strip().lower():
                return known
        if any(tpu.lower() == name.strip().lower() for tpu in _TPUS):
            raise UsageError(f"{param('accelerator')}={name!r}: a TPU; kfold's notebook runs torch on a GPU or the "
                             f"CPU (choose one of {', '.join(ACCELERATORS)})")
    raise UsageError(f"{param('accelerator')}={name!r}: not an accelerator Kaggle knows for this notebook "
                     f"(one of {', '.join(ACCELERATORS)})")


def accelerator_settings(name: str) -> dict:
    """kernel-metadata.json's ``enable_gpu`` (and ``machine_shape`` for a GPU) of accelerator ``name``."""
    gpu, shape = ACCELERATORS[check_accelerator(name)]
    return {"enable_gpu": gpu, **({"machine_shape": shape} if shape else {})}


# ---- Kaggle's Python image --------------------------------------------------------------------------------------

KAGGLE_IMAGE = "kaggle-image.txt"  # the pinned list, beside this module (its header says where it comes from)


def kaggle_image() -> dict[str, str]:
    """``{distribution name: version}`` of the pinned list of Kaggle's Python image (names lower case).

    >>> image = kaggle_image()
    >>> "torch" in image and "kfold-kaggle" not in image and "matplotlib-fontja" not in image
    True
    """
    from importlib import resources

    text = resources.files("kfold.files").joinpath(KAGGLE_IMAGE).read_text(encoding="utf-8")
    image = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip()):
                raise DataError(f"{KAGGLE_IMAGE}: line {number}: {line!r} is not name==version")
            image[name.strip().lower()] = version.strip()
    return image


# ---- hashes ----------------------------------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_below(folder: Path, follow_links: bool = False) -> dict[str, Path]:
    """Every regular file below ``folder`` by its POSIX path relative to it; a link (unless ``follow_links``: a
    mounted copy made of links) or a special file is an error."""
    found = {}
    for current, dirs, names in os.walk(folder, followlinks=follow_links):
        for name in sorted(dirs + names):
            path = Path(current) / name
            mode = (os.stat if follow_links else os.lstat)(path).st_mode
            if stat.S_ISLNK(mode):
                raise DataError(f"{path}: a symbolic link inside the package; a package holds only real files")
            if stat.S_ISREG(mode):
                found[path.relative_to(folder).as_posix()] = path
            elif not stat.S_ISDIR(mode):
                raise DataError(f"{path}: not a regular file")
    return found


def hash_files(dataset_dir: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of ``dataset_dir`` but the manifest, sorted by path."""
    files = _files_below(Path(dataset_dir))
    files.pop(MANIFEST, None)
    return {rel: sha256_file(files[rel]) for rel in sorted(files)}


def content_hash(files: dict[str, str]) -> str:
    """One sha256 over a files table: equal tables (whatever their order) give equal hashes.

    >>> content_hash({"a": "0" * 64, "b": "1" * 64}) == content_hash({"b": "1" * 64, "a": "0" * 64})
    True
    """
    text = "".join(f"{path}\t{files[path]}\n" for path in sorted(files))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- metadata files -------------------------------------------------------------------------------------------

def dataset_metadata(owner: str, slug: str, title: str, license_name: str = LICENSE) -> dict:
    """dataset-metadata.json of dataset ``OWNER/SLUG``: exactly one licence, as the kaggle client requires."""
    check_owner(owner), check_slug(slug), check_title(title)
    return {"title": title, "id": f"{owner}/{slug}", "licenses": [{"name": license_name}]}


def kernel_metadata(owner: str, title: str, competition: str, dataset: str, accelerator: str = "none") -> dict:
    """kernel-metadata.json of the notebook: its slug is its title's; the internet is off *explicitly* (the kaggle
    client's default is on, and a code competition refuses such a kernel); private; the competition and the
    dataset attached."""
    check_title(title, "kernel_title", KERNEL_TITLE_LENGTH)
    slug = slugify(title)
    check_slug(slug, "kernel_title", (5, 50))
    return {"id": f"{check_owner(owner)}/{slug}", "title": title, "code_file": f"{slug}.ipynb",
            "language": "python", "kernel_type": "notebook", "is_private": True, "enable_internet": False,
            **accelerator_settings(accelerator), "enable_tpu": False, "dataset_sources": [dataset],
            "competition_sources": [competition], "kernel_sources": [], "model_sources": []}


# ---- the manifest ---------------------------------------------------------------------------------------------

_MANIFEST_KEYS = {"format": str, "kfold_version": str, "competition": str, "owner": str, "dataset": str,
                  "kernel": str, "output_file": str, "schema": dict, "recipe": dict, "files": dict,
                  "local_submission": dict, "accelerator": str, "models": list, "classes": list, "sample": str}


def write_manifest(dataset_dir: str | os.PathLike, manifest: dict, transaction=None) -> dict:
    """Fill ``manifest["files"]`` with the hashes of every other file of ``dataset_dir``, check the whole manifest
    and write it there (atomically). Returns the manifest written."""
    from kfold.files.atomic import write_json

    dataset_dir = Path(dataset_dir)
    manifest = {**manifest, "format": FORMAT, "files": hash_files(dataset_dir)}
    check_manifest(manifest, dataset_dir / MANIFEST)
    write_json(dataset_dir / MANIFEST, manifest, transaction)
    return manifest


def write_json_file(path: str | os.PathLike, data: dict) -> None:
    """A metadata file (atomically, indented as the kaggle client writes its own)."""
    from kfold.files.atomic import write_json

    write_json(path, data)


def write_kernel(kernel_dir: str | os.PathLike, manifest: dict, title: str) -> Path:
    """kernel-metadata.json and the notebook of ``manifest``'s kernel into ``kernel_dir``; returns the notebook."""
    import nbformat

    from kfold.files.atomic import write_text
    from kfold.files.notebook import build_notebook

    kernel_dir = Path(kernel_dir)
    kernel_dir.mkdir(parents=True, exist_ok=True)
    meta = kernel_metadata(manifest["owner"], title, manifest["competition"], manifest["dataset"],
                           manifest["accelerator"])
    if meta["id"] != manifest["kernel"]:
        raise UsageError(f"kernel title {title!r} gives the kernel {meta['id']!r}, not {manifest['kernel']!r}")
    write_json_file(kernel_dir / KERNEL_METADATA, meta)
    notebook = kernel_dir / meta["code_file"]
    write_text(notebook, nbformat.writes(build_notebook(manifest, title, manifest_name=MANIFEST, wheels=WHEELS,
                                                       not_uploaded=[DATASET_METADATA])))
    return notebook


def _fail(path, message: str):
    raise DataError(f"{path}: {message}")


def check_manifest(manifest, path: str | os.PathLike = MANIFEST) -> dict:
    """A manifest with every key of its kind, ids and slugs Kaggle takes, a safe output file name, and a files
    table of relative paths and sha256 digests. Returns it; else one DataError naming ``path`` and the key."""
    if not isinstance(manifest, dict):
        _fail(path, "the manifest is not a JSON object")
    if manifest.get("format") != FORMAT:
        _fail(path, f"key 'format' is {manifest.get('format')!r}, expected {FORMAT!r} (not a kfold package, or "
                    f"written by another kfold)")
    for key, kind in _MANIFEST_KEYS.items():
        if key not in manifest:
            _fail(path, f"key '{key}' is missing (a damaged or foreign package)")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            _fail(path, f"key '{key}' is {str(manifest[key])[:40]!r}, expected a {kind.__name__}")
    try:
        owner = check_owner(manifest["owner"])
        check_slug(manifest["competition"], "competition", (1, 100))
        for key, length in (("dataset", DATASET_SLUG_LENGTH), ("kernel", (5, 50))):
            ref_owner, _, slug = manifest[key].partition("/")
            if ref_owner != owner:
                _fail(path, f"key '{key}' is {manifest[key]!r}, not owned by {owner!r}")
            check_slug(slug, key, length)
        check_accelerator(manifest["accelerator"])
    except UsageError as exc:
        _fail(path, str(exc))
    if not _FILE_NAME.fullmatch(manifest["output_file"]):
        _fail(path, f"key 'output_file' is {manifest['output_file']!r}, not a plain file name")
    for rel, digest in manifest["files"].items():
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or rel != pure.as_posix() or rel in ("", MANIFEST):
            _fail(path, f"key 'files': {rel!r} is not a relative path inside the dataset")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            _fail(path, f"key 'files': the sha256 of {rel!r} is {str(digest)[:40]!r}, not 64 hex digits")
    check_fields(manifest, path)
    local = manifest["local_submission"]
    if not isinstance(local.get("sha256"), str) or not _SHA256.fullmatch(local["sha256"]):
        _fail(path, "key 'local_submission.sha256' is not 64 hex digits")
    if not isinstance(local.get("rows"), int) or isinstance(local.get("rows"), bool) or local["rows"] < 1:
        _fail(path, "key 'local_submission.rows' is not a positive integer")
    from kfold.files.schema import Schema

    Schema.from_dict(manifest["schema"], f"{path}: key 'schema'")
    return manifest


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: not found (a truncated package)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON object")
    return data


def check_dataset_metadata(meta: dict, manifest: dict, path) -> dict:
    """dataset-metadata.json names the manifest's dataset, a title Kaggle takes and exactly one licence."""
    if meta.get("id") != manifest["dataset"]:
        _fail(path, f"key 'id' is {meta.get('id')!r}, the manifest's dataset is {manifest['dataset']!r}")
    try:
        check_title(meta.get("title"))
    except UsageError as exc:
        _fail(path, f"key 'title': {exc}")
    licenses = meta.get("licenses")
    if not isinstance(licenses, list) or len(licenses) != 1 or not isinstance(licenses[0], dict) \
            or not isinstance(licenses[0].get("name"), str):
        _fail(path, "key 'licenses' must hold exactly one licence with a name (the kaggle client's rule)")
    return meta


def check_kernel_metadata(meta: dict, manifest: dict, path) -> dict:
    """kernel-metadata.json of the manifest's kernel: internet off (explicitly), private, the dataset and the
    competition attached, a notebook in Python, a title whose slug is the kernel's, the accelerator's settings."""
    expected = {"id": manifest["kernel"], "kernel_type": "notebook", "language": "python", "is_private": True}
    for key, value in expected.items():
        if meta.get(key) != value or type(meta.get(key)) is not type(value):
            _fail(path, f"key '{key}' is {meta.get(key)!r}, expected {value!r}")
    if "enable_internet" not in meta:
        _fail(path, "key 'enable_internet' is missing: the kaggle client's default turns the internet on, and a "
                    "code competition refuses such a notebook (write \"enable_internet\": false)")
    if meta["enable_internet"] is not False:
        _fail(path, f"key 'enable_internet' is {meta['enable_internet']!r}: a code competition's notebook runs with "
                    f"the internet off (false)")
    title = meta.get("title")
    if not isinstance(title, str) or slugify(title) != manifest["kernel"].partition("/")[2]:
        _fail(path, f"key 'title' is {title!r}: its slug is not the kernel's {manifest['kernel']!r}")
    for key, value in (("dataset_sources", manifest["dataset"]), ("competition_sources", manifest["competition"])):
        if not isinstance(meta.get(key), list) or value not in meta[key]:
            _fail(path, f"key '{key}' is {meta.get(key)!r}: it must hold {value!r}")
    for key, value in accelerator_settings(manifest["accelerator"]).items():
        if meta.get(key) != value:
            _fail(path, f"key '{key}' is {meta.get(key)!r}, accelerator {manifest['accelerator']!r} needs {value!r}")
    code_file = meta.get("code_file")
    if not isinstance(code_file, str) or not _FILE_NAME.fullmatch(code_file) or not code_file.endswith(".ipynb"):
        _fail(path, f"key 'code_file' is {code_file!r}, expected the notebook's file name (.ipynb)")
    return meta


# ---- the package ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Package:
    """A package read by :func:`read_package`: its folder and its checked manifest."""

    path: Path
    manifest: dict

    @property
    def dataset_dir(self) -> Path:
        return self.path / DATASET

    @property
    def kernel_dir(self) -> Path:
        return self.path / KERNEL

    @property
    def manifest_path(self) -> Path:
        return self.dataset_dir / MANIFEST

    @property
    def dataset_id(self) -> str:
        return self.manifest["dataset"]

    @property
    def kernel_id(self) -> str:
        return self.manifest["kernel"]

    @property
    def competition(self) -> str:
        return self.manifest["competition"]

    @property
    def output_file(self) -> str:
        return self.manifest["output_file"]

    @property
    def local_submission(self) -> Path:
        return self.path / LOCAL / LOCAL_SUBMISSION

    @property
    def notebook(self) -> Path:
        """The notebook: kernel-metadata.json's code_file."""
        return self.kernel_dir / _read_json(self.kernel_dir / KERNEL_METADATA)["code_file"]

    @property
    def local_data(self) -> str | None:
        """The competition folder the package was made from (``PKG/local/package.json``), or None."""
        try:
            value = json.loads((self.path / LOCAL / LOCAL_INFO).read_text(encoding="utf-8")).get("data")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    @property
    def content_hash(self) -> str:
        """sha256 over the sorted files table: did the dataset change since the last upload?"""
        return content_hash(self.manifest["files"])

    @property
    def schema(self):
        """The competition's :class:`kfold.files.schema.Schema` as recorded."""
        from kfold.files.schema import Schema

        return Schema.from_dict(self.manifest["schema"], f"{self.manifest_path}: key 'schema'")


def verify_files(dataset_dir: Path, files: dict[str, str], follow_links: bool = False) -> None:
    """Every file of the table present with its sha256 and no other file: else one DataError naming the file.
    ``follow_links``: the folder may be made of links (a mounted copy, as ``kfold rehearse`` lays it out)."""
    present = _files_below(dataset_dir, follow_links)
    present.pop(MANIFEST, None)
    for rel in sorted(files):
        if rel not in present:
            raise DataError(f"{dataset_dir / rel}: missing (a truncated package: its manifest lists it)")
        digest = sha256_file(present[rel])
        if digest != files[rel]:
            raise DataError(f"{dataset_dir / rel}: sha256 {digest[:12]}... differs from the manifest's "
                            f"{files[rel][:12]}... (the file was changed after packaging)")
    extra = sorted(set(present) - set(files))
    if extra:
        raise DataError(f"{dataset_dir / extra[0]}: not in the manifest (a file added after packaging)")


def read_package(pkg: str | os.PathLike, *, verify: bool = True) -> Package:
    """Read a package folder strictly.

    Parameters
    ----------
    pkg : str or os.PathLike
        The folder ``kfold package --out`` wrote.
    verify : bool
        Also hash every file of ``dataset/`` and the local submission against the manifest.

    Returns
    -------
    Package

    Raises
    ------
    DataError
        Naming the file and the key or file: a missing or bad key, a file whose sha256 differs (tampered), a file
        missing (truncated) or added, metadata that Kaggle or a code competition would refuse.

    Examples
    --------
    >>> read_package("no-such-package")
    Traceback (most recent call last):
    kfold.errors.DataError: no-such-package: not a package folder (kfold package --out writes one)
    """
    root = Path(pkg)
    if not root.is_dir():
        raise DataError(f"{root}: not a package folder (kfold package --out writes one)")
    for sub in (DATASET, KERNEL, LOCAL):
        if (root / sub).is_symlink() or not (root / sub).is_dir():
            raise DataError(f"{root / sub}: missing or not a real folder (a truncated package)")
    package = Package(root, check_manifest(_read_json(root / DATASET / MANIFEST), root / DATASET / MANIFEST))
    manifest = package.manifest
    check_dataset_metadata(_read_json(package.dataset_dir / DATASET_METADATA), manifest,
                           package.dataset_dir / DATASET_METADATA)
    if DATASET_METADATA not in manifest["files"]:
        _fail(package.manifest_path, f"key 'files' does not list {DATASET_METADATA}")
    kernel_meta_path = package.kernel_dir / KERNEL_METADATA
    kernel_meta = check_kernel_metadata(_read_json(kernel_meta_path), manifest, kernel_meta_path)
    notebook = package.kernel_dir / kernel_meta["code_file"]
    if notebook.is_symlink() or not notebook.is_file():
        raise DataError(f"{notebook}: missing (kernel-metadata.json's code_file; a truncated package)")
    local = package.local_submission
    if local.is_symlink() or not local.is_file():
        raise DataError(f"{local}: missing (the local submission the notebook must reproduce; a truncated package)")
    if verify:
        verify_files(package.dataset_dir, manifest["files"])
        if sha256_file(local) != manifest["local_submission"]["sha256"]:
            raise DataError(f"{local}: sha256 differs from the manifest's local_submission (changed after packaging)")
    return package
