"""The leaderboards' bootstrap statistics, shared by the single-label board (``kfold.scoring.leaderboard``) and
the multi-label one (``kfold.scoring.multilabel_board``): percentile intervals and paired tests against the best
public submission.

>>> import numpy as np
>>> low, high = percentile_interval(np.arange(101, dtype=float).reshape(-1, 1))
>>> round(float(low[0]), 6), round(float(high[0]), 6)
(2.5, 97.5)
"""
from __future__ import annotations

import numpy as np

__all__ = ["ALPHA", "SPLITS", "paired_tests", "percentile_interval"]

ALPHA = 0.05  # a paired difference with a p-value below it is marked significant
SPLITS = ("public", "private", "overall")


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column of ``samples`` (resamples, K)."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples.astype(np.float64), [tail, 100.0 - tail], axis=0)
    return low, high


def paired_tests(records: dict, boots: dict, best: int) -> None:
    """Each submission against the best public one, on Public and Private: the score difference, its 95% paired
    bootstrap interval and two-sided p-value and whether it is significant (``records``' columns, in place)."""
    for split in ("public", "private"):
        records[f"{split}_diff"] = records[split] - records[split][best]
        diffs = boots[split] - boots[split][:, [best]]
        records[f"{split}_diff_low"], records[f"{split}_diff_high"] = percentile_interval(diffs)
        above, below = (diffs > 0).mean(axis=0), (diffs < 0).mean(axis=0)
        p = np.minimum(1.0, 2 * np.minimum(1 - below, 1 - above))  # two-sided paired bootstrap p-value
        p[best] = 1.0
        records[f"{split}_p"] = p
        records[f"{split}_significant"] = p < ALPHA
