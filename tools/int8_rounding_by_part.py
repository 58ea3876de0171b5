"""Where an architecture's int8 weight error comes from, and whether finer scales help: the
least keypoint cosines (kp_desc, kp_meta, as aislfd-verify reports them) of the PyTorch model
with its conv and linear weights rounded to int8 (round to nearest, symmetric, one scale per
output channel or per block of `g` values of a row), against the fp32 model, on a committed
reference's image and keypoints; then per part left at fp32.

    .venv/bin/python tools/int8_rounding_by_part.py [--arch aislfd-a]

No GPTQ and no calibration, so the absolute cosines are below the converter's; the
comparisons between rows are what it is for (docs/conversion.md, "Known gap").
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import make_reference  # noqa: E402

SAMPLES = {'lisrd': 'lisrd.h5', 'aislfd-a': 'aislfd-a.pth', 'aislfd-b': 'aislfd-b.npz', 'aislfd-c': 'aislfd-c.safetensors'}


def rounded(array, group):
    """int8 round to nearest with one scale per row (group 0) or per block of `group` values."""
    rows = array.shape[0]
    flat = array.reshape(rows, -1).astype(np.float32).copy()
    step = flat.shape[1] if group == 0 else group
    for start in range(0, flat.shape[1], step):
        block = flat[:, start:start + step]
        scale = np.abs(block).max(1, keepdims=True) / np.float32(127)
        scale[scale == 0] = 1
        flat[:, start:start + step] = np.clip(np.rint(block / scale), -127, 127) * scale
    return flat.reshape(array.shape)


def least_cosines(run, reference):
    def least(a, b):
        return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())
    return least(run['kp_desc'], reference['kp_desc']), least(run['kp_meta'], reference['kp_meta'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='aislfd-a', choices=sorted(SAMPLES))
    args = parser.parse_args()
    weights = make_reference.load_weights(ROOT / 'Weights' / SAMPLES[args.arch])
    fixture = np.load(ROOT / 'Tests' / 'Fixtures' / 'reference' / f'{args.arch}.npz')
    image, keypoints = torch.from_numpy(fixture['image']), torch.from_numpy(fixture['keypoints'])

    def run(values):
        return make_reference.run(make_reference.build_model(values, args.arch), image, keypoints)

    reference = run(weights)
    quantizable = [k for k, v in weights.items() if k.endswith('weight') and v.ndim >= 2]
    print(f'{args.arch}: {len(quantizable)} conv / linear weights rounded to int8 (nearest), least kp_desc / kp_meta cosine')
    for group in (0, 128, 64, 32):
        values = dict(weights)
        for k in quantizable:
            values[k] = rounded(weights[k], group)
        desc, meta = least_cosines(run(values), reference)
        print(f'  {"one scale per output channel" if group == 0 else f"one scale per {group} values":<32} {desc:.5f} / {meta:.5f}')
    parts = sorted({k.split('.')[0] if not k.startswith(('conv_', 'vlad_')) else k.split('_')[0] + '_' for k in quantizable})
    for part in parts:
        values = dict(weights)
        for k in quantizable:
            if not k.startswith(part):
                values[k] = rounded(weights[k], 0)
        desc, meta = least_cosines(run(values), reference)
        print(f'  per output channel, {part + "* at fp32":<22} {desc:.5f} / {meta:.5f}')


if __name__ == '__main__':
    main()
