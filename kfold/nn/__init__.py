"""Everything that imports torch: models, augmentation, the training engine, inference, fold training and prediction."""
