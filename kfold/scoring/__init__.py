"""Torch-free scoring: ensembles, calibration, leaderboard, agreement reports, learning curves."""
