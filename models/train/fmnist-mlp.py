"""Train the fmnist-mlp model: 784-128-128-10 ReLU MLP on Fashion-MNIST.

Usage (from the repository root):  /usr/bin/python3 models/train/fmnist-mlp.py
Writes models/fmnist-mlp.onnx and models/fmnist-mlp.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import common  # noqa: E402

SEED = 1
EPOCHS = 15


def build() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), nn.ReLU(),
        nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


ARCH = """
Plain multilayer perceptron for Fashion-MNIST (baseline / plaintext and MPC-friendly model).

## Architecture

```
input N x 1 x 28 x 28
Flatten                -> N x 784
Linear(784, 128), ReLU
Linear(128, 128), ReLU
Linear(128, 10)        -> logits N x 10
```
"""

if __name__ == "__main__":
    common.seed_everything(SEED)
    model = build()
    common.run_fmnist("fmnist-mlp", model, seed=SEED, epochs=EPOCHS, lr=1e-3,
                      batch_size=128, architecture_md=ARCH, min_accuracy=0.88)
