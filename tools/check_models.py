"""Cross-check of models.py: a second, NumPy-only (float64) implementation of
architectures.md, written from the spec text without torch.nn.functional, run on
the committed Weights/ samples and compared with the committed reference and
matching fixtures.

    .venv/bin/python tools/check_models.py

Exits 1 if any output is further than 1e-4 relative (max abs error over max abs
value) from the reference, or any match differs.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_reference  # noqa: E402  (only its weight loader)

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ('rot_var_illum_var', 'rot_invar_illum_var', 'rot_var_illum_invar', 'rot_invar_illum_invar')
WEIGHTS = {'lisrd': 'lisrd.h5', 'aislfd-a': 'aislfd-a.pth', 'aislfd-b': 'aislfd-b.npz', 'aislfd-c': 'aislfd-c.safetensors'}
TOLERANCE = 1e-4


def conv2d(x, w, b=None, stride=1, pad=0):
    """x [C, H, W], w [O, C, kh, kw]: zero padding, cross-correlation."""
    c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((c, h + 2 * pad, wd + 2 * pad))
    xp[:, pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            out += np.einsum('oc,chw->ohw', w[:, :, i, j], patch)
    if b is not None:
        out += b[:, None, None]
    return out


def batchnorm(x, p, name):
    scale = p[f'{name}.weight'] / np.sqrt(p[f'{name}.running_var'] + 1e-5)
    return (x - p[f'{name}.running_mean'][:, None, None]) * scale[:, None, None] + p[f'{name}.bias'][:, None, None]


def relu(x):
    return np.maximum(x, 0)


def avgpool2(x):
    c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :2 * h2, :2 * w2].reshape(c, h2, 2, w2, 2).mean(axis=(2, 4))


def resize_axis(x, axis, out_size):
    """Bilinear along one axis, align_corners=False, as PyTorch (source index clamped at 0)."""
    in_size = x.shape[axis]
    src = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0)
    i0 = np.minimum(np.floor(src).astype(int), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    shape = [1] * x.ndim
    shape[axis] = out_size
    lam = lam.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - lam) + np.take(x, i1, axis=axis) * lam


def resize(x, h, w):
    return resize_axis(resize_axis(x, 1, h), 2, w)


def l2n(x, axis):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def vgg_maps(p, image, acts):
    x = image
    for name in ('1_1', '1_2', '2_1', '2_2', '3_1', '3_2', '4_1', '4_2'):
        x = batchnorm(relu(conv2d(x, p[f'_backbone._conv{name}.weight'], p[f'_backbone._conv{name}.bias'], pad=1)),
                      p, f'_backbone._bn{name}')
        acts[f'act._backbone._bn{name}'] = x
        if name in ('1_2', '2_2', '3_2'):
            x = avgpool2(x)
    maps = []
    for v in VARIANTS:
        rot, illum = v[len('rot_'):].split('_illum_')
        head = f'illum_{illum}_rot_{rot}'
        y = batchnorm(relu(conv2d(x, p[f'conv_{head}_1.weight'], p[f'conv_{head}_1.bias'], pad=1)), p, f'bn_{head}_1')
        acts[f'act.bn_{head}_1'] = y
        maps.append(conv2d(y, p[f'conv_{head}_2.weight'], p[f'conv_{head}_2.bias']))
    return maps


def msfe_maps(p, image, acts):
    def block(x, name, stride=1):
        y = relu(batchnorm(conv2d(x, p[f'msfe.{name}.conv.weight'], stride=stride, pad=1), p, f'msfe.{name}.bn'))
        acts[f'act.msfe.{name}.bn'] = y
        return y

    x = block(block(image, 'stem', 2), 'layer1')
    c2 = block(block(x, 'layer2.0', 2), 'layer2.1')
    c3 = block(block(c2, 'layer3.0', 2), 'layer3.1')
    c4 = block(block(c3, 'layer4.0', 2), 'layer4.1')
    lat = {n: conv2d(c, p[f'msfe.lateral{n}.weight'], p[f'msfe.lateral{n}.bias']) for n, c in ((2, c2), (3, c3), (4, c4))}
    for n, l in lat.items():
        acts[f'act.msfe.lateral{n}'] = l
    h8, w8 = c3.shape[1:]
    f = block(lat[3] + resize(lat[4], h8, w8) + resize(lat[2], h8, w8), 'smooth')
    maps = []
    for v in VARIANTS:
        y = relu(batchnorm(conv2d(f, p[f'msfe.heads.{v}.conv1.weight'], pad=1), p, f'msfe.heads.{v}.bn1'))
        acts[f'act.msfe.heads.{v}.bn1'] = y
        maps.append(conv2d(y, p[f'msfe.heads.{v}.conv2.weight'], p[f'msfe.heads.{v}.conv2.bias']))
    return maps


def netvlad(p, prefix, r):
    c, h, w = r.shape
    h3, w3 = 3 * (h // 3), 3 * (w // 3)
    if (h3, w3) != (h, w):
        r = resize(r, h3, w3)
    th, tw = h3 // 3, w3 // 3
    centroids = p[f'{prefix}.centroids']
    out = np.zeros((8 * c, 3, 3))
    for i in range(3):
        for j in range(3):
            x = l2n(r[:, i * th:(i + 1) * th, j * tw:(j + 1) * tw].reshape(c, -1), axis=0)   # [C, P]
            a = softmax(p[f'{prefix}.conv.weight'][:, :, 0, 0] @ x + p[f'{prefix}.conv.bias'][:, None], axis=0)
            v = np.stack([(a[k] * (x - centroids[k][:, None])).sum(axis=1) for k in range(8)])
            out[:, i, j] = l2n(l2n(v, axis=1).reshape(-1), axis=0)
    return out


def psa(p, prefix, r, acts):
    c, h, w = r.shape
    x = l2n(r.reshape(c, -1).T, axis=1)
    q, k, v = (x @ p[f'{prefix}.{n}.weight'].T + p[f'{prefix}.{n}.bias'] for n in ('query', 'key', 'value'))
    acts[f'act.{prefix}.query'], acts[f'act.{prefix}.key'], acts[f'act.{prefix}.value'] = q[None], k[None], v[None]
    return (softmax(q @ k.T / np.sqrt(c), axis=1) @ v).T.reshape(c, h, w)


def sample(m, kps, height, width):
    """Bilinear at map coordinate x*w/W - 0.5 (grid_sample, align_corners=False), zeros outside."""
    c, h, w = m.shape
    out = np.zeros((len(kps), c))
    for n, (x, y) in enumerate(kps):
        u, v = x * w / width - 0.5, y * h / height - 0.5
        u0, v0 = int(np.floor(u)), int(np.floor(v))
        for yy, wy in ((v0, 1 - (v - v0)), (v0 + 1, v - v0)):
            for xx, wx in ((u0, 1 - (u - u0)), (u0 + 1, u - u0)):
                if 0 <= yy < h and 0 <= xx < w:
                    out[n] += wx * wy * m[:, yy, xx]
    return l2n(out, axis=1)


def forward(p, arch, image, kps):
    acts = {}
    maps = (vgg_maps if arch in ('lisrd', 'aislfd-a') else msfe_maps)(p, image, acts)
    out = {f'desc.{v}': r[None] for v, r in zip(VARIANTS, maps)}
    for v, r in zip(VARIANTS, maps):
        out[f'meta.{v}'] = (netvlad(p, f'vlad_{v}', r) if arch in ('lisrd', 'aislfd-b') else psa(p, f'psa.{v}', r, acts))[None]
    height, width = image.shape[1:]
    out['kp_desc'] = np.stack([sample(out[f'desc.{v}'][0], kps, height, width) for v in VARIANTS], axis=1)
    out['kp_meta'] = np.stack([sample(out[f'meta.{v}'][0], kps, height, width) for v in VARIANTS], axis=1)
    out.update(acts)
    return out


def distance(d0, m0, d1, m1, squared):
    dist = np.zeros((len(d0), len(d1)))
    for q in range(len(d0)):
        for k in range(len(d1)):
            weights = softmax(np.array([m0[q, s] @ m1[k, s] for s in range(4)]), axis=0)
            local = [2 - 2 * d0[q, s] @ d1[k, s] if squared else np.linalg.norm(d0[q, s] - d1[k, s]) for s in range(4)]
            dist[q, k] = weights @ np.array(local)
    return dist


def mutual(dist):
    return np.array([(q, int(np.argmin(dist[q]))) for q in range(dist.shape[0])
                     if int(np.argmin(dist[:, int(np.argmin(dist[q]))])) == q], dtype=np.int64).reshape(-1, 2)


def main():
    failures = 0
    for arch, weights in WEIGHTS.items():
        p = {k: np.asarray(v, dtype=np.float64) for k, v in make_reference.load_weights(ROOT / 'Weights' / weights).items()}
        ref = np.load(ROOT / f'Tests/Fixtures/reference/{arch}.npz')
        out = forward(p, arch, ref['image'][0].astype(np.float64), ref['keypoints'].astype(np.float64))
        missing = set(ref.files) - set(out) - {'image', 'keypoints', 'arch'}
        extra = set(out) - set(ref.files)
        worst_key, worst = None, 0.0
        for k, a in out.items():
            if k in ref.files:
                rel = np.abs(ref[k] - a).max() / np.abs(a).max()
                if rel > worst:
                    worst_key, worst = k, rel
        ok = worst < TOLERANCE and not missing and not extra
        print(f'{arch}: {len(out)} outputs vs reference, worst relative {worst:.2g} ({worst_key})'
              + (f'; missing {sorted(missing)}' if missing else '') + (f'; extra {sorted(extra)}' if extra else ''))
        m = np.load(ROOT / f'Tests/Fixtures/matching/{arch}.npz')
        for name, squared in (('eq1', False), ('squared', True)):
            dist = distance(*(m[k].astype(np.float64) for k in ('kp_desc0', 'kp_meta0', 'kp_desc1', 'kp_meta1')), squared)
            same = np.array_equal(mutual(dist), m[f'matches.{name}'])
            rel = np.abs(dist - m[f'distance_matrix.{name}']).max()
            print(f'{arch}: matching {name}: matches {"identical" if same else "DIFFER"}, distance max abs error {rel:.2g}')
            ok = ok and same and rel < TOLERANCE
        failures += not ok
    print('all agree' if not failures else f'{failures} architecture(s) disagree')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
