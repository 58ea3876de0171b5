"""Per-layer rounding error of the Swift runtime's 3x3 convolutions against float64:
direct convolutions, Winograd F(2x2, 3x3) and F(4x4, 3x3), and what each model runs
by default, next to PyTorch's own float32 error, on odd image sizes.

    .venv/bin/python tools/winograd_error.py [--sizes 61x83,97x131] [--archs lisrd,aislfd-a,aislfd-b,aislfd-c]
        [--no-build] [--all-layers]

For each architecture and size: the sample weights in Weights/, a seeded synthetic
image (tools/synthetic.py), PyTorch run in float64 and float32 with every activation
recorded (make_reference.run), and `aislfd-run --activations` with AISLFD_WINOGRAD=0,
2, 4 and unset. Each output's error is max |x - x64| / max |x64|, aislfd-verify's
measure (its fp32 tolerance: 1e-4). Prints the worst layer and the worst output per
column (--all-layers: every layer), so Winograd's rounding is a number next to what
float32 itself costs.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import make_reference  # noqa: E402
import synthetic  # noqa: E402

WEIGHTS = {'lisrd': 'lisrd.h5', 'aislfd-a': 'aislfd-a.pth', 'aislfd-b': 'aislfd-b.npz', 'aislfd-c': 'aislfd-c.safetensors'}
COLUMNS = [('pytorch fp32', None), ('swift direct', '0'), ('swift F(2x2)', '2'), ('swift F(4x4)', '4'), ('swift default', '')]
TOLERANCE = 1e-4


def relative(a, reference):
    return float(np.abs(a.astype(np.float64).reshape(reference.shape) - reference).max() / max(np.abs(reference).max(), 1e-30))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='61x83,97x131')
    parser.add_argument('--archs', default=','.join(WEIGHTS))
    parser.add_argument('--no-build', action='store_true')
    parser.add_argument('--all-layers', action='store_true')
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(['swift', 'build', '-c', 'release', '--product', 'aislfd-run'], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    torch.set_num_threads(1)
    worst_overall = {label: 0.0 for label, _ in COLUMNS}
    with tempfile.TemporaryDirectory(prefix='aislfd-error-') as tmp:
        tmp = Path(tmp)
        for arch in args.archs.split(','):
            weights_path = ROOT / 'Weights' / WEIGHTS[arch]
            model32 = make_reference.build_model(make_reference.load_weights(weights_path), arch)
            model64 = make_reference.build_model(make_reference.load_weights(weights_path), arch).double()
            for size in args.sizes.split(','):
                h, w = (int(v) for v in size.split('x'))
                image = synthetic.draw_image(11, h, w).astype(np.float32) / np.float32(255)
                image = np.ascontiguousarray(image.transpose(2, 0, 1))
                image_path = tmp / 'image.npy'
                np.save(image_path, image)
                tensor = torch.from_numpy(image)[None]
                ref64 = make_reference.run(model64, tensor.double(), None, record_acts=True, dtype=np.float64)
                runs = {'pytorch fp32': make_reference.run(model32, tensor, None, record_acts=True)}
                for label, setting in COLUMNS[1:]:
                    env = dict(os.environ)
                    env.pop('AISLFD_WINOGRAD', None)
                    if setting:
                        env['AISLFD_WINOGRAD'] = setting
                    out = tmp / 'run.npz'
                    subprocess.run([str(ROOT / '.build' / 'release' / 'aislfd-run'), str(weights_path), str(image_path),
                                    '-o', str(out), '--activations', '--threads', '2'], check=True, env=env,
                                   stdout=subprocess.DEVNULL, cwd=ROOT)
                    with np.load(out) as z:
                        runs[label] = {k: z[k] for k in z.files}
                keys = [k for k in ref64 if k.startswith(('act.', 'desc.', 'meta.')) and all(k in r for r in runs.values())]
                errors = {k: {label: relative(runs[label][k], ref64[k]) for label, _ in COLUMNS} for k in keys}
                print(f'{arch} {h}x{w}: relative max error against float64 ({len(keys)} outputs and layers)')
                print(f'  {"":<44}' + ''.join(f'{label:>15}' for label, _ in COLUMNS))
                shown = keys if args.all_layers else []
                for k in shown:
                    print(f'  {k:<44}' + ''.join(f'{errors[k][label]:15.2e}' for label, _ in COLUMNS))
                for group, prefix in (('worst layer (act.*)', 'act.'), ('worst output (desc.*, meta.*)', ('desc.', 'meta.'))):
                    chosen = [k for k in keys if k.startswith(prefix)]
                    if not chosen:
                        continue
                    row = {label: max(errors[k][label] for k in chosen) for label, _ in COLUMNS}
                    print(f'  {group:<44}' + ''.join(f'{row[label]:15.2e}' for label, _ in COLUMNS))
                    for label in row:
                        worst_overall[label] = max(worst_overall[label], row[label])
    print('worst over every architecture, size and output: ' +
          ', '.join(f'{label} {v:.2e}' for label, v in worst_overall.items()) +
          f' (aislfd-verify fp32 tolerance {TOLERANCE:g}: ' +
          ('all within' if all(v <= TOLERANCE for v in worst_overall.values()) else 'SOME OVER') + ')')


if __name__ == '__main__':
    main()
