"""The course's recipe, written once: every default elsewhere (TrainConfig's fields, the model, the Keras model,
the labs' small experiments) reads it from here."""
from __future__ import annotations

HIDDEN = (512, 256, 128, 32)  # 784 -> 512 -> 256 -> 128 -> 32 -> 10, ReLU after each hidden layer
LR = 1e-3  # Adam
BATCH_SIZE = 64
EPOCHS = 10
DATASET = "mnist"
