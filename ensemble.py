#!/usr/bin/env python
"""Ensemble probability files and submissions: python ensemble.py --help (see kfold/ensemble_cli.py)."""
import sys

from kfold.commands.ensemble import main
from kfold.errors import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(main))
