"""Expected values for the converter's calibrated quantization (GPTQ and mixed precision),
from NumPy and PyTorch, written to Tests/Fixtures/convert/quant.json. Regenerate from the
repository root with

    .venv/bin/python tools/make_quant_fixtures.py

Deterministic (seeded, PyTorch on one thread): a rerun gives the same bytes.

What it writes (docs/conversion.md describes the passes):
- dead_leaves: the calibration image generator (CalibrationImages.deadLeaves) repeated in
  NumPy from its description -- SplitMix64, the disc law, painting order, grain, 8 bits --
  for a few seeds and sizes: the 8-bit values (uint8 q; the image is q / 255 in float32).
- moments: the second moments H = sum(x x^T) / count of the inputs of chosen layers, measured
  with PyTorch forward pre-hooks on the UNFOLDED models of tools/models.py (conv inputs
  through F.unfold with the conv's own padding and stride, linear inputs per position) on a
  dead-leaves image, for the committed samples Weights/lisrd.h5 and
  Weights/aislfd-c.safetensors. The layers cover every kind of wiring: the image, a ReLU, a
  2x2 pool, the backbone's output, a BatchNorm kept as an affine at int8, the NetVLAD conv
  (resized to a multiple of 3, L2-normalised), MSFE's fusion (a sum with two bilinear
  resizes) and a PSA projection (L2-normalised positions). Per layer: the vector count, the
  trace, the sum of all entries, the diagonal and the first row.
- gptq: a 16 x 288 weight (32 input channels, 3x3; per-row factors spread 20x, one all-zero
  row) and the second moments of its zero-padded patches over a smooth random 32 x 14 x 18
  map (positions < 288: H is rank-deficient, so the damping matters), with GPTQ computed
  in NumPy float64 column by column without blocks (the algorithm as the GPTQ paper states
  it: act order, dead inputs, damping 0.01 of the mean diagonal, H^-1's upper Cholesky
  factor): q, scales, and the output noise ratios tr(D H D^T) / tr(W H W^T) of GPTQ and of
  rounding to nearest. The script checks that no value GPTQ rounds lies within 1e-6 of a
  rounding boundary, so a float64 implementation with another summation order gives the
  same q.
- sensitivity: for Weights/lisrd.h5 and Weights/aislfd-c.safetensors, two dead-leaves
  images (the sensitivity seeds of CalibrationSettings with seed 1: 1001, 1002) at 64 x 80
  and chosen weights: the mean over the 8 output maps (desc and meta of each variant) of the
  mean over positions of 1 - cos between PyTorch's fp32 outputs and its outputs with that
  weight alone rounded to int8 to nearest (per output channel, max|w|/127; for an MSFE conv
  the weight with its BatchNorm folded in, as the converter stores it) -- what MixedPrecision
  measures with the runtime.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import models  # noqa: E402
from make_reference import build_model, load_weights  # noqa: E402

OUT = ROOT / 'Tests' / 'Fixtures' / 'convert' / 'quant.json'
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return float(self.next() >> 11) * 2.0 ** -53


def dead_leaves_q(seed, height, width, max_discs=20000, rmin=3.0):
    """uint8 [3, H, W] as CalibrationImages.deadLeaves makes it (docs in its Swift source)."""
    rnd = SplitMix64(seed)
    background = [rnd.uniform() for _ in range(3)]
    colour = np.zeros((3, height, width))
    painted = np.zeros((height, width), bool)
    left = height * width
    rmax = max(max(height, width) / 2.0, rmin)
    a, b = 1 / (rmin * rmin), 1 / (rmax * rmax)
    discs = 0
    while left > 0 and discs < max_discs:
        discs += 1
        r = 1 / math.sqrt(a - rnd.uniform() * (a - b))
        cx = -r + rnd.uniform() * (width + 2 * r)
        cy = -r + rnd.uniform() * (height + 2 * r)
        rgb = [rnd.uniform() for _ in range(3)]
        y0, y1 = max(0, math.ceil(cy - r)), min(height - 1, math.floor(cy + r))
        x0, x1 = max(0, math.ceil(cx - r)), min(width - 1, math.floor(cx + r))
        for y in range(y0, y1 + 1):
            dy = y - cy
            for x in range(x0, x1 + 1):
                if painted[y, x]:
                    continue
                dx = x - cx
                if dx * dx + dy * dy <= r * r:
                    painted[y, x] = True
                    left -= 1
                    colour[:, y, x] = rgb
    colour[:, ~painted] = np.asarray(background)[:, None]
    flat = colour.reshape(-1)
    grain = np.array([rnd.uniform() for _ in range(flat.size)])
    v = np.clip(flat + (grain - 0.5) / 50, 0, 1)
    return np.rint(v * 255).astype(np.uint8).reshape(3, height, width)


def dead_leaves(seed, height, width):
    """[1, 3, H, W] float32, q / 255 in float32."""
    q = dead_leaves_q(seed, height, width)
    return torch.from_numpy(q.astype(np.float32) / np.float32(255))[None]


def load_model(file_name):
    return build_model(load_weights(ROOT / 'Weights' / file_name))


def columns(module, x):
    x = x.double()
    if isinstance(module, nn.Conv2d):
        return F.unfold(x, module.kernel_size, padding=module.padding, stride=module.stride)[0]
    return x.reshape(-1, x.shape[-1]).t()


def moments(model, layer_names, image):
    store = {name: [] for name in layer_names}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_pre_hook(lambda m, inp, n=n: store[n].append(inp[0].detach().clone()))
             for n in layer_names]
    with torch.no_grad():
        model(image)
    for h in hooks:
        h.remove()
    out = {}
    for name in layer_names:
        cols = torch.cat([columns(modules[name], x) for x in store[name]], dim=1)
        h = (cols @ cols.t()) / cols.shape[1]
        out[name] = {'count': int(cols.shape[1]), 'size': int(h.shape[0]), 'trace': float(torch.trace(h)),
                     'sum': float(h.sum()), 'diagonal': torch.diag(h).tolist(), 'first_row': h[0].tolist()}
    return out


def round_to_nearest(w):
    """Per row: scale = max|w| / 127 (float32), q = clip(rint(w / scale)) (float32 division)."""
    w = w.astype(np.float32)
    scales = (np.abs(w).max(axis=1) / np.float32(127)).astype(np.float32)
    q = np.zeros(w.shape, np.int8)
    nz = scales > 0
    q[nz] = np.clip(np.rint(w[nz] / scales[nz, None]), -127, 127).astype(np.int8)
    return q, scales


def gptq(w, h, damping=0.01):
    """GPTQ in float64, one column at a time; returns q, scales and the smallest distance of a
    rounded value to a rounding boundary (in steps)."""
    rows, n = w.shape
    scales = (np.abs(w).max(axis=1) / np.float32(127)).astype(np.float32)
    diag = np.diag(h)
    order = sorted(range(n), key=lambda i: (-diag[i], i))
    hp = h[np.ix_(order, order)].copy()
    dead = np.diag(hp) == 0
    hp[dead, dead] = 1
    hp[np.diag_indices(n)] += damping * np.mean(np.diag(hp))
    lower = np.linalg.cholesky(hp)
    inverse = np.linalg.inv(lower)
    u = np.linalg.cholesky(inverse.T @ inverse).T
    wp = w[:, order].astype(np.float64)
    q = np.zeros((rows, n), np.int8)
    margin = np.inf
    for a in range(n):
        x = wp[:, a]
        t = np.where(scales > 0, x / np.where(scales > 0, scales, 1).astype(np.float64), 0)
        frac = np.abs(t - np.floor(t) - 0.5)
        margin = min(margin, frac[(scales > 0) & (np.abs(t) < 127)].min(initial=np.inf))
        v = np.clip(np.rint(t), -127, 127)
        q[:, a] = v.astype(np.int8)
        stored = (v.astype(np.float32) * scales).astype(np.float64)
        err = (x - stored) / u[a, a]
        wp[:, a + 1:] -= np.outer(err, u[a, a + 1:])
    out = np.zeros_like(q)
    out[:, order] = q
    return out, scales, margin


def noise_ratio(w, stored, h):
    d = stored.astype(np.float64) - w.astype(np.float64)
    return float(np.trace(d @ h @ d.T) / np.trace(w.astype(np.float64) @ h @ w.astype(np.float64).T))


def gptq_case():
    rng = np.random.default_rng(7)
    rows, cin, k = 16, 32, 3
    factor = np.exp(rng.uniform(-1.5, 1.5, rows))
    w = (rng.normal(0, np.sqrt(2 / (cin * k * k)), (rows, cin, k, k)) * factor[:, None, None, None]).astype(np.float32)
    w[5] = 0
    # A smooth map: white noise blurred twice, channels mixed, plus per-channel offsets.
    x = rng.normal(size=(cin, 14, 18))
    for _ in range(2):
        x = (x + np.roll(x, 1, 1) + np.roll(x, 1, 2) + np.roll(x, (1, 1), (1, 2))) / 2
    x = np.einsum('ij,jhw->ihw', rng.normal(size=(cin, cin)) / np.sqrt(cin), x) + rng.uniform(-1, 1, (cin, 1, 1))
    x = x.astype(np.float32)
    cols = F.unfold(torch.from_numpy(x.astype(np.float64))[None], k, padding=1)[0].numpy()
    h = cols @ cols.T / cols.shape[1]
    wf = w.reshape(rows, -1)
    q, scales, margin = gptq(wf, h)
    assert margin > 1e-6, margin
    qn, sn = round_to_nearest(wf)
    return {
        'shape': [rows, cin, k, k], 'weight': [int(v) for v in wf.reshape(-1).view(np.uint32)],
        'map_shape': list(x.shape), 'map': [int(v) for v in x.reshape(-1).view(np.uint32)],
        'moments_count': int(cols.shape[1]), 'moments_trace': float(np.trace(h)), 'moments_sum': float(h.sum()),
        'moments_diagonal': np.diag(h).tolist(), 'moments_first_row': h[0].tolist(),
        'damping': 0.01, 'q': q.reshape(-1).tolist(), 'scales': [int(v) for v in scales.view(np.uint32)],
        'rounding_margin': float(margin),
        'noise_ratio_gptq': noise_ratio(wf, q.astype(np.float32) * scales[:, None], h),
        'noise_ratio_nearest': noise_ratio(wf, qn.astype(np.float32) * sn[:, None], h),
    }


def output_error(out, ref):
    total, maps = 0.0, 0
    for key in ref:
        a, b = out[key][0].double(), ref[key][0].double()
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        dot, aa, bb = (a * b).sum(0), (a * a).sum(0), (b * b).sum(0)
        both_zero = (aa == 0) & (bb == 0)
        one_zero = ((aa == 0) | (bb == 0)) & ~both_zero
        c = torch.where(one_zero, torch.ones_like(dot), 1 - dot / (aa.sqrt() * bb.sqrt()).clamp_min(1e-300))
        c = torch.where(both_zero, torch.zeros_like(c), c)
        total += float(c.sum() / c.numel())
        maps += 1
    return total / maps


def folded_bn_scale(model, conv_name):
    """For an MSFE conv followed directly by its BatchNorm (block conv -> bn, head conv1 -> bn1):
    the per-output-channel scale the converter folds into it; None for other convs."""
    if conv_name.endswith('.conv'):
        bn_name = conv_name[:-len('conv')] + 'bn'
    elif conv_name.endswith('.conv1'):
        bn_name = conv_name[:-len('conv1')] + 'bn1'
    else:
        return None
    bn = dict(model.named_modules()).get(bn_name)
    if not isinstance(bn, nn.BatchNorm2d):
        return None
    return (bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)).float()


def sensitivity(file_name, weight_keys, seeds, height, width):
    model = load_model(file_name)
    images = [dead_leaves(s, height, width) for s in seeds]
    with torch.no_grad():
        refs = [model(im) for im in images]
    out = {}
    for key in weight_keys:
        name = key[:-len('.weight')]
        m = load_model(file_name)
        mod = dict(m.named_modules())[name]
        w = mod.weight.data
        flat = w.reshape(w.shape[0], -1)
        s = folded_bn_scale(m, name) if models.BACKBONE[m.arch] == 'msfe' else None
        if s is not None:
            folded = (flat.double() * s.double()[:, None]).float().numpy()
            q, scales = round_to_nearest(folded)
            stored = torch.from_numpy(q.astype(np.float32) * scales[:, None]).double() / s.double()[:, None]
        else:
            q, scales = round_to_nearest(flat.numpy())
            stored = torch.from_numpy(q.astype(np.float32) * scales[:, None]).double()
        mod.weight.data = stored.float().reshape(w.shape)
        with torch.no_grad():
            errors = [output_error(m(im), ref) for im, ref in zip(images, refs)]
        out[key] = sum(errors) / len(errors)
    return out


def main():
    torch.set_num_threads(1)
    leaves = [{'seed': seed, 'height': h, 'width': w, 'q': dead_leaves_q(seed, h, w).reshape(-1).tolist()}
              for seed, h, w in ((1, 24, 32), (1001, 30, 41), (12345, 17, 23))]
    image = dead_leaves(1, 64, 80)
    lisrd = load_model('lisrd.h5')
    c = load_model('aislfd-c.safetensors')
    moment_layers = {
        'lisrd.h5': ['_backbone._conv1_1', '_backbone._conv2_1', '_backbone._conv1_2', 'conv_illum_var_rot_var_1',
                     'conv_illum_var_rot_var_2', 'vlad_rot_var_illum_var.conv'],
        'aislfd-c.safetensors': ['msfe.layer1.conv', 'msfe.smooth.conv', 'msfe.lateral2', 'msfe.heads.rot_var_illum_var.conv2',
                                 'psa.rot_var_illum_var.query'],
    }
    fixture = {
        'dead_leaves': leaves,
        'moments': {'image': {'seed': 1, 'height': 64, 'width': 80},
                    'lisrd.h5': moments(lisrd, moment_layers['lisrd.h5'], image),
                    'aislfd-c.safetensors': moments(c, moment_layers['aislfd-c.safetensors'], image)},
        'gptq': gptq_case(),
        'sensitivity': {
            'images': {'seeds': [1001, 1002], 'height': 64, 'width': 80},
            'lisrd.h5': sensitivity('lisrd.h5', ['_backbone._conv1_1.weight', '_backbone._conv4_2.weight',
                                                 'conv_illum_var_rot_var_2.weight', 'vlad_rot_var_illum_var.conv.weight'],
                                    [1001, 1002], 64, 80),
            'aislfd-c.safetensors': sensitivity('aislfd-c.safetensors', ['msfe.stem.conv.weight', 'msfe.lateral3.weight',
                                                                         'psa.rot_var_illum_var.key.weight'],
                                                [1001, 1002], 64, 80),
        },
    }
    OUT.write_text(json.dumps(fixture, separators=(',', ':')) + '\n')
    print(f'wrote {OUT} ({OUT.stat().st_size} bytes); GPTQ rounding margin {fixture["gptq"]["rounding_margin"]:.3g},',
          f'noise ratio GPTQ {fixture["gptq"]["noise_ratio_gptq"]:.4g} vs nearest {fixture["gptq"]["noise_ratio_nearest"]:.4g}')
    for f in ('lisrd.h5', 'aislfd-c.safetensors'):
        print(f, {k: f'{v:.4g}' for k, v in fixture['sensitivity'][f].items()})


if __name__ == '__main__':
    main()
