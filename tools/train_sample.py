"""Trains a small sample of `lisrd` or `aislfd-c` on the bundled photos, on the CPU.

The losses are LISRD's (github rpautrat/LISRD, lisrd/utils/losses.py and the
`_loss` of lisrd/models/lisrd.py), which AISLFD keeps (its Eq. 2-7), rewritten here:

- Distances between L2-normalised descriptors are `2 - 2 a.b` (squared L2).
- Invariant loss (triplet on the hardest negative): for corresponding keypoints
  (p_i in image 0, q_i in image 1), pos_i = d(l0_i, l1_i); neg_i = the smallest
  d(l0_i, l1_j) or d(l0_j, l1_i) over j != i whose keypoints are farther than T px
  from i in both images (min of the two distances > T, T = dist_threshold = 8);
  loss = mean relu(margin + pos - neg), margin 1.
- Variant loss: image 2 is image 0 under a second homography without rotation and
  with image 0's lighting, image 1 has the change the descriptor must *not* be
  invariant to; loss = mean relu(gap * margin + d(l0, l2) - d(l0, l1)), gap = the
  rotation angle / (pi/4) clipped to [0, 1] for rotation, 1 for illumination.
- Which descriptor gets which loss, per training pair (LISRD's rule):
  rot_invar_illum_invar: always invariant;
  rot_var_illum_invar: invariant if the pair has no rotation, else variant (rotation gap);
  rot_invar_illum_var: invariant if the pair has no illumination change, else variant;
  rot_var_illum_var: invariant if the pair has neither, else variant (gap 1).
- Meta loss: the same hardest-negative triplet on the meta-weighted distance
  sum_s softmax_s(m0_s . m1_s) * (2 - 2 l0_s . l1_s); total = local + lambda * meta.
  (LISRD accumulates the per-pair descriptor lists across the batch; here each pair
  has its own.)

Pairs: a random crop of a photo (random scale), a homography with a rotation of up
to +-90 degrees for half the pairs (none otherwise), a strong illumination change of
image 1 for half the pairs, mild photometric noise on every image. Keypoints are
OpenCV corners of image 0 plus uniform random points, kept where they land inside
all images.

Stop it with SIGTERM or SIGINT: it finishes the step, writes the checkpoint and
the final file. CPU time is the process's own (time.process_time()).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python tools/train_sample.py --arch lisrd \\
        --cpu-minutes 65 --out Weights/trained/lisrd.pth --log Weights/trained/lisrd.log
"""

import argparse
import json
import math
import os
import signal
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import warps  # noqa: E402
from make_photos import load_photo  # noqa: E402

TRAIN_PHOTOS = ('astronaut', 'camera', 'rocket', 'brick')   # chelsea, coffee held out
MARGIN = 1.0
DIST_THRESHOLD = 8.0
LAMBDA_META = 1.0
ANGLE_LIMIT = math.pi / 4
BORDER = 4
N_CORNERS = 300
N_RANDOM = 100

_stop = False


def _request_stop(signum, frame):
    global _stop
    _stop = True


def random_crop(rng, photo, size):
    """A size x size crop of the photo rescaled by a random factor (so scales vary)."""
    h, w = photo.shape[:2]
    lo = size / min(h, w)
    scale = rng.uniform(max(lo, 0.45), max(lo, 1.0))
    resized = cv2.resize(photo, (max(size, round(w * scale)), max(size, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    y = int(rng.integers(0, resized.shape[0] - size + 1))
    x = int(rng.integers(0, resized.shape[1] - size + 1))
    crop = resized[y:y + size, x:x + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def keypoints_of(rng, image):
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(gray, N_CORNERS, 0.005, 3)
    corners = np.zeros((0, 2)) if corners is None else corners.reshape(-1, 2).astype(np.float64)
    h, w = gray.shape
    rand = np.stack([rng.uniform(0, w - 1, N_RANDOM), rng.uniform(0, h - 1, N_RANDOM)], axis=1)
    return np.concatenate([corners, rand], axis=0)


def make_pair(rng, photos, size):
    """One training triple (images 0, 1, 2 as float [3, H, W]) with its keypoints and flags."""
    while True:
        crop = random_crop(rng, photos[int(rng.integers(len(photos)))], size)
        rot = bool(rng.random() < 0.5)
        light = bool(rng.random() < 0.5)
        h1, angle = warps.random_homography(rng, size, size, max_angle=math.pi / 2 if rot else 0.0,
                                            scale_range=(0.8, 1.25), perspective=0.2, translation=0.1)
        h2, _ = warps.random_homography(rng, size, size, max_angle=0.0,
                                        scale_range=(0.8, 1.25), perspective=0.2, translation=0.1)
        kp0 = keypoints_of(rng, crop)
        kp1 = warps.warp_points(kp0, h1)
        kp2 = warps.warp_points(kp0, h2)
        keep = (warps.inside(kp0, size, size, BORDER) & warps.inside(kp1, size, size, BORDER)
                & warps.inside(kp2, size, size, BORDER))
        if keep.sum() >= 32:
            break
    img0 = warps.mild_photometric(rng, crop)
    img1 = warps.warp_image(crop, h1, size, size)
    img1 = warps.illumination_change(rng, img1) if light else warps.mild_photometric(rng, img1)
    img2 = warps.mild_photometric(rng, warps.warp_image(crop, h2, size, size))
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float()
    return {
        'images': [as_tensor(img0), as_tensor(img1), as_tensor(img2)],
        'keypoints': [torch.from_numpy(k[keep]).float() for k in (kp0, kp1, kp2)],
        'rot': rot, 'light': light,
        'gap_rot': float(min(1.0, abs(angle) / ANGLE_LIMIT)),
    }


def sample(feature_map, kp, size):
    return models.sample_map(feature_map, kp, size, size)


def squared_dist(a, b):
    return 2 - 2 * a @ b.t()


def hardest_negative(dist, kp0, kp1):
    """min over j != i of dist[i, j] and dist[j, i], ignoring keypoints within T px."""
    near = torch.minimum(torch.cdist(kp0, kp0), torch.cdist(kp1, kp1)) <= DIST_THRESHOLD
    masked = dist.masked_fill(near, 4.0)   # 4 is the largest squared distance of unit vectors
    return torch.minimum(masked.min(dim=1).values, masked.min(dim=0).values)


def invariant_loss(l0, l1, kp0, kp1):
    dist = squared_dist(l0, l1)
    pos = torch.diagonal(dist)
    return F.relu(MARGIN + pos - hardest_negative(dist, kp0, kp1)).mean()


def variant_loss(l0, l1, l2, gap):
    neg = ((l0 - l1) ** 2).sum(dim=1)
    pos = ((l0 - l2) ** 2).sum(dim=1)
    return F.relu(gap * MARGIN + pos - neg).mean()


def pair_losses(outs, pair, size):
    """(local loss, meta loss) of one triple; outs[i] is forward() of image i (batch of one)."""
    kp0, kp1, kp2 = pair['keypoints']
    desc = {}
    for v in models.VARIANTS:
        desc[v] = [sample(outs[0][f'desc.{v}'], kp0, size), sample(outs[1][f'desc.{v}'], kp1, size)]
    invariant, variant = ['rot_invar_illum_invar'], []
    if pair['rot']:
        variant.append(('rot_var_illum_invar', pair['gap_rot']))
    else:
        invariant.append('rot_var_illum_invar')
    if pair['light']:
        variant.append(('rot_invar_illum_var', 1.0))
    else:
        invariant.append('rot_invar_illum_var')
    if pair['rot'] or pair['light']:
        variant.append(('rot_var_illum_var', 1.0))
    else:
        invariant.append('rot_var_illum_var')
    local = [invariant_loss(desc[v][0], desc[v][1], kp0, kp1) for v in invariant]
    for v, gap in variant:
        l2 = sample(outs[2][f'desc.{v}'], kp2, size)
        local.append(variant_loss(desc[v][0], desc[v][1], l2, gap))
    weights, dists = [], []
    for v in models.VARIANTS:
        m0 = sample(outs[0][f'meta.{v}'], kp0, size)
        m1 = sample(outs[1][f'meta.{v}'], kp1, size)
        weights.append(m0 @ m1.t())
        dists.append(squared_dist(desc[v][0], desc[v][1]))
    w = F.softmax(torch.stack(weights, dim=2), dim=2)
    dist = (w * torch.stack(dists, dim=2)).sum(dim=2)
    meta = F.relu(MARGIN + torch.diagonal(dist) - hardest_negative(dist, kp0, kp1)).mean()
    return torch.stack(local).mean(), meta


def initialise(model):
    """LISRD's initialisation: Kaiming-normal convolutions (ReLU gain), biases 0.01."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
            if m.bias is not None:
                m.bias.data.fill_(0.01)


def save_final(model, path, info):
    """A plain checkpoint: {'iter', 'arch', 'model_state_dict'} (no optimizer: size)."""
    tmp = path + '.tmp'
    torch.save({'iter': info['iter'], 'arch': model.arch, 'model_state_dict': model.state_dict()}, tmp)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', choices=('lisrd', 'aislfd-c', 'aislfd-a', 'aislfd-b'), default='lisrd')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=144, help='square crop side (a multiple of 24)')
    parser.add_argument('--batch', type=int, default=2, help='training triples per step')
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--cpu-minutes', type=float, default=60.0, help='stop after this much process CPU time')
    parser.add_argument('--wall-minutes', type=float, default=1e9, help='and at the latest after this much wall time')
    parser.add_argument('--max-steps', type=int, default=10 ** 9)
    parser.add_argument('--checkpoint-minutes', type=float, default=5.0)
    parser.add_argument('--out', required=True, help='final .pth (model_state_dict only)')
    parser.add_argument('--state', help='resumable checkpoint with the optimizer (default: OUT.state, not committed)')
    parser.add_argument('--log', required=True)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    photos = [load_photo(name) for name in TRAIN_PHOTOS]
    model = models.Model(args.arch)
    initialise(model)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    state_path = args.state or args.out + '.state'
    step, cpu_before = 0, 0.0
    if os.path.exists(state_path):
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state['model_state_dict'])
        optimiser.load_state_dict(state['optimizer_state_dict'])
        rng.bit_generator.state = state['rng']
        torch.set_rng_state(state['torch_rng'])
        step, cpu_before = state['iter'], state['cpu_seconds']
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    log = open(args.log, 'a')

    def say(record):
        log.write(json.dumps(record) + '\n')
        log.flush()

    say({'event': 'start', 'arch': args.arch, 'seed': args.seed, 'size': args.size, 'batch': args.batch,
         'lr': args.lr, 'photos': TRAIN_PHOTOS, 'iter': step, 'cpu_seconds': cpu_before,
         'torch': torch.__version__, 'threads': torch.get_num_threads(), 'argv': sys.argv[1:]})
    cpu0, wall0 = time.process_time(), time.time()
    last_checkpoint = cpu0
    window = []

    def cpu_used():
        return cpu_before + time.process_time() - cpu0

    def checkpoint():
        torch.save({'iter': step, 'model_state_dict': model.state_dict(),
                    'optimizer_state_dict': optimiser.state_dict(), 'rng': rng.bit_generator.state,
                    'torch_rng': torch.get_rng_state(), 'cpu_seconds': cpu_used()}, state_path + '.tmp')
        os.replace(state_path + '.tmp', state_path)
        save_final(model, args.out, {'iter': step})

    while not _stop and step < args.max_steps:
        if cpu_used() >= args.cpu_minutes * 60 or time.time() - wall0 >= args.wall_minutes * 60:
            break
        pairs = [make_pair(rng, photos, args.size) for _ in range(args.batch)]
        outs = []
        for i in range(3):
            batch = torch.stack([p['images'][i] for p in pairs])
            out = model(batch)
            outs.append([{k: t[b:b + 1] for k, t in out.items()} for b in range(len(pairs))])
        local, meta = [], []
        for b, pair in enumerate(pairs):
            lo, me = pair_losses([outs[0][b], outs[1][b], outs[2][b]], pair, args.size)
            local.append(lo)
            meta.append(me)
        local, meta = torch.stack(local).mean(), torch.stack(meta).mean()
        loss = local + LAMBDA_META * meta
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        window.append((loss.item(), local.item(), meta.item()))
        if step % 20 == 0:
            mean = np.mean(window, axis=0)
            say({'iter': step, 'loss': round(float(mean[0]), 5), 'local': round(float(mean[1]), 5),
                 'meta': round(float(mean[2]), 5), 'cpu_seconds': round(cpu_used(), 1),
                 'wall_seconds': round(time.time() - wall0, 1)})
            window = []
        if time.process_time() - last_checkpoint >= args.checkpoint_minutes * 60:
            checkpoint()
            last_checkpoint = time.process_time()
    model.eval()
    checkpoint()
    say({'event': 'end', 'iter': step, 'cpu_seconds': round(cpu_used(), 1),
         'wall_seconds': round(time.time() - wall0, 1), 'stopped_by_signal': _stop})


if __name__ == '__main__':
    main()
