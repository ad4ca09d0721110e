"""User-facing errors and the CLI wrapper that turns them into one line and an exit code.

Convention: exit 2 for bad usage (flags, config values), exit 1 for bad data (files, rows).
Nothing here imports torch.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn, Sequence


class KfoldError(Exception):
    """An error the user can fix; printed as one line without a traceback."""

    exit_code = 1


class DataError(KfoldError):
    """Bad input data: a file, a row, a column. Exit code 1."""

    exit_code = 1


class UsageError(KfoldError):
    """Bad usage: an unknown preset, a nonsense flag value, an unknown config key. Exit code 2."""

    exit_code = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a flag it cannot parse is a UsageError: one line, exit 2, no usage dump."""

    def format_help(self) -> str:  # docstrings used as descriptions: reST ``code`` reads as 'code'
        return super().format_help().replace("``", "'")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI ``main`` and map expected failures to a single stderr line plus exit code."""
    if hasattr(sys.stdout, "reconfigure"):  # progress lines reach a log file as they happen
        sys.stdout.reconfigure(line_buffering=True)
    try:
        code = int(main(argv) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # stdout closed early (| head): quiet, like a Unix tool killed by SIGPIPE
        _discard_stdout()
        return 141
    except KfoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # a command may say how to continue (training: --resume)
        print(f"error: {exc}" if exc.args else "error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, read-only directory, missing file
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


def _discard_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail a second time."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (captured output in tests)
        pass
