"""Tiny numpy interpreter for the ONNX op subset that Blindfold's importer supports.

onnx 1.12 ships no reference evaluator and onnxruntime is not installed, so the
training/export scripts use this to check that an exported graph computes the
same thing as the PyTorch module it came from.  It is a test aid only: float32
/ float64 / int64 tensors, NCHW layouts, no broadcasting subtleties beyond
numpy's (which match ONNX multidirectional broadcasting).

Supported ops: Gemm MatMul Add Sub Mul Div Conv Relu Sigmoid Tanh Erf MaxPool
AveragePool GlobalAveragePool Pad Flatten Reshape Transpose Concat Squeeze
Unsqueeze Slice Gather BatchNormalization LayerNormalization Softmax Pow Sqrt
ReduceMean Constant Identity Cast.
"""
from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
import onnx
from onnx import numpy_helper

try:
    from scipy.special import erf as _erf
except Exception:  # pragma: no cover
    _erf = np.vectorize(math.erf)

SUPPORTED_OPS = frozenset("""
Gemm MatMul Add Sub Mul Div Conv Relu Sigmoid Tanh Erf MaxPool AveragePool
GlobalAveragePool Pad Flatten Reshape Transpose Concat Squeeze Unsqueeze Slice
Gather BatchNormalization LayerNormalization Softmax Pow Sqrt ReduceMean
Constant Identity Cast
""".split())


def _attrs(node) -> Dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _spatial_params(x_shape, kernel, a):
    nsp = len(kernel)
    strides = list(a.get("strides", [1] * nsp))
    dil = list(a.get("dilations", [1] * nsp))
    pads = list(a.get("pads", [0] * (2 * nsp)))
    auto_pad = a.get("auto_pad", b"NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in ("NOTSET", "VALID"):
        # SAME_UPPER / SAME_LOWER
        pads = [0] * (2 * nsp)
        for i in range(nsp):
            n = x_shape[2 + i]
            out = -(-n // strides[i])
            eff = (kernel[i] - 1) * dil[i] + 1
            total = max(0, (out - 1) * strides[i] + eff - n)
            lo = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            pads[i], pads[i + nsp] = lo, total - lo
    return strides, dil, pads


def _windows(x, kernel, strides, dil, pads, pad_value, ceil_mode=0):
    """Return (patches [N, C, *out, *kernel], out_shape, padded-valid-mask patches)."""
    nsp = len(kernel)
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp]) for i in range(nsp)]
    out = []
    extra = []
    for i in range(nsp):
        n = x.shape[2 + i] + pads[i] + pads[i + nsp]
        eff = (kernel[i] - 1) * dil[i] + 1
        if ceil_mode:
            o = -(-(n - eff) // strides[i]) + 1
            # last window must start inside input or left padding
            if (o - 1) * strides[i] >= x.shape[2 + i] + pads[i]:
                o -= 1
        else:
            o = (n - eff) // strides[i] + 1
        out.append(o)
        need = (o - 1) * strides[i] + eff
        extra.append(max(0, need - n))
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp] + extra[i]) for i in range(nsp)]
    xp = np.pad(x, pad_width, constant_values=pad_value)
    # mask: 1 for real input, 0 for explicit pads, -1 for ceil-mode overhang
    mask = np.zeros(xp.shape[2:], dtype=np.int8)
    sl = tuple(slice(pads[i], pads[i] + x.shape[2 + i]) for i in range(nsp))
    mask[...] = -1
    inner = tuple(slice(0, pads[i] + x.shape[2 + i] + pads[i + nsp]) for i in range(nsp))
    mask[inner] = 0
    mask[sl] = 1
    N, C = x.shape[:2]
    patches = np.empty((N, C, *out, *kernel), dtype=x.dtype)
    mpatches = np.empty((*out, *kernel), dtype=np.int8)
    for kidx in np.ndindex(*kernel):
        src = tuple(slice(kidx[i] * dil[i], kidx[i] * dil[i] + (out[i] - 1) * strides[i] + 1, strides[i])
                    for i in range(nsp))
        patches[(slice(None), slice(None)) + tuple(slice(None) for _ in range(nsp)) + kidx] = xp[(slice(None), slice(None)) + src]
        mpatches[tuple(slice(None) for _ in range(nsp)) + kidx] = mask[src]
    return patches, out, mpatches


def _conv(x, w, b, a):
    kernel = list(w.shape[2:])
    strides, dil, pads = _spatial_params(x.shape, kernel, a)
    g = int(a.get("group", 1))
    patches, out, _ = _windows(x, kernel, strides, dil, pads, 0.0)
    N, C = x.shape[:2]
    M = w.shape[0]
    nsp = len(kernel)
    cg, mg = C // g, M // g
    res = np.empty((N, M, *out), dtype=np.result_type(x, w))
    for gi in range(g):
        p = patches[:, gi * cg:(gi + 1) * cg]  # N, cg, *out, *k
        # move channel next to kernel dims: N, *out, cg, *k
        p = np.moveaxis(p, 1, 1 + nsp)
        p = p.reshape(N, *out, -1)
        wg = w[gi * mg:(gi + 1) * mg].reshape(mg, -1)
        r = p @ wg.T  # N, *out, mg
        res[:, gi * mg:(gi + 1) * mg] = np.moveaxis(r, -1, 1)
    if b is not None:
        res = res + b.reshape(1, -1, *([1] * nsp))
    return res


def _pool(x, a, kind):
    kernel = list(a["kernel_shape"])
    strides, dil, pads = _spatial_params(x.shape, kernel, a)
    ceil_mode = int(a.get("ceil_mode", 0))
    nsp = len(kernel)
    kaxes = tuple(range(2 + nsp, 2 + 2 * nsp))
    if kind == "max":
        patches, _, m = _windows(x, kernel, strides, dil, pads, -np.inf, ceil_mode)
        return patches.max(axis=kaxes)
    patches, _, m = _windows(x, kernel, strides, dil, pads, 0.0, ceil_mode)
    s = patches.sum(axis=kaxes)
    kax = tuple(range(nsp, 2 * nsp))
    if int(a.get("count_include_pad", 0)):
        cnt = (m >= 0).sum(axis=kax)
    else:
        cnt = (m == 1).sum(axis=kax)
    return (s / cnt.astype(x.dtype)).astype(x.dtype)


def _run_node(node, ins: List[np.ndarray]) -> List[np.ndarray]:
    op = node.op_type
    a = _attrs(node)
    if op == "Constant":
        return [numpy_helper.to_array(a["value"])]
    if op == "Identity":
        return [ins[0]]
    if op == "ConstantOfShape":  # only used by fold_constants
        v = a.get("value")
        v = numpy_helper.to_array(v) if v is not None else np.zeros(1, np.float32)
        return [np.full(ins[0].astype(np.int64).tolist(), v.reshape(-1)[0], dtype=v.dtype)]
    if op == "Cast":
        to = onnx.helper.tensor_dtype_to_np_dtype(a["to"]) if hasattr(onnx.helper, "tensor_dtype_to_np_dtype") \
            else onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[a["to"]]
        return [ins[0].astype(to)]
    if op in ("Add", "Sub", "Mul", "Div", "Pow"):
        x, y = ins
        f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
             "Div": np.divide, "Pow": np.power}[op]
        if op == "Div" and np.issubdtype(x.dtype, np.integer):
            return [(x // y).astype(x.dtype)]
        r = f(x, y)
        if op == "Pow":
            r = r.astype(x.dtype)
        return [r]
    if op == "Sqrt":
        return [np.sqrt(ins[0])]
    if op == "Relu":
        return [np.maximum(ins[0], 0).astype(ins[0].dtype)]
    if op == "Sigmoid":
        return [(1.0 / (1.0 + np.exp(-ins[0]))).astype(ins[0].dtype)]
    if op == "Tanh":
        return [np.tanh(ins[0])]
    if op == "Erf":
        return [_erf(ins[0]).astype(ins[0].dtype)]
    if op == "MatMul":
        return [np.matmul(ins[0], ins[1])]
    if op == "Gemm":
        A, B = ins[0], ins[1]
        if a.get("transA", 0):
            A = A.T
        if a.get("transB", 0):
            B = B.T
        r = a.get("alpha", 1.0) * (A @ B)
        if len(ins) > 2 and ins[2] is not None:
            r = r + a.get("beta", 1.0) * ins[2]
        return [r.astype(ins[0].dtype)]
    if op == "Conv":
        return [_conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)]
    if op == "MaxPool":
        return [_pool(ins[0], a, "max")]
    if op == "AveragePool":
        return [_pool(ins[0], a, "avg")]
    if op == "GlobalAveragePool":
        x = ins[0]
        return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)]
    if op == "Pad":
        x = ins[0]
        pads = ins[1].astype(np.int64).tolist()
        val = ins[2].item() if len(ins) > 2 and ins[2] is not None and ins[2].size else 0.0
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        r = x.ndim
        # negative pads = crop
        begin, end = pads[:r], pads[r:]
        pw = [(max(0, begin[i]), max(0, end[i])) for i in range(r)]
        np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[mode]
        y = np.pad(x, pw, mode=np_mode, **({"constant_values": val} if mode == "constant" else {}))
        sl = tuple(slice(-min(0, begin[i]), y.shape[i] + min(0, end[i])) for i in range(r))
        return [y[sl]]
    if op == "Flatten":
        x = ins[0]
        ax = a.get("axis", 1)
        if ax < 0:
            ax += x.ndim
        return [x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)]
    if op == "Reshape":
        x, shape = ins[0], ins[1].astype(np.int64).tolist()
        allowzero = a.get("allowzero", 0)
        shape = [x.shape[i] if (s == 0 and not allowzero) else s for i, s in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Transpose":
        perm = a.get("perm")
        return [np.transpose(ins[0], perm)]
    if op == "Concat":
        return [np.concatenate(ins, axis=a["axis"])]
    if op == "Squeeze":
        axes = ins[1].tolist() if len(ins) > 1 else a.get("axes")
        if axes is None:
            return [np.squeeze(ins[0])]
        return [np.squeeze(ins[0], axis=tuple(int(v) for v in axes))]
    if op == "Unsqueeze":
        axes = ins[1].tolist() if len(ins) > 1 else a.get("axes")
        x = ins[0]
        r = x.ndim + len(axes)
        for ax in sorted(int(v) % r for v in axes):
            x = np.expand_dims(x, ax)
        return [x]
    if op == "Slice":
        x = ins[0]
        starts, ends = ins[1].tolist(), ins[2].tolist()
        axes = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
        steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        sl = [slice(None)] * x.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            n = x.shape[ax]
            # clamp huge sentinel values the exporter uses
            s = max(-n - 1, min(n, s))
            e = max(-n - 1, min(n, e))
            sl[ax] = slice(s, e, st)
        return [x[tuple(sl)]]
    if op == "Gather":
        return [np.take(ins[0], ins[1].astype(np.int64), axis=a.get("axis", 0))]
    if op == "BatchNormalization":
        x, sc, b, mean, var = ins[:5]
        eps = a.get("epsilon", 1e-5)
        sh = (1, -1) + (1,) * (x.ndim - 2)
        y = (x - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * sc.reshape(sh) + b.reshape(sh)
        return [y.astype(x.dtype)]
    if op == "LayerNormalization":
        x, sc = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        ax = a.get("axis", -1)
        eps = a.get("epsilon", 1e-5)
        axes = tuple(range(ax % x.ndim, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        y = (x - mu) / np.sqrt(var + eps) * sc
        if b is not None:
            y = y + b
        return [y.astype(x.dtype)]
    if op == "Softmax":
        x = ins[0]
        ax = a.get("axis", -1)
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        return [(e / e.sum(axis=ax, keepdims=True)).astype(x.dtype)]
    if op == "ReduceMean":
        x = ins[0]
        axes = a.get("axes")
        if axes is None and len(ins) > 1:
            axes = ins[1].tolist()
        keep = bool(a.get("keepdims", 1))
        ax = None if axes is None else tuple(int(v) for v in axes)
        return [x.mean(axis=ax, keepdims=keep).astype(x.dtype)]
    raise NotImplementedError(f"op {op} not supported by onnx_numpy")


def run_model(m: onnx.ModelProto, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
    env: Dict[str, np.ndarray] = {}
    for init in m.graph.initializer:
        env[init.name] = numpy_helper.to_array(init)
    env.update(feeds)
    for node in m.graph.node:
        if node.op_type not in SUPPORTED_OPS:
            raise NotImplementedError(f"op {node.op_type} not in the supported subset")
        ins = [env[n] if n else None for n in node.input]
        outs = _run_node(node, ins)
        for name, v in zip(node.output, outs):
            if name:
                env[name] = np.asarray(v)
    return [env[o.name] for o in m.graph.output]


# ops that fold_constants may evaluate even though models may not contain them
_FOLD_ONLY_OPS = frozenset({"ConstantOfShape"})


def fold_constants(m: onnx.ModelProto) -> onnx.ModelProto:
    """Evaluate every node whose inputs are all constants and replace its outputs
    by initializers; Constant nodes that feed remaining nodes become initializers.

    torch 1.13 leaves e.g. the pads computation of F.pad (ConstantOfShape, Concat,
    Reshape, Slice, Transpose, Cast on constants) in the graph even with
    do_constant_folding=True; this removes such subgraphs.
    """
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    g = m2.graph
    consts: Dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    graph_outputs = {o.name for o in g.output}
    kept = []
    for node in g.node:
        foldable = node.op_type in SUPPORTED_OPS or node.op_type in _FOLD_ONLY_OPS
        if foldable and all((not n) or n in consts for n in node.input) and \
                not any(o in graph_outputs for o in node.output):
            outs = _run_node(node, [consts[n] if n else None for n in node.input])
            for name, v in zip(node.output, outs):
                if name:
                    consts[name] = np.asarray(v)
        else:
            kept.append(node)
    used = {n for node in kept for n in node.input if n} | graph_outputs
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(np.asarray(consts[n]), n)
                         for n in sorted(used) if n in consts)
    # drop stale value_info for removed tensors
    vi = [v for v in g.value_info if v.name in used or any(v.name in nd.output for nd in kept)]
    del g.value_info[:]
    g.value_info.extend(vi)
    onnx.checker.check_model(m2)
    return m2
