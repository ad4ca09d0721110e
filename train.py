#!/usr/bin/env python
"""Train one model per stratified fold: python train.py --data DIR --preset fast --k 5 --out runs/fast"""
import sys

try:  # Ctrl-C while the imports run (torch takes seconds): the same one line as later
    from kfold.errors import run_cli
    from kfold.commands.train import main
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(run_cli(main))
