#!/usr/bin/env python3
"""pare vs onnxruntime, in the same run, on the same machine, with the same thread count.

Usage: python3 bench/compare_ort.py [--threads 2] [--iters 50] [--pare target/release/pare]

Cases: batch-1 latency and batch-32 throughput of mnist-conv, MobileNetV2 and ResNet-18
(../shared/models), GEMM 1024^3 and conv 3x3 64->64 at 56x56 (single-op models built here).
Both runtimes get the same model file, the same input shapes, random normal inputs, the same
warm-up and the same number of timed runs; medians are compared. Batch-32 variants of the
fixed-batch models are written by `pare reshape --batch 32`, and both runtimes run that file.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ort_median_ms(path, threads, warmup, iters, seed=0):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def pare_median_ms(pare, path, threads, warmup, iters):
    out = subprocess.run(
        [pare, "bench", path, "--threads", str(threads), "--warmup", str(warmup), "--iters", str(iters), "--json"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["latency_ms"]["p50"]


def single_op_models(tmp):
    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((1024, 1024)).astype(np.float32), "B")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1024, 1024])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [1024, 1024])], [b])
    gemm = os.path.join(tmp, "gemm1024.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), gemm)
    w = numpy_helper.from_array(rng.standard_normal((64, 64, 3, 3)).astype(np.float32) * 0.05, "W")
    bias = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "Bias")
    g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W", "Bias"], ["Y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])],
        "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 64, 56, 56])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 64, 56, 56])], [w, bias])
    conv = os.path.join(tmp, "conv3x3_64_56.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), conv)
    return [("GEMM 1024^3", gemm, 2 * 1024**3), ("conv 3x3 64->64 56^2", conv, 2 * 64 * 64 * 9 * 56 * 56)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--pare", default=os.path.join(ROOT, "target", "release", "pare"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    a = ap.parse_args()
    if not os.path.exists(a.pare):
        sys.exit(f"{a.pare} not found: run `cargo build --release` first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, flops in single_op_models(tmp):
            p = pare_median_ms(a.pare, path, a.threads, a.warmup, a.iters)
            o = ort_median_ms(path, a.threads, a.warmup, a.iters)
            rows.append((name, f"{flops / p / 1e6:.1f} GFLOP/s", f"{flops / o / 1e6:.1f} GFLOP/s", o / p,
                         "speed"))
        for model in ["mnist-conv", "mobilenet_v2", "resnet18"]:
            src = os.path.join(a.shared, "models", model + ".onnx")
            if not os.path.exists(src):
                print(f"skipping {model}: {src} not found", file=sys.stderr)
                continue
            p = pare_median_ms(a.pare, src, a.threads, a.warmup, a.iters)
            o = ort_median_ms(src, a.threads, a.warmup, a.iters)
            rows.append((f"{model} batch 1 latency", f"{p:.3f} ms", f"{o:.3f} ms", p / o, "time"))
            b32 = os.path.join(tmp, model + "-b32.onnx")
            subprocess.run([a.pare, "reshape", src, "--batch", "32", "-o", b32], check=True,
                           capture_output=True)
            iters = max(5, a.iters // 5)
            p = pare_median_ms(a.pare, b32, a.threads, 2, iters)
            o = ort_median_ms(b32, a.threads, 2, iters)
            rows.append((f"{model} batch 32 throughput", f"{32e3 / p:.1f} /s", f"{32e3 / o:.1f} /s", o / p,
                         "speed"))
    print(f"\npare vs onnxruntime {ort.__version__}, {a.threads} threads, medians of {a.iters} runs "
          f"(batch 32: {max(5, a.iters // 5)})")
    print(f"{'case':<34} {'pare':>16} {'onnxruntime':>16} {'ratio':>24}")
    for name, p, o, r, kind in rows:
        label = f"{r:.2f}x " + ("pare/ORT time" if kind == "time" else "pare/ORT speed")
        print(f"{name:<34} {p:>16} {o:>16} {label:>24}")
    print("\ntime ratio < 1 and speed ratio > 1 mean pare is faster.")


if __name__ == "__main__":
    main()
