#!/usr/bin/env python
"""MNIST-MIX experiments: python mnist_mix.py compare|roundrobin|transfer|sequential --data DIR --out DIR (see --help)."""
import sys

try:  # Ctrl-C while the imports run (torch takes seconds): the same one line as later
    from kfold.errors import run_cli
    from kfold.commands.mnist_mix import main
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(run_cli(main))
