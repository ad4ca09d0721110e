"""``compare.py`` / ``kfold compare``: presets side by side on the same data and folds, over several seeds.

For every seed and preset: train a k-fold run (every preset of a seed gets the same ``folds.csv``)
and predict the test set. Then, per seed, these entries become submissions:

* each preset's fold mean;
* ``report-vote4``: the KMNIST report's majority vote of its four AlexNet setups (seeded tie-break);
* ``report-avg2``: the report's average of its two AlexNet7 setups;
* ``fitted``: a mean of all presets with weights fitted (greedy forward selection, log loss) on
  their out-of-fold predictions only;

every preset's probabilities temperature-scaled first (``kfold.scoring.calibration``, fitted on its OOF);

and, across seeds, ``<preset>-seeds`` (the mean of that preset's calibrated fold means over all seeds; by
default for the preset ``best``). The solution file is read only at the end, for scoring: a
leaderboard per seed and a comparison of the mean over seeds per entry.

Output layout::

    OUT/seed{s}/{preset}/                  train.py run directory
    OUT/seed{s}/probs/                     predict.py files: {preset}-fold{i}.npz, -mean.npz, -oof.npz
    OUT/seed{s}/submissions/{entry}.csv    submission (+ {entry}.probs.npz unless it is a vote)
    OUT/seed{s}/leaderboard.csv, .md       that seed's entries on the Public/Private rows
    OUT/submissions/{preset}-seeds.csv     multi-seed ensembles (+ .probs.npz)
    OUT/leaderboard.csv, .md               the multi-seed ensembles on the Public/Private rows
    OUT/comparison.csv, .md, .png          mean over seeds per entry, sorted by Private accuracy

Re-running the same command continues an interrupted comparison (finished folds are skipped).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags
from kfold.config import preset_names

DEFAULT_PRESETS = ("alexnet5-sgd", "alexnet5-adam", "alexnet7-sgd", "alexnet7-adam", "best")


def _optional_list(text: str) -> list[str]:
    return [] if text == "" else flags.comma_list()(text)


def build_parser(prog: str = "compare.py") -> argparse.ArgumentParser:
    p = flags.parser(prog, __doc__)
    p.add_argument("--data", required=True, help="competition directory (scored when it holds solution.csv)")
    p.add_argument("--out", required=True, type=Path, help="comparison directory")
    p.add_argument("--seeds", type=flags.comma_list(flags.seed), default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--k", type=flags.k_folds, default=5, help="number of folds (default 5)")
    p.add_argument("--presets", type=flags.comma_list(), default=",".join(DEFAULT_PRESETS),
                   help=f"comma-separated presets, from: {', '.join(preset_names())} (default: {','.join(DEFAULT_PRESETS)})")
    p.add_argument("--seed-ensembles", type=_optional_list, default=None, metavar="PRESETS",
                   help="presets whose fold means are also averaged over all seeds (default: best, when listed; '' for none)")
    p.add_argument("--epochs", type=flags.positive_int, default=None, help="override every preset's epochs")
    p.add_argument("--tta", type=flags.positive_int, default=None, metavar="N", help="test-time augmentation views for predict")
    flags.add_device_flags(p)
    flags.add_progress_flag(p)
    flags.add_backend_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "compare.py") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.flows.compare import compare

    backend = flags.backend_from_args(args, progress=not args.no_progress)  # checked; Ray starts at the first fold
    try:
        compare(args.data, args.out, presets=args.presets, seeds=args.seeds, k=args.k,
                seed_ensembles=args.seed_ensembles, epochs=args.epochs, device=args.device, tta=args.tta,
                threads=args.threads if backend is None else backend.options.threads(args.threads),
                progress=not args.no_progress, backend=backend)
    finally:
        if backend is not None:
            backend.close()
    return 0
