"""Conversion speed: `aislfd-convert` on the largest sample to int8, against the time
to just read the source and write the output's bytes (with the same fsync and rename
the converter does), in one run. Needs a release build (`swift build -c release`).

    python3 tools/bench_convert.py [--repeat 5] [--precision int8]

Times the default conversion (calibration, GPTQ rounding, mixed precision) and the plain
one (`--no-calibration`: every weight rounded on its own), interleaved with reading the
source and writing the output bytes. Prints min and median seconds of each and the ratios
convert / read+write.
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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--precision", default="int8")
    args = parser.parse_args()
    source = max((ROOT / s for s in SAMPLES), key=lambda p: p.stat().st_size)
    variants = {"calibrated": [], "plain (--no-calibration)": ["--no-calibration"]}
    times = {name: [] for name in variants}
    sizes = {}
    copy = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):  # interleaved, so all see the same machine
            for name, extra in variants.items():
                out = os.path.join(tmp, "out.aisw")
                start = time.perf_counter()
                subprocess.run([str(CONVERT), str(source), out, "--precision", args.precision, *extra],
                               check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
                data = Path(out).read_bytes()
                sizes[name] = len(data)
            start = time.perf_counter()
            read_and_write(source, data, os.path.join(tmp, "copy.aisw"))
            copy.append(time.perf_counter() - start)
    print(f"source: {source.relative_to(ROOT)} ({source.stat().st_size:,} bytes) -> {args.precision} .aisw, {args.repeat} runs each")
    print(f"read source + write output bytes (fsync, rename): min {min(copy):.3f} s, median {statistics.median(copy):.3f} s")
    for name, t in times.items():
        print(f"aislfd-convert {name} ({sizes[name]:,} bytes): min {min(t):.3f} s, median {statistics.median(t):.3f} s, "
              f"ratio to read+write {min(t) / min(copy):.1f}x (min), {statistics.median(t) / statistics.median(copy):.1f}x (median)")


if __name__ == "__main__":
    main()
