"""The four MNIST-MIX experiments of the MNIST-MIX report, one command each (``mnist_mix.py``).

``compare`` (models on all language x digit classes), ``roundrobin`` (language-agnostic labels,
one epoch of each language in turn), ``transfer`` (train on one language, test on every language)
and ``sequential`` (each language once, in order, against mixed training). Every experiment writes
CSV tables, PNG figures and ``summary.md`` into its output directory and reports accuracy per
language. Modules: ``common`` (setup, training, evaluation, summary), ``figures``, ``compare``,
``transfer``, ``schedules`` (round-robin and sequential), ``cli``. Importing this package does not
import torch; the experiment modules do.
"""
