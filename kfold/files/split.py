"""The one place for the defaults of a competition's Public/Private split (no imports: cheap everywhere).

Kaggle scores a competition's Public leaderboard on a share of the test rows and the Private one on the
rest; kfold's generated solution files, ``kfold make-competition`` and ``kfold leaderboard`` (for a solution
without a Usage column) all use these defaults.
"""

PUBLIC_FRACTION = 0.3  # share of the test rows that are Public
SOLUTION_SEED = 0      # seed of the generated split
