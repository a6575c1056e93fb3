#!/usr/bin/env bash
# Runs pare's whole test suite on a fresh machine: installs the Python reference tools
# (onnx, onnxruntime, numpy from PyPI), generates the ONNX node conformance suite, then
# runs every Rust test in release mode (tests train and time things).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_python.sh
bash scripts/gen_node_tests.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
