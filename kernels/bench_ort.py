#!/usr/bin/env python3
"""Times the kbench workloads in onnxruntime (2 intra-op threads, medians).

Usage: python3 kernels/bench_ort.py
"""
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def session(graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def median_time(sess, feeds, iters):
    for _ in range(5):
        sess.run(None, feeds)
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feeds)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def report(name, macs, t):
    print(f"{name:<40} {t * 1e6:>10.1f} us {2 * macs / t / 1e9:>8.1f} GFLOP/s")


def matmul(n):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", [a, b], [c])
    feeds = {"a": np.random.rand(n, n).astype(np.float32), "b": np.random.rand(n, n).astype(np.float32)}
    report(f"MatMul {n}^3", n**3, median_time(session(g), feeds, 30))


def conv(name, b, ci, co, groups, hw, k, s, p, iters=50):
    w = np.random.rand(co, ci // groups, k, k).astype(np.float32) - 0.5
    bias = np.random.rand(co).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [b, ci, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Conv", ["x", "w", "bias"], ["y"], kernel_shape=[k, k], strides=[s, s],
                            pads=[p, p, p, p], group=groups)
    g = helper.make_graph([node], "conv", [x], [y],
                          initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")])
    oh = (hw + 2 * p - k) // s + 1
    macs = b * co * oh * oh * (ci // groups) * k * k
    feeds = {"x": np.random.rand(b, ci, hw, hw).astype(np.float32)}
    report(name, macs, median_time(session(g), feeds, iters))


if __name__ == "__main__":
    print("onnxruntime", ort.__version__, "onnx", onnx.__version__, "intra_op_num_threads=2")
    matmul(1024)
    conv("conv 3x3 64->64 56x56 b1", 1, 64, 64, 1, 56, 3, 1, 1)
    conv("dw 3x3 s1 [1,144,56,56]", 1, 144, 144, 144, 56, 3, 1, 1)
    conv("dw 3x3 s2 [1,144,56,56]", 1, 144, 144, 144, 56, 3, 2, 1)
    conv("conv 1x1 144->24 56x56 b1", 1, 144, 24, 1, 56, 1, 1, 0)
    conv("conv 3x3 s2 3->32 224x224 b1", 1, 3, 32, 1, 224, 3, 2, 1)
    conv("conv 3x3 512->512 7x7 b1", 1, 512, 512, 1, 7, 3, 1, 1, iters=30)
