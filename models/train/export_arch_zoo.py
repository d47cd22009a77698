"""Export a zoo of small, randomly initialised (seeded) PyTorch architectures for
conformance tests of the ONNX importer / engine.

Usage (from the repository root):

    /usr/bin/python3 models/train/export_arch_zoo.py [OUT_DIR]     # default build/zoo

For every architecture <name> it writes into OUT_DIR:

    <name>.onnx           dynamic batch axis 0 ("N"), input "input", output "output"
    <name>.input.npy      seeded random input, batch 3, float32, C order (.npy v1.0)
    <name>.expected.npy   PyTorch's eval-mode output for that input, float32

Each graph is exported with a batch-2 example and checked at batch 3, so a
batch size baked into the graph would be caught.  Every graph is also run
through the numpy interpreter (onnx_numpy.py) and compared with PyTorch, and
the op list is checked against the op set the Blindfold importer supports;
a forbidden op (Shape, ConstantOfShape, Expand, Where, Equal, ...) makes the
script fail.
"""
from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common  # noqa: E402
from onnx_numpy import fold_constants, run_model  # noqa: E402

ALLOWED_OPS = frozenset("""
Gemm MatMul Add Sub Mul Div Conv Relu Sigmoid Tanh Erf MaxPool AveragePool
GlobalAveragePool Pad Flatten Reshape Transpose Concat Squeeze Unsqueeze Slice
Gather BatchNormalization LayerNormalization Softmax Pow Sqrt ReduceMean
Constant Identity Cast
""".split())


# ---------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------

def randomize_bn(bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Give a BatchNorm non-trivial affine params and running statistics."""
    with torch.no_grad():
        n = bn.num_features
        bn.weight.copy_(torch.rand(n) + 0.5)
        bn.bias.copy_(torch.randn(n) * 0.2)
        bn.running_mean.copy_(torch.randn(n) * 0.3)
        bn.running_var.copy_(torch.rand(n) + 0.5)


class ConvReluBN(nn.Module):
    """(a) Conv - ReLU - BatchNorm2d - Conv - BatchNorm2d - ReLU.  The first BN
    (after a ReLU) cannot be folded into a conv; the second one would be fused into
    conv2 by torch's eval-mode export, so this model is exported with
    training=TrainingMode.PRESERVE (on a model in eval mode), which skips that
    fusion and exports inference-mode BatchNormalization nodes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 6, 3, stride=2)
        self.bn2 = nn.BatchNorm2d(6, eps=1e-3)
        randomize_bn(self.bn1)
        randomize_bn(self.bn2)

    def forward(self, x):
        x = self.bn1(torch.relu(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(x)))


class PadAvgPool(nn.Module):
    """(b) explicit zero padding before AvgPool2d, plus AvgPool2d's own padding
    with count_include_pad True / False and ceil_mode."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))  # left, right, top, bottom
        self.pool_a = nn.AvgPool2d(3, stride=2)
        self.pool_incl = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.pool_excl = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.pool_ceil = nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False)
        self.conv = nn.Conv2d(2, 4, 1)

    def forward(self, x):
        y = self.pool_a(self.pad(x))                     # N x 2 x 6 x 7 for 12 x 12 input
        z = F.pad(x, (2, 2, 2, 2))                       # N x 2 x 16 x 16
        a = self.pool_incl(z) + self.pool_excl(z)        # N x 2 x 16 x 16
        b = self.pool_ceil(self.conv(x))                 # N x 4 x 6 x 6
        return torch.cat([torch.flatten(y, 1), torch.flatten(a, 1), torch.flatten(b, 1)], dim=1)


class TinyTransformer(nn.Module):
    """(c) one pre-LN transformer encoder block with 2-head softmax attention and a
    GELU (erf) MLP, on a fixed sequence length T; classifier over the mean token
    plus the first token."""

    T, D_IN, D, H, CLASSES = 6, 10, 16, 2, 5

    def __init__(self):
        super().__init__()
        D = self.D
        self.embed = nn.Linear(self.D_IN, D)
        self.ln1 = nn.LayerNorm(D)
        self.q = nn.Linear(D, D)
        self.k = nn.Linear(D, D)
        self.v = nn.Linear(D, D)
        self.proj = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(D, 32), nn.GELU(), nn.Linear(32, D))
        self.head = nn.Linear(D, self.CLASSES)
        with torch.no_grad():
            for ln in (self.ln1, self.ln2):
                ln.weight.copy_(torch.rand(D) + 0.5)
                ln.bias.copy_(torch.randn(D) * 0.1)

    def forward(self, x):  # x: N x T x D_IN
        T, D, H = self.T, self.D, self.H
        dh = D // H
        h = self.embed(x)
        y = self.ln1(h)
        # fixed-size reshapes: only the batch dim is inferred (-1)
        q = self.q(y).reshape(-1, T, H, dh).transpose(1, 2)   # N x H x T x dh
        k = self.k(y).reshape(-1, T, H, dh).transpose(1, 2)
        v = self.v(y).reshape(-1, T, H, dh).transpose(1, 2)
        att = torch.softmax(torch.matmul(q, k.transpose(2, 3)) / math.sqrt(dh), dim=-1)
        o = torch.matmul(att, v).transpose(1, 2).reshape(-1, T, D)
        h = h + self.proj(o)
        h = h + self.mlp(self.ln2(h))
        pooled = h.mean(dim=1) + h[:, 0]
        return self.head(pooled)


class GroupedBranches(nn.Module):
    """(d) two branches (grouped dilated strided conv + Sigmoid, grouped strided
    conv + Tanh), Concat, depthwise conv, global average pool, classifier."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=4)
        self.b2 = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, bias=False)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 12, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 7)

    def forward(self, x):  # N x 4 x 20 x 20
        a = torch.sigmoid(self.b1(x))                 # N x 8 x 10 x 10
        b = torch.tanh(self.b2(x))                    # N x 8 x 10 x 10
        y = torch.cat([a, b], dim=1)
        y = torch.relu(self.pw(self.dw(y)))
        y = torch.flatten(self.gap(y), 1)
        return self.fc(y)


class MLPGemm(nn.Module):
    """(e) plain MLP: Gemm layers with ReLU / Tanh / Sigmoid."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(20, 32), nn.ReLU(),
            nn.Linear(32, 24), nn.Tanh(),
            nn.Linear(24, 16), nn.Sigmoid(),
            nn.Linear(16, 4),
        )

    def forward(self, x):
        return self.net(x)


class MaxPoolSlice(nn.Module):
    """(f) MaxPool with padding, channel Slice, Unsqueeze/Squeeze, Sub / Pow / Sqrt."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):  # N x 2 x 9 x 9
        y = self.pool(self.conv(x))                  # N x 6 x 4 x 4
        a, b = y[:, :3], y[:, 3:]                    # Slice
        d = torch.sqrt((a - b) ** 2 + 1.0)           # Sub, Pow, Add, Sqrt
        d = d.unsqueeze(1).squeeze(1)                # Unsqueeze / Squeeze
        return torch.flatten(d, 1)


# name -> (constructor, per-sample input shape, export kwargs)
ZOO = {
    "conv_relu_bn": (ConvReluBN, (3, 12, 12), dict(opset=13, training=torch.onnx.TrainingMode.PRESERVE,
                                                        do_constant_folding=False)),
    "pad_avgpool": (PadAvgPool, (2, 12, 12), dict(opset=13)),
    "tiny_transformer": (TinyTransformer, (TinyTransformer.T, TinyTransformer.D_IN), dict(opset=17)),
    "grouped_branches": (GroupedBranches, (4, 20, 20), dict(opset=13)),
    "mlp_gemm": (MLPGemm, (20,), dict(opset=13)),
    "maxpool_slice": (MaxPoolSlice, (2, 9, 9), dict(opset=13)),
}

# ops that must be present in a given graph (what the architecture is meant to test)
REQUIRED = {
    "conv_relu_bn": {"BatchNormalization": 2, "Conv": 2, "Relu": 2},
    "pad_avgpool": {"Pad", "AveragePool", "Concat"},
    "tiny_transformer": {"MatMul", "Transpose", "Div", "Softmax", "Erf", "Add", "Reshape"},
    "grouped_branches": {"Conv", "Sigmoid", "Tanh", "Concat", "GlobalAveragePool"},
    "mlp_gemm": {"Gemm"},
    "maxpool_slice": {"MaxPool", "Slice"},
}


def export_one(name: str, out_dir: str, seed: int) -> str:
    ctor, shape, kw = ZOO[name]
    torch.manual_seed(seed)
    model = ctor().eval()
    rng = np.random.default_rng(seed)
    x3 = rng.standard_normal((3, *shape)).astype(np.float32)
    x2 = rng.standard_normal((2, *shape)).astype(np.float32)
    path = os.path.join(out_dir, f"{name}.onnx")
    m = common.export_onnx(model, torch.from_numpy(x2), path, output_name="output", **kw)
    # torch 1.13 leaves constant subgraphs (e.g. F.pad's pads computation with
    # ConstantOfShape) in the graph; fold them so only the supported op set remains.
    m = fold_constants(m)
    onnx.save(m, path)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = common.op_counts(m)
    bad = sorted(set(ops) - ALLOWED_OPS)
    if bad:
        raise SystemExit(f"{name}: forbidden ops in the exported graph: {bad} (all ops: {ops})")
    req = REQUIRED[name]
    req = req if isinstance(req, dict) else {k: 1 for k in req}
    missing = sorted(k for k, c in req.items() if ops.get(k, 0) < c)
    if missing:
        raise SystemExit(f"{name}: expected ops missing from the exported graph: {missing} (ops: {ops})")
    with torch.no_grad():
        expected = model(torch.from_numpy(x3)).numpy().astype(np.float32)
    got = run_model(m, {"input": x3})[0]
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4, rtol=1e-4):
        raise SystemExit(f"{name}: numpy interpretation of the ONNX graph differs from torch: "
                         f"shapes {got.shape} vs {expected.shape}, "
                         f"max diff {np.max(np.abs(got - expected)) if got.shape == expected.shape else 'n/a'}")
    np.save(os.path.join(out_dir, f"{name}.input.npy"), np.ascontiguousarray(x3, dtype="<f4"))
    np.save(os.path.join(out_dir, f"{name}.expected.npy"), np.ascontiguousarray(expected, dtype="<f4"))
    opset = kw.get("opset", 13)
    return (f"{name}: opset {opset}, input {list(x3.shape)} -> output {list(expected.shape)}, "
            f"max|onnx-torch| {np.max(np.abs(got - expected)):.1e}\n  ops: "
            + ", ".join(f"{k} x{v}" for k, v in ops.items()))


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else os.path.join(common.REPO_ROOT, "build", "zoo")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    for i, name in enumerate(ZOO):
        print(export_one(name, out_dir, seed=1000 + i), flush=True)
    print(f"wrote {len(ZOO)} models to {out_dir} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main(sys.argv)
