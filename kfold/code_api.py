"""The notebook API of code competitions: ``kfold.package``, ``kfold.rehearse``, ``kfold.submit_code`` (the same
steps as ``kfold package``, ``kfold rehearse`` and ``kfold submit --code``), with ``kfold.api``'s argument checks.

>>> import kfold
>>> sorted(name for name in ("package", "rehearse", "submit_code") if hasattr(kfold, name))
['package', 'rehearse', 'submit_code']
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from kfold.api import _paths

__all__ = ["package", "rehearse", "submit_code"]


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
        A slug, title, accelerator or ``out`` Kaggle or kfold refuses, named before anything is written.
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
        kernel's run, seconds), ``log`` (the submission log), ``echo`` (progress lines): see
        ``kfold.flows.code_submission.submit_code``.

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
    from kfold.flows.code_submission import submit_code as submit

    return submit(package, competition, message, wait=wait, **options)
