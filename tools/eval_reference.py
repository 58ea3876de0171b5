"""Reference of LISRD's evaluation metrics (docs/evaluation.md), NumPy + OpenCV.

The definitions follow LISRD's public evaluation code (github rpautrat/LISRD:
lisrd/evaluation/descriptor_evaluation.py, select_k_best / keep_true_keypoints in
lisrd/utils/geometry_utils.py, the datasets lisrd/datasets/hpatches.py and rdnim.py);
docs/evaluation.md states each one and what was decided where that code is silent or
would fail. The Swift `aislfd-eval` implements that document.

    # metrics of dumps (interfaces.md `--dump` layout, plus image_shape0/1)
    .venv/bin/python tools/eval_reference.py metrics DUMP.npz [DUMP.npz ...] [--threshold 3] [--json]

    # the full evaluation with PyTorch (tools/models.py) and the reference detector
    .venv/bin/python tools/eval_reference.py evaluate WEIGHTS DATASET [--layout hpatches|rdnim]
        [--reference day|night] [--num-kp 1000] [--threshold 3] [--distance eq1|squared]
        [--resize HxW] [--json OUT.json] [--dump DIR] [--compare OTHER_WEIGHTS]

Module API: `read_dataset`, `select_k_best`, `mutual_matches`, `pair_metrics`,
`metrics_from_dump`, `summarise`, `evaluate`, `format_table`.
"""

import argparse
import json
import math
import os
import re
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

MMA_THRESHOLDS = tuple(range(1, 11))
RANSAC_THRESHOLD = 3.0      # cv2.findHomography's default, which LISRD uses whatever the metric threshold
BORDER_MARGIN = 3           # select_k_best's margin in LISRD's datasets
SINGULAR_LIMIT = 1e-10      # |det(H / max|H|)| below this: a singular homography


class DatasetError(Exception):
    """A dataset that cannot be evaluated; the message names the file and the problem."""


# ---------------------------------------------------------------- reading datasets

def read_ppm(path):
    """Binary PPM (P6, maxval 255 or less) -> uint8 [H, W, 3]; anything else is an error."""
    with open(path, 'rb') as f:
        data = f.read()
    pos, fields = 0, []
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if pos < len(data) and data[pos:pos + 1] == b'#':
            while pos < len(data) and data[pos:pos + 1] not in (b'\n', b'\r'):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace() and data[pos:pos + 1] != b'#':
            pos += 1
        if start == pos:
            raise DatasetError(f'{path}: PPM header ends early')
        fields.append(data[start:pos])
    if fields[0] != b'P6':
        raise DatasetError(f'{path}: not a binary PPM (magic {fields[0][:8]!r}, expected P6)')
    try:
        w, h, maxval = (int(x) for x in fields[1:])
    except ValueError:
        raise DatasetError(f'{path}: PPM header has a non-numeric size or maximum')
    if w <= 0 or h <= 0 or not 0 < maxval < 256:
        raise DatasetError(f'{path}: PPM {w}x{h} with maximum {maxval} is not an 8-bit image')
    pos += 1    # exactly one whitespace byte after the maximum
    need = w * h * 3
    if len(data) - pos < need:
        raise DatasetError(f'{path}: PPM truncated: {len(data) - pos} of {need} pixel bytes')
    pixels = np.frombuffer(data, dtype=np.uint8, count=need, offset=pos).reshape(h, w, 3)
    if maxval != 255:
        pixels = np.rint(pixels.astype(np.float64) * 255.0 / maxval).astype(np.uint8)
    return pixels.copy()


def read_image(path):
    if not os.path.isfile(path):
        raise DatasetError(f'{path}: image missing')
    if path.lower().endswith('.ppm'):
        return read_ppm(path)
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert('RGB'))
    except Exception as e:   # Pillow raises many types for undecodable files
        raise DatasetError(f'{path}: image does not decode ({e})')


_NUMBER = re.compile(r'^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$')


def read_homography(path):
    """A 3x3 text matrix (whitespace-separated, one row per non-empty line), finite and
    invertible, returned as written (not normalised)."""
    if not os.path.isfile(path):
        raise DatasetError(f'{path}: homography file missing')
    rows = []
    with open(path) as f:
        for line in f:
            tokens = line.split()
            if not tokens:
                continue
            for t in tokens:
                if not _NUMBER.match(t):
                    raise DatasetError(f'{path}: homography entry {t!r} is not a number')
            rows.append([float(t) for t in tokens])
    shape = f'{len(rows)}x{len(rows[0]) if rows else 0}'
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise DatasetError(f'{path}: homography must be 3x3, got {shape}'
                           + (' (rows of unequal length)' if len({len(r) for r in rows}) > 1 else ''))
    h = np.array(rows, dtype=np.float64)
    if not np.all(np.isfinite(h)):
        raise DatasetError(f'{path}: homography has a non-finite entry')
    scale = np.abs(h).max()
    if scale == 0 or abs(np.linalg.det(h / scale)) < SINGULAR_LIMIT:
        raise DatasetError(f'{path}: homography is singular (det of H / max|H| = '
                           f'{0.0 if scale == 0 else np.linalg.det(h / scale):.3g})')
    return h


def read_hpatches(root):
    """Pairs (1, i), i = 2..6, of every scene folder i_* / v_*, scenes sorted by name."""
    scenes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    scenes = [s for s in scenes if s.startswith(('i_', 'v_'))]
    if not scenes:
        raise DatasetError(f'{root}: no i_* or v_* scene folder (HPatches layout)')
    pairs = []
    for scene in scenes:
        folder = os.path.join(root, scene)
        for i in range(2, 7):
            pairs.append({
                'name': f'{scene}-{i}', 'scene': scene, 'image': str(i),
                'subset': 'illumination' if scene.startswith('i_') else 'viewpoint',
                'path0': os.path.join(folder, '1.ppm'), 'path1': os.path.join(folder, f'{i}.ppm'),
                'homography': read_homography(os.path.join(folder, f'H_1_{i}')),
            })
    return pairs


def read_timestamps(path):
    stamps = {}
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4 or not fields[2].isdigit() or not fields[3].isdigit():
                raise DatasetError(f'{path}: line {n} is not "<name> <date> <hour> <minute>"')
            stamps[fields[0]] = int(fields[2]) + int(fields[3]) / 60.0
    return stamps


def read_rdnim(root, reference='day'):
    """Pairs (reference, image) for every image of every sequence, both sorted by name."""
    for sub in ('references', 'images', 'time_stamps'):
        if not os.path.isdir(os.path.join(root, sub)):
            raise DatasetError(f'{root}: no {sub}/ folder (RDNIM layout)')
    pairs = []
    for seq in sorted(os.listdir(os.path.join(root, 'images'))):
        folder = os.path.join(root, 'images', seq)
        if not os.path.isdir(folder):
            continue
        ref = os.path.join(root, 'references', seq, reference + '.jpg')
        if not os.path.isfile(ref):
            raise DatasetError(f'{ref}: reference image missing')
        stamp_file = os.path.join(root, 'time_stamps', seq + '.txt')
        if not os.path.isfile(stamp_file):
            raise DatasetError(f'{stamp_file}: time stamps missing')
        stamps = read_timestamps(stamp_file)
        for image in sorted(f for f in os.listdir(folder) if f.endswith('.jpg')):
            if image not in stamps:
                raise DatasetError(f'{stamp_file}: no time stamp for {image}')
            stem = image[:-len('.jpg')]
            pairs.append({
                'name': f'{seq}-{stem}', 'scene': seq, 'image': stem, 'subset': None,
                'time': stamps[image], 'path0': ref, 'path1': os.path.join(folder, image),
                'homography': read_homography(os.path.join(folder, stem + '.txt')),
            })
    if not pairs:
        raise DatasetError(f'{root}: no images/<seq>/*.jpg')
    return pairs


def detect_layout(root):
    return 'rdnim' if os.path.isdir(os.path.join(root, 'references')) else 'hpatches'


def read_dataset(root, layout=None, reference='day'):
    """(layout, pairs); every homography is read and checked, every image is checked to decode."""
    if not os.path.isdir(root):
        raise DatasetError(f'{root}: not a folder')
    layout = layout or detect_layout(root)
    pairs = read_hpatches(root) if layout == 'hpatches' else read_rdnim(root, reference)
    for path in sorted({p['path0'] for p in pairs} | {p['path1'] for p in pairs}):
        read_image(path)
    return layout, pairs


# ---------------------------------------------------------------- LISRD's preprocessing

def resize_and_crop(image, size):
    """LISRD's resize_and_crop: scale to cover (cv2.resize, bilinear), centre crop."""
    source = np.array(image.shape[:2], dtype=np.float64)
    target = np.array(size, dtype=np.float64)
    scale = np.amax(target / source)
    inter = np.round(source * scale).astype(int)
    image = cv2.resize(image, (int(inter[1]), int(inter[0])))
    pad = np.round((source * scale - target) / 2.0).astype(int)
    return image[pad[0]:pad[0] + int(target[0]), pad[1]:pad[1] + int(target[1])]


def adapt_homography(h, shape0, shape1, size):
    """LISRD's adapt_homography_to_preprocessing (unrounded scale and pad, as LISRD has it)."""
    target = np.array(size, dtype=np.float64)

    def frame(shape):
        source = np.array(shape, dtype=np.float64)
        scale = np.amax(target / source)
        pad = (source * scale - target) / 2.0
        return scale, pad
    s0, p0 = frame(shape0)
    s1, p1 = frame(shape1)
    scaling0 = np.diag([1.0 / s0, 1.0 / s0, 1.0])
    scaling1 = np.diag([s1, s1, 1.0])
    t0 = np.array([[1.0, 0.0, p0[1]], [0.0, 1.0, p0[0]], [0.0, 0.0, 1.0]])
    t1 = np.array([[1.0, 0.0, -p1[1]], [0.0, 1.0, -p1[0]], [0.0, 0.0, 1.0]])
    return t1 @ scaling1 @ h @ scaling0 @ t0


# ---------------------------------------------------------------- the metrics

def warp(points, h):
    """(x, y) [N, 2] float64 through h; rows of homogeneous w = 0 give inf / nan, as NumPy does."""
    p = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ h.T
    with np.errstate(divide='ignore', invalid='ignore'):
        return p[:, :2] / p[:, 2:3]


def keep_true_keypoints(points, h, shape, margin=BORDER_MARGIN):
    """Points whose image under h lies in [margin, W - margin) x [margin, H - margin) of `shape` (H, W)."""
    w = warp(points, h)
    with np.errstate(invalid='ignore'):
        return ((w[:, 0] >= margin) & (w[:, 0] < shape[1] - margin)
                & (w[:, 1] >= margin) & (w[:, 1] < shape[0] - margin))


def select_k_best(points, scores, k, h, other_shape, margin=BORDER_MARGIN):
    """Indices (ascending, i.e. in the input order) of the k best-scoring points among
    those that `keep_true_keypoints` keeps; ties at the k-th score go to the earlier index."""
    valid = np.nonzero(keep_true_keypoints(points, h, other_shape, margin))[0]
    order = valid[np.lexsort((valid, -scores[valid]))]
    return np.sort(order[:k])


def mutual_matches(dist):
    """LISRD's nn_matcher: i <-> j when j = argmin dist[i] and i = argmin dist[:, j], first
    index on ties; int64 [M, 2] in ascending i."""
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    nearest0 = np.argmin(dist, axis=1)
    nearest1 = np.argmin(dist, axis=0)
    i = np.nonzero(nearest1[nearest0] == np.arange(len(nearest0)))[0]
    return np.stack([i, nearest0[i]], axis=1).astype(np.int64)


def estimate_homography(src, dst):
    """OpenCV RANSAC homography (LISRD's call: cv2.findHomography(src, dst, cv2.RANSAC)),
    or None with fewer than 4 matches (where OpenCV raises)."""
    if len(src) < 4:
        return None, np.zeros(len(src), dtype=bool)
    h, inliers = cv2.findHomography(src.astype(np.float64), dst.astype(np.float64), cv2.RANSAC,
                                    RANSAC_THRESHOLD)
    if h is None:
        return None, np.zeros(len(src), dtype=bool)
    return h, inliers.reshape(-1).astype(bool)


def corner_error(h_est, h_gt, shape0):
    """Mean distance between the corners of image 0 and their images through h_est then
    h_gt^-1 (LISRD's compute_H_estimation); nan if a corner goes to infinity."""
    hh, ww = shape0
    corners = np.array([[0, 0], [ww - 1, 0], [0, hh - 1], [ww - 1, hh - 1]], dtype=np.float64)
    back = warp(warp(corners, h_est), np.linalg.inv(h_gt))
    with np.errstate(invalid='ignore'):
        return float(np.mean(np.linalg.norm(back - corners, axis=1)))


def precision_at(dist0, dist1, t):
    if len(dist0) == 0:
        return 0.0
    with np.errstate(invalid='ignore'):
        return float(((dist0 <= t).mean() + (dist1 <= t).mean()) / 2.0)


def pair_metrics(kp0, kp1, matches, h, shape0, shape1=None, threshold=3.0):
    """The metrics of one pair from its keypoints ((x, y), as float32 or float64), mutual
    matches (int64 [M, 2]) and ground truth h (image 0 -> image 1). shape0 = (H, W) of image 0."""
    kp0 = np.asarray(kp0, dtype=np.float64).reshape(-1, 2)
    kp1 = np.asarray(kp1, dtype=np.float64).reshape(-1, 2)
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    h = np.asarray(h, dtype=np.float64)
    if len(matches) and (matches.min() < 0 or matches[:, 0].max() >= len(kp0) or matches[:, 1].max() >= len(kp1)):
        raise ValueError('a match index is out of range')
    if len(np.unique(matches[:, 0])) != len(matches) or len(np.unique(matches[:, 1])) != len(matches):
        raise ValueError('matches must be one-to-one (mutual nearest neighbours)')
    m0, m1 = kp0[matches[:, 0]], kp1[matches[:, 1]]

    h_est, inliers = estimate_homography(m0, m1)
    error = corner_error(h_est, h, shape0) if h_est is not None else float('nan')
    correct = bool(error <= threshold) if not math.isnan(error) else False

    with np.errstate(invalid='ignore'):
        dist0 = np.linalg.norm(m0 - warp(m1, np.linalg.inv(h)), axis=1)
        dist1 = np.linalg.norm(m1 - warp(m0, h), axis=1)
    mma = [precision_at(dist0, dist1, t) for t in MMA_THRESHOLDS]

    recall = 0.0
    if len(kp0) and len(kp1) and len(matches):
        with np.errstate(invalid='ignore'):
            gt = np.linalg.norm(warp(kp0, h)[:, None, :] - kp1[None, :, :], axis=2)
        gt = np.where(np.isnan(gt), np.inf, gt)
        closest = np.argmin(gt, axis=1)
        correct_gt = gt[np.arange(len(kp0)), closest] <= threshold
        hits = (closest[matches[:, 0]] == matches[:, 1]) & correct_gt[matches[:, 0]]
        if correct_gt.sum() > 0:
            recall = float(hits.sum() / correct_gt.sum())
    return {
        'num_keypoints0': int(len(kp0)), 'num_keypoints1': int(len(kp1)), 'num_matches': int(len(matches)),
        'h_estimation': float(correct), 'corner_error': error,
        'precision': precision_at(dist0, dist1, threshold), 'recall': recall, 'mma': mma,
        'estimated_homography': h_est, 'inliers': inliers,
    }


def metrics_from_dump(path, threshold=3.0):
    """Recomputes a dump's metrics from its keypoints, matches, homography and image shapes."""
    with np.load(path, allow_pickle=False) as z:
        shape0 = tuple(int(v) for v in z['image_shape0'])
        shape1 = tuple(int(v) for v in z['image_shape1']) if 'image_shape1' in z else None
        return pair_metrics(z['keypoints0'], z['keypoints1'], z['matches'], z['homography'],
                            shape0, shape1, threshold)


def summarise(pair_results):
    """Means over pairs of h_estimation, precision, recall and each MMA threshold."""
    if not pair_results:
        return None
    return {
        'pairs': len(pair_results),
        'h_estimation': float(np.mean([p['h_estimation'] for p in pair_results])),
        'precision': float(np.mean([p['precision'] for p in pair_results])),
        'recall': float(np.mean([p['recall'] for p in pair_results])),
        'mma': [float(v) for v in np.mean([p['mma'] for p in pair_results], axis=0)],
    }


# ---------------------------------------------------------------- the full evaluation

def _distance(desc0, meta0, desc1, meta1, squared):
    import torch
    import models
    with torch.no_grad():
        return models.distance_matrix(torch.from_numpy(desc0).double(), torch.from_numpy(meta0).double(),
                                      torch.from_numpy(desc1).double(), torch.from_numpy(meta1).double(),
                                      squared=squared).numpy()


class Describer:
    """One model; forward passes cached per image path (image 1 of a scene serves 5 pairs)."""

    def __init__(self, weights_path, arch=None):
        import torch
        import make_reference
        torch.set_num_threads(1)
        self.path = weights_path
        self.model = make_reference.build_model(make_reference.load_weights(weights_path), arch)
        self.arch = self.model.arch
        self.cache = {}

    def describe(self, key, image_u8, keypoints):
        """kp_desc [N, 4, 128], kp_meta [N, 4, D] float32 at float32 keypoints (x, y)."""
        import torch
        import models
        if key in self.cache:
            self.cache[key] = self.cache.pop(key)      # most recently used last
        else:
            x = torch.from_numpy(image_u8.astype(np.float32) / np.float32(255)).permute(2, 0, 1).unsqueeze(0).contiguous()
            with torch.no_grad():
                self.cache[key] = (self.model(x), x.shape[2], x.shape[3])
            if len(self.cache) > 2:    # a pair's two images; image 1 of a scene comes back next pair
                self.cache.pop(next(iter(self.cache)))
        out, hh, ww = self.cache[key]
        with torch.no_grad():
            d, m = models.sample_keypoints(out, torch.from_numpy(keypoints.astype(np.float32)), hh, ww)
        return d.numpy(), m.numpy()


def load_keypoint_file(image_path, name):
    """LISRD's export layout: `<image>.<name>`, an NPZ with `keypoints` (row, col) and `scores`."""
    path = f'{image_path}.{name}'
    if not os.path.isfile(path):
        raise DatasetError(f'{path}: keypoint file missing')
    with np.load(path, allow_pickle=False) as z:
        if 'keypoints' not in z or 'scores' not in z:
            raise DatasetError(f'{path}: needs `keypoints` and `scores`')
        k, s = np.asarray(z['keypoints'], dtype=np.float64), np.asarray(z['scores'], dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != 2 or s.shape != (len(k),):
        raise DatasetError(f'{path}: keypoints must be [N, 2] and scores [N]')
    return k[:, ::-1].copy(), s


def evaluate(weights, root, layout=None, reference='day', num_kp=1000, threshold=3.0, distance='eq1',
             resize=None, dump_dir=None, describer=None, keypoints_cache=None, progress=None,
             keypoints='detector'):
    """Evaluates one weights file on a dataset: {'mean', 'illumination', 'viewpoint', 'pairs'}."""
    import detector_reference
    layout, pairs = read_dataset(root, layout, reference)
    describer = describer or Describer(weights)
    keypoints_cache = {} if keypoints_cache is None else keypoints_cache
    results = []
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
    for n, pair in enumerate(pairs):
        img0, img1 = read_image(pair['path0']), read_image(pair['path1'])
        h = pair['homography']
        if resize:
            h = adapt_homography(h, img0.shape[:2], img1.shape[:2], resize)
            img0, img1 = resize_and_crop(img0, resize), resize_and_crop(img1, resize)
        shape0, shape1 = img0.shape[:2], img1.shape[:2]
        feats = []
        for path, img in ((pair['path0'], img0), (pair['path1'], img1)):
            key = (path, resize)
            if key not in keypoints_cache:
                if keypoints.startswith('files:'):
                    k, s = load_keypoint_file(path, keypoints[len('files:'):])
                else:
                    k, s = detector_reference.detect(img)
                # float32 from here on: the dump stores float32, and every later step must see
                # the same coordinates whether it reads the dump or not
                keypoints_cache[key] = (k.astype(np.float32), s)
            feats.append(keypoints_cache[key])
        (k0, s0), (k1, s1) = feats
        sel0 = select_k_best(k0.astype(np.float64), s0, num_kp, h, shape1)
        sel1 = select_k_best(k1.astype(np.float64), s1, num_kp, np.linalg.inv(h), shape0)
        kp0, kp1 = k0[sel0], k1[sel1]
        d0, m0 = describer.describe((pair['path0'], resize), img0, kp0)
        d1, m1 = describer.describe((pair['path1'], resize), img1, kp1)
        matches = mutual_matches(_distance(d0, m0, d1, m1, distance == 'squared'))
        r = pair_metrics(kp0, kp1, matches, h, shape0, shape1, threshold)
        record = {'name': pair['name'], 'scene': pair['scene'], 'image': pair['image'], 'subset': pair['subset']}
        record.update({k: v for k, v in r.items() if k not in ('estimated_homography', 'inliers')})
        results.append(record)
        if dump_dir:
            est = r['estimated_homography'] if r['estimated_homography'] is not None else np.full((3, 3), np.nan)
            np.savez(os.path.join(dump_dir, pair['name'] + '.npz'),
                     keypoints0=kp0.astype(np.float32), keypoints1=kp1.astype(np.float32),
                     matches=matches.astype(np.int64), homography=h.astype(np.float64),
                     estimated_homography=est.astype(np.float64),
                     h_estimation=np.float64(r['h_estimation']), precision=np.float64(r['precision']),
                     recall=np.float64(r['recall']), mma=np.array(r['mma'], dtype=np.float64),
                     image_shape0=np.array(shape0, dtype=np.int64), image_shape1=np.array(shape1, dtype=np.int64))
        if progress:
            progress(f'[{n + 1}/{len(pairs)}] {pair["name"]}: {r["num_matches"]} matches, '
                     f'H {r["h_estimation"]:.0f}, precision {r["precision"]:.3f}, recall {r["recall"]:.3f}')
    summary = {'layout': layout, 'weights': weights, 'arch': describer.arch, 'num_kp': num_kp,
               'threshold': threshold, 'distance': distance,
               'mean': summarise(results),
               'illumination': summarise([r for r in results if r['subset'] == 'illumination']),
               'viewpoint': summarise([r for r in results if r['subset'] == 'viewpoint']),
               'pairs': results}
    if layout == 'rdnim':
        summary['reference'] = reference
    return summary


def format_table(summaries, names):
    """The paper's Table 1 shape: per subset, H-estimation, precision, recall."""
    subsets = [s for s in ('illumination', 'viewpoint') if summaries[0].get(s)] + ['mean']
    title = {'illumination': 'Illumination', 'viewpoint': 'Viewpoint', 'mean': 'All'}
    width = max(12, max(len(n) for n in names))
    head = ' ' * width + ''.join(f' | {title[s]:^26}' for s in subsets)
    sub = ' ' * width + ''.join(' | {:>8} {:>8} {:>8}'.format('H-est', 'prec', 'recall') for _ in subsets)
    lines = [head, sub, '-' * len(sub)]
    for name, summary in zip(names, summaries):
        cells = ''.join(' | {:8.3f} {:8.3f} {:8.3f}'.format(summary[s]['h_estimation'], summary[s]['precision'],
                                                           summary[s]['recall']) for s in subsets)
        lines.append(f'{name:<{width}}{cells}')
    lines.append('')
    lines.append(' ' * width + ' | MMA at 1..10 px (All)')
    for name, summary in zip(names, summaries):
        lines.append(f'{name:<{width}} | ' + ' '.join(f'{v:.3f}' for v in summary['mean']['mma']))
    return '\n'.join(lines)


def _parse_size(text):
    m = re.fullmatch(r'(\d+)x(\d+)', text)
    if not m:
        raise argparse.ArgumentTypeError(f'expected HxW, got {text!r}')
    return int(m.group(1)), int(m.group(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    pm = sub.add_parser('metrics', help='recompute the metrics of dump NPZs')
    pm.add_argument('dumps', nargs='+')
    pm.add_argument('--threshold', type=float, default=3.0)
    pm.add_argument('--json', action='store_true')
    pe = sub.add_parser('evaluate', help='evaluate weights on a dataset with PyTorch')
    pe.add_argument('weights')
    pe.add_argument('dataset')
    pe.add_argument('--layout', choices=('hpatches', 'rdnim'))
    pe.add_argument('--reference', choices=('day', 'night'), default='day')
    pe.add_argument('--num-kp', type=int, default=1000)
    pe.add_argument('--threshold', type=float, default=3.0)
    pe.add_argument('--distance', choices=('eq1', 'squared'), default='eq1')
    pe.add_argument('--keypoints', default='detector', help='detector, or files:NAME (LISRD export NPZs)')
    pe.add_argument('--resize', type=_parse_size)
    pe.add_argument('--json', help='write the result (and --compare\'s) to this JSON file')
    pe.add_argument('--dump', help='one NPZ per pair in this folder')
    pe.add_argument('--compare', help='a second weights file, evaluated on the same keypoints')
    args = parser.parse_args()

    if args.command == 'metrics':
        out = []
        for path in args.dumps:
            r = metrics_from_dump(path, args.threshold)
            r = {k: v for k, v in r.items() if k not in ('estimated_homography', 'inliers')}
            r['name'] = os.path.basename(path)
            out.append(r)
            if not args.json:
                print(f'{r["name"]}: H-estimation {r["h_estimation"]:.0f} (corner error {r["corner_error"]:.3f}), '
                      f'precision {r["precision"]:.6f}, recall {r["recall"]:.6f}, matches {r["num_matches"]}')
        if args.json:
            print(json.dumps({'mean': summarise(out), 'pairs': out}, indent=1))
        return

    try:
        say = lambda m: print(m, file=sys.stderr)
        cache = {}
        runs = [(args.weights, evaluate(args.weights, args.dataset, args.layout, args.reference, args.num_kp,
                                        args.threshold, args.distance, args.resize, args.dump,
                                        keypoints_cache=cache, progress=say, keypoints=args.keypoints))]
        if args.compare:
            runs.append((args.compare, evaluate(args.compare, args.dataset, args.layout, args.reference,
                                                args.num_kp, args.threshold, args.distance, args.resize,
                                                None, keypoints_cache=cache, progress=say,
                                                keypoints=args.keypoints)))
    except DatasetError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    print(format_table([r for _, r in runs], [os.path.basename(w) for w, _ in runs]))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(runs[0][1] if len(runs) == 1 else {'runs': [r for _, r in runs]}, f, indent=1)


if __name__ == '__main__':
    main()
