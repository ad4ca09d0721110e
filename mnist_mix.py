#!/usr/bin/env python
"""MNIST-MIX experiments: python mnist_mix.py compare|roundrobin|transfer|sequential --data DIR --out DIR (see --help)."""
import sys

from kfold.errors import run_cli
from kfold.commands.mnist_mix import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
