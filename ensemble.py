#!/usr/bin/env python
"""Ensemble probability files and submissions: python ensemble.py --help (see kfold/ensemble_cli.py)."""
import sys

try:  # Ctrl-C while the imports run (torch takes seconds): the same one line as later
    from kfold.commands.ensemble import main
    from kfold.errors import run_cli
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(run_cli(main))
