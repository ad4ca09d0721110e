"""kfold: stratified k-fold training, ensembling and local leaderboards for small-image competitions.

The notebook API (``kfold.train``, ``kfold.tune``, ``kfold.load_run``, ``kfold.ensemble``, ``kfold.leaderboard``,
``kfold.package``, ``kfold.rehearse``, ``kfold.submit_code``) is loaded
on first use; ``import kfold`` imports neither torch nor pandas. ``kfold.__version__`` is
``kfold.identity.version()`` (the version is written only in pyproject.toml).
"""

_API = ("train", "tune", "load_run", "ensemble", "leaderboard", "package", "rehearse", "submit_code", "Run",
        "Predictions", "Submission")
_CODE_API = ("package", "rehearse", "submit_code")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name == "__version__":
        from kfold.identity import version

        return version()
    if name in _CODE_API:  # code competitions (kfold.code_api)
        from kfold import code_api

        return getattr(code_api, name)
    if name in _API:
        from kfold import api

        return getattr(api, name)
    raise AttributeError(f"module 'kfold' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API, "__version__"])
