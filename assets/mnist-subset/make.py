"""Makes the in-repo MNIST subset from the full MNIST idx files.

Usage: python3 make.py [SRC_DIR]   (default SRC_DIR: ../../../shared/data/mnist)
Keeps the first 10,000 train and the first 2,000 test samples, in the original order,
and writes them gzip-compressed (level 9, mtime 0, so the output is reproducible).
"""
import gzip
import struct
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
src = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "../../../shared/data/mnist"
for prefix, n in [("train", 10_000), ("t10k", 2_000)]:
    for kind in ["images-idx3", "labels-idx1"]:
        name = f"{prefix}-{kind}-ubyte"
        raw = gzip.decompress((src / f"{name}.gz").read_bytes())
        rank = raw[3]
        dims = list(struct.unpack(f">{rank}I", raw[4 : 4 + 4 * rank]))
        assert raw[:3] == b"\x00\x00\x08" and dims[0] >= n, (name, dims)
        per = 1
        for d in dims[1:]:
            per *= d
        header = raw[:4] + struct.pack(f">{rank}I", n, *dims[1:])
        body = raw[4 + 4 * rank : 4 + 4 * rank + n * per]
        (here / f"{name}.gz").write_bytes(gzip.compress(header + body, compresslevel=9, mtime=0))
        print(name, [n, *dims[1:]])
