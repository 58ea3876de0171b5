"""Seeded sample checkpoints with trained-like statistics, exported to HDF5, NPZ,
PyTorch (.pth) and safetensors, each checked bit for bit after writing, plus a
manifest (dtype, shape, sha256 per state_dict key).

The committed samples in Weights/ were made with (see Weights/README.md):

    .venv/bin/python tools/make_samples.py --arch lisrd    --seed 1 --out-dir Weights --formats h5
    .venv/bin/python tools/make_samples.py --arch aislfd-a --seed 1 --out-dir Weights --formats pth
    .venv/bin/python tools/make_samples.py --arch aislfd-b --seed 1 --out-dir Weights --formats npz
    .venv/bin/python tools/make_samples.py --arch aislfd-c --seed 1 --out-dir Weights --formats safetensors

A second seed in all four formats, not committed (for testing checkers):

    .venv/bin/python tools/make_samples.py --arch aislfd-c --seed 2 --out-dir /tmp/aislfd-seed2

How the values are made (all randomness from numpy SeedSequence([seed, arch index])):
- Convs: He-normal (fan_in), times a per-output-channel factor exp(+-U(0.4, 1.5)),
  so channel scales spread over ~20x as in trained nets; small non-zero biases.
- BatchNorms: running_mean / running_var are the statistics (mean, unbiased var) of
  each BN's input over a batch of seeded synthetic images, measured in float64 with the
  BNs before it already set, so the network stays consistent with the data (variance
  floored at 1e-3 for channels that ReLU kills on every calibration pixel). Then
  weight = +-U(0.4, 0.75) or +-U(1.3, 2.2) (10% negative), bias = +-U(0.15, 0.8):
  BN is far from the identity and activations keep an O(1) scale at every depth.
  num_batches_tracked = the checkpoint's `iter` (an int64, the same in every BN).
- NetVLAD: centroids are 8 of the calibration descriptors plus noise; conv.weight =
  2*alpha*c (+noise), conv.bias = -alpha*|c|^2, alpha set by bisection so the mean
  largest soft-assignment is 0.6 (uniform would be 0.125).
- PSA: Gaussian projections; Wq and Wk are scaled so the scores Q K^T / sqrt(128)
  have a per-row std of 3 on the calibration images (attention far from uniform).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
import synthetic  # noqa: E402

FORMATS = ('h5', 'npz', 'pth', 'safetensors')
CALIBRATION_IMAGES = 4
CALIBRATION_SIZE = (96, 128)
STATS_IMAGE = (1, 61, 83)  # (seed, H, W): the 61x83 fixture image
NETVLAD_TARGET_MAX_ASSIGNMENT = 0.6
PSA_TARGET_SCORE_STD = 3.0


def image_tensor(uint8_hwc, dtype=torch.float32):
    """[1, 3, H, W] in [0, 1]: the uint8 values / 255 in float32 (as a user's loader does)."""
    x = torch.from_numpy(uint8_hwc.astype(np.float32) / np.float32(255)).permute(2, 0, 1).unsqueeze(0)
    return x.contiguous().to(dtype)


def away_from(rng, size, low, high, negative_share):
    """Magnitudes uniform in [low, high], a share of them negative."""
    value = rng.uniform(low, high, size=size)
    return np.where(rng.uniform(size=size) < negative_share, -value, value)


def init_convs(model, rng):
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            out = module.out_channels
            factor = np.exp(away_from(rng, out, 0.4, 1.5, 0.5))
            w = rng.normal(0, np.sqrt(2.0 / fan_in), size=module.weight.shape) * factor[:, None, None, None]
            module.weight.data = torch.from_numpy(w)
            if module.bias is not None:
                module.bias.data = torch.from_numpy(rng.normal(0, 0.1, size=out) * factor)


def calibrate_batchnorms(model, images, rng, iteration):
    """Sets each BN from the statistics of its own input, in forward order, in one pass."""
    def set_from_input(bn, inputs):
        x = inputs[0]
        c = x.shape[1]
        bn.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        # A channel that ReLU kills on every calibration pixel has variance 0; the floor keeps it positive.
        bn.running_var.copy_(x.transpose(0, 1).reshape(c, -1).var(dim=1, unbiased=True).clamp(min=1e-3))
        bn.weight.data = torch.from_numpy(
            np.where(rng.uniform(size=c) < 0.5, away_from(rng, c, 0.4, 0.75, 0.1), away_from(rng, c, 1.3, 2.2, 0.1)))
        bn.bias.data = torch.from_numpy(away_from(rng, c, 0.15, 0.8, 0.5))
        bn.num_batches_tracked.fill_(iteration)

    handles = [m.register_forward_pre_hook(set_from_input)
               for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model.raw_maps(images)
    for h in handles:
        h.remove()


def calibrate_netvlad(vlad, raw, rng):
    x = F.normalize(raw, dim=1).permute(0, 2, 3, 1).reshape(-1, raw.shape[1])  # positions x 128
    picks = rng.choice(x.shape[0], size=models.VLAD_CLUSTERS, replace=False)
    c = x[picks] + torch.from_numpy(rng.normal(0, 0.05, size=(models.VLAD_CLUSTERS, x.shape[1])))

    def mean_max_assignment(alpha):
        logits = 2 * alpha * x @ c.t() - alpha * (c * c).sum(dim=1)
        return F.softmax(logits, dim=1).max(dim=1).values.mean().item()

    lo, hi = 0.0, 1.0
    while mean_max_assignment(hi) < NETVLAD_TARGET_MAX_ASSIGNMENT:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_max_assignment(mid) < NETVLAD_TARGET_MAX_ASSIGNMENT else (lo, mid)
    alpha = (lo + hi) / 2
    weight = 2 * alpha * c + torch.from_numpy(rng.normal(0, 0.02 * alpha, size=c.shape))
    vlad.centroids.data = c.clone()
    vlad.conv.weight.data = weight.view(models.VLAD_CLUSTERS, -1, 1, 1).clone()
    vlad.conv.bias.data = -alpha * (c * c).sum(dim=1) + torch.from_numpy(rng.normal(0, 0.02, size=models.VLAD_CLUSTERS))


def attention_scores(psa, raw):
    x = F.normalize(raw.flatten(2).transpose(1, 2), dim=2)
    return psa.query(x) @ psa.key(x).transpose(1, 2) / np.sqrt(raw.shape[1])


def calibrate_psa(psa, raw, rng):
    d = models.DESC_DIM
    for linear in (psa.query, psa.key, psa.value):
        linear.weight.data = torch.from_numpy(rng.normal(0, 1 / np.sqrt(d), size=(d, d)))
        linear.bias.data = torch.from_numpy(rng.normal(0, 0.05, size=d))
    for _ in range(20):
        row_std = attention_scores(psa, raw).std(dim=2).mean().item()
        if abs(row_std / PSA_TARGET_SCORE_STD - 1) < 1e-3:
            break
        factor = np.sqrt(PSA_TARGET_SCORE_STD / row_std)
        psa.query.weight.data *= factor
        psa.key.weight.data *= factor


def make_model(arch, seed):
    rng = np.random.default_rng(np.random.SeedSequence([seed, models.ARCHS.index(arch)]))
    iteration = int(rng.integers(20_000, 200_000))
    model = models.build(arch).double()
    init_convs(model, rng)
    h, w = CALIBRATION_SIZE
    images = torch.cat([image_tensor(synthetic.draw_image(int(rng.integers(1 << 31)), h, w), torch.float64)
                        for _ in range(CALIBRATION_IMAGES)])
    calibrate_batchnorms(model, images, rng, iteration)
    with torch.no_grad():
        maps = model.raw_maps(images)
        for v, raw in zip(models.VARIANTS, maps):
            if model.meta_kind == 'netvlad':
                calibrate_netvlad(getattr(model, f'vlad_{v}'), raw, rng)
            else:
                calibrate_psa(model.psa[v], raw, rng)
    return model.float().eval(), iteration


def adam_state_dict(model, rng, iteration):
    """A realistic Adam state_dict: the real param_groups, state for one small parameter."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sd = optimizer.state_dict()
    index = len(sd['param_groups'][0]['params']) - 1
    shape = list(model.parameters())[-1].shape
    sd['state'][index] = {
        'step': torch.tensor(float(iteration)),
        'exp_avg': torch.from_numpy(rng.normal(0, 1e-4, size=shape).astype(np.float32)),
        'exp_avg_sq': torch.from_numpy(rng.uniform(1e-10, 1e-8, size=shape).astype(np.float32)),
    }
    return sd


def le_bytes(array):
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder('<')).tobytes()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def write_h5(path, arrays, arch, seed):
    with h5py.File(path, 'w') as f:
        f.attrs['arch'] = arch
        f.attrs['seed'] = np.int64(seed)
        for key, a in arrays.items():
            f.create_dataset('/'.join(key.split('.')), data=a)


def read_h5(path):
    arrays = {}
    with h5py.File(path, 'r') as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name.replace('/', '.'), obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
        meta = {'arch': f.attrs['arch'], 'seed': int(f.attrs['seed'])}
    return arrays, meta


def write_pth(path, state_dict, optimizer_state, iteration):
    torch.save({'iter': iteration, 'model_state_dict': state_dict, 'optimizer_state_dict': optimizer_state}, path)


def read_pth(path):
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    return OrderedDict((k, v.numpy()) for k, v in checkpoint['model_state_dict'].items()), checkpoint


def write_safetensors(path, state_dict, arch, seed):
    metadata = {'arch': arch, 'seed': str(seed)}
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path), metadata=metadata)
    # The library writes __metadata__ in hash-map order, which changes from run to run.
    # Rewrite it in sorted order, in place (same length), so the same seed gives the same bytes.
    with open(path, 'r+b') as f:
        header_size = int.from_bytes(f.read(8), 'little')
        header = f.read(header_size)
        start = header.index(b'"__metadata__":{') + len(b'"__metadata__":')
        end = header.index(b'}', start) + 1
        canonical = json.dumps(dict(sorted(metadata.items())), separators=(',', ':')).encode()
        assert json.loads(header[start:end]) == metadata and len(canonical) == end - start
        f.seek(8 + start)
        f.write(canonical)
    os.chmod(path, 0o644)


def read_safetensors(path):
    with safe_open(str(path), framework='numpy') as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def check_same(name, expected, actual, ordered):
    """Bit-for-bit: same keys (and order where the format keeps it), dtypes, shapes, bytes."""
    if ordered and list(actual) != list(expected):
        raise SystemExit(f'{name}: keys or their order differ from the state_dict')
    if set(actual) != set(expected):
        raise SystemExit(f'{name}: keys differ: missing {set(expected) - set(actual)}, extra {set(actual) - set(expected)}')
    for k, a in expected.items():
        b = np.asarray(actual[k])
        if a.dtype != b.dtype or a.shape != b.shape or le_bytes(a) != le_bytes(b):
            raise SystemExit(f'{name}: tensor {k} differs ({a.dtype}{a.shape} vs {b.dtype}{b.shape})')


def manifest_json(arch, seed, iteration, files, arrays):
    """The manifest: tensors in state_dict order, one per line."""
    head = {'arch': arch, 'seed': seed, 'iter': iteration, 'files': files}
    lines = [json.dumps({'key': k, 'dtype': a.dtype.name, 'shape': list(a.shape),
                         'sha256': hashlib.sha256(le_bytes(a)).hexdigest()}) for k, a in arrays.items()]
    return json.dumps(head)[:-1] + ',\n "tensors": [\n  ' + ',\n  '.join(lines) + '\n ]\n}\n'


def export(model, arch, seed, iteration, out_dir, name, formats, rng):
    state_dict = model.state_dict()
    arrays = OrderedDict((k, v.numpy()) for k, v in state_dict.items())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix='.make_samples-') as tmp:
        tmp = Path(tmp)
        for fmt in formats:
            path = tmp / f'{name}.{fmt}'
            if fmt == 'h5':
                write_h5(path, arrays, arch, seed)
                back, meta = read_h5(path)
                check_same(path.name, arrays, back, ordered=False)  # HDF5 lists by name
                assert meta == {'arch': arch, 'seed': seed}, meta
            elif fmt == 'npz':
                np.savez(path, **arrays)
                with np.load(path, allow_pickle=False) as z:
                    check_same(path.name, arrays, {k: z[k] for k in z.files}, ordered=True)
            elif fmt == 'pth':
                write_pth(path, state_dict, adam_state_dict(model, rng, iteration), iteration)
                back, checkpoint = read_pth(path)
                check_same(path.name, arrays, back, ordered=True)
                assert checkpoint['iter'] == iteration
            elif fmt == 'safetensors':
                write_safetensors(path, state_dict, arch, seed)
                back, meta = read_safetensors(path)
                check_same(path.name, arrays, back, ordered=False)  # safetensors sorts keys
                assert meta == {'arch': arch, 'seed': str(seed)}, meta
            written[path.name] = sha256_file(path)
        (tmp / f'{name}.manifest.json').write_text(manifest_json(arch, seed, iteration, written, arrays))
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
    return written


def activation_table(model, arch):
    """(name, shape, std) for every recorded activation and output on the 61x83 fixture image."""
    seed, h, w = STATS_IMAGE
    acts = {}
    with torch.no_grad():
        out = model(image_tensor(synthetic.draw_image(seed, h, w)), acts)
    rows = [(k, tuple(v.shape), v.std().item()) for k, v in list(acts.items()) + list(out.items())]
    extra = []
    with torch.no_grad():
        for v in models.VARIANTS:
            raw = out[f'desc.{v}']
            if model.meta_kind == 'psa':
                scores = attention_scores(model.psa[v], raw)
                a = F.softmax(scores, dim=2)
                extra.append(f'psa.{v}: score row-std {scores.std(dim=2).mean():.2f}, '
                             f'mean max attention {a.max(dim=2).values.mean():.3f} (uniform {1 / a.shape[2]:.3f})')
            else:
                vlad = getattr(model, f'vlad_{v}')
                a = F.softmax(vlad.conv(F.normalize(raw, dim=1)), dim=1)
                extra.append(f'vlad_{v}: mean max soft-assignment {a.max(dim=1).values.mean():.3f} (uniform 0.125)')
    return rows, extra


def batchnorm_summary(model):
    lines = []
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            lines.append(f'| {name} | {m.running_mean.abs().mean():.3f} | {m.running_var.min():.3g} .. {m.running_var.max():.3g} '
                         f'| {(m.weight - 1).abs().min():.2f} | {m.bias.abs().min():.2f} | {int(m.num_batches_tracked)} |')
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', required=True, choices=models.ARCHS)
    parser.add_argument('--seed', required=True, type=int)
    parser.add_argument('--out-dir', required=True, type=Path)
    parser.add_argument('--formats', default=','.join(FORMATS))
    parser.add_argument('--name', help='file name stem (default: the arch id)')
    parser.add_argument('--quiet', action='store_true', help='no statistics tables')
    args = parser.parse_args()
    formats = args.formats.split(',')
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        parser.error(f'unknown format(s) {bad}; choose from {",".join(FORMATS)}')
    torch.set_num_threads(1)  # reductions in a fixed order: same seed, same bytes

    model, iteration = make_model(args.arch, args.seed)
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, models.ARCHS.index(args.arch), 1]))
    written = export(model, args.arch, args.seed, iteration, args.out_dir, args.name or args.arch, formats, rng)
    for f, digest in written.items():
        size = (args.out_dir / f).stat().st_size
        print(f'{args.out_dir / f}: {size:,} bytes, sha256 {digest}')
    if args.quiet:
        return
    rows, extra = activation_table(model, args.arch)
    print(f'\nActivation std on the {STATS_IMAGE[1]}x{STATS_IMAGE[2]} synthetic image (seed {STATS_IMAGE[0]}):\n')
    print('| tensor | shape | std |\n|---|---|---|')
    for name, shape, std in rows:
        print(f'| {name} | {list(shape)} | {std:.4g} |')
    print()
    for line in extra:
        print(line)
    print('\n| BatchNorm | mean abs(running_mean) | running_var range | min abs(weight-1) | min abs(bias) | num_batches_tracked |')
    print('|---|---|---|---|---|---|')
    for line in batchnorm_summary(model):
        print(line)


if __name__ == '__main__':
    main()
