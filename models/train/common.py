"""Shared helpers for the Blindfold model training scripts.

Run the training scripts with /usr/bin/python3 from the repository root, e.g.

    /usr/bin/python3 models/train/fmnist-mlp.py

Everything here is deterministic given the seed: torch/numpy/python RNGs are
seeded, torch runs single-threaded and deterministic algorithms are requested.
"""
from __future__ import annotations

import collections
import gzip
import math
import os
import random
import time
from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import onnx
import torch
import torch.nn as nn

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS_DIR = os.path.join(REPO_ROOT, "models")
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"

FMNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def read_idx(path: str) -> np.ndarray:
    """Read a (optionally gzipped) IDX file into a numpy array (big-endian header)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    dtype_code, ndim = data[2], data[3]
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
              0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise ValueError(f"{path}: unknown IDX dtype 0x{dtype_code:02x}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=dtypes[dtype_code], offset=offset)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size mismatch ({arr.size} vs {dims})")
    return arr.reshape(dims)


def load_fmnist(split: str, root: str = FMNIST_DIR) -> Tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST.

    split: "train" (60,000 images) or "t10k"/"test" (10,000 images).
    Returns (images float32 N x 1 x 28 x 28 scaled to [0, 1] by /255 -- no
    mean/std normalisation, labels int64 N).
    """
    if split == "test":
        split = "t10k"
    if split not in ("train", "t10k"):
        raise ValueError(split)
    imgs = read_idx(os.path.join(root, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{split}-labels-idx1-ubyte.gz"))
    x = (imgs.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    y = labels.astype(np.int64)
    assert x.shape[0] == y.shape[0]
    return np.ascontiguousarray(x), y


# ---------------------------------------------------------------------------
# Determinism / training
# ---------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def batches(n: int, batch_size: int, rng: Optional[np.random.Generator]) -> Iterable[np.ndarray]:
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    for s in range(0, n, batch_size):
        yield idx[s:s + batch_size]


def train_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray, *, seed: int,
                     epochs: int, batch_size: int = 128, lr: float = 1e-3,
                     weight_decay: float = 0.0, grad_clip: Optional[float] = None,
                     lr_schedule: str = "cosine",
                     loss_fn: Optional[Callable] = None,
                     eval_fn: Optional[Callable[[nn.Module], float]] = None,
                     log: Callable[[str], None] = print) -> Dict[str, object]:
    """Seeded Adam training loop (single process, CPU, deterministic).

    loss_fn(logits, target) defaults to cross-entropy.  lr_schedule is
    "cosine" (per-step cosine decay to 0) or "const".  Returns a dict with
    timing and per-epoch history.
    """
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    total_steps = epochs * steps_per_epoch
    if lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1.0 + np.cos(np.pi * min(s, total_steps) / total_steps)))
    elif lr_schedule == "const":
        sched = None
    else:
        raise ValueError(lr_schedule)
    history = []
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        tot, n = 0.0, 0
        for bi in batches(len(x), batch_size, rng):
            bi_t = torch.from_numpy(bi)
            xb, yb = xt[bi_t], yt[bi_t]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss at epoch {ep + 1}")
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            tot += float(loss) * len(bi)
            n += len(bi)
        entry = {"epoch": ep + 1, "loss": tot / n, "time_s": time.time() - t0}
        if eval_fn is not None:
            entry["eval"] = eval_fn(model)
        history.append(entry)
        msg = f"epoch {ep + 1:3d}/{epochs} loss {tot / n:.4f} t={time.time() - t0:.1f}s"
        if "eval" in entry:
            msg += f" eval {entry['eval']:.4f}"
        log(msg)
    model.eval()
    return {"train_time_s": time.time() - t0, "history": history}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    model.eval()
    outs = []
    for s in range(0, len(x), batch_size):
        outs.append(model(torch.from_numpy(x[s:s + batch_size])).numpy())
    return np.concatenate(outs, axis=0)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x).argmax(axis=1) == y).mean())


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

INPUT_BOUND_KEY = "blindfold.input_bound"


def format_input_bound(bound: float) -> str:
    """The metadata value for a bound: the shortest decimal that reads back ("1", "0.5")."""
    b = float(bound)
    if not math.isfinite(b) or b <= 0:
        raise ValueError(f"input bound must be positive and finite, is {bound!r}")
    text = repr(b)
    return text[:-2] if text.endswith(".0") else text


def export_onnx(model: nn.Module, example: torch.Tensor, path: str, *,
                opset: int = 13, output_name: str = "logits",
                do_constant_folding: bool = True,
                training=None, input_bound: Optional[float] = None) -> onnx.ModelProto:
    """Export with a dynamic batch axis, check, and verify that the file reloads.

    input_bound: when given, every input value satisfies |x| <= input_bound
    (e.g. 1 for pixels / 255); written as the model's metadata_props entry
    "blindfold.input_bound", from which the MPC backends size their
    comparisons (docs/MPC.md) and whose bound their client enforces.
    """
    model.eval()
    kwargs = {}
    if training is not None:
        kwargs["training"] = training
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.onnx.export(
        model, example, path,
        opset_version=opset,
        input_names=["input"],
        output_names=[output_name],
        dynamic_axes={"input": {0: "N"}, output_name: {0: "N"}},
        do_constant_folding=do_constant_folding,
        **kwargs,
    )
    m = onnx.load(path)
    if input_bound is not None:
        entry = m.metadata_props.add()
        entry.key = INPUT_BOUND_KEY
        entry.value = format_input_bound(input_bound)
        onnx.save(m, path)
        m = onnx.load(path)
    onnx.checker.check_model(m)
    # Round trip: serialise and reload to be sure the file is self-contained.
    m2 = onnx.load_from_string(m.SerializeToString())
    onnx.checker.check_model(m2)
    return m


def op_counts(m: onnx.ModelProto) -> Dict[str, int]:
    c = collections.Counter(n.op_type for n in m.graph.node)
    return dict(sorted(c.items()))


def format_op_list(m: onnx.ModelProto) -> str:
    return ", ".join(f"{k} x{v}" for k, v in op_counts(m).items())


def onnx_io_summary(m: onnx.ModelProto) -> str:
    def dims(vi):
        return [d.dim_param if d.dim_param else d.dim_value
                for d in vi.type.tensor_type.shape.dim]
    def dtype(vi):
        return onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)
    init_names = {i.name for i in m.graph.initializer}
    lines = []
    for vi in m.graph.input:
        if vi.name in init_names:
            continue
        lines.append(f"- input `{vi.name}`: {dtype(vi)} {dims(vi)}")
    for vi in m.graph.output:
        lines.append(f"- output `{vi.name}`: {dtype(vi)} {dims(vi)}")
    return "\n".join(lines)


def initializer_param_count(m: onnx.ModelProto) -> int:
    return int(sum(int(np.prod(i.dims)) if len(i.dims) else 1 for i in m.graph.initializer))


def check_onnx_matches_torch(m: onnx.ModelProto, model: nn.Module, x: np.ndarray,
                             atol: float = 1e-4) -> float:
    """Compare the exported graph to torch by re-running the graph.

    onnx 1.12 has no reference evaluator and onnxruntime is unavailable, so this
    uses the small numpy interpreter in onnx_numpy.py (covers the op set that
    the Blindfold importer supports).  Returns the max abs difference.
    """
    from onnx_numpy import run_model  # local helper module
    ref = predict(model, x)
    got = run_model(m, {"input": x})[0]
    diff = float(np.max(np.abs(ref - got)))
    if not np.allclose(ref, got, atol=atol, rtol=1e-4):
        raise AssertionError(f"ONNX output differs from torch: max abs diff {diff}")
    return diff


def sha256(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Fashion-MNIST driver shared by the fmnist-* scripts
# ---------------------------------------------------------------------------

def _rel(path: str) -> str:
    return os.path.relpath(path, REPO_ROOT)


def run_fmnist(name: str, model: nn.Module, *, seed: int, epochs: int, lr: float,
               batch_size: int = 128, weight_decay: float = 0.0,
               grad_clip: Optional[float] = None, lr_schedule: str = "cosine",
               architecture_md: str = "", extra_md: str = "",
               min_accuracy: Optional[float] = None) -> Dict[str, object]:
    """Train `model` on Fashion-MNIST, export models/<name>.onnx, write models/<name>.md."""
    seed_everything(seed)
    xtr, ytr = load_fmnist("train")
    print(f"[{name}] train {xtr.shape}, params {count_params(model)}")
    info = train_classifier(model, xtr, ytr, seed=seed, epochs=epochs,
                            batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                            grad_clip=grad_clip, lr_schedule=lr_schedule)
    return finish_fmnist(name, model, info, seed=seed, epochs=epochs, lr=lr,
                         batch_size=batch_size, weight_decay=weight_decay,
                         grad_clip=grad_clip, lr_schedule=lr_schedule,
                         architecture_md=architecture_md, extra_md=extra_md,
                         min_accuracy=min_accuracy)


def finish_fmnist(name: str, model: nn.Module, info: Dict[str, object], *, seed: int,
                  epochs: int, lr: float, batch_size: int = 128, weight_decay: float = 0.0,
                  grad_clip: Optional[float] = None, lr_schedule: str = "cosine",
                  architecture_md: str = "", extra_md: str = "",
                  min_accuracy: Optional[float] = None,
                  trainable_params: Optional[int] = None) -> Dict[str, object]:
    """Evaluate a trained model, export models/<name>.onnx and write models/<name>.md."""
    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    if trainable_params is None:
        trainable_params = count_params(model)
    model.eval()
    test_acc = accuracy(model, xte, yte)
    train_acc = accuracy(model, xtr, ytr)
    print(f"[{name}] test accuracy {test_acc:.4f} (train {train_acc:.4f}), "
          f"train time {info['train_time_s']:.1f}s")
    if min_accuracy is not None and test_acc < min_accuracy:
        raise SystemExit(f"[{name}] test accuracy {test_acc:.4f} < required {min_accuracy}")

    onnx_path = os.path.join(MODELS_DIR, f"{name}.onnx")
    # Inputs are pixels / 255 in [0, 1]: |x| <= 1.
    m = export_onnx(model, torch.from_numpy(xte[:1]), onnx_path, input_bound=1.0)
    # Verify the exported graph (numpy interpreter) against torch on 256 test images,
    # and check that the ONNX argmax gives the same accuracy on the full test set.
    diff = check_onnx_matches_torch(m, model, xte[:256])
    from onnx_numpy import run_model
    onnx_logits = np.concatenate([run_model(m, {"input": xte[s:s + 2000]})[0]
                                  for s in range(0, len(xte), 2000)])
    onnx_acc = float((onnx_logits.argmax(1) == yte).mean())
    print(f"[{name}] onnx vs torch max abs diff {diff:.2e}; onnx test accuracy {onnx_acc:.4f}")
    print(f"[{name}] ops: {format_op_list(m)}")
    size = os.path.getsize(onnx_path)

    hist_rows = "\n".join(
        f"| {h['epoch']} | {h['loss']:.4f} | {h['time_s']:.0f} |" for h in info["history"])
    card = f"""# {name}

{architecture_md.strip()}

## Data

- Fashion-MNIST, gzip IDX files from `{FMNIST_DIR}/`
  (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz` for training,
  `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz` for test), read with
  `models/train/common.py:load_fmnist` (gzip + numpy, no torchvision).
- Training: all 60,000 training images. No validation split, no augmentation.
- Test: all 10,000 `t10k` images.
- Classes (label index order): {", ".join(f"{i} {c}" for i, c in enumerate(FMNIST_CLASSES))}.

## Reproduce

```
/usr/bin/python3 models/train/{name}.py
```

(from the repository root; torch {torch.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, CPU,
`torch.set_num_threads(1)`, `torch.use_deterministic_algorithms(True)`)

- Seed: {seed} (python `random`, numpy, torch; numpy `default_rng({seed})` shuffles batches)
- Optimizer: Adam, lr {lr}, weight decay {weight_decay}, batch size {batch_size},
  {epochs} epochs, LR schedule: {"per-step cosine decay to 0" if lr_schedule == "cosine" else "constant"}{f", gradient-norm clipping at {grad_clip}" if grad_clip else ""}
- Loss: cross-entropy on the logits.
- Training wall time: {info['train_time_s']:.0f} s (2-core Debian 12 box, 1 torch thread).

## Results

- **Test accuracy (10,000 t10k images): {test_acc * 100:.2f}%** (PyTorch, eval mode)
- Same accuracy recomputed from the exported ONNX graph with the numpy interpreter
  `models/train/onnx_numpy.py`: {onnx_acc * 100:.2f}%; max |ONNX - torch| logit difference on
  the first 256 test images: {diff:.1e}.
- Training-set accuracy: {train_acc * 100:.2f}%

| epoch | train loss | elapsed s |
|---|---|---|
{hist_rows}

## Interface

{onnx_io_summary(m)}
- Input preprocessing: grayscale pixels as float32 in [0, 1], i.e. `uint8 / 255`;
  **no** mean/std normalisation. Layout NCHW, `N x 1 x 28 x 28`, batch dimension dynamic.
- Metadata (`metadata_props`): `{INPUT_BOUND_KEY}` = `{format_input_bound(1.0)}`, i.e. |input| <= 1.
  The MPC backends (mpc2, mpc3) size their comparisons for this bound, and their client
  refuses inputs outside it (docs/MPC.md).
- Output: `N x 10` float32 raw class scores (logits, no softmax); predicted class =
  argmax over axis 1, indices as listed under Data.

## Exported graph

- File: `models/{name}.onnx`, {size} bytes, ONNX opset 13, IR version {m.ir_version},
  exported with `torch.onnx.export(..., do_constant_folding=True)`, metadata
  `{INPUT_BOUND_KEY}` added, checked with `onnx.checker.check_model`.
- sha256: `{sha256(onnx_path)}`
- Ops (op_type x count): {format_op_list(m)}
- Trainable parameters: {trainable_params} (initializer elements in the graph: {initializer_param_count(m)})
{extra_md.strip()}
"""
    with open(os.path.join(MODELS_DIR, f"{name}.md"), "w") as f:
        f.write(card)
    print(f"[{name}] wrote {_rel(onnx_path)} ({size} bytes) and models/{name}.md")
    return {"test_acc": test_acc, "size": size, "train_time_s": info["train_time_s"],
            "ops": op_counts(m)}
