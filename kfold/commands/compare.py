"""``compare.py`` / ``kfold compare``: presets side by side over seeds (``kfold.flows.compare`` documents the entries
and the output layout; ``--help`` prints that description)."""
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
    from kfold.flows import compare as flow  # torch-free: its docstring is the full description

    p = flags.parser(prog, flow.__doc__)
    p.add_argument("--data", required=True, help="competition directory (scored when it holds solution.csv)")
    p.add_argument("--out", required=True, type=Path, help="comparison directory")
    p.add_argument("--seeds", type=flags.comma_list(flags.seed), default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--k", type=flags.k_folds, default=5, help="number of folds (default 5)")
    p.add_argument("--presets", type=flags.comma_list(), default=",".join(DEFAULT_PRESETS),
                   help=f"comma-separated presets, from: {', '.join(preset_names())} (default: {','.join(DEFAULT_PRESETS)})")
    p.add_argument("--seed-ensembles", type=_optional_list, default=None, metavar="PRESETS",
                   help="presets whose fold means are also averaged over all seeds (default: best, when listed; '' for none)")
    p.add_argument("--epochs", type=flags.config_flag_type("epochs"), default=None, help="override every preset's epochs")
    p.add_argument("--tta", type=flags.config_flag_type("tta"), default=None, metavar="N",
                   help="test-time augmentation views for predict")
    flags.add_training_flags(p, recipe=False)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "compare.py") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.flows.compare import compare

    if args.seed_ensembles and len(args.seeds) < 2:
        from kfold.errors import UsageError

        raise UsageError(f"{prog}: --seed-ensembles averages over seeds; give at least two --seeds")

    tracker = flags.open_tracker(args, Path(args.out).parent)
    with flags.open_backend(args, progress=not args.no_progress) as backend:  # checked; Ray starts at the first fold
        compare(args.data, args.out, presets=args.presets, seeds=args.seeds, k=args.k,
                seed_ensembles=args.seed_ensembles, epochs=args.epochs, device=args.device, tta=args.tta,
                threads=backend.threads(args.threads), progress=not args.no_progress, backend=backend, tracker=tracker)
    flags.tracking_cost(tracker)
    return 0
