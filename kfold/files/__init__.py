"""Torch-free file formats: atomic writes, probability files, submissions, folds, run directories."""
