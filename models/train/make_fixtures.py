"""Write the small Fashion-MNIST fixtures used by the CLI demo tests.

Usage (from the repository root):  /usr/bin/python3 models/train/make_fixtures.py

models/fixtures/fmnist-test-first8.npy         first 8 t10k images, float32 8x1x28x28, pixel/255
models/fixtures/fmnist-test-first8.labels.txt  their labels, one per line
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

N = 8

if __name__ == "__main__":
    x, y = common.load_fmnist("test")
    out = os.path.join(common.MODELS_DIR, "fixtures")
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, f"fmnist-test-first{N}.npy"),
            np.ascontiguousarray(x[:N], dtype="<f4"))
    with open(os.path.join(out, f"fmnist-test-first{N}.labels.txt"), "w") as f:
        f.write("".join(f"{int(v)}\n" for v in y[:N]))
    print("labels:", y[:N].tolist())
