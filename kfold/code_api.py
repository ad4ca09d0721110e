"""The notebook API of code competitions: ``kfold.package``, ``kfold.rehearse``, ``kfold.submit_code`` (the same
steps as ``kfold package``, ``kfold rehearse`` and ``kfold submit --code``), with ``kfold.api``'s argument checks.

>>> import kfold
>>> sorted(name for name in ("package", "rehearse", "submit_code") if hasattr(kfold, name))
['package', 'rehearse', 'submit_code']
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from kfold.api import _check_bool, _check_int, _check_path, _check_threads, _paths, _show
from kfold.errors import UsageError

__all__ = ["package", "rehearse", "submit_code"]

MAX_SECONDS = 10 ** 7  # the commands' bound: finite (inf would wait forever)
SUBMIT_OPTIONS = ("poll_interval", "max_differing", "dataset_wait", "kernel_wait", "accelerator", "timeout", "log",
                  "echo", "tracker")


def _check_seconds(name: str, value: Any, *, optional: bool = False) -> None:
    """A finite, positive number of seconds (as the commands' flags take them); 0 would poll without pause."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            not 0 < value <= MAX_SECONDS:
        raise UsageError(f"{name}={_show(value)}: must be a finite number of seconds in (0, {MAX_SECONDS}]"
                         + (" or None" if optional else ""))


def _check_hours(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 72:
        raise UsageError(f"time_limit={_show(value)}: must be hours in (0, 72]")


def _check_load_options(value: Any) -> None:
    """None or a dict of ``kfold.data.layouts.LoadOptions``' fields, each of its type, whose values it accepts."""
    import dataclasses

    from kfold.data.layouts import LoadOptions

    if value is None:
        return
    if not isinstance(value, dict):
        raise UsageError(f"load_options={_show(value)}: must be a dict of layout options (image_size, channels, ...)")
    known = [f.name for f in dataclasses.fields(LoadOptions)]
    unknown = [k for k in value if k not in known]
    if unknown:
        raise UsageError(f"load_options: unknown option {_show(unknown[0])}; one of {', '.join(known)}")
    for name, item in value.items():
        if name in ("image_size", "channels"):
            _check_int(f"load_options[{name!r}]", item, 1, optional=True)
        elif name in ("train_csv", "test_csv", "image_dir", "test_dir"):
            _check_path(f"load_options[{name!r}]", item, optional=True)
        elif item is not None and not isinstance(item, str):
            raise UsageError(f"load_options[{name!r}]={_show(item)}: must be a str or None")
    LoadOptions(**value).check()


def package(runs: Sequence[str | Path], competition: str, owner: str, out: str | Path, *,
            data: str | Path | None = None, slug: str | None = None, method: str = "mean", tta: int | None = None,
            seed: int = 0, accelerator: str = "none", threads: int | None = None, rehearse: bool = True,
            time_limit: float = 9.0, load_options: dict | None = None):
    """Package trained runs for a Kaggle code competition: a dataset, an offline notebook, the local submission.

    Parameters
    ----------
    runs : sequence of str or Path
        Finished run directories of one competition (same data, classes and schema); a list even for one run
        (a bare string is a ``TypeError`` naming ``runs``, as for every list parameter).
    competition : str
        The competition's Kaggle slug.
    owner : str
        Your Kaggle user name: the dataset is ``OWNER/SLUG``, the notebook ``OWNER/SLUG-predict``.
    out : str or Path
        The package folder (new or empty).
    data : str or Path, optional
        The competition folder (default: the runs' training data).
    slug, method, tta, seed, accelerator, threads
        Dataset slug (default ``COMPETITION-kfold``); how the fold models combine; TTA views (default: the runs');
        the vote's seed; Kaggle's accelerator (``none``, ``NvidiaTeslaT4``, ...); CPU threads (recorded).
    rehearse : bool, default True
        Run the notebook offline at the end (:func:`rehearse`).
    time_limit : float, default 9.0
        Hours the rehearsal projects against.
    load_options : dict, optional
        Layout options of the training (``image_size``, ``channels``, ``id_column`` ...).

    Returns
    -------
    kfold.flows.package.PackageResult
        ``path``, ``manifest``, ``size`` (bytes) and ``rehearsal`` (a ``Rehearsal``: ``identical``, ``lines``).

    Raises
    ------
    UsageError
        A slug, title, accelerator or ``out`` Kaggle or kfold refuses, a keyword of the wrong type or an unknown
        ``load_options`` key, named before anything is written.
    DataError
        Incomplete runs, runs of two competitions, a model that does not fit the data or cannot be read.

    Examples
    --------
    >>> import kfold
    >>> kfold.package(["runs/none"], "kmnist-practice", "alice", "pkg", accelerator="TpuV5E8")
    Traceback (most recent call last):
    kfold.errors.UsageError: accelerator='TpuV5E8': a TPU; kfold's notebook runs torch on a GPU or the CPU (choose one of none, NvidiaTeslaT4, NvidiaTeslaP100, NvidiaL4, NvidiaL4X1)
    """
    from kfold.flows.package import package as make_package

    _check_path("out", out)
    _check_path("data", data, optional=True)
    _check_threads(threads)
    _check_bool("rehearse", rehearse)
    _check_hours(time_limit)
    _check_load_options(load_options)
    return make_package(_paths("runs", runs), competition, owner, out, data=data, load_options=load_options,
                        slug=slug, method=method, tta=tta, seed=seed, accelerator=accelerator, threads=threads,
                        rehearse=rehearse, time_limit=time_limit)


def rehearse(package: str | Path, data: str | Path | None = None, *, time_limit: float = 9.0,
             hidden_rows: int | None = None, network: str = "auto", timeout: float | None = None):
    """Run a package's notebook offline, in an environment holding only Kaggle's image, and compare its output
    byte for byte with the local submission.

    Parameters
    ----------
    package : str or Path
        The folder :func:`package` wrote.
    data : str or Path, optional
        The competition folder (default: the package's); with more test images than the packaged one, the
        reference is a local prediction on them.
    time_limit : float, default 9.0
        The competition's notebook limit in hours.
    hidden_rows : int, optional
        Rows of the hidden test set (default: the sample's).
    network : {"auto", "namespace", "guard"}, default "auto"
        How the network is blocked.
    timeout : float, optional
        Seconds a notebook cell may run.

    Returns
    -------
    kfold.flows.rehearse.Rehearsal
        ``identical``, ``differing_rows``, ``first_difference``, ``projected_seconds``, ``fits``, ``ok``, ``lines``.

    Raises
    ------
    DataError
        A damaged package, or a notebook that fails offline (its error line).

    Examples
    --------
    >>> import kfold
    >>> kfold.rehearse("no-such-package")
    Traceback (most recent call last):
    kfold.errors.DataError: no-such-package: not a package folder (kfold package --out writes one)
    """
    from kfold.flows.rehearse import rehearse as run

    _check_path("package", package)
    _check_path("data", data, optional=True)
    _check_hours(time_limit)
    _check_seconds("timeout", timeout, optional=True)
    return run(package, data, time_limit=time_limit, hidden_rows=hidden_rows, network=network, timeout=timeout)


def submit_code(package: str | Path, competition: str, message: str, *, wait: float | None = None, **options: Any):
    """Submit a code-competition package (``kfold package``) to Kaggle: what ``kfold submit --code`` does.

    Uploads the package's dataset (a new version only when its content changed) and waits until it is ready,
    pushes its notebook (internet off) and waits for its run, compares the notebook's output with the package's
    local submission (identical, or at most ``max_differing`` of the rows), submits it, logs it and, with
    ``wait`` seconds, waits for the score. An interrupted call, called again, continues where it stopped.

    Parameters
    ----------
    package : str or Path
        The folder ``kfold package --out`` wrote.
    competition : str
        The competition's slug (the package's competition).
    message : str
        The submission message.
    wait : float, optional
        Seconds to wait for the score; None returns after submitting.
    **options
        ``poll_interval``, ``max_differing`` (default 0.001), ``dataset_wait``, ``kernel_wait``, ``timeout`` (the
        kernel's run, seconds), ``accelerator``, ``log`` (the submission log), ``echo`` (progress lines),
        ``tracker``: see ``kfold.flows.code_submission.submit_code``. Seconds are finite and positive; anything
        else, or another keyword, is a ``UsageError`` naming it.

    Returns
    -------
    kfold.flows.code_submission.CodeSubmitted
        The kernel and version submitted, Kaggle's reply and ref, the comparison, the score when waited for.

    Raises
    ------
    kfold.errors.UsageError, kfold.errors.DataError
        One line: a package that does not read back, another competition, a CSV competition, another owner, a
        dataset never ready, a kernel that failed, an output that differs; nothing is submitted then.

    Examples
    --------
    >>> import kfold
    >>> kfold.submit_code("no-such-package", "kmnist", "first try")
    Traceback (most recent call last):
    kfold.errors.DataError: no-such-package: not a package folder (kfold package --out writes one)
    """
    from kfold.files.package import check_accelerator
    from kfold.flows.code_submission import submit_code as submit

    unknown = [name for name in options if name not in SUBMIT_OPTIONS]
    if unknown:
        raise UsageError(f"{unknown[0]}=...: not an option of submit_code; one of {', '.join(SUBMIT_OPTIONS)}")
    _check_seconds("wait", wait, optional=True)
    for name in ("poll_interval", "dataset_wait", "kernel_wait"):
        if name in options:
            _check_seconds(name, options[name])
    _check_int("timeout", options.get("timeout"), 1, MAX_SECONDS, optional=True)
    share = options.get("max_differing", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise UsageError(f"max_differing={_show(share)}: must be a share of the rows in [0, 1)")
    if options.get("accelerator") is not None:
        if not isinstance(options["accelerator"], str):
            raise UsageError(f"accelerator={_show(options['accelerator'])}: must be a str (none, NvidiaTeslaT4, ...)")
        check_accelerator(options["accelerator"])
    _check_path("log", options.get("log"), optional=True)
    if "echo" in options and not callable(options["echo"]):
        raise UsageError(f"echo={_show(options['echo'])}: must be a callable taking one line")
    return submit(package, competition, message, wait=wait, **options)
