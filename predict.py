#!/usr/bin/env python
"""Per-model test probabilities: python predict.py RUN_DIR [RUN_DIR ...] --data DIR --out PROBS_DIR [--tta N]"""
import sys

try:  # Ctrl-C while the imports run (torch takes seconds): the same one line as later
    from kfold.errors import run_cli
    from kfold.commands.predict import main
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(run_cli(main))
