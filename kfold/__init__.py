"""kfold: stratified k-fold training, ensembling and local leaderboards for small-image competitions.

The notebook API (``kfold.train``, ``kfold.tune``, ``kfold.load_run``, ``kfold.ensemble``, ``kfold.leaderboard``) is loaded
on first use; ``import kfold`` imports neither torch nor pandas.
"""

__version__ = "0.2.0"

_API = ("train", "tune", "load_run", "ensemble", "leaderboard", "Run", "Predictions", "Submission")


def __getattr__(name: str):
    if name in _API:
        from kfold import api

        return getattr(api, name)
    raise AttributeError(f"module 'kfold' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
