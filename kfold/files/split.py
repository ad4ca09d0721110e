"""The one place for a competition's Public/Private split: its defaults, the seeded split, the solution table.

Kaggle scores a competition's Public leaderboard on a share of the test rows and the Private one on the
rest; kfold's generated solution files, ``kfold make-competition`` and ``kfold leaderboard`` (for a solution
without a Usage column) all use these defaults.
"""

__all__ = ["check_fraction", "make_solution", "PUBLIC_FRACTION", "random_usage", "SOLUTION_SEED"]

PUBLIC_FRACTION = 0.3  # share of the test rows that are Public
SOLUTION_SEED = 0      # seed of the generated split


def check_fraction(value: float, name: str = "public_fraction") -> None:
    """A share of rows (``public_fraction``, ``test_fraction``): a number strictly between 0 and 1."""
    import numbers

    from kfold.errors import UsageError, param

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise UsageError(f"{param(name)} must be between 0 and 1 (exclusive), got {value!r}")


def random_usage(n_rows: int, seed: int, public_fraction: float = PUBLIC_FRACTION):
    """A seeded random split: round(public_fraction * n_rows) rows 'Public', the rest 'Private'."""
    import numpy as np

    check_fraction(public_fraction)
    usage = np.full(n_rows, "Private", dtype=object)
    usage[np.random.default_rng(seed).permutation(n_rows)[: int(round(public_fraction * n_rows))]] = "Public"
    return usage


def make_solution(ids, labels, seed: int, public_fraction: float = PUBLIC_FRACTION, schema=None):
    """An official-style solution table (a DataFrame) with a seeded random Public/Private split: the competition's
    Id column, its label column holding the class values (``labels`` are class indices) and ``Usage``;
    KMNIST's ``Id,Category,Usage`` without a ``schema``."""
    import numpy as np
    import pandas as pd

    from kfold.errors import DataError
    from kfold.files.schema import KMNIST, as_ids
    from kfold.files.submission import check_unique_ids

    ids = np.asarray(ids, dtype=np.int64) if schema is None else as_ids(ids)
    labels = np.asarray(labels, dtype=np.int64)
    if ids.shape != labels.shape or ids.ndim != 1:
        raise DataError(f"solution needs one label per Id, got {ids.shape} Ids and {labels.shape} labels")
    check_unique_ids(ids, "solution Ids", first_line=None)
    values = labels if schema is None else schema.decode(labels)
    id_column, label_column, usage_column = (schema or KMNIST).solution_header
    return pd.DataFrame({id_column: ids, label_column: values,
                         usage_column: random_usage(len(ids), seed, public_fraction)})
