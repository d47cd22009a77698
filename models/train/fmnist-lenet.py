"""Train the fmnist-lenet model: a small LeNet-style CNN on Fashion-MNIST.

Usage (from the repository root):  /usr/bin/python3 models/train/fmnist-lenet.py
Writes models/fmnist-lenet.onnx and models/fmnist-lenet.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch.nn as nn  # noqa: E402

import common  # noqa: E402

SEED = 1
EPOCHS = 15


def build() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),    # 16 x 12 x 12
        nn.Conv2d(16, 16, 5), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 4 x 4
        nn.Flatten(),                                       # 256
        nn.Linear(256, 100), nn.ReLU(),
        nn.Linear(100, 10),
    )


ARCH = """
LeNet-style convolutional network for Fashion-MNIST.

## Architecture

```
input N x 1 x 28 x 28
Conv2d(1, 16, kernel 5, stride 1, no padding)  -> N x 16 x 24 x 24, ReLU
MaxPool2d(2)                                    -> N x 16 x 12 x 12
Conv2d(16, 16, kernel 5, stride 1, no padding) -> N x 16 x 8 x 8, ReLU
MaxPool2d(2)                                    -> N x 16 x 4 x 4
Flatten                                         -> N x 256
Linear(256, 100), ReLU
Linear(100, 10)                                 -> logits N x 10
```
"""

if __name__ == "__main__":
    common.seed_everything(SEED)
    model = build()
    common.run_fmnist("fmnist-lenet", model, seed=SEED, epochs=EPOCHS, lr=2e-3,
                      batch_size=128, architecture_md=ARCH, min_accuracy=0.89)
