#!/usr/bin/env python3
"""ONNX benchmark models of architectures pare has not been tuned for, built from onnx.helper.

Usage: python3 bench/models.py [--out target/bench-models] [--force] [--verify] [--pare PATH]

Writes into the cache folder (created if missing; a file is rebuilt only when it is missing
or with --force):

  effnet_lite.onnx        EfficientNet-B0-style CNN, input [1,3,224,224], opset 17: stem conv 3x3 s2
                          + BN + SiLU, 16 MBConv blocks in 7 stages (1x1 expand + BN + SiLU, depthwise
                          3x3/5x5 + BN + SiLU, squeeze-excite, 1x1 project + BN, residual Add where
                          shapes match), head 1x1 conv 1280 + SiLU, GlobalAveragePool, Flatten, Gemm 1000.
                          SiLU is x*Sigmoid(x) as PyTorch exports it. About 0.39 GMAC.
  vit_tiny.onnx           ViT-Tiny-style encoder, input [1,3,224,224], opset 17: Conv 16x16 s16 patch
                          embedding (3->192), class token (Shape/Slice/Concat/Expand, as torch exports
                          `cls_token.expand(B, -1, -1)`), position embedding, 12 blocks of
                          LayerNormalization, 3-head attention (MatMul + Add Q/K/V, Reshape/Transpose,
                          MatMul, Mul 1/8, Softmax, MatMul), projection, residual, LayerNormalization,
                          MLP 192->768->192 with erf GELU, residual; final LayerNormalization, Gather of
                          the class token, Gemm 1000. About 1.26 GMAC.
  ocr_dyn.onnx            OCR/detection-style fully-convolutional net, input [1,3,'H','W'] (symbolic
                          H and W): conv 3x3 + BN + Relu stages with MaxPool and a stride-2 conv down to
                          1/8 resolution, 1x1 conv head to 37 channels.
  ocr_dyn_32x128.onnx,    the same model with the input fixed to 32x128 and 64x256 (`pare bench` gives
  ocr_dyn_64x256.onnx     symbolic non-batch dims the size 1, so benchmarks run these copies).

Weights are seeded numpy random numbers: for speed and op coverage only, never for accuracy.

--verify checks every model with onnx.checker (full check), runs it in onnxruntime, runs it with
`pare run` (and OpenVINO, when installed) on the same random input and prints the largest
difference from onnxruntime's output; ocr_dyn is also given to `pare run` with its symbolic dims at both shapes.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = 17
OCR_SHAPES = [(32, 128), (64, 256)]


class Builder:
    """Accumulates nodes and initializers with unique names, and counts multiply-accumulates."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.n = 0
        self.macs = 0

    def name(self, prefix):
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, arr, prefix="c"):
        nm = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, op_type, inputs, prefix=None, **attrs):
        out = self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out + "_node", **attrs))
        return out

    def randn(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    # --- CNN pieces ---------------------------------------------------------------------------

    def conv(self, x, cin, cout, k, stride, hw, groups=1, bias=False, pad=None):
        """Conv with symmetric padding (default k//2); returns (output, output spatial size)."""
        pad = k // 2 if pad is None else pad
        fan_in = cin // groups * k * k
        w = self.const(self.randn((cout, cin // groups, k, k), math.sqrt(2.0 / fan_in)), "w")
        ins = [x, w]
        if bias:
            ins.append(self.const(self.randn((cout,), 0.05), "b"))
        y = self.op("Conv", ins, "conv", kernel_shape=[k, k], strides=[stride, stride],
                    pads=[pad] * 4, group=groups, dilations=[1, 1])
        if hw is None:
            return y, None
        ho, wo = ((d + 2 * pad - k) // stride + 1 for d in hw)
        self.macs += cout * (cin // groups) * k * k * ho * wo
        return y, (ho, wo)

    def bn(self, x, c):
        scale = self.const(self.rng.uniform(0.7, 1.2, c).astype(np.float32), "bn_s")
        bias = self.const(self.randn((c,), 0.1), "bn_b")
        mean = self.const(self.randn((c,), 0.1), "bn_m")
        var = self.const(self.rng.uniform(0.5, 1.5, c).astype(np.float32), "bn_v")
        return self.op("BatchNormalization", [x, scale, bias, mean, var], "bn", epsilon=1e-5, momentum=0.9)

    def silu(self, x):
        return self.op("Mul", [x, self.op("Sigmoid", [x], "sig")], "silu")

    def conv_bn(self, x, cin, cout, k, stride, hw, groups=1, act="silu"):
        y, hw = self.conv(x, cin, cout, k, stride, hw, groups)
        y = self.bn(y, cout)
        if act == "silu":
            y = self.silu(y)
        elif act == "relu":
            y = self.op("Relu", [y], "relu")
        return y, hw

    # --- transformer pieces ---------------------------------------------------------------------

    def linear(self, x, din, dout, tokens, std=0.02):
        w = self.const(self.randn((din, dout), std), "w")
        b = self.const(self.randn((dout,), 0.02), "b")
        self.macs += tokens * din * dout
        return self.op("Add", [self.op("MatMul", [x, w], "mm"), b], "lin")

    def layernorm(self, x, d):
        s = self.const(self.rng.uniform(0.8, 1.2, d).astype(np.float32), "ln_s")
        b = self.const(self.randn((d,), 0.02), "ln_b")
        return self.op("LayerNormalization", [x, s, b], "ln", axis=-1, epsilon=1e-6)

    def gelu_erf(self, x):
        # torch.nn.GELU() exports (opset < 20) as x * 0.5 * (1 + erf(x / sqrt(2))): Div, Erf, Add, Mul, Mul
        d = self.op("Div", [x, self.const(np.array(math.sqrt(2.0), np.float32), "sqrt2")], "div")
        e = self.op("Add", [self.op("Erf", [d], "erf"), self.const(np.array(1.0, np.float32), "one")], "add")
        return self.op("Mul", [self.op("Mul", [x, e], "mul"), self.const(np.array(0.5, np.float32), "half")],
                       "gelu")

    def model(self, name, inputs, outputs, doc):
        g = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pare-bench",
                              doc_string=doc)
        m.ir_version = 8
        return m


# EfficientNet-B0 stages: expand ratio, kernel, stride, output channels, repeats
EFFNET_B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def build_effnet_lite(seed=1):
    b = Builder(seed)
    x, hw = b.conv_bn("input", 3, 32, 3, 2, (224, 224))
    cin = 32
    for expand, k, stride, cout, repeats in EFFNET_B0:
        for r in range(repeats):
            s = stride if r == 0 else 1
            block_in, hw_in = x, hw
            cmid = cin * expand
            y = x
            if expand != 1:
                y, hw = b.conv_bn(y, cin, cmid, 1, 1, hw)
            y, hw = b.conv_bn(y, cmid, cmid, k, s, hw, groups=cmid)
            # squeeze-excite, reduced to a quarter of the block's input channels
            cse = max(1, cin // 4)
            p = b.op("GlobalAveragePool", [y], "gap")
            q, _ = b.conv(p, cmid, cse, 1, 1, (1, 1), bias=True)
            q, _ = b.conv(b.silu(q), cse, cmid, 1, 1, (1, 1), bias=True)
            y = b.op("Mul", [y, b.op("Sigmoid", [q], "sig")], "se")
            y, hw = b.conv_bn(y, cmid, cout, 1, 1, hw, act=None)
            if s == 1 and cin == cout:
                y = b.op("Add", [y, block_in], "res")
            assert hw_in is not None
            x, cin = y, cout
    x, hw = b.conv_bn(x, cin, 1280, 1, 1, hw)
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x], "gap")], "flat", axis=1)
    w = b.const(b.randn((1000, 1280), 0.02), "fc_w")
    bias = b.const(b.randn((1000,), 0.02), "fc_b")
    b.macs += 1280 * 1000
    y = b.op("Gemm", [x, w, bias], "logits", alpha=1.0, beta=1.0, transB=1)
    b.nodes[-1].output[0] = "logits"
    m = b.model("effnet_lite", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
                "EfficientNet-B0-style benchmark model, random weights (pare bench/models.py)")
    return m, b.macs


def build_vit_tiny(seed=2, depth=12, dim=192, heads=3, mlp=768, patch=16, size=224):
    b = Builder(seed)
    grid = size // patch
    tokens = grid * grid + 1
    hd = dim // heads
    x, _ = b.conv("input", 3, dim, patch, patch, (size, size), bias=True, pad=0)
    # [B,192,14,14] -> [B,192,196] -> [B,196,192]
    x = b.op("Reshape", [x, b.const(np.array([0, dim, -1], np.int64), "shape")], "flat")
    x = b.op("Transpose", [x], "tok", perm=[0, 2, 1])
    # class token expanded to the batch: Shape -> Slice -> Concat -> Expand, then Concat on tokens
    bsz = b.op("Slice", [b.op("Shape", [x], "shp"), b.const(np.array([0], np.int64), "st"),
                         b.const(np.array([1], np.int64), "en")], "bsz")
    cls_shape = b.op("Concat", [bsz, b.const(np.array([1, dim], np.int64), "c1d")], "cls_shape", axis=0)
    cls = b.op("Expand", [b.const(b.randn((1, 1, dim), 0.02), "cls_token"), cls_shape], "cls")
    x = b.op("Concat", [cls, x], "cat", axis=1)
    x = b.op("Add", [x, b.const(b.randn((1, tokens, dim), 0.02), "pos_embed")], "pos")
    scale = b.const(np.array(1.0 / math.sqrt(hd), np.float32), "scale")
    for _ in range(depth):
        h = b.layernorm(x, dim)

        def heads_of(t, perm):
            r = b.op("Reshape", [t, b.const(np.array([0, -1, heads, hd], np.int64), "shape")], "split")
            return b.op("Transpose", [r], "heads", perm=perm)

        q = heads_of(b.linear(h, dim, dim, tokens), [0, 2, 1, 3])      # [B,3,197,64]
        k = heads_of(b.linear(h, dim, dim, tokens), [0, 2, 3, 1])      # [B,3,64,197]
        v = heads_of(b.linear(h, dim, dim, tokens), [0, 2, 1, 3])      # [B,3,197,64]
        att = b.op("Mul", [b.op("MatMul", [q, k], "qk"), scale], "scaled")
        att = b.op("Softmax", [att], "softmax", axis=-1)
        o = b.op("MatMul", [att, v], "av")
        b.macs += 2 * heads * tokens * tokens * hd
        o = b.op("Transpose", [o], "merge", perm=[0, 2, 1, 3])
        o = b.op("Reshape", [o, b.const(np.array([0, -1, dim], np.int64), "shape")], "merged")
        x = b.op("Add", [x, b.linear(o, dim, dim, tokens)], "res")
        h = b.layernorm(x, dim)
        h = b.linear(b.gelu_erf(b.linear(h, dim, mlp, tokens)), mlp, dim, tokens)
        x = b.op("Add", [x, h], "res")
    x = b.layernorm(x, dim)
    x = b.op("Gather", [x, b.const(np.array(0, np.int64), "idx")], "cls_out", axis=1)   # [B,192]
    w = b.const(b.randn((1000, dim), 0.02), "head_w")
    bias = b.const(b.randn((1000,), 0.02), "head_b")
    b.macs += dim * 1000
    b.op("Gemm", [x, w, bias], "logits", alpha=1.0, beta=1.0, transB=1)
    b.nodes[-1].output[0] = "logits"
    m = b.model("vit_tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
                [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
                "ViT-Tiny-style benchmark model, random weights (pare bench/models.py)")
    return m, b.macs


OCR_STAGES = [  # (output channels, convs, downsampling after the stage)
    (32, 2, "maxpool"), (64, 2, "maxpool"), (128, 2, "stride"), (256, 1, None)]
OCR_CLASSES = 37


def build_ocr_dyn(seed=3):
    b = Builder(seed)
    x, cin = "input", 3
    for cout, n, down in OCR_STAGES:
        for i in range(n):
            s = 2 if (down == "stride" and i == n - 1) else 1
            x, _ = b.conv_bn(x, cin, cout, 3, s, None, act="relu")
            cin = cout
        if down == "maxpool":
            x = b.op("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    b.conv(x, cin, OCR_CLASSES, 1, 1, None, bias=True)
    b.nodes[-1].output[0] = "maps"
    m = b.model("ocr_dyn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
                [helper.make_tensor_value_info("maps", TensorProto.FLOAT, [1, OCR_CLASSES, None, None])],
                "OCR/detection-style fully-convolutional benchmark model with symbolic H, W, random weights "
                "(pare bench/models.py)")
    return m


def ocr_macs(h, w):
    macs, cin = 0, 3
    for cout, n, down in OCR_STAGES:
        for i in range(n):
            s = 2 if (down == "stride" and i == n - 1) else 1
            h, w = (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
            macs += cout * cin * 9 * h * w
            cin = cout
        if down == "maxpool":
            h, w = h // 2, w // 2
    return macs + OCR_CLASSES * cin * h * w


def fixed_shape(m, h, w):
    """A copy of `m` with the input's symbolic H and W set to h and w (and the output dims filled in)."""
    f = onnx.ModelProto()
    f.CopyFrom(m)
    dims = f.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = h, w
    odims = f.graph.output[0].type.tensor_type.shape.dim
    odims[2].dim_value, odims[3].dim_value = h // 8, w // 8
    f.graph.name = f"ocr_dyn_{h}x{w}"
    return f


def model_paths(out):
    """Name -> path of every model this script writes (see build_all)."""
    names = ["effnet_lite", "vit_tiny", "ocr_dyn"] + [f"ocr_dyn_{h}x{w}" for h, w in OCR_SHAPES]
    return {n: os.path.join(out, n + ".onnx") for n in names}


def build_all(out, force=False, quiet=False):
    """Writes the models that are missing (all with force) and returns name -> path."""
    os.makedirs(out, exist_ok=True)
    paths = model_paths(out)

    def save(name, build):
        if force or not os.path.exists(paths[name]):
            m = build()
            onnx.checker.check_model(m, full_check=True)
            tmp = paths[name] + ".tmp"
            onnx.save(m, tmp)
            os.replace(tmp, paths[name])
            if not quiet:
                print(f"wrote {paths[name]}", file=sys.stderr)

    save("effnet_lite", lambda: build_effnet_lite()[0])
    save("vit_tiny", lambda: build_vit_tiny()[0])
    save("ocr_dyn", build_ocr_dyn)
    for h, w in OCR_SHAPES:
        save(f"ocr_dyn_{h}x{w}", lambda h=h, w=w: fixed_shape(onnx.load(paths["ocr_dyn"]), h, w))
    return paths


def macs_of(name):
    """Multiply-accumulates of one run of a model at batch 1."""
    if name == "effnet_lite":
        return build_effnet_lite()[1]
    if name == "vit_tiny":
        return build_vit_tiny()[1]
    if name.startswith("ocr_dyn_"):
        h, w = map(int, name[len("ocr_dyn_"):].split("x"))
        return ocr_macs(h, w)
    raise KeyError(name)


def verify(paths, pare, threads):
    import onnxruntime as ort
    ok = True
    cases = [(n, p, None) for n, p in paths.items() if n != "ocr_dyn"]
    cases += [("ocr_dyn (symbolic H,W)", paths["ocr_dyn"], (1, 3, h, w)) for h, w in OCR_SHAPES]
    for name, path, shape in cases:
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = shape or inp.shape
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        ref = sess.run(None, {inp.name: x})[0]
        n_ops = len({n.op_type for n in m.graph.node})
        line = (f"{name}: {len(m.graph.node)} nodes, {n_ops} op types, onnxruntime output "
                f"{list(ref.shape)} max|y| {np.abs(ref).max():.3g}")
        try:
            import openvino as ov
            c = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            got_ov = c.create_infer_request().infer({0: x})[0]
            line += f"; OpenVINO max|diff| {float(np.abs(got_ov - ref).max()):.3g}"
        except ImportError:
            pass
        if pare is None:
            print(line + "; pare not checked")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            np.save(os.path.join(tmp, "x.npy"), x)
            r = subprocess.run([pare, "run", path, "--input", f"{inp.name}={os.path.join(tmp, 'x.npy')}",
                                "--output-dir", os.path.join(tmp, "out"), "--threads", str(threads)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                ok = False
                print(f"{line}; pare run FAILED (exit {r.returncode}): {r.stderr.strip()}")
                continue
            out_name = sess.get_outputs()[0].name
            got = np.load(os.path.join(tmp, "out", out_name + ".npy"))
        if got.shape != ref.shape:
            ok = False
            print(f"{line}; pare output shape {list(got.shape)} differs")
            continue
        diff = float(np.abs(got - ref).max())
        rel = diff / max(float(np.abs(ref).max()), 1e-30)
        good = rel < 1e-3
        ok &= good
        print(f"{line}; pare max|diff| {diff:.3g} ({rel:.2e} of max|y|) {'ok' if good else 'MISMATCH'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench-models"))
    ap.add_argument("--force", action="store_true", help="rebuild even if the files exist")
    ap.add_argument("--verify", action="store_true", help="check with onnx.checker, onnxruntime and pare run")
    ap.add_argument("--pare", default=os.path.join(ROOT, "target", "release", "pare"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    paths = build_all(a.out, a.force)
    for n in ["effnet_lite", "vit_tiny"] + [f"ocr_dyn_{h}x{w}" for h, w in OCR_SHAPES]:
        print(f"{n}: {macs_of(n) / 1e9:.3f} GMAC at batch 1  ({paths[n]})")
    if a.verify:
        pare = a.pare if os.path.exists(a.pare) else None
        if pare is None:
            print(f"{a.pare} not found: pare not checked", file=sys.stderr)
        sys.exit(0 if verify(paths, pare, a.threads) else 1)


if __name__ == "__main__":
    main()
