"""Conversion speed: `aislfd-convert` on the largest sample to int8, against the time
to just read the source and write the output's bytes (with the same fsync and rename
the converter does), in one run. Needs a release build (`swift build -c release`).

    python3 tools/bench_convert.py [--repeat 7]

Prints min and median seconds of each and the ratio convert / read+write.
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONVERT = ROOT / ".build" / "release" / "aislfd-convert"
SAMPLES = ["Weights/lisrd.h5", "Weights/aislfd-a.pth", "Weights/aislfd-b.npz", "Weights/aislfd-c.safetensors"]


def read_and_write(source, output_bytes, target):
    with open(source, "rb") as f:
        f.read()
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        f.write(output_bytes)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, target)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--precision", default="int8")
    args = parser.parse_args()
    source = max((ROOT / s for s in SAMPLES), key=lambda p: p.stat().st_size)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.aisw")
        convert, copy = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same machine
            start = time.perf_counter()
            subprocess.run([str(CONVERT), str(source), out, "--precision", args.precision], check=True, stdout=subprocess.DEVNULL)
            convert.append(time.perf_counter() - start)
            data = Path(out).read_bytes()
            start = time.perf_counter()
            read_and_write(source, data, os.path.join(tmp, "copy.aisw"))
            copy.append(time.perf_counter() - start)
        size = len(data)
    print(f"source: {source.relative_to(ROOT)} ({source.stat().st_size:,} bytes) -> {args.precision} .aisw ({size:,} bytes), {args.repeat} runs each")
    print(f"aislfd-convert (whole process: read, validate, fold, quantize, checksum, write): min {min(convert):.3f} s, median {statistics.median(convert):.3f} s")
    print(f"read source + write output bytes (fsync, rename):                       min {min(copy):.3f} s, median {statistics.median(copy):.3f} s")
    print(f"ratio convert / read+write: {min(convert) / min(copy):.1f}x (min), {statistics.median(convert) / statistics.median(copy):.1f}x (median)")


if __name__ == "__main__":
    main()
