#!/usr/bin/env python
"""Presets side by side over seeds, with ensembles and a Public/Private comparison:
python compare.py --data DIR --out OUT [--seeds 0,1,2] [--k 5] [--presets alexnet5-sgd,...,best]"""
import sys

try:  # Ctrl-C while the imports run (torch takes seconds): the same one line as later
    from kfold.commands.compare import main
    from kfold.errors import run_cli
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(run_cli(main))
