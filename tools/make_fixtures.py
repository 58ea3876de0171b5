"""Writes the committed PyTorch-side fixtures from the Weights/ samples:

    .venv/bin/python tools/make_fixtures.py

Tests/Fixtures/images/     synthetic test images, a warped pair image, keypoints
Tests/Fixtures/reference/  <arch>.npz: reference on synth_61x83.png with keypoints and act.*
Tests/Fixtures/matching/   <arch>.npz: mutual-NN matches between synth_61x83 and its warp

See Tests/Fixtures/reference/README.md for what each file holds.
"""

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_reference  # noqa: E402
import models  # noqa: E402
import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / 'Tests/Fixtures/images'
REFERENCE = ROOT / 'Tests/Fixtures/reference'
MATCHING = ROOT / 'Tests/Fixtures/matching'
WEIGHTS = {'lisrd': 'lisrd.h5', 'aislfd-a': 'aislfd-a.pth', 'aislfd-b': 'aislfd-b.npz', 'aislfd-c': 'aislfd-c.safetensors'}

# (seed, H, W) of the drawn images; the pair image is synth_61x83 rotated and darkened.
MAIN = (1, 61, 83)
SECOND = (2, 48, 64)
WARP_DEGREES, WARP_GAIN, WARP_OFFSET = 3.0, 0.8, 12.0
MATCH_GAP = 1e-3


def write_images():
    seed, h, w = MAIN
    main = synthetic.draw_image(seed, h, w)
    Image.fromarray(main).save(IMAGES / 'synth_61x83.png', optimize=False)
    # 4:4:4 and high quality so decoders agree closely; Pillow's decoded pixels are kept
    # so a Swift JPEG decoder can be compared with them.
    Image.fromarray(main).save(IMAGES / 'synth_61x83.jpg', quality=95, subsampling=0)
    with Image.open(IMAGES / 'synth_61x83.jpg') as im:
        np.save(IMAGES / 'synth_61x83_jpg_pillow.npy', np.asarray(im.convert('RGB')))
    as_float = np.ascontiguousarray(main.astype(np.float32).transpose(2, 0, 1) / np.float32(255))
    np.save(IMAGES / 'synth_61x83.npy', as_float)
    np.save(IMAGES / 'kp_61x83.npy', synthetic.keypoints(seed, h, w))

    warped = synthetic.warp_image(main, WARP_DEGREES, WARP_GAIN, WARP_OFFSET)
    Image.fromarray(warped).save(IMAGES / 'synth_61x83_rot3.png', optimize=False)
    kp1 = synthetic.warp_point(synthetic.keypoints(seed, h, w), WARP_DEGREES, h, w).astype(np.float32)
    np.save(IMAGES / 'kp_61x83_rot3.npy', kp1)

    seed, h, w = SECOND
    Image.fromarray(synthetic.draw_image(seed, h, w)).save(IMAGES / 'synth_48x64.png', optimize=False)
    np.save(IMAGES / 'kp_48x64.npy', synthetic.keypoints(seed, h, w))


def load_model(arch):
    return make_reference.build_model(make_reference.load_weights(ROOT / 'Weights' / WEIGHTS[arch]), arch)


def write_reference(arch, model):
    image = make_reference.load_image(IMAGES / 'synth_61x83.png')
    keypoints = torch.from_numpy(np.load(IMAGES / 'kp_61x83.npy'))
    result = make_reference.run(model, image, keypoints, record_acts=True)
    result['arch'] = np.array(arch)
    relative = make_reference.check_float64(model, image, keypoints, result, verbose=False)
    make_reference.save_npz(REFERENCE / f'{arch}.npz', result)
    groups = OrderedDict()
    for k, r in relative.items():
        group = k.split('.')[0]
        groups[group] = max(groups.get(group, 0.0), r)
    return groups


def keypoint_descriptors(model, image_name, keypoints):
    image = make_reference.load_image(IMAGES / image_name)
    with torch.no_grad():
        return models.sample_keypoints(model(image), torch.from_numpy(keypoints), image.shape[2], image.shape[3])


def decision_gaps(dist):
    """Per row and per column: runner-up distance minus the nearest one."""
    rows = torch.sort(dist, dim=1).values
    cols = torch.sort(dist, dim=0).values
    return rows[:, 1] - rows[:, 0], cols[1] - cols[0]


def matching_keypoints(sides_by_arch):
    """Indices of the keypoint pairs kept for the matching fixture.

    Every row's and column's nearest neighbour must beat the runner-up by MATCH_GAP under
    every architecture and both distances, so float32 differences between PyTorch and
    another implementation cannot change the mutual nearest neighbours. The pair whose row
    or column is closest to a tie is dropped until that holds.
    """
    keep = list(range(len(next(iter(sides_by_arch.values()))[0])))
    while True:
        worst, worst_index = None, None
        for (d0, m0, d1, m1) in sides_by_arch.values():
            for squared in (False, True):
                row_gap, col_gap = decision_gaps(models.distance_matrix(d0[keep], m0[keep], d1[keep], m1[keep], squared))
                for gap in (row_gap, col_gap):
                    i = int(torch.argmin(gap))
                    if worst is None or gap[i] < worst:
                        worst, worst_index = float(gap[i]), i
        if worst >= MATCH_GAP:
            return keep, worst
        del keep[worst_index]


def write_matching(arch, sides, keep):
    d0, m0, d1, m1 = (t[keep] for t in sides)
    result = OrderedDict(kp_desc0=d0, kp_meta0=m0, kp_desc1=d1, kp_meta1=m1)
    summary = []
    for name, squared in (('eq1', False), ('squared', True)):
        with torch.no_grad():
            dist = models.distance_matrix(d0, m0, d1, m1, squared=squared)
        matches, distance = models.mutual_nearest_neighbours(dist)
        result[f'distance_matrix.{name}'] = dist
        result[f'matches.{name}'] = matches
        result[f'distance.{name}'] = distance
        correct = int((matches[:, 0] == matches[:, 1]).sum())
        row_gap, col_gap = decision_gaps(dist)
        summary.append(f'{name}: {len(matches)} mutual matches of {len(keep)} keypoints, {correct} at the true index, '
                       f'smallest decision gap {min(row_gap.min(), col_gap.min()):.3g}')
    result = OrderedDict((k, v.numpy()) for k, v in result.items())
    for k, v in result.items():
        assert v.dtype == (np.int64 if k.startswith('matches.') else np.float32), (k, v.dtype)
    result['arch'] = np.array(arch)
    make_reference.save_npz(MATCHING / f'{arch}.npz', result)
    return summary


def main():
    torch.set_num_threads(1)
    for d in (IMAGES, REFERENCE, MATCHING):
        d.mkdir(parents=True, exist_ok=True)
    write_images()
    kp0 = np.load(IMAGES / 'kp_61x83.npy')
    kp1 = np.load(IMAGES / 'kp_61x83_rot3.npy')
    sides_by_arch = {}
    for arch in models.ARCHS:
        model = load_model(arch)
        groups = write_reference(arch, model)
        print(f'{arch}: reference written; float32 vs float64, max |f32 - f64| / max |f64|: '
              + ', '.join(f'{g} {r:.2g}' for g, r in groups.items()))
        sides_by_arch[arch] = (keypoint_descriptors(model, 'synth_61x83.png', kp0)
                               + keypoint_descriptors(model, 'synth_61x83_rot3.png', kp1))
    keep, gap = matching_keypoints(sides_by_arch)
    np.save(MATCHING / 'kp0.npy', kp0[keep])
    np.save(MATCHING / 'kp1.npy', kp1[keep])
    print(f'matching: kept {len(keep)} of {len(kp0)} keypoint pairs {keep}, smallest decision gap {gap:.3g}')
    for arch, sides in sides_by_arch.items():
        for line in write_matching(arch, sides, keep):
            print(f'{arch} matching {line}')


if __name__ == '__main__':
    main()
