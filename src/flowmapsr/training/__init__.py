"""Training: the Accelerate trainer, EMA, checkpoints, recipes."""
