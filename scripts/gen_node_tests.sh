#!/usr/bin/env bash
# Writes the ONNX backend node conformance suite into target/onnx-node-tests (or $1) unless it is there.
# Needs python3 with onnx==1.23.2 (scripts/setup_python.sh installs it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${PARE_SHARED:-$root/../shared}"
out="${1:-$root/target/onnx-node-tests}"
if [ -d "$out/node" ] && [ -n "$(ls -A "$out/node" 2>/dev/null)" ]; then
    echo "node tests already in $out/node ($(ls "$out/node" | wc -l) cases)"
    exit 0
fi
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
python3 "$shared/tools/dump_onnx_node_tests.py" "$tmp"
mkdir -p "$out"
rm -rf "$out/node"
mv "$tmp/node" "$out/node"
echo "wrote $(ls "$out/node" | wc -l) node test cases to $out/node"
