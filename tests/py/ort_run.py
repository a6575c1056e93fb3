"""Runs an ONNX model in onnxruntime (CPU) and saves every output by name.

usage: python3 ort_run.py model.onnx inputs.npz outputs.npz
Inputs are matched to the model's inputs by name; outputs are written in the model's output order.
"""
import sys

import numpy as np
import onnxruntime as ort


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: ort_run.py model.onnx inputs.npz outputs.npz")
    model, inputs, outputs = argv[1:]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    with np.load(inputs) as z:
        feeds = {name: z[name] for name in z.files}
    want = [i.name for i in sess.get_inputs()]
    missing = [n for n in want if n not in feeds]
    if missing:
        sys.exit(f"inputs.npz lacks model inputs {missing} (has {sorted(feeds)})")
    names = [o.name for o in sess.get_outputs()]
    results = sess.run(names, {n: feeds[n] for n in want})
    np.savez(outputs, **{n: np.asarray(r) for n, r in zip(names, results)})


if __name__ == "__main__":
    main(sys.argv)
