"""The single boundary to the kaggle client: ``submit`` and ``download``.

``kaggle`` is an optional extra (``pip install -e '.[kaggle]'`` in a clone) and is imported only inside
``_client``, which also authenticates: kaggle 2.x authenticates when imported and prints a help
text (or calls ``exit``) when no credentials are found. Both are silenced here and turned into one
UsageError line. Credentials are never printed or written by kfold: they are masked in the client's
replies and error messages before kfold shows them. Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

from kfold.errors import DataError, UsageError

MISSING_PACKAGE = "the kaggle package is not installed: pip install -e '.[kaggle]' in the kfold clone (or pip install kaggle)"
MISSING_CREDENTIALS = ("Kaggle credentials not found: put kaggle.json (or access_token) in ~/.kaggle/ "
                       "(or in $KAGGLE_CONFIG_DIR), or set KAGGLE_USERNAME/KAGGLE_KEY or KAGGLE_API_TOKEN; "
                       "tokens come from https://www.kaggle.com/settings/api")


def _client():
    """Import kaggle and return an authenticated ``KaggleApi``; one clear error line otherwise."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError:
            raise UsageError(MISSING_PACKAGE) from None
        except (SystemExit, Exception):  # kaggle 1.x raises or exits at import without credentials
            raise UsageError(MISSING_CREDENTIALS) from None
        api = KaggleApi()
        try:
            api.authenticate()
        except (SystemExit, Exception):
            raise UsageError(MISSING_CREDENTIALS) from None
    return api


CREDENTIAL_ENV = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")


def _masked(text: str, api) -> str:
    """``text`` with every credential the client knows (environment or its loaded config) replaced by ***."""
    config = getattr(api, "config_values", None)
    values = [os.environ.get(name, "") for name in CREDENTIAL_ENV]
    values += [str(config.get(key) or "") for key in ("username", "key", "token")] if isinstance(config, dict) else []
    for secret in sorted({v for v in values if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _failed(action: str, exc: BaseException, api) -> DataError:
    detail = _masked(" ".join(str(exc).split()) or type(exc).__name__, api)
    return DataError(f"kaggle: {action} failed: {detail[:300]}")


def submit(path: str | os.PathLike, competition: str, message: str) -> str:
    """Upload a submission file; return the server's reply text. Validate the file before calling this."""
    api = _client()
    try:
        response = api.competition_submit(str(path), message, competition, quiet=True)
    except Exception as exc:  # HTTP errors: unknown competition, rules not accepted, quota
        raise _failed(f"submitting {path} to '{competition}'", exc, api) from None
    reply = _masked(str(getattr(response, "message", "") or "submitted"), api)
    if reply == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", None):
        raise DataError(f"kaggle: submitting {path} to '{competition}' failed: {reply}")
    return reply


def download(competition: str, data_dir: str | os.PathLike) -> list[Path]:
    """Download a competition's files into ``data_dir`` and unpack the archive; return the files."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    api = _client()
    try:
        api.competition_download_files(competition, path=str(data_dir), quiet=True)
    except Exception as exc:
        raise _failed(f"downloading '{competition}'", exc, api) from None
    archive = data_dir / f"{competition}.zip"
    if not archive.is_file():
        return sorted(p for p in data_dir.iterdir() if p.is_file())
    try:
        with zipfile.ZipFile(archive) as zf:  # extract() drops absolute paths and '..' and returns where it wrote
            files = [Path(zf.extract(member, data_dir)) for member in zf.infolist() if not member.is_dir()]
    except zipfile.BadZipFile:
        raise DataError(f"{archive}: downloaded archive is not a valid zip file") from None
    archive.unlink()
    return files
