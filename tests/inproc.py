"""``kfold ARGS`` run inside the test process, as a fresh ``python -m kfold`` would run it, minus the interpreter's start.

For tests whose property is what a command does (its exit code, its stdout and stderr, what it sends to the loopback
Kaggle fake, what it writes), not the separate process: a fresh interpreter costs seconds of imports (pandas, the
kaggle client) on a loaded CI machine, dozens of times per file. What stays a subprocess (``test_kaggle_loop.kfold``):
signals (Ctrl-C), "no torch imported", missing or shadowed packages, credentials read from files or the client's
verbose switches, and at least one test per command.

``kfold(*args, cwd=..., env=...)`` takes the arguments of ``test_kaggle_loop.kfold`` and returns the same
``subprocess.CompletedProcess`` (``returncode``, ``stdout``, ``stderr`` as text). What a fresh process would have
and this one must recreate for the call, then restore:

* the environment (``env`` updates it; ``None`` removes a variable) and the working directory;
* the kaggle client's class-level configuration, which kaggle reads from the environment once, when it is first
  imported (``KaggleApi.args``: ``--local`` under ``KAGGLE_API_ENVIRONMENT=LOCALHOST``; ``config_dir``/``config``
  from ``HOME``, a folder it creates): recomputed from this call's environment exactly as kaggle's class body
  computes it, when the command imports the client (``kfold.kaggle_api._import_client``), not before: a command
  refused before it reaches Kaggle creates no config folder, as in a fresh interpreter;
* ``tempfile.gettempdir()``, which Python caches (the client keeps its resumable uploads' state there): this call's
  ``TMPDIR``, so that an interrupted upload of one test is never resumed by another;
* warnings as a fresh interpreter shows them (Python's default filters, printed on stderr), not pytest's capture;
  log records likewise: no handler on the root logger (pytest's taken off for the call), so that a warning a
  library logs reaches stderr through logging's last resort, as it would in a fresh interpreter;
* the umask, when ``umask`` is given (as ``subprocess.run(..., preexec_fn=lambda: os.umask(umask))``);
* stdout and stderr as text (``main``'s return value is the exit code; argparse's ``SystemExit`` gives its code).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

UNSUPPORTED = ("VERBOSE", "VERBOSE_OUTPUT")  # read by kaggle at import (logging set up): a subprocess test's case


def _fresh_kaggle_config() -> dict:
    """Recompute ``KaggleApi``'s import-time class attributes from the current environment; the old values."""
    module = sys.modules.get("kaggle.api.kaggle_api_extended")
    if module is None:  # not imported yet: the import inside the call reads this call's environment itself
        return {}
    api = module.KaggleApi
    saved = {name: getattr(api, name) for name in ("config_dir", "config", "args")}
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR") or ""  # kaggle 2.x's class body, line for line
    if not config_dir:
        config_dir = os.path.join(os.path.expanduser("~"), ".kaggle")
        if sys.platform.startswith("linux") and not os.path.exists(config_dir):
            config_dir = os.path.join(
                (os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")), "kaggle")
    if not os.path.exists(config_dir):
        os.makedirs(config_dir)
    api.config_dir = config_dir
    api.config = os.path.join(config_dir, api.config_file)
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
    return saved


@contextlib.contextmanager
def _fresh_process(cwd, env: dict | None, umask: int | None = None):
    env = dict(env or {})
    if env.pop("_PREPEND", None):
        raise ValueError("a shadowed package needs a fresh interpreter: use test_kaggle_loop.kfold")
    saved_env, saved_cwd, saved_tempdir = dict(os.environ), os.getcwd(), tempfile.tempdir
    kaggle_saved: dict = {}
    from kfold import kaggle_api

    original_import = kaggle_api._import_client

    def import_client():  # kaggle imported (or found imported): its class configuration as this call's import
        api = original_import()
        saved = _fresh_kaggle_config()
        for name, value in saved.items():
            kaggle_saved.setdefault(name, value)
        return api

    saved_umask = None if umask is None else os.umask(umask)
    saved_handlers = logging.root.handlers[:]
    try:
        logging.root.handlers = []
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = str(value)
        if any(os.environ.get(name) for name in UNSUPPORTED):
            raise ValueError("the kaggle client's verbose switches are read at import: use test_kaggle_loop.kfold")
        os.chdir(cwd)
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again
        kaggle_api._import_client = import_client
        yield
    finally:
        kaggle_api._import_client = original_import
        module = sys.modules.get("kaggle.api.kaggle_api_extended")
        for name, value in kaggle_saved.items():
            setattr(module.KaggleApi, name, value)
        logging.root.handlers = saved_handlers
        tempfile.tempdir = saved_tempdir
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        if saved_umask is not None:
            os.umask(saved_umask)


def kfold(*args, cwd, env=None, timeout=None, python_code=None, umask: int | None = None
          ) -> subprocess.CompletedProcess:
    """``python -m kfold ARGS`` in this process (``timeout`` is accepted and unused: nothing here can hang
    that a subprocess's timeout would stop more cleanly than the test's own failure)."""
    if python_code is not None:
        raise ValueError("python -c CODE needs a fresh interpreter: use test_kaggle_loop.kfold")
    from kfold.commands.main import main

    argv = [str(arg) for arg in args]
    out, err = io.StringIO(), io.StringIO()
    with _fresh_process(Path(cwd), env, umask), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.resetwarnings()  # a fresh interpreter's default filters, shown on (this call's) stderr
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category, append=True)
        warnings.showwarning = getattr(warnings, "_showwarning_orig", warnings.showwarning)
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's --help / --version
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
    return subprocess.CompletedProcess([sys.executable, "-m", "kfold", *argv], int(code or 0), out.getvalue(),
                                       err.getvalue())
