# Times one ONNX model in onnxruntime for `pare bench --compare-ort` and the speedup gate.
# argv: model.onnx inputs.npz names.json threads warmup iters
# Prints one JSON line: {"median_ms", "version"} or {"error"} (exit 3 when onnxruntime is missing).
import json
import statistics
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    print(json.dumps({"error": f"{e} (install it with: pip install onnxruntime numpy)"}))
    sys.exit(3)

model, npz, names_json = sys.argv[1:4]
threads, warmup, iters = (int(a) for a in sys.argv[4:7])
names = json.loads(open(names_json).read())
arrays = np.load(npz)
feeds = {name: arrays[f"i{k}"] for k, name in enumerate(names)}
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
try:
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
except Exception as e:  # the message goes back to pare, which names the file
    print(json.dumps({"error": f"onnxruntime: {e}"}))
    sys.exit(4)
print(json.dumps({"median_ms": statistics.median(times), "version": ort.__version__}))
