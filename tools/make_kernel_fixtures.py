"""Kernel fixtures for the Swift runtime, computed with PyTorch.

Regenerate (from the repository root):
    .venv/bin/python tools/make_kernel_fixtures.py

Writes Tests/Fixtures/kernels/kernels.bin (every array as little-endian
float32, concatenated) and Tests/Fixtures/kernels/kernels.json (per case:
its arrays' shapes and offsets in floats into the .bin, and its parameters).
Every expected value is what torch.nn.functional (or torch ops written from
architectures.md) gives on the seeded inputs; sizes are small and mostly odd.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(20240607)
torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "kernels")

cases = {}
blob = []
offset = 0


def add(case, params=None, **arrays):
    global offset
    entry = {"arrays": {}, "params": params or {}}
    for name, value in arrays.items():
        a = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        entry["arrays"][name] = {"shape": list(a.shape), "offset": offset}
        blob.append(a.reshape(-1).astype("<f4"))
        offset += a.size
    cases[case] = entry


def rand(*shape, scale=1.0):
    return torch.randn(*shape) * scale


# Convolutions: 3x3 stride 1 and 2, 1x1, odd sizes, with the fused epilogues.
def conv_case(name, cin, cout, h, w, k, stride, budgets=(None,)):
    x = rand(cin, h, w)
    wt = rand(cout, cin, k, k, scale=1 / math.sqrt(cin * k * k))
    b = rand(cout, scale=0.1)
    pad = k // 2
    out = F.conv2d(x[None], wt, b, stride=stride, padding=pad)[0]
    add(name, {"stride": stride, "padding": pad, "budgets": [bb for bb in budgets if bb is not None]},
        input=x, weight=wt, bias=b, expected=out)
    return x, wt, b, out


conv_case("conv3x3_s1", 5, 7, 9, 11, 3, 1)
conv_case("conv3x3_s2_odd", 4, 6, 9, 13, 3, 2)
conv_case("conv3x3_s2_even_odd", 3, 5, 10, 7, 3, 2)
conv_case("conv1x1", 6, 5, 7, 9, 1, 1)
conv_case("conv3x3_banded", 16, 12, 23, 29, 3, 1, budgets=(1, 500, 3000))
conv_case("conv3x3_s2_banded", 16, 12, 23, 29, 3, 2, budgets=(1, 700))
conv_case("conv1x1_banded", 32, 24, 17, 19, 1, 1, budgets=(1, 2000))

# conv -> ReLU -> BN (LISRD order) and conv -> BN -> ReLU (MSFE order), BN in eval mode.
x = rand(5, 9, 11)
wt = rand(7, 5, 3, 3, scale=0.3)
b = rand(7, scale=0.1)
gamma, beta, mean, var = rand(7), rand(7), rand(7, scale=0.2), torch.rand(7) + 0.5
bn = lambda t: F.batch_norm(t, mean, var, gamma, beta, training=False, eps=1e-5)
scale = gamma / torch.sqrt(var + 1e-5)
shift = beta - mean * scale
add("conv_relu_bn", {"stride": 1, "padding": 1}, input=x, weight=wt, bias=b, post_scale=scale, post_shift=shift,
    expected=bn(F.relu(F.conv2d(x[None], wt, b, padding=1)))[0])
add("conv_bn_relu", {"stride": 1, "padding": 1}, input=x, weight=wt, pre_scale=scale, pre_shift=shift,
    expected=F.relu(bn(F.conv2d(x[None], wt, None, padding=1)))[0])

# 2x2 average pooling, stride 2, floor mode.
for name, shape in [("avgpool_odd", (3, 9, 11)), ("avgpool_even_odd", (2, 8, 7)), ("avgpool_small", (2, 3, 5))]:
    x = rand(*shape)
    add(name, input=x, expected=F.avg_pool2d(x[None], 2, 2)[0])

# Bilinear resize, align_corners=False. `unclamped` is the same formula without
# PyTorch's clamp of negative source indices at 0 (an int cast then truncates
# -0.3 to 0 and the weight goes negative): the test shows it differs.
def resize_unclamped(x, oh, ow):
    c, h, w = x.shape
    def taps(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        i0 = np.trunc(src).astype(int)
        lam = src - i0
        i1 = np.clip(i0 + 1, 0, n_in - 1)
        i0 = np.clip(i0, 0, n_in - 1)
        return i0, i1, lam
    y0, y1, ly = taps(h, oh)
    x0, x1, lx = taps(w, ow)
    a = x.numpy().astype(np.float64)
    top = a[:, y0][:, :, x0] * (1 - lx) + a[:, y0][:, :, x1] * lx
    bot = a[:, y1][:, :, x0] * (1 - lx) + a[:, y1][:, :, x1] * lx
    return top * (1 - ly)[:, None] + bot * ly[:, None]

for name, shape, size in [("resize_odd_odd", (3, 7, 9), (5, 11)), ("resize_up", (2, 5, 7), (13, 17)),
                          ("resize_down", (2, 15, 21), (4, 6)), ("resize_same", (2, 6, 9), (6, 9)),
                          ("resize_quarter_to_eighth", (3, 15, 20), (8, 10)), ("resize_from_one", (2, 1, 1), (3, 4))]:
    x = rand(*shape)
    add(name, {"height": size[0], "width": size[1]}, input=x,
        expected=F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0],
        unclamped=resize_unclamped(x, *size))

# Per-position L2 normalisation with an all-zero position.
x = rand(5, 3, 4)
x[:, 1, 2] = 0
add("normalize", input=x, expected=F.normalize(x[None], dim=1)[0])

# grid_sample at keypoints of a 40 x 56 image: corners, borders, just outside, far outside.
H, W = 40, 56
pts = [(0, 0), (W, H), (W - 0.5, H - 0.5), (W - 1, H - 1), (-1, -1), (-3.4, 10), (-4, -3), (60, 45),
       (57, 20), (28, -5), (-0.3, 20), (3.5, 3.5), (W - 3.5, 3.5), (0, H), (W, 0), (28, 20),
       (W + 3.9, 20), (W + 4.1, 20)]
pts += [(float(a), float(b)) for a, b in zip(torch.rand(16) * W, torch.rand(16) * H)]
kp = torch.tensor(pts, dtype=torch.float32)
grid = torch.stack([2 * kp[:, 0] / W - 1, 2 * kp[:, 1] / H - 1], dim=-1)
for name, shape in [("grid_sample_dense", (4, 5, 7)), ("grid_sample_3x3", (6, 3, 3))]:
    m = rand(*shape)
    s = F.grid_sample(m[None], grid[None, None], mode="bilinear", padding_mode="zeros", align_corners=False)[0, :, 0].T
    s_ac = F.grid_sample(m[None], grid[None, None], mode="bilinear", padding_mode="zeros", align_corners=True)[0, :, 0].T
    add(name, {"image_height": H, "image_width": W}, map=m, keypoints=kp, expected=s,
        expected_normalized=F.normalize(s, dim=1), align_corners_true=s_ac)


# NetVLAD, written from architectures.md with torch ops.
def netvlad(R, centroids, w, b):
    c, h, wd = R.shape
    th, tw = 3 * (h // 3), 3 * (wd // 3)
    if (th, tw) != (h, wd):
        R = F.interpolate(R[None], size=(th, tw), mode="bilinear", align_corners=False)[0]
    x = F.normalize(R, dim=0)
    a = F.softmax(F.conv2d(x[None], w, b)[0], dim=0)
    k = centroids.shape[0]
    out = torch.zeros(k * c, 3, 3)
    sh, sw = th // 3, tw // 3
    for i in range(3):
        for j in range(3):
            xt = x[:, i * sh:(i + 1) * sh, j * sw:(j + 1) * sw].reshape(c, -1)
            at = a[:, i * sh:(i + 1) * sh, j * sw:(j + 1) * sw].reshape(k, -1)
            v = ((xt[None] - centroids[:, :, None]) * at[:, None, :]).sum(-1)
            v = F.normalize(v, dim=1).reshape(-1)
            out[:, i, j] = F.normalize(v, dim=0)
    return out

for name, shape in [("netvlad_resized", (128, 7, 10)), ("netvlad_exact", (128, 6, 9)), ("netvlad_smallest", (128, 3, 4))]:
    R = rand(*shape)
    cen = rand(8, 128, scale=0.1)
    w = rand(8, 128, 1, 1)
    b = rand(8, scale=0.1)
    add(name, raw=R, centroids=cen, weight=w, bias=b, expected=netvlad(R, cen, w, b))


# PSA self-attention, written from architectures.md with torch ops.
def psa(R, p):
    c, h, w = R.shape
    x = F.normalize(R, dim=0).reshape(c, -1).T
    q = x @ p["wq"].T + p["bq"]
    k = x @ p["wk"].T + p["bk"]
    v = x @ p["wv"].T + p["bv"]
    y = torch.softmax(q @ k.T / math.sqrt(c), dim=-1) @ v
    return y.T.reshape(c, h, w)

for name, shape, budgets in [("psa_small", (128, 5, 7), []), ("psa_blocked", (128, 9, 13), [1, 117 * 20, 117 * 50])]:
    R = rand(*shape)
    p = {n: rand(128, 128, scale=2 / math.sqrt(128) * 4) for n in ("wq", "wk", "wv")}
    p.update({n: rand(128, scale=0.1) for n in ("bq", "bk", "bv")})
    add(name, {"budgets": budgets}, raw=R, expected=psa(R, p), **p)


# Eq. 1, its squared variant and mutual nearest neighbours (float64 truth).
def eq1(lq, lk, mq, mk, squared):
    lq, lk, mq, mk = (t.double() for t in (lq, lk, mq, mk))
    wts = torch.softmax(torch.einsum("isd,jsd->ijs", mq, mk), dim=-1)
    if squared:
        d = 2 - 2 * torch.einsum("isd,jsd->ijs", lq, lk)
    else:
        d = torch.linalg.norm(lq[:, None] - lk[None], dim=-1)
    return (wts * d).sum(-1)

def mutual(dist):
    d = dist.numpy()
    nn01 = d.argmin(axis=1)  # numpy: first index on ties
    nn10 = d.argmin(axis=0)
    pairs = [(i, j) for i, j in enumerate(nn01) if nn10[j] == i]
    return np.array(pairs, dtype=np.float32).reshape(-1, 2), np.array([d[i, j] for i, j in pairs], dtype=np.float32)

def margin(dist):
    s = np.sort(dist.numpy(), axis=1)
    t = np.sort(dist.numpy(), axis=0)
    return min((s[:, 1] - s[:, 0]).min(), (t[1] - t[0]).min())

lq = F.normalize(rand(7, 4, 128), dim=-1)
lk = F.normalize(rand(9, 4, 128), dim=-1)
lk[3] = F.normalize(lq[2] + 0.3 * rand(4, 128) / math.sqrt(128), dim=-1)  # a clear match
mq = F.normalize(rand(7, 4, 16), dim=-1)
mk = F.normalize(rand(9, 4, 16), dim=-1)
arrays = {"local0": lq, "local1": lk, "meta0": mq, "meta1": mk}
for kind in ("eq1", "squared"):
    d = eq1(lq, lk, mq, mk, kind == "squared")
    assert margin(d) > 1e-4, "near tie in random matching data; change the seed"
    pairs, dists = mutual(d)
    arrays[f"{kind}_distances"] = d
    arrays[f"{kind}_matches"] = pairs
    arrays[f"{kind}_match_distances"] = dists
add("matching_random", **arrays)

# Exact ties: one-hot descriptors; the lowest index must win on both sides.
def onehot(idx, dim):
    t = torch.zeros(len(idx), 4, dim)
    for n, i in enumerate(idx):
        t[n, :, i] = 1
    return t
lq, lk = onehot([0, 0, 2], 128), onehot([1, 1, 2], 128)
mq, mk = onehot([0, 0, 0], 16), onehot([0, 0, 0], 16)
arrays = {"local0": lq, "local1": lk, "meta0": mq, "meta1": mk}
for kind in ("eq1", "squared"):
    d = eq1(lq, lk, mq, mk, kind == "squared")
    pairs, dists = mutual(d)
    arrays[f"{kind}_distances"] = d
    arrays[f"{kind}_matches"] = pairs
    arrays[f"{kind}_match_distances"] = dists
add("matching_ties", **arrays)

# Shapes for the CKernels matrix products (drawn last, so the cases above keep
# their values): rows of 32 positions with masked tails of 25, 14, 15 and 8,
# more than 128 output channels (two panel groups, a partial panel) and sums
# over more than 128 products (two-level sums).
conv_case("conv3x3_wide", 20, 137, 7, 57, 3, 1, budgets=(1, 150))
conv_case("conv3x3_s2_wide", 9, 19, 13, 91, 3, 2)
conv_case("conv1x1_wide", 300, 21, 11, 13, 1, 1, budgets=(1, 40))
x = rand(6, 5, 40)
wt = rand(11, 6, 3, 3, scale=0.3)
b = rand(11, scale=0.1)
gamma, beta, mean, var = rand(11), rand(11), rand(11, scale=0.2), torch.rand(11) + 0.5
scale = gamma / torch.sqrt(var + 1e-5)
shift = beta - mean * scale
add("conv_relu_bn_wide", {"stride": 1, "padding": 1}, input=x, weight=wt, bias=b, post_scale=scale, post_shift=shift,
    expected=F.batch_norm(F.relu(F.conv2d(x[None], wt, b, padding=1)), mean, var, gamma, beta, training=False, eps=1e-5)[0])
R = rand(128, 19, 23)
p = {n: rand(128, 128, scale=2 / math.sqrt(128) * 4) for n in ("wq", "wk", "wv")}
p.update({n: rand(128, scale=0.1) for n in ("bq", "bk", "bv")})
add("psa_large", {"budgets": [437 * 7]}, raw=R, expected=psa(R, p), **p)
# Strided 1x1 convolutions go through the padded-window path with no padding;
# a one-column input leaves phase 1 empty.
conv_case("conv1x1_s2_narrow", 3, 5, 5, 1, 1, 2)
conv_case("conv1x1_s2", 4, 9, 7, 37, 1, 2)

os.makedirs(OUT, exist_ok=True)
np.concatenate(blob).astype("<f4").tofile(os.path.join(OUT, "kernels.bin"))
with open(os.path.join(OUT, "kernels.json"), "w") as f:
    json.dump({"format": "float32 little-endian; offsets and shapes in elements", "cases": cases}, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"{len(cases)} cases, {offset} floats")
