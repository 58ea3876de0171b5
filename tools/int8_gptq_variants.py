"""Whether a different layer-wise int8 rounding closes aislfd-a's kp_meta gap: the least keypoint
cosines (kp_desc, kp_meta, as aislfd-verify reports them) of the PyTorch model with every conv
and linear weight but the first rounded to int8 by GPTQ (one scale per output channel), against
the fp32 model, on a committed reference's image and keypoints. Three ways of choosing what each
layer's rounding minimises, on the same calibration images (dead leaves, seeds 1 ... n, 192 x 256):

- parallel:   E |(W' - W) x|^2 with x the fp32 network's input to the layer (what the converter does);
- sequential: the same, with x the input of the network whose earlier layers are already rounded;
- compensate: E |W' x' - W x|^2, x' that rounded network's input, x the fp32 one: the layer's
  rounding also undoes what it inherits (target W E[x x'^T] (E[x' x'^T] + lam I)^-1, lam a
  fraction of the mean diagonal).

    .venv/bin/python tools/int8_gptq_variants.py [--arch aislfd-a] [--images 8] [--lam 0.3]

The first convolution stays fp32 in every row (the converter stores it wider within the size
budget); nothing here is stored at fp16, so the cosines are below the converter's. The rows are
for comparing with one another (docs/conversion.md, "Known gap").
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import make_quant_fixtures  # noqa: E402
import make_reference  # noqa: E402

SAMPLES = {'lisrd': 'lisrd.h5', 'aislfd-a': 'aislfd-a.pth', 'aislfd-b': 'aislfd-b.npz', 'aislfd-c': 'aislfd-c.safetensors'}


def layer_order(model, image):
    """Conv and linear modules by name, in the order the forward pass reaches them."""
    order = []
    modules = dict(model.named_modules())
    hooks = [m.register_forward_pre_hook(lambda m, i, n=n: order.append(n))
             for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(image)
    for h in hooks:
        h.remove()
    return list(dict.fromkeys(order))


def layer_columns(model, name, image):
    """The vectors layer `name` multiplies on `image` (patches or positions), float64, size x count."""
    got = []
    module = dict(model.named_modules())[name]
    hook = module.register_forward_pre_hook(lambda m, i: got.append(i[0].detach()))
    with torch.no_grad():
        model(image)
    hook.remove()
    return torch.cat([make_quant_fixtures.columns(module, x) for x in got], 1)


def rounded_model(weights, arch, images, mode, lam):
    reference = make_reference.build_model(weights, arch)
    rounded = make_reference.build_model(weights, arch)
    names = layer_order(reference, images[0][..., :64, :64])
    fp32_modules, modules = dict(reference.named_modules()), dict(rounded.named_modules())
    for name in names[1:]:
        weight = fp32_modules[name].weight
        w = weight.detach().double().reshape(weight.shape[0], -1).numpy()
        h, c, count = 0, 0, 0
        for image in images:
            x_in = layer_columns(reference if mode == 'parallel' else rounded, name, image)
            h = h + (x_in @ x_in.t()).numpy()
            count += x_in.shape[1]
            if mode == 'compensate':
                c = c + (layer_columns(reference, name, image) @ x_in.t()).numpy()
        h /= count
        target = w
        if mode == 'compensate':
            ridge = lam * np.mean(np.diag(h)) * np.eye(h.shape[0])
            target = w @ (c / count + ridge) @ np.linalg.inv(h + ridge)
        with torch.no_grad():
            q, scales, _ = make_quant_fixtures.gptq(target, h)
            stored = q.astype(np.float32) * scales[:, None]
            modules[name].weight.copy_(torch.from_numpy(stored.reshape(weight.shape)))
    return rounded


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='aislfd-a', choices=sorted(SAMPLES))
    parser.add_argument('--images', type=int, default=8)
    parser.add_argument('--lam', type=float, default=0.3, help='ridge of the compensating target')
    args = parser.parse_args()
    torch.set_num_threads(2)
    weights = make_reference.load_weights(ROOT / 'Weights' / SAMPLES[args.arch])
    fixture = np.load(ROOT / 'Tests' / 'Fixtures' / 'reference' / f'{args.arch}.npz')
    image, keypoints = torch.from_numpy(fixture['image']), torch.from_numpy(fixture['keypoints'])
    images = [make_quant_fixtures.dead_leaves(1 + i, 192, 256) for i in range(args.images)]
    reference = make_reference.run(make_reference.build_model(weights, args.arch), image, keypoints)

    def least(a, b):
        return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())

    print(f'{args.arch}: GPTQ int8 of every weight but the first, {args.images} calibration images; least kp_desc / kp_meta cosine')
    for mode in ('parallel', 'sequential', 'compensate'):
        run = make_reference.run(rounded_model(weights, args.arch, images, mode, args.lam), image, keypoints)
        label = mode + (f' (lam {args.lam})' if mode == 'compensate' else '')
        print(f'  {label:<22} {least(run["kp_desc"], reference["kp_desc"]):.5f} / {least(run["kp_meta"], reference["kp_meta"]):.5f}', flush=True)


if __name__ == '__main__':
    main()
