"""User-facing errors and the CLI wrapper that turns them into one line and an exit code.

Convention: exit 2 for bad usage (flags, config values), exit 1 for bad data (files, rows).
Nothing here imports torch.
"""
from __future__ import annotations

import argparse
import re
import sys
from typing import Callable, Mapping, NoReturn, Sequence

__all__ = ["ArgumentParser", "DataError", "KfoldError", "ListTypeError", "UsageError", "check_list", "flag_of", "param",
           "run_cli"]

_MARK = "\0"  # never part of a path or a repr(): marks a parameter's name inside a message
_PARAM = re.compile(r"\0([A-Za-z_]\w*)\0(=True\b|=)?")
FLAG_NAMES: Mapping[str, str] = {  # parameters whose flag is not --name-with-dashes
    "data_dir": "--data", "fit_oof": "--fit-weights", "fmt": "--format", "leaderboard_dir": "--leaderboard",
    "out_dir": "--out", "timeout": "--ray-timeout", "tune_dir": "--tune"}


def param(name: str) -> str:
    """A parameter's name inside an error message: the library shows ``name``, a command its flag.

    >>> str(UsageError(f"{param('folds')}=[7]: folds must be in 0..4"))
    'folds=[7]: folds must be in 0..4'
    >>> UsageError(f"{param('folds')}='7': folds must be in 0..4").for_command()
    "--folds '7': folds must be in 0..4"
    >>> UsageError(f"{param('full')}=True needs an explicit {param('epochs')}").for_command()
    '--full needs an explicit --epochs'
    """
    return f"{_MARK}{name}{_MARK}"


def flag_of(name: str) -> str:
    """The command-line flag of a library parameter: ``batch_size`` -> ``--batch-size``."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _render(text: str, flag: Callable[[str], str] | None) -> str:
    def one(match: re.Match) -> str:
        name, tail = match.group(1), match.group(2) or ""
        if flag is None:
            return name + tail
        return flag(name) + {"=True": "", "=": " ", "": ""}[tail]

    return _PARAM.sub(one, text)


class KfoldError(Exception):
    """An error the user can fix; printed as one line without a traceback.

    The message names parameters (``param``): ``str(error)`` in the library's words, ``for_command()`` in
    the command line's (``lr=inf`` -> ``--lr inf``).
    """

    exit_code = 1

    def __str__(self) -> str:
        return _render(super().__str__(), None)

    def for_command(self, flag: Callable[[str], str] = flag_of) -> str:
        """The message with every parameter named as its command-line flag."""
        return _render(super().__str__(), flag)


class DataError(KfoldError):
    """Bad input data: a file, a row, a column. Exit code 1."""

    exit_code = 1


class UsageError(KfoldError):
    """Bad usage: an unknown preset, a nonsense flag value, an unknown config key. Exit code 2."""

    exit_code = 2


class ListTypeError(UsageError, TypeError):
    """A single value (a bare string, a path) where a list is expected: a ``TypeError`` naming the parameter, and a
    one-line usage error (exit 2) where a command meets it."""


def check_list(name: str, value, *, optional: bool = False) -> list | None:
    """``value`` as a list; a bare string, bytes, a path or a mapping (or anything not iterable) is refused with a
    :class:`ListTypeError` naming parameter ``name``: ``"runs/*.npz"`` is one string, never a list of its letters
    nor a list of one that silently drops the rest.

    >>> check_list("seeds", (0, 1))
    [0, 1]
    >>> check_list("inputs", "runs/x/probs/*.npz")
    Traceback (most recent call last):
    ...
    kfold.errors.ListTypeError: inputs='runs/x/probs/*.npz': a list is expected, not a single str; write ['runs/x/probs/*.npz'] (a glob is not expanded: glob.glob() it first)
    """
    import os
    from collections.abc import Iterable, Mapping

    if value is None and optional:
        return None
    if isinstance(value, (str, bytes, os.PathLike, Mapping)) or not isinstance(value, Iterable):
        hint = f"; write [{value!r}]" if isinstance(value, (str, os.PathLike)) else ""
        if isinstance(value, str) and any(c in value for c in "*?["):
            hint += " (a glob is not expanded: glob.glob() it first)"
        raise ListTypeError(f"{param(name)}={value!r}: a list is expected, not a single {type(value).__name__}{hint}")
    return list(value)


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
    except KfoldError as exc:  # the library names parameters; a command's user typed flags
        print(f"error: {exc.for_command()}", file=sys.stderr)
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
