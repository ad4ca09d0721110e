"""``kfold rehearse``: run a package's notebook here as Kaggle will (offline, only Kaggle's image) and check that
its output is byte-identical to the local submission. Parses flags, calls ``kfold.flows.rehearse.rehearse``,
prints; exit 1 when the output differs or the projected time exceeds the limit."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from kfold.commands import args as flags

HELP = "run a package's notebook offline in Kaggle's image only; check its output byte for byte"

DESCRIPTION = """\
Rehearse a package written by kfold package: lay out /kaggle/input (the competition's files without the test
set's labels, the dataset as Kaggle mounts it) and /kaggle/working in a temporary folder, make a throwaway
environment holding only Kaggle's image (not kfold: the notebook installs it from the dataset's wheel), execute
the notebook with nbclient with the network blocked (a network namespace where the machine allows it, else a
socket guard; the output says which), and compare its output with the local submission byte for byte (with a
--data of more test images than the packaged one, a local prediction on those images). Reports wall time and
peak memory, projected to the hidden test set's rows against the time limit. Nothing is written."""


def build_parser(prog: str = "kfold rehearse") -> argparse.ArgumentParser:
    p = flags.parser(prog, DESCRIPTION)
    p.add_argument("package", metavar="PKG", type=Path, help="the folder kfold package --out wrote")
    p.add_argument("--data", type=Path, default=None,
                   help="the competition's folder (default: the one the package was made with)")
    p.add_argument("--time-limit", type=flags.finite_float(0, 72, low_open=True), default=9.0, metavar="HOURS",
                   help="the competition's notebook time limit (default: 9)")
    p.add_argument("--hidden-rows", type=flags.positive_int, default=None, metavar="N",
                   help="rows of the hidden test set the scoring run predicts (default: the sample's rows)")
    p.add_argument("--network", default="auto", choices=["auto", "namespace", "guard"],
                   help="how the network is blocked: a network namespace (unshare -n), the socket guard, or auto")
    p.add_argument("--timeout", type=flags.finite_float(0, low_open=True), default=None, metavar="SECONDS",
                   help="stop a notebook cell running longer than this (default: none)")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "kfold rehearse") -> int:
    args = build_parser(prog).parse_args(argv)
    from kfold.flows.rehearse import rehearse

    result = rehearse(args.package, args.data, time_limit=args.time_limit, hidden_rows=args.hidden_rows,
                      network=args.network, timeout=args.timeout)
    for line in result.lines:
        print(line)
    return 0 if result.ok else 1
