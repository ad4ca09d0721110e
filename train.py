#!/usr/bin/env python
"""Train one model per stratified fold: python train.py --data DIR --preset fast --k 5 --out runs/fast"""
import sys

from kfold.errors import run_cli
from kfold.commands.train import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
