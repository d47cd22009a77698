"""Train the cancer-logreg model: logistic regression on sklearn's breast-cancer data.

Usage (from the repository root):  /usr/bin/python3 models/train/cancer-logreg.py
Writes models/cancer-logreg.onnx, models/cancer-logreg.md and
models/cancer-logreg.test-indices.txt.

The feature standardisation (training-split mean / std) is part of the graph,
so the model takes the 30 raw features.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import sklearn  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import common  # noqa: E402
from onnx_numpy import run_model  # noqa: E402

NAME = "cancer-logreg"
SEED = 0
SPLIT_SEED = 0
TEST_SIZE = 0.25
STEPS = 2000
LR = 0.05
L2 = 1e-3


class Standardize(nn.Module):
    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("std", torch.from_numpy(std.astype(np.float32)))

    def forward(self, x):
        return (x - self.mean) / self.std


def main():
    common.seed_everything(SEED)
    ds = load_breast_cancer()
    X = ds.data.astype(np.float32)
    y = ds.target.astype(np.int64)
    idx = np.arange(len(X))
    tr_idx, te_idx = train_test_split(idx, test_size=TEST_SIZE, random_state=SPLIT_SEED,
                                      stratify=y)
    xtr, ytr, xte, yte = X[tr_idx], y[tr_idx], X[te_idx], y[te_idx]
    mean = xtr.astype(np.float64).mean(axis=0)
    std = xtr.astype(np.float64).std(axis=0)  # population std (ddof=0), like StandardScaler

    model = nn.Sequential(Standardize(mean, std), nn.Linear(30, 1), nn.Sigmoid())
    lin = model[1]
    opt = torch.optim.Adam(lin.parameters(), lr=LR)
    xt = torch.from_numpy(xtr)
    yt = torch.from_numpy(ytr.astype(np.float32)).reshape(-1, 1)
    bce = nn.BCELoss()
    t0 = time.time()
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = bce(model(xt), yt) + L2 * 0.5 * (lin.weight ** 2).sum()
        loss.backward()
        opt.step()
    train_time = time.time() - t0
    model.eval()
    with torch.no_grad():
        p_te = model(torch.from_numpy(xte)).numpy()[:, 0]
        p_tr = model(xt).numpy()[:, 0]
    test_acc = float(((p_te >= 0.5).astype(np.int64) == yte).mean())
    train_acc = float(((p_tr >= 0.5).astype(np.int64) == ytr).mean())
    auc = float(roc_auc_score(yte, p_te))
    n_correct = int(((p_te >= 0.5).astype(np.int64) == yte).sum())
    print(f"[{NAME}] final loss {float(loss):.4f}, test acc {test_acc:.4f} "
          f"({n_correct}/{len(yte)}), train acc {train_acc:.4f}, AUC {auc:.4f}")

    # sklearn reference on the same standardised split (for the card only)
    sk = LogisticRegression(max_iter=5000).fit((xtr - mean) / std, ytr)
    sk_acc = float(sk.score((xte - mean) / std, yte))

    onnx_path = os.path.join(common.MODELS_DIR, f"{NAME}.onnx")
    # Raw features: the largest in the whole table is 4254 (area_worst).
    m = common.export_onnx(model, torch.from_numpy(xte[:1]), onnx_path,
                           output_name="probability", input_bound=10000)
    got = run_model(m, {"input": xte})[0][:, 0]
    diff = float(np.max(np.abs(got - p_te)))
    assert diff < 1e-5, diff
    onnx_acc = float(((got >= 0.5).astype(np.int64) == yte).mean())
    ops = common.format_op_list(m)
    print(f"[{NAME}] onnx diff {diff:.1e}, onnx acc {onnx_acc:.4f}, ops: {ops}")

    with open(os.path.join(common.MODELS_DIR, f"{NAME}.test-indices.txt"), "w") as f:
        f.write("".join(f"{i}\n" for i in te_idx))

    size = os.path.getsize(onnx_path)
    np.set_printoptions(precision=6, suppress=False, linewidth=100)
    card = f"""# {NAME}

Logistic regression on the Wisconsin diagnostic breast-cancer data set, with the
feature standardisation built into the graph (takes the 30 raw features).

## Architecture

```
input N x 30 (raw features, float32)
(x - mean) / std        mean, std: 30-vectors from the TRAINING split (constants in the graph)
Linear(30, 1)
Sigmoid                 -> probability N x 1
```

## Data

- `sklearn.datasets.load_breast_cancer()` (bundled with scikit-learn {sklearn.__version__},
  no download): 569 samples, 30 float features, labels 0/1.
- **Label convention (sklearn's):** 0 = malignant (212 samples), 1 = benign (357 samples).
  The model outputs P(class 1) = P(benign); predict class 1 iff probability >= 0.5.
- Split, reproducible exactly:

  ```python
  from sklearn.datasets import load_breast_cancer
  from sklearn.model_selection import train_test_split
  ds = load_breast_cancer()
  idx = np.arange(len(ds.data))
  tr_idx, te_idx = train_test_split(idx, test_size={TEST_SIZE}, random_state={SPLIT_SEED}, stratify=ds.target)
  ```

  giving {len(tr_idx)} training and {len(te_idx)} test rows. The test row indices (into the
  order of `load_breast_cancer()`, in the order `train_test_split` returns them) are stored
  one per line in `models/{NAME}.test-indices.txt`.
- The same table ships as `/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv`
  (one header line `569,30,malignant,benign`, then 569 rows of 30 features and the label),
  in the same row order as `load_breast_cancer()`, so a non-Python evaluator can read the
  rows listed in the indices file directly from it; the threshold `p > 0.5` and `p >= 0.5`
  give identical predictions here (no test probability within 0.01 of 0.5).
- Standardisation: mean and population std (ddof = 0, as `StandardScaler`) of the
  {len(tr_idx)} training rows, computed in float64 and stored as float32 constants.

## Reproduce

```
/usr/bin/python3 models/train/{NAME}.py
```

- Seed: torch {SEED}; split `random_state={SPLIT_SEED}`.
- Optimizer: full-batch Adam, lr {LR}, {STEPS} steps, loss = binary cross-entropy
  + {L2} * 0.5 * ||w||^2 (bias not penalised).
- Training wall time: {train_time:.1f} s.

## Results (test split, {len(te_idx)} rows)

- **Test accuracy: {test_acc * 100:.2f}%** ({n_correct}/{len(yte)} correct, threshold 0.5)
- Test ROC AUC: {auc:.4f}; training accuracy: {train_acc * 100:.2f}%
- Accuracy from the exported ONNX graph (numpy interpreter `models/train/onnx_numpy.py`):
  {onnx_acc * 100:.2f}%, max |ONNX - torch| probability difference {diff:.1e}.
- Reference: `sklearn.linear_model.LogisticRegression()` (C=1) on the same standardised
  split reaches {sk_acc * 100:.2f}%.

## Interface

{common.onnx_io_summary(m)}
- Input: the 30 raw features in `load_breast_cancer().feature_names` order, float32, no
  preprocessing (the graph standardises them).
- Output: `N x 1` float32 probability of class 1 (benign).

## Exported graph

- File: `models/{NAME}.onnx`, {size} bytes, ONNX opset 13, IR version {m.ir_version},
  `do_constant_folding=True`, checked with `onnx.checker.check_model`.
- sha256: `{common.sha256(onnx_path)}`
- Ops (op_type x count): {ops}
- Trainable parameters: {common.count_params(model)} (31); plus 60 constants (mean, std).
"""
    with open(os.path.join(common.MODELS_DIR, f"{NAME}.md"), "w") as f:
        f.write(card)
    print(f"[{NAME}] wrote models/{NAME}.onnx ({size} bytes), .md, .test-indices.txt")


if __name__ == "__main__":
    main()
