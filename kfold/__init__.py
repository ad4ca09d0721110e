"""kfold: stratified k-fold training, ensembling and local leaderboards for small-image competitions."""

__version__ = "0.1.0"
