#!/usr/bin/env python3
"""pare vs onnxruntime and OpenVINO, in the same run, on the same machine, with the same thread count.

Usage: python3 bench/compare_ort.py [--threads 2] [--iters 50] [--warmup 10] [--only SUBSTRING]
                                    [--json PATH] [--pare target/release/pare] [--shared ../shared]

Cases:
  - single-op models built here: GEMM 1024^3 (MatMul) and conv 3x3 64->64 at 56x56;
  - ../shared/models: mnist-conv, MobileNetV2, ResNet-18 (skipped with a note when missing);
  - bench/models.py (cached in target/bench-models/): effnet_lite and vit_tiny, and ocr_dyn at
    32x128 and 64x256 (fixed-shape copies of the symbolic-shape model);
each at batch-1 latency, and the batch-1 classifiers also at batch-32 throughput (ocr_dyn: batch 1 only).
Every runtime gets the same model file, the same input shapes, the same warm-up and the same number of
timed runs; medians are compared. onnxruntime and OpenVINO get the same random normal inputs (pare's
`pare bench` draws its own, of the same shapes). Batch-32 files are written by `pare reshape --batch 32`
and all runtimes run that file; where pare reshape fails on a bench/models.py model, the copy is made
by setting dim 0 of its inputs and outputs with the onnx package (those models never hard-code the
batch) and the case is marked "[onnx b32]".

OpenVINO (when `import openvino` works) compiles the file for "CPU" with INFERENCE_NUM_THREADS=threads,
INFERENCE_PRECISION_HINT=f32 (its default is bf16 on AMX machines) and PERFORMANCE_HINT=LATENCY for
every case, batch 32 included, and is timed with one synchronous infer request, like the others.

--only keeps the cases whose name contains SUBSTRING (case-insensitive); --json writes every result.
"""
import argparse
import datetime
import json
import os
import platform
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
PARE_ENV = dict(os.environ, RUST_BACKTRACE="0")  # a panic is reported in two lines, not a backtrace
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models as bench_models  # noqa: E402  (bench/models.py)

try:
    import openvino as ov
except ImportError:  # the table then shows "-" for OpenVINO
    ov = None

OV_HINT = "LATENCY"


def feeds_for(path, seed=0):
    """Random normal float inputs (small ints for integer inputs); symbolic dims get 1."""
    m = onnx.load(path, load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in m.graph.input:
        if i.name in init:
            continue
        t = i.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[i.name] = rng.integers(0, 10, shape).astype(dtype)
    return feeds


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def ort_median_ms(path, threads, warmup, iters):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = feeds_for(path)
    return timed(lambda: sess.run(None, feeds), warmup, iters)


def ov_compile(path, threads):
    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": OV_HINT}
    return core.compile_model(path, "CPU", cfg)


def ov_properties(compiled):
    out = {}
    for k in ["INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS",
              "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING"]:
        try:
            v = compiled.get_property(k)
            out[k] = v.get_type_name() if hasattr(v, "get_type_name") else str(v)
        except Exception as e:  # property names move between releases
            out[k] = f"? ({type(e).__name__})"
    return out


def ov_median_ms(path, threads, warmup, iters, props_out=None):
    compiled = ov_compile(path, threads)
    if props_out is not None and not props_out:
        props_out.update(ov_properties(compiled))
    req = compiled.create_infer_request()
    for name, arr in feeds_for(path).items():
        req.set_tensor(name, ov.Tensor(arr))
    return timed(req.infer, warmup, iters)


def pare_median_ms(pare, path, threads, warmup, iters):
    r = subprocess.run(
        [pare, "bench", path, "--threads", str(threads), "--warmup", str(warmup), "--iters", str(iters), "--json"],
        capture_output=True, text=True, env=PARE_ENV)
    if r.returncode != 0:
        raise RuntimeError(" ".join(r.stderr.split("\n", 3)[:3]).strip() or f"pare bench exited {r.returncode}")
    return json.loads(r.stdout)["latency_ms"]["p50"]


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
    return {"gemm": gemm, "conv": conv}


def onnx_batch_copy(src, dst, n):
    """dim 0 of every input and output set to n (only for models that never hard-code the batch)."""
    m = onnx.load(src)
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = n
    del m.graph.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, dst)


class Skip(Exception):
    pass


def make_cases(a, tmp):
    """Every case, in table order, as (name, kind, prepare) where prepare() -> (path, batch, flops, note).

    kind is "flops" (GFLOP/s), "latency" (ms per run) or "throughput" (samples/s)."""
    cases = []
    single = {}

    def single_op(key, flops):
        def prepare():
            if not single:
                single.update(single_op_models(tmp))
            return single[key], 1, flops, ""
        return prepare

    cases.append(("GEMM 1024^3", "flops", single_op("gemm", 2 * 1024**3)))
    cases.append(("conv 3x3 64->64 56^2", "flops", single_op("conv", 2 * 64 * 64 * 9 * 56 * 56)))

    made = {}

    def bench_model(name):
        if not made:
            made.update(bench_models.build_all(a.models))
        return made[name]

    def batch32(src_fn, label, allow_onnx_fallback):
        def prepare():
            src = src_fn()
            dst = os.path.join(tmp, label + "-b32.onnx")
            r = subprocess.run([a.pare, "reshape", src, "--batch", "32", "-o", dst], capture_output=True, text=True,
                               env=PARE_ENV)
            if r.returncode == 0:
                return dst, 32, None, ""
            err = r.stderr.strip()
            if not allow_onnx_fallback:
                raise RuntimeError(f"pare reshape: {err}")
            print(f"note: pare reshape --batch 32 failed on {label} ({err}); using a copy with dim 0 set by onnx",
                  file=sys.stderr)
            onnx_batch_copy(src, dst, 32)
            return dst, 32, None, "onnx b32"
        return prepare

    def shared(model):
        def src():
            p = os.path.join(a.shared, "models", model + ".onnx")
            if not os.path.exists(p):
                raise Skip(f"{p} not found")
            return p
        return src

    for model in ["mnist-conv", "mobilenet_v2", "resnet18"]:
        src = shared(model)
        cases.append((f"{model} batch 1 latency", "latency", lambda src=src: (src(), 1, None, "")))
        cases.append((f"{model} batch 32 throughput", "throughput", batch32(src, model, False)))

    for model in ["effnet_lite", "vit_tiny"]:
        src = lambda model=model: bench_model(model)  # noqa: E731
        cases.append((f"{model} batch 1 latency", "latency", lambda src=src: (src(), 1, None, "")))
        cases.append((f"{model} batch 32 throughput", "throughput", batch32(src, model, True)))

    for h, w in bench_models.OCR_SHAPES:
        name = f"ocr_dyn_{h}x{w}"
        cases.append((f"ocr_dyn {h}x{w} batch 1 latency", "latency",
                      lambda name=name: (bench_model(name), 1, None, "fixed-shape copy")))
    return cases


def fmt_value(kind, ms, batch, flops):
    if ms is None:
        return "-"
    if kind == "flops":
        return f"{flops / ms / 1e6:.1f} GFLOP/s"
    if kind == "latency":
        return f"{ms:.3f} ms"
    return f"{batch * 1e3 / ms:.1f} /s"


def ratio(kind, pare_ms, other_ms):
    """("time", pare/other time) for latency, ("speed", pare/other speed) otherwise; None if missing."""
    if pare_ms is None or other_ms is None:
        return None
    return pare_ms / other_ms if kind == "latency" else other_ms / pare_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--only", default=None, metavar="SUBSTRING", help="run only cases whose name contains this")
    ap.add_argument("--json", default=None, metavar="PATH", help="write all results as JSON")
    ap.add_argument("--pare", default=os.path.join(ROOT, "target", "release", "pare"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--models", default=os.path.join(ROOT, "target", "bench-models"),
                    help="cache folder of bench/models.py")
    ap.add_argument("--no-openvino", action="store_true", help="leave OpenVINO out even if installed")
    a = ap.parse_args()
    if not os.path.exists(a.pare):
        sys.exit(f"{a.pare} not found: run `cargo build --release` first")
    use_ov = ov is not None and not a.no_openvino
    if ov is None:
        print("note: openvino is not importable (pip install openvino); OpenVINO column left empty",
              file=sys.stderr)
    b32_iters = max(5, a.iters // 5)
    ov_props = {}
    results = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cases = make_cases(a, tmp)
        if a.only:
            cases = [c for c in cases if a.only.lower() in c[0].lower()]
            if not cases:
                sys.exit(f"no case matches --only {a.only!r}")
        for name, kind, prepare in cases:
            try:
                path, batch, flops, note = prepare()
            except Skip as e:
                print(f"skipping {name}: {e}", file=sys.stderr)
                continue
            except Exception as e:
                print(f"{name}: could not prepare the model: {e}", file=sys.stderr)
                results.append({"case": name, "kind": kind, "error": str(e)})
                continue
            warmup, iters = (2, b32_iters) if batch == 32 else (a.warmup, a.iters)
            row = {"case": name, "kind": kind, "model": path if path.startswith(ROOT) else os.path.basename(path),
                   "batch": batch, "flops": flops, "warmup": warmup, "iters": iters, "note": note, "errors": {}}
            runners = [("pare", lambda: pare_median_ms(a.pare, path, a.threads, warmup, iters)),
                       ("ort", lambda: ort_median_ms(path, a.threads, warmup, iters))]
            if use_ov:
                runners.append(("openvino", lambda: ov_median_ms(path, a.threads, warmup, iters, ov_props)))
            for rt, fn in runners:
                try:
                    row[rt + "_ms"] = fn()
                except Exception as e:
                    row[rt + "_ms"] = None
                    row["errors"][rt] = str(e)
                    print(f"{name}: {rt} failed: {e}", file=sys.stderr)
            row["pare_over_ort"] = ratio(kind, row["pare_ms"], row["ort_ms"])
            row["pare_over_ov"] = ratio(kind, row["pare_ms"], row.get("openvino_ms"))
            row["ratio_of"] = "time" if kind == "latency" else "speed"
            results.append(row)
            print(f"done: {name}", file=sys.stderr)
    load_after = os.getloadavg()

    ov_version = ov.__version__ if ov is not None else None
    print(f"\npare vs onnxruntime {ort.__version__}"
          + (f" and OpenVINO {ov_version}" if use_ov else "")
          + f", {a.threads} threads, medians of {a.iters} runs after {a.warmup} warm-up (batch 32: {b32_iters} "
            f"after 2)")
    if use_ov:
        print(f"OpenVINO: CPU, PERFORMANCE_HINT={OV_HINT} for all cases (batch 32 too), one synchronous infer "
              f"request; compiled properties: "
              + (", ".join(f"{k}={v}" for k, v in ov_props.items()) or "none read"))
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    w = 40
    print(f"{'case':<{w}} {'pare':>16} {'ORT':>16} {'OpenVINO':>16} {'pare/ORT':>14} {'pare/OV':>14}")
    for r in results:
        if "error" in r:
            print(f"{r['case']:<{w}} model not prepared: {r['error'][:80]}")
            continue
        cells = [fmt_value(r["kind"], r.get(k + "_ms"), r["batch"], r["flops"]) for k in ["pare", "ort", "openvino"]]
        ratios = [f"{x:.2f}x {r['ratio_of']}" if x is not None else "-"
                  for x in (r["pare_over_ort"], r["pare_over_ov"])]
        label = r["case"] + (f" [{r['note']}]" if r["note"] == "onnx b32" else "")
        print(f"{label:<{w}} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {ratios[0]:>14} {ratios[1]:>14}")
    print("\ntime ratio = pare time / peer time (< 1: pare is faster); speed ratio = pare speed / peer speed "
          "(> 1: pare is faster).")
    for r in results:
        for rt, e in r.get("errors", {}).items():
            print(f"error: {r['case']}: {rt}: {e}")

    if a.json:
        cpu = ""
        try:
            cpu = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(
                ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ln.startswith("Model name")), "")
        except OSError:
            pass
        meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu,
                "machine": platform.machine(), "nproc": os.cpu_count(), "threads": a.threads,
                "warmup": a.warmup, "iters": a.iters, "batch32_warmup": 2, "batch32_iters": b32_iters,
                "onnxruntime": ort.__version__, "openvino": ov_version if use_ov else None,
                "openvino_hint": OV_HINT if use_ov else None, "openvino_properties": ov_props,
                "loadavg_before": load_before, "loadavg_after": load_after, "command": sys.argv}
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(f"wrote {a.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
