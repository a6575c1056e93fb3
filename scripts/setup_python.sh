#!/usr/bin/env bash
# Installs the Python packages pare's cross-check tests use (onnx 1.23.2, onnxruntime, numpy).
# Idempotent: does nothing when they are already importable at the right versions.
set -euo pipefail
PY="${PYTHON:-python3}"
if "$PY" - <<'PYEOF' 2>/dev/null; then
import numpy, onnx, onnxruntime
assert onnx.__version__ == "1.23.2", onnx.__version__
PYEOF
    exit 0
fi
pkgs=(onnx==1.23.2 onnxruntime numpy)
# Outside a virtual environment a distribution-managed Python (PEP 668) refuses plain installs.
if ! "$PY" -m pip install --quiet --disable-pip-version-check "${pkgs[@]}"; then
    "$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages "${pkgs[@]}"
fi
"$PY" -c "import numpy, onnx, onnxruntime; print('python ok: onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)"
