"""The engine: run settings, datasets, the model, optimizers, the background trainer."""
