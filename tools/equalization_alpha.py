"""How far InputEqualization should move an int8 layer's input spread into its weight: the
trained LISRD checkpoint in PyTorch with one layer (default `_backbone._conv1_2`, 30% of its
multiply-adds) computing in int8 — its input quantized to u8 with one scale (the converter's
least-squared-error clipping), its weight rounded to nearest with one scale per output channel
— against the fp32 model, as the 0.2% quantile of the per-position cosines of the desc and meta
maps on seeded dead-leaves images (ChooseInt8Compute's measure). Rows: no equalization; then
for each alpha the factors k[c] = max_o |W[o, c]|^(1 - alpha) / max |x[c]|^alpha (geometric
mean 1), as they are and rounded to powers of two.

    .venv/bin/python tools/equalization_alpha.py [--layer _backbone._conv1_2]

No GPTQ, so the absolute quantiles are below the converter's; the comparison between rows is
what it is for (docs/conversion.md, InputEqualization).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import make_quant_fixtures  # noqa: E402
import make_reference  # noqa: E402


def fitted(x, low, high):
    """(scale, zero point) of the u8 range f * (low, high), f = 2^(-k/4), with the least squared error on x."""
    best = None
    for k in range(25):
        f = 2 ** (-k / 4)
        lo, hi = min(low * f, 0.0), max(high * f, 0.0)
        scale = (hi - lo) / 255
        zero = np.round(-lo / scale)
        error = (((np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale - x) ** 2).sum()
        if best is None or error < best[0]:
            best = (error, scale, zero)
    return best[1], best[2]


def rounded_rows(w):
    rows = w.reshape(w.shape[0], -1)
    scale = rows.abs().max(1, keepdim=True).values / 127
    scale[scale == 0] = 1
    return (torch.clamp(torch.round(rows / scale), -127, 127) * scale).reshape(w.shape)


def quantile(outputs, reference, q=0.002):
    desc, meta = [], []
    for out, ref in zip(outputs, reference):
        for key in out:
            a, b = out[key][0], ref[key][0]
            c = ((a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0) + 1e-30)).reshape(-1).numpy()
            (desc if key.startswith('desc') else meta).append(c)
    return np.quantile(np.concatenate(desc), q), np.quantile(np.concatenate(meta), q)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--layer', default='_backbone._conv1_2')
    args = parser.parse_args()
    model = make_reference.build_model(make_reference.load_weights(ROOT / 'Weights/trained/lisrd.pth')).eval()
    conv = model.get_submodule(args.layer)
    images = [make_quant_fixtures.dead_leaves(s, 128, 160) for s in (101, 102, 103, 104)]
    calibration = [make_quant_fixtures.dead_leaves(s, 128, 160) for s in (201, 202)]
    seen = []
    hook = conv.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach()))
    with torch.no_grad():
        for image in calibration:
            model(image)
        hook.remove()
        reference = [model(image) for image in images]
    channels = conv.weight.shape[1]
    x = torch.cat([s.transpose(0, 1).reshape(channels, -1) for s in seen], 1).numpy()
    low, high = x.min(1), x.max(1)
    weight = conv.weight.detach().clone()
    column_max = weight.abs().amax(dim=(0, 2, 3)).numpy()
    input_max = np.maximum(np.abs(low), np.abs(high))

    def measure(k):
        scale, zero = fitted((x * k[:, None]).ravel()[::7], (low * k).min(), (high * k).max())
        kt = torch.tensor(k, dtype=torch.float32)[None, :, None, None]
        conv.weight.data = rounded_rows(weight / kt) * kt
        step = torch.tensor(scale / k, dtype=torch.float32)[None, :, None, None]
        quantize = lambda m, inp: ((torch.clamp(torch.round(inp[0] / step) + zero, 0, 255) - zero) * step,)
        hook = conv.register_forward_pre_hook(quantize)
        with torch.no_grad():
            outputs = [model(image) for image in images]
        hook.remove()
        conv.weight.data = weight.clone()
        return quantile(outputs, reference)

    print(f'{args.layer} alone in int8: 0.2% quantile of per-position cosines (desc, meta)')
    print('not equalized         desc %.5f  meta %.6f' % measure(np.ones(channels)))
    for alpha in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        logs = (1 - alpha) * np.log2(column_max) - alpha * np.log2(input_max)
        logs -= logs.mean()
        real, power = measure(2.0 ** logs), measure(2.0 ** np.round(logs))
        print(f'alpha {alpha}  factors   desc %.5f  meta %.6f   powers of two  desc %.5f  meta %.6f' % (real + power))


if __name__ == '__main__':
    main()
