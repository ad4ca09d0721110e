#!/usr/bin/env python
"""Per-model test probabilities: python predict.py RUN_DIR [RUN_DIR ...] --data DIR --out PROBS_DIR [--tta N]"""
import sys

from kfold.errors import run_cli
from kfold.commands.predict import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
