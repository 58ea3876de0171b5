"""Round trip of every sample through aislfd-convert and back into PyTorch.

For each sample in Weights/ (and, with --dir, every weights file in a folder):
  * `aislfd-convert W OUT.aisw --no-fold` (fp32), loaded with tools/aisw.py into the
    PyTorch model with `load_state_dict(strict=True)` minus `num_batches_tracked`,
    must reproduce the source state_dict bit for bit;
  * the folded fp32 file loaded with aisw.py must give the folded tensors the
    metadata describes (every source float tensor either stored unchanged, or listed in
    tensor_history / folds).
Needs a release build (`swift build -c release`). Run from the repository root:
    .venv/bin/python tools/test_roundtrip.py [--dir /tmp/aislfd-seed2]
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aisw  # noqa: E402
import models  # noqa: E402
from make_reference import load_weights  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONVERT = ROOT / ".build" / "release" / "aislfd-convert"
SAMPLES = ["Weights/lisrd.h5", "Weights/aislfd-a.pth", "Weights/aislfd-b.npz", "Weights/aislfd-c.safetensors"]


def check(path, out_dir):
    source = load_weights(path)
    arch = models.detect_arch(source.keys())
    out = Path(out_dir) / (Path(path).name + ".aisw")
    subprocess.run([str(CONVERT), str(path), str(out), "--no-fold"], check=True, stdout=subprocess.DEVNULL)
    tensors, metadata = aisw.load(str(out))
    assert metadata["architecture"] == arch, (path, metadata["architecture"], arch)

    model = models.build(arch)
    state = model.state_dict()
    loaded = {k: torch.from_numpy(v) for k, v in tensors.items()}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            loaded[k] = v  # integer buffer: never stored, never needed
    model.load_state_dict(loaded, strict=True)
    floats = {k: np.asarray(v) for k, v in source.items() if np.asarray(v).dtype.kind == "f"}
    assert set(tensors) == set(floats), (path, set(tensors) ^ set(floats))
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        want = floats[k].astype(np.float32)
        got = v.numpy()
        assert got.dtype == np.float32 and got.shape == want.shape, (path, k)
        assert got.tobytes() == want.tobytes(), f"{path}: {k} differs"
    print(f"{path}: {arch}, {len(tensors)} tensors identical to the source after --no-fold")

    folded = Path(out_dir) / (Path(path).name + ".folded.aisw")
    subprocess.run([str(CONVERT), str(path), str(folded)], check=True, stdout=subprocess.DEVNULL)
    ftensors, fmeta = aisw.load(str(folded))
    changed = set(fmeta["tensor_history"])
    removed = {f["from"] for f in fmeta["folds"]}
    for k, v in ftensors.items():
        if k in floats and k not in changed:
            assert v.tobytes() == floats[k].astype(np.float32).tobytes(), f"{path}: {k} changed without a record"
    for k in floats:
        if k not in ftensors:
            layer = k.rsplit(".", 1)[0]
            assert layer in removed or k in changed or any(k.startswith(l + ".") for l in removed) or layer + ".scale" in ftensors, \
                f"{path}: {k} vanished without a record"
    print(f"{path}: folded file: {len(ftensors)} tensors, {len(fmeta['folds'])} folds, every change recorded")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", help="also check every weights file in this folder")
    args = parser.parse_args()
    paths = [ROOT / p for p in SAMPLES]
    if args.dir:
        paths += sorted(p for p in Path(args.dir).iterdir() if p.suffix in (".h5", ".npz", ".pth", ".safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        for p in paths:
            check(p, tmp)


if __name__ == "__main__":
    main()
