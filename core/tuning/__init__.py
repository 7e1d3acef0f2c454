"""Hyperparameter search on Optuna: the search space (built from TrainConfig's field metadata), where studies
are stored, and the runner whose trials are ordinary runs of the run store. Optuna is imported only when a
study is opened or a distribution is built, so `import core` stays free of it."""
