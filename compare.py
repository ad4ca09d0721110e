#!/usr/bin/env python
"""Presets side by side over seeds, with ensembles and a Public/Private comparison:
python compare.py --data DIR --out OUT [--seeds 0,1,2] [--k 5] [--presets alexnet5-sgd,...,best]"""
import sys

from kfold.commands.compare import main
from kfold.errors import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(main))
