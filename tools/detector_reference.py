"""Reference implementation of the built-in keypoint detector (docs/detector.md), NumPy float64.

The Swift detector implements docs/detector.md to the letter; this file is that
document in code and the source of the fixtures in Tests/Fixtures/detector/.
OpenCV appears only in `self_check`, as an outside opinion.

    .venv/bin/python tools/detector_reference.py IMAGE [--max N] [-o kp.npy]   # prints / writes keypoints
    .venv/bin/python tools/detector_reference.py --self-check                  # against OpenCV
    .venv/bin/python tools/detector_reference.py --make-fixtures               # Tests/Fixtures/detector/

Module API: `detect(rgb_uint8) -> (keypoints float64 [N, 2] (x, y), scores float64 [N])`,
and the stages `gray`, `gradients`, `structure_tensor`, `response`, `local_maxima`,
`refine`.
"""

import argparse
import math
import os
import sys

import numpy as np

SIGMA = 1.5                      # Gaussian window of the structure tensor
RADIUS = math.ceil(3 * SIGMA)    # 5: the window has 2 * RADIUS + 1 = 11 taps
NMS_RADIUS = 2                   # a keypoint is the largest response in its 5x5 square
BORDER = 8                       # no keypoint closer than 8 px to the image border
QUALITY = 0.001                  # response must exceed 0.1% of the image's largest ...
ABSOLUTE_FLOOR = 1e-7            # ... and this, so flat images give no keypoints
MAX_KEYPOINTS = 2000


def gray(rgb):
    """uint8 [H, W, 3] -> float64 [H, W] in [0, 1]: (0.299 R + 0.587 G + 0.114 B) / 255."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'expected uint8 [H, W, 3], got {rgb.dtype} {list(rgb.shape)}')
    r, g, b = (rgb[..., c].astype(np.float64) for c in range(3))
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


def _clamped(img, dy, dx):
    """img shifted so that out[y, x] = img[clamp(y + dy), clamp(x + dx)] (replicated border)."""
    h, w = img.shape
    ys = np.clip(np.arange(h) + dy, 0, h - 1)
    xs = np.clip(np.arange(w) + dx, 0, w - 1)
    return img[ys][:, xs]


def gradients(g):
    """Sobel derivatives divided by 8 (a unit ramp has derivative 1), replicated border.

    Ix = ([g(x+1) - g(x-1)] at y-1  + 2 [..] at y  + [..] at y+1) / 8, the same for Iy
    with the roles of x and y swapped. Summation order as written (row y-1, y, y+1).
    """
    dx = lambda dy: _clamped(g, dy, 1) - _clamped(g, dy, -1)
    dy = lambda dx_: _clamped(g, 1, dx_) - _clamped(g, -1, dx_)
    ix = (dx(-1) + 2.0 * dx(0) + dx(1)) / 8.0
    iy = (dy(-1) + 2.0 * dy(0) + dy(1)) / 8.0
    return ix, iy


def gaussian_kernel():
    """2 * RADIUS + 1 weights exp(-k^2 / (2 sigma^2)), k = -RADIUS..RADIUS, divided by their sum."""
    k = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    w = np.exp(-(k * k) / (2.0 * SIGMA * SIGMA))
    return w / w.sum()


def smooth(a):
    """Separable Gaussian window, horizontal pass first, replicated border; taps summed k = -R..R."""
    w = gaussian_kernel()
    out = np.zeros_like(a)
    for i, k in enumerate(range(-RADIUS, RADIUS + 1)):
        out = out + w[i] * _clamped(a, 0, k)
    res = np.zeros_like(a)
    for i, k in enumerate(range(-RADIUS, RADIUS + 1)):
        res = res + w[i] * _clamped(out, k, 0)
    return res


def structure_tensor(ix, iy):
    return smooth(ix * ix), smooth(ix * iy), smooth(iy * iy)


def response(rgb):
    """The Shi-Tomasi response: the smaller eigenvalue of the smoothed structure tensor,
    (a + c) / 2 - sqrt(((a - c) / 2)^2 + b^2) for [[a, b], [b, c]]."""
    ix, iy = gradients(gray(rgb))
    a, b, c = structure_tensor(ix, iy)
    half = (a - c) / 2.0
    return (a + c) / 2.0 - np.sqrt(half * half + b * b)


def local_maxima(r):
    """Pixels (x, y) inside the border margin whose response exceeds the threshold and
    wins its (2 NMS_RADIUS + 1)^2 square: every other pixel q of the square (clipped to
    the image) has R(q) < R(p), or R(q) == R(p) and q comes later in raster order."""
    h, w = r.shape
    if h <= 2 * BORDER or w <= 2 * BORDER:
        return np.zeros((0, 2), dtype=np.int64)
    inner = r[BORDER:h - BORDER, BORDER:w - BORDER]
    threshold = max(QUALITY * float(inner.max()), ABSOLUTE_FLOOR)
    win = inner > threshold
    padded = np.full((h + 2 * NMS_RADIUS, w + 2 * NMS_RADIUS), -np.inf)
    padded[NMS_RADIUS:NMS_RADIUS + h, NMS_RADIUS:NMS_RADIUS + w] = r
    for dy in range(-NMS_RADIUS, NMS_RADIUS + 1):
        for dx in range(-NMS_RADIUS, NMS_RADIUS + 1):
            if dy == 0 and dx == 0:
                continue
            q = padded[NMS_RADIUS + BORDER + dy:NMS_RADIUS + h - BORDER + dy,
                       NMS_RADIUS + BORDER + dx:NMS_RADIUS + w - BORDER + dx]
            earlier = dy < 0 or (dy == 0 and dx < 0)
            win &= (q < inner) if earlier else (q <= inner)
    ys, xs = np.nonzero(win)
    # raster order (y, then x), as np.nonzero gives it
    return np.stack([xs + BORDER, ys + BORDER], axis=1).astype(np.int64).reshape(-1, 2)


def refine(r, x, y):
    """Sub-pixel offset from the quadratic fitted to the 3x3 neighbourhood (finite
    differences); (0, 0) unless its Hessian is negative definite; each component
    clamped to [-0.5, 0.5]."""
    dx = (r[y, x + 1] - r[y, x - 1]) / 2.0
    dy = (r[y + 1, x] - r[y - 1, x]) / 2.0
    dxx = r[y, x + 1] - 2.0 * r[y, x] + r[y, x - 1]
    dyy = r[y + 1, x] - 2.0 * r[y, x] + r[y - 1, x]
    dxy = (r[y + 1, x + 1] - r[y + 1, x - 1] - r[y - 1, x + 1] + r[y - 1, x - 1]) / 4.0
    det = dxx * dyy - dxy * dxy
    if not (dxx < 0.0 and det > 0.0):
        return 0.0, 0.0
    ox = -(dyy * dx - dxy * dy) / det
    oy = -(dxx * dy - dxy * dx) / det
    return min(0.5, max(-0.5, ox)), min(0.5, max(-0.5, oy))


def detect(rgb, max_keypoints=MAX_KEYPOINTS, r=None):
    """Keypoints (x, y) float64 [N, 2] and scores (the response at the pixel) float64 [N],
    ordered by score descending, ties by raster order (y, then x), at most max_keypoints.
    `r` replaces the response map (the self-check's OpenCV-window variant)."""
    if r is None:
        r = response(rgb)
    peaks = local_maxima(r)
    if len(peaks) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    scores = r[peaks[:, 1], peaks[:, 0]]
    # lexsort: last key is primary -> score descending, then y, then x ascending
    order = np.lexsort((peaks[:, 0], peaks[:, 1], -scores))[:max_keypoints]
    kps = []
    for x, y in peaks[order].tolist():
        ox, oy = refine(r, x, y)
        kps.append((x + ox, y + oy))
    return np.array(kps, dtype=np.float64), scores[order]


def load_rgb(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert('RGB'))


# ---------------------------------------------------------------- self-check against OpenCV

def self_check(paths, report=print):
    """How close the definition is to OpenCV, stage by stage:
    1. with OpenCV's window (3x3 box) in place of the Gaussian, the response equals
       cv2.cornerMinEigenVal up to the constant 4 its derivative scaling implies;
    2. the keypoints, against cv2.goodFeaturesToTrack with the same quality level and
       minimum distance, as the share within 1 px / 2 px of the other's nearest point.
    """
    import cv2
    results = []
    for path in paths:
        rgb = load_rgb(path)
        g = gray(rgb)
        ix, iy = gradients(g)
        box = lambda a: sum(_clamped(a, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
        a, b, c = box(ix * ix), box(ix * iy), box(iy * iy)
        half = (a - c) / 2.0
        mine_box = (a + c) / 2.0 - np.sqrt(half * half + b * b)
        cv_r = cv2.cornerMinEigenVal(g.astype(np.float32), 3, 3, borderType=cv2.BORDER_REPLICATE).astype(np.float64)
        inner = (slice(2, -2), slice(2, -2))   # OpenCV's box filter treats the outer ring its own way
        rel = np.abs(cv_r[inner] - 4.0 * mine_box[inner]).max() / np.abs(cv_r[inner]).max()

        h, w = g.shape
        mask = np.zeros((h, w), np.uint8)
        mask[BORDER:h - BORDER, BORDER:w - BORDER] = 1

        def opencv_corners(block, cap=MAX_KEYPOINTS):
            found = cv2.goodFeaturesToTrack(g.astype(np.float32), cap, QUALITY, NMS_RADIUS + 0.5,
                                            mask=mask, blockSize=block, useHarrisDetector=False)
            return np.zeros((0, 2)) if found is None else found.reshape(-1, 2).astype(np.float64)

        def share_within(p, q, tol):
            if len(p) == 0 or len(q) == 0:
                return 0.0
            d = np.sqrt(((p[:, None, :] - q[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
            return float((d <= tol).mean())

        # Same response as OpenCV's (box window), this file's maxima: integer positions.
        # No count cap here, so that the two sets differ only by their suppression rules.
        box_kps, _ = detect(rgb, max_keypoints=10 ** 6, r=4.0 * mine_box)
        box_int = np.rint(box_kps)
        cv3 = opencv_corners(3, cap=0)
        # The real detector (Gaussian window) against OpenCV's nearest setting (blockSize 5).
        kps, _ = detect(rgb)
        cv5 = opencv_corners(5)
        n = min(len(kps), len(cv5), 300)
        res = {
            'image': os.path.basename(path), 'size': f'{w}x{h}',
            'response_box_vs_cornerMinEigenVal_rel_max_err': float(rel),
            'box_keypoints': len(box_kps), 'opencv_block3_keypoints': len(cv3),
            'box_same_pixel_as_opencv': share_within(box_int, cv3, 0.0),
            'opencv_same_pixel_as_box': share_within(cv3, box_int, 0.0),
            'keypoints': len(kps), 'opencv_block5_keypoints': len(cv5), 'top': n,
            'top_within_1px_of_opencv5': share_within(kps[:n], cv5, 1.0),
            'top_within_2px_of_opencv5': share_within(kps[:n], cv5, 2.0),
            'opencv5_top_within_2px': share_within(cv5[:n], kps, 2.0),
        }
        results.append(res)
        report(res)
    return results


def make_fixtures(out_dir):
    """Tests/Fixtures/detector/: per image `<name>.keypoints.npy` (float64 [N, 2] x, y),
    `<name>.scores.npy` (float64 [N]); for the small image also every stage."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, '..')
    os.makedirs(out_dir, exist_ok=True)
    images = {
        'coffee': os.path.join(root, 'Tests', 'Fixtures', 'photos', 'coffee.png'),
        'camera': os.path.join(root, 'Tests', 'Fixtures', 'photos', 'camera.png'),
        'v_chelsea-1': os.path.join(root, 'Tests', 'Fixtures', 'eval', 'hpatches-like', 'v_chelsea', '1.ppm'),
        'seq_coffee-night': os.path.join(root, 'Tests', 'Fixtures', 'eval', 'rdnim-like', 'references', 'seq_coffee', 'night.jpg'),
    }
    for name, path in images.items():
        kps, scores = detect(load_rgb(path))
        np.save(os.path.join(out_dir, f'{name}.keypoints.npy'), kps)
        np.save(os.path.join(out_dir, f'{name}.scores.npy'), scores)
        print(f'{name}: {len(kps)} keypoints from {os.path.relpath(path, root)}')
    # Stage by stage on a small crop (odd sizes, so no stage can assume even ones).
    small = load_rgb(images['coffee'])[100:161, 200:283]    # 61 x 83
    np.save(os.path.join(out_dir, 'small.image.npy'), small)
    g = gray(small)
    ix, iy = gradients(g)
    a, b, c = structure_tensor(ix, iy)
    r = response(small)
    kps, scores = detect(small)
    for stage, value in (('gray', g), ('ix', ix), ('iy', iy), ('sxx', a), ('sxy', b), ('syy', c),
                         ('response', r), ('maxima', local_maxima(r)), ('keypoints', kps), ('scores', scores)):
        np.save(os.path.join(out_dir, f'small.{stage}.npy'), value)
    print(f'small: 61x83 crop of coffee.png at rows 100..160, columns 200..282, {len(kps)} keypoints')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', nargs='?')
    parser.add_argument('--max', type=int, default=MAX_KEYPOINTS)
    parser.add_argument('-o', '--output', help='write keypoints (x, y) float64 .npy; scores beside it')
    parser.add_argument('--self-check', action='store_true')
    parser.add_argument('--make-fixtures', action='store_true')
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    if args.make_fixtures:
        make_fixtures(os.path.join(here, '..', 'Tests', 'Fixtures', 'detector'))
    elif args.self_check:
        photos = os.path.join(here, '..', 'Tests', 'Fixtures', 'photos')
        self_check([os.path.join(photos, f) for f in sorted(os.listdir(photos)) if f.endswith('.png')])
    elif args.image:
        kps, scores = detect(load_rgb(args.image), args.max)
        if args.output:
            np.save(args.output, kps)
            np.save(os.path.splitext(args.output)[0] + '.scores.npy', scores)
        else:
            for (x, y), s in zip(kps, scores):
                print(f'{x:.4f} {y:.4f} {s:.6e}')
    else:
        parser.error('give an image, --self-check or --make-fixtures')


if __name__ == '__main__':
    main()
