"""Training (stage 6) and statistics (stage 5): dataset, samplers, trainer, checkpoints, distributed."""
