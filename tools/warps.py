"""Seeded homographies, warps and photometric changes of photos (NumPy + OpenCV).

Shared by train_sample.py (training pairs) and make_hpatches_like.py (dataset
fixtures). Every function takes a `numpy.random.Generator`, so a seed fixes the result.

Conventions: images are uint8 or float arrays [H, W, 3]; points are (x, y) pixel
coordinates with the centre of the top-left pixel at (0, 0) (OpenCV's and HPatches'
convention); a homography H maps points of the source image to the warped image, and
`warp_image(img, H)` gives the image whose pixel x shows the source at H^-1 x.
"""

import math

import cv2
import numpy as np


def centred(matrix, width, height):
    """`matrix` applied about the image centre instead of the origin."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    back = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], dtype=np.float64)
    return back @ matrix @ to_centre


def random_homography(rng, width, height, max_angle=0.0, scale_range=(0.8, 1.25),
                      perspective=0.2, translation=0.1):
    """A random homography of an image of this size and the rotation angle it contains.

    Built about the image centre from a rotation (uniform in +-max_angle radians), a
    log-uniform isotropic scale, a perspective distortion (the corners of the image
    moved by up to `perspective` * half the side, as LISRD's and SuperPoint's
    samplers do) and a translation of up to `translation` * the side.
    """
    angle = float(rng.uniform(-max_angle, max_angle)) if max_angle > 0 else 0.0
    scale = math.exp(rng.uniform(math.log(scale_range[0]), math.log(scale_range[1])))
    hw, hh = width / 2.0, height / 2.0
    src = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]], dtype=np.float64)
    # Perspective as SuperPoint does it: one vertical shear shared by the left and
    # right edges, independent horizontal displacements of the two edges.
    dy = rng.normal(0.0, perspective / 2.0) * hh
    dxl = rng.normal(0.0, perspective / 2.0) * hw
    dxr = rng.normal(0.0, perspective / 2.0) * hw
    dst = src + np.array([[dxl, dy], [dxr, -dy], [dxr, dy], [dxl, -dy]])
    p = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)
    c, s = math.cos(angle), math.sin(angle)
    r = np.array([[c * scale, -s * scale, 0], [s * scale, c * scale, 0], [0, 0, 1]], dtype=np.float64)
    t = np.array([[1, 0, rng.uniform(-translation, translation) * width],
                  [0, 1, rng.uniform(-translation, translation) * height],
                  [0, 0, 1]], dtype=np.float64)
    h = t @ centred(r @ p, width, height)
    return h / h[2, 2], angle


def warp_points(points, h):
    """(x, y) points [N, 2] through the homography h."""
    pts = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ h.T
    return pts[:, :2] / pts[:, 2:3]


def warp_image(image, h, width, height):
    """The source seen through h, bilinear, black outside."""
    return cv2.warpPerspective(image, h, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def inside(points, width, height, margin):
    return ((points[:, 0] >= margin) & (points[:, 0] <= width - 1 - margin)
            & (points[:, 1] >= margin) & (points[:, 1] <= height - 1 - margin))


def shading(rng, height, width, strength):
    """A smooth multiplicative shading field in [1 - strength, 1 + strength]: a few
    blurred ellipses over a gentle linear ramp (local light, shadows)."""
    field = np.zeros((height, width), dtype=np.float64)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (math.cos(angle) * (xx - width / 2) + math.sin(angle) * (yy - height / 2)) / max(width, height)
    field += ramp * rng.uniform(-1, 1)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        ax, ay = rng.uniform(0.1, 0.4) * width, rng.uniform(0.1, 0.4) * height
        t = rng.uniform(0, math.pi)
        u = math.cos(t) * (xx - cx) + math.sin(t) * (yy - cy)
        v = -math.sin(t) * (xx - cx) + math.cos(t) * (yy - cy)
        field += rng.uniform(-1, 1) * ((u / ax) ** 2 + (v / ay) ** 2 <= 1)
    sigma = 0.08 * max(width, height)
    field = cv2.GaussianBlur(field, (0, 0), sigma)
    peak = np.abs(field).max()
    if peak > 0:
        field /= peak
    return 1.0 + strength * field


def mild_photometric(rng, image):
    """The small independent changes every training image gets (LISRD's default
    augmentation, simplified): brightness, contrast, Gaussian noise. float in [0, 1]."""
    x = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    x = x + rng.uniform(-0.1, 0.1)
    x = (x - 0.5) * rng.uniform(0.8, 1.2) + 0.5
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.02), size=x.shape)
    return np.clip(x, 0.0, 1.0)


def illumination_change(rng, image, strength=1.0):
    """A strong change of light: global gain, gamma, a colour cast, local shading and,
    for dark results, sensor-like noise. float in [0, 1]; strength scales the ranges."""
    x = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    h, w = x.shape[:2]
    gamma = math.exp(rng.uniform(-1.0, 1.0) * strength * 0.9)
    gain = math.exp(rng.uniform(-1.0, 0.5) * strength * 1.2)
    cast = np.exp(rng.uniform(-0.25, 0.25, size=3) * strength)
    x = np.power(np.clip(x, 0.0, 1.0), gamma) * gain * cast
    x = x * shading(rng, h, w, min(0.9, 0.6 * strength))[..., None]
    noise = 0.01 + 0.03 * max(0.0, 1.0 - gain)
    x = x + rng.normal(0.0, noise * strength, size=x.shape)
    return np.clip(x, 0.0, 1.0)


def to_uint8(x):
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
