"""Seeded, procedurally drawn test images (shapes, edges, gradients, texture), a
known warp (rotation + brightness) and keypoint sets. NumPy only.

Used by make_samples.py (calibration images) and make_fixtures.py (committed
test images); nothing here is run on its own.
"""

import numpy as np

SUPERSAMPLE = 3  # shapes are drawn at 3x and box-filtered, so edges are anti-aliased


def _colour(rng):
    return rng.uniform(0.05, 0.95, size=3)


def draw_image(seed, height, width):
    """uint8 [H, W, 3]: a gradient background, texture patches and random shapes."""
    rng = np.random.default_rng(seed)
    s = SUPERSAMPLE
    ys = (np.arange(height * s) + 0.5) / s - 0.5
    xs = (np.arange(width * s) + 0.5) / s - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing='ij')
    scale = min(height, width)

    # Background: a linear gradient between two colours in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / (t.max() - t.min())
    img = _colour(rng) * (1 - t[..., None]) + _colour(rng) * t[..., None]

    def blend(mask, colour, alpha=1.0):
        nonlocal img
        m = (mask.astype(np.float64) * alpha)[..., None]
        img = img * (1 - m) + np.asarray(colour) * m

    # Texture: a sinusoidal grating and a checkerboard, each inside a random box.
    for kind in ('grating', 'checker'):
        x0, y0 = rng.uniform(0, width * 0.6), rng.uniform(0, height * 0.6)
        bw, bh = rng.uniform(0.25, 0.45) * width, rng.uniform(0.25, 0.45) * height
        box = (xx >= x0) & (xx < x0 + bw) & (yy >= y0) & (yy < y0 + bh)
        if kind == 'grating':
            period, theta = rng.uniform(3, 7), rng.uniform(0, np.pi)
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(theta) * xx + np.sin(theta) * yy) / period)
            colour = _colour(rng)
            blend(box, colour * wave[..., None] + (1 - colour) * (1 - wave[..., None]) * 0.5, 0.8)
        else:
            cell = rng.integers(3, 6)
            checker = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(bool)
            blend(box & checker, _colour(rng), 0.9)
            blend(box & ~checker, _colour(rng), 0.9)

    # Shapes: rectangles, ellipses, triangles (three half-planes) and thick lines.
    for _ in range(int(rng.integers(7, 11))):
        kind = rng.choice(['rect', 'ellipse', 'triangle', 'line'])
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        if kind == 'rect':
            rot = rng.uniform(0, np.pi)
            u = np.cos(rot) * (xx - cx) + np.sin(rot) * (yy - cy)
            v = -np.sin(rot) * (xx - cx) + np.cos(rot) * (yy - cy)
            a, b = rng.uniform(0.08, 0.25, size=2) * scale
            mask = (np.abs(u) < a) & (np.abs(v) < b)
        elif kind == 'ellipse':
            a, b = rng.uniform(0.06, 0.22, size=2) * scale
            mask = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
        elif kind == 'triangle':
            pts = np.array([cx, cy]) + rng.uniform(-0.3, 0.3, size=(3, 2)) * scale
            signs = []
            for i in range(3):
                p, q = pts[i], pts[(i + 1) % 3]
                signs.append((q[0] - p[0]) * (yy - p[1]) - (q[1] - p[1]) * (xx - p[0]) >= 0)
            mask = (signs[0] == signs[1]) & (signs[1] == signs[2])
        else:
            rot = rng.uniform(0, np.pi)
            dist = np.abs(-np.sin(rot) * (xx - cx) + np.cos(rot) * (yy - cy))
            along = np.abs(np.cos(rot) * (xx - cx) + np.sin(rot) * (yy - cy))
            mask = (dist < rng.uniform(0.6, 1.8)) & (along < rng.uniform(0.2, 0.6) * scale)
        blend(mask, _colour(rng), rng.uniform(0.6, 1.0))

    img = img.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    img = img + rng.normal(0, 0.015, size=img.shape)  # sensor-like grain
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def rotation_matrix(angle_degrees):
    a = np.deg2rad(angle_degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def warp_point(points, angle_degrees, height, width):
    """Forward warp of (x, y) points: rotation by angle about the image centre."""
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    return (np.asarray(points, dtype=np.float64) - centre) @ rotation_matrix(angle_degrees).T + centre


def warp_image(image, angle_degrees, gain, offset):
    """image1(p) = gain * image0(warp^-1(p)) + offset (bilinear, edges replicated), uint8."""
    height, width = image.shape[:2]
    yy, xx = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing='ij')
    # Inverse warp: rotate back by -angle.
    src = warp_point(np.stack([xx.ravel(), yy.ravel()], axis=1), -angle_degrees, height, width)
    sx = np.clip(src[:, 0], 0, width - 1)
    sy = np.clip(src[:, 1], 0, height - 1)
    x0 = np.minimum(np.floor(sx).astype(int), width - 2)
    y0 = np.minimum(np.floor(sy).astype(int), height - 2)
    fx, fy = (sx - x0)[:, None], (sy - y0)[:, None]
    im = image.astype(np.float64)
    val = (im[y0, x0] * (1 - fx) * (1 - fy) + im[y0, x0 + 1] * fx * (1 - fy)
           + im[y0 + 1, x0] * (1 - fx) * fy + im[y0 + 1, x0 + 1] * fx * fy)
    val = val * gain + offset
    return np.clip(np.round(val), 0, 255).astype(np.uint8).reshape(height, width, 3)


def keypoints(seed, height, width, count=40):
    """float32 [count, 2] (x, y): the four exact corners, points on each border and
    0.3-0.9 px inside it, integer and half-integer points, the rest random.

    Only the exact corners lie near a corner: any two points within ~5 px of the same
    corner sample the same single map cell there (the others are zero padding), so
    their L2-normalised descriptors would be identical and nearest neighbours tie.
    """
    rng = np.random.default_rng(seed)
    w1, h1 = width - 1, height - 1

    def along_x():
        return rng.uniform(0.15, 0.85) * w1

    def along_y():
        return rng.uniform(0.15, 0.85) * h1

    pts = [(0, 0), (w1, h1), (w1, 0), (0, h1)]
    pts += [(0, along_y()), (w1, along_y()), (along_x(), 0), (along_x(), h1)]
    for _ in range(2):
        inset = rng.uniform(0.3, 0.9, size=4)
        pts += [(inset[0], along_y()), (w1 - inset[1], along_y()), (along_x(), inset[2]), (along_x(), h1 - inset[3])]
    pts += [(float(rng.integers(6, w1 - 5)), float(rng.integers(6, h1 - 5))) for _ in range(4)]
    pts += [(rng.integers(6, w1 - 5) + 0.5, rng.integers(6, h1 - 5) + 0.5) for _ in range(4)]
    while len(pts) < count:
        pts.append((rng.uniform(6, w1 - 6), rng.uniform(6, h1 - 6)))
    return np.asarray(pts, dtype=np.float32)
