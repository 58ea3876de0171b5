"""Builds the small evaluation datasets of Tests/Fixtures/eval/ from the bundled photos.

    .venv/bin/python tools/make_hpatches_like.py            # all three folders below
    .venv/bin/python tools/make_hpatches_like.py --out-dir DIR --seed 12

- `hpatches-like/`: HPatches layout. Per photo, a scene `i_<photo>` (illumination: the
  same viewpoint up to a sub-pixel homography, photometric changes of growing
  strength: gain, gamma, colour cast, local shading, noise) and `v_<photo>`
  (viewpoint: random homographies of growing strength, mild photometric noise). Each
  has `1.ppm`..`6.ppm` (binary PPM, P6, 8-bit RGB) and `H_1_2`..`H_1_6` (3x3 text,
  whitespace-separated, mapping (x, y) pixels of image 1 to image i, as HPatches).
- `rdnim-like/`: RDNIM layout. Per sequence `references/<seq>/day.jpg` and
  `night.jpg` (the same viewpoint at two times of day), `images/<seq>/<name>.jpg`,
  each with `<name>.txt` (3x3, mapping (x, y) pixels of the reference to the image:
  LISRD's rdnim.py warps the reference's keypoints with it; the same matrix serves
  both references), and `time_stamps/<seq>.txt` with one line per image,
  `<name>.jpg YYYYMMDD HH MM` (space-separated, as LISRD's read_timestamps reads it).
  Half the images are rotated, as in RDNIM.
- `bad/`: hostile datasets, one problem each (README.md there lists them).

Every image is rendered straight from the photo through its full homography (one
bilinear resampling, no warp of a warp), with the photo pre-blurred to limit aliasing.
The output depends on the seed, the photos, NumPy, OpenCV and Pillow only.
"""

import argparse
import math
import os
import shutil
import sys

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warps  # noqa: E402
from make_photos import load_photo  # noqa: E402

HEIGHT, WIDTH = 192, 256
HPATCHES_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')
RDNIM_SEQUENCES = {'seq_coffee': 'coffee', 'seq_astronaut': 'astronaut'}
# (name, date, hour, minute): RDNIM-like images per sequence; the light follows the hour
RDNIM_IMAGES = (('00000001', '20260315', 7, 40), ('00000002', '20260315', 12, 5),
                ('00000003', '20260315', 18, 50), ('00000004', '20260315', 22, 15),
                ('00000005', '20260316', 2, 30), ('00000006', '20260316', 15, 20))
JPEG_QUALITY = 92


def fit_to_frame(photo_h, photo_w):
    """The photo -> frame map of LISRD's resize_and_crop (scale to cover, centre crop)."""
    scale = max(HEIGHT / photo_h, WIDTH / photo_w)
    pad_y = (photo_h * scale - HEIGHT) / 2.0
    pad_x = (photo_w * scale - WIDTH) / 2.0
    # Pixel centres: a photo pixel centre p maps to (p + 0.5) * scale - 0.5 - pad.
    return np.array([[scale, 0, 0.5 * scale - 0.5 - pad_x],
                     [0, scale, 0.5 * scale - 0.5 - pad_y],
                     [0, 0, 1]], dtype=np.float64)


def render(photo, to_frame):
    """The frame (HEIGHT x WIDTH) showing the photo through `to_frame`, as float [0, 1]."""
    scale = math.sqrt(abs(np.linalg.det(to_frame[:2, :2])))
    src = photo.astype(np.float32) / 255.0
    if scale < 0.9:
        # Against aliasing: blur to the frame's sampling rate before resampling.
        sigma = 0.5 * math.sqrt(max(1.0 / scale ** 2 - 1.0, 0.0))
        src = cv2.GaussianBlur(src, (0, 0), sigma)
    out = cv2.warpPerspective(src, to_frame, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(np.float64)


def write_ppm(path, image_u8):
    h, w = image_u8.shape[:2]
    with open(path, 'wb') as f:
        f.write(b'P6\n%d %d\n255\n' % (w, h))
        f.write(np.ascontiguousarray(image_u8, dtype=np.uint8).tobytes())


def write_jpeg(path, image_u8):
    # 4:4:4 so that no decoder's chroma upsampling can change the pixels
    Image.fromarray(image_u8).save(path, format='JPEG', quality=JPEG_QUALITY, subsampling=0)


def write_matrix(path, h):
    """Three lines of three numbers, enough digits that the text reads back bit for bit."""
    with open(path, 'w') as f:
        for row in h:
            f.write(' '.join(f'{v:.17g}' for v in row) + '\n')


def tiny_homography(rng):
    """What an illumination scene's camera does between shots: well under a pixel."""
    angle = math.radians(rng.uniform(-0.15, 0.15))
    c, s = math.cos(angle), math.sin(angle)
    r = np.array([[c, -s, rng.uniform(-0.6, 0.6)], [s, c, rng.uniform(-0.6, 0.6)], [0, 0, 1]])
    return warps.centred(r, WIDTH, HEIGHT)


def hpatches_scene(rng, photo, kind):
    """Six images (uint8) and the homographies H_1_i (i = 2..6)."""
    base = fit_to_frame(*photo.shape[:2])
    images, hs = [], []
    for i in range(1, 7):
        if i == 1:
            h = np.eye(3)
        elif kind == 'i':
            h = tiny_homography(rng)
        else:
            level = (i - 1) / 5.0       # views drift further from image 1 as i grows
            h, _ = warps.random_homography(
                rng, WIDTH, HEIGHT, max_angle=math.radians(5 + 25 * level),
                scale_range=(1 - 0.25 * level, 1 + 0.3 * level), perspective=0.1 + 0.3 * level,
                translation=0.1)
        img = render(photo, h @ base)
        if kind == 'i' and i > 1:
            img = warps.illumination_change(rng, img, strength=0.4 + 0.15 * (i - 1))
        else:
            img = warps.mild_photometric(rng, img)
        images.append(warps.to_uint8(img))
        hs.append(h / h[2, 2])
    return images, hs[1:]


def night(rng, img, darkness):
    """Night-like light: dark, warm street-light cast, bright local spots, strong noise."""
    h, w = img.shape[:2]
    x = np.power(img, 1.0 + 0.8 * darkness) * (1.0 - 0.85 * darkness)
    x = x * np.array([1.0 + 0.3 * darkness, 1.0 + 0.05 * darkness, 1.0 - 0.35 * darkness])
    spots = np.zeros((h, w))
    for _ in range(int(rng.integers(1, 4))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.08, 0.2) * w
        yy, xx = np.mgrid[0:h, 0:w]
        spots += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    x = x * (1.0 + 1.5 * darkness * spots[..., None])
    x = x + rng.normal(0.0, 0.005 + 0.03 * darkness, size=x.shape)
    return np.clip(x, 0.0, 1.0)


def darkness_at(hour, minute):
    """0 at noon, 1 in the middle of the night, a smooth dawn and dusk."""
    t = hour + minute / 60.0
    return float(np.clip(0.5 - 0.5 * math.cos(2 * math.pi * (t - 12.0) / 24.0) * 1.6, 0.0, 1.0) ** 1.5)


def build_hpatches(rng, out):
    os.makedirs(out)
    for name in HPATCHES_PHOTOS:
        photo = load_photo(name)
        for kind in ('i', 'v'):
            scene = os.path.join(out, f'{kind}_{name}')
            os.makedirs(scene)
            images, hs = hpatches_scene(rng, photo, kind)
            for i, img in enumerate(images, start=1):
                write_ppm(os.path.join(scene, f'{i}.ppm'), img)
            for i, h in enumerate(hs, start=2):
                write_matrix(os.path.join(scene, f'H_1_{i}'), h)


def build_rdnim(rng, out):
    for sub in ('references', 'images', 'time_stamps'):
        os.makedirs(os.path.join(out, sub))
    for seq, name in RDNIM_SEQUENCES.items():
        photo = load_photo(name)
        base = fit_to_frame(*photo.shape[:2])
        ref = render(photo, base)
        os.makedirs(os.path.join(out, 'references', seq))
        os.makedirs(os.path.join(out, 'images', seq))
        write_jpeg(os.path.join(out, 'references', seq, 'day.jpg'), warps.to_uint8(warps.mild_photometric(rng, ref)))
        write_jpeg(os.path.join(out, 'references', seq, 'night.jpg'), warps.to_uint8(night(rng, ref, 1.0)))
        lines = []
        for k, (image, date, hour, minute) in enumerate(RDNIM_IMAGES):
            rotate = k % 2 == 1        # half rotated, as RDNIM
            h, _ = warps.random_homography(rng, WIDTH, HEIGHT, max_angle=math.pi / 2 if rotate else 0.0,
                                           scale_range=(0.85, 1.15), perspective=0.15, translation=0.08)
            h = h / h[2, 2]
            img = render(photo, h @ base)
            d = darkness_at(hour, minute)
            img = night(rng, img, d) if d > 0.05 else warps.illumination_change(rng, img, strength=0.5)
            write_jpeg(os.path.join(out, 'images', seq, image + '.jpg'), warps.to_uint8(img))
            write_matrix(os.path.join(out, 'images', seq, image + '.txt'), h)
            lines.append(f'{image}.jpg {date} {hour:02d} {minute:02d}\n')
        with open(os.path.join(out, 'time_stamps', seq + '.txt'), 'w') as f:
            f.writelines(lines)


BAD_SIZE = (32, 40)   # tiny: these folders are refused before any network runs


def good_scene(rng, path, kind='v'):
    """A well-formed 6-image scene of tiny noise images with valid homographies."""
    os.makedirs(path)
    h, w = BAD_SIZE
    for i in range(1, 7):
        write_ppm(os.path.join(path, f'{i}.ppm'), rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
    for i in range(2, 7):
        m = np.eye(3)
        m[0, 2], m[1, 2] = rng.uniform(-2, 2, size=2)
        write_matrix(os.path.join(path, f'H_1_{i}'), m)


def build_bad(rng, out):
    os.makedirs(out)
    good_scene(rng, os.path.join(out, 'missing-homography', 'i_scene'), 'i')
    os.remove(os.path.join(out, 'missing-homography', 'i_scene', 'H_1_4'))

    good_scene(rng, os.path.join(out, 'matrix-2x3', 'v_scene'))
    with open(os.path.join(out, 'matrix-2x3', 'v_scene', 'H_1_3'), 'w') as f:
        f.write('1 0 2.5\n0 1 -1.5\n')

    good_scene(rng, os.path.join(out, 'singular-homography', 'v_scene'))
    # Rank 2 (third row = first + second): no inverse, so no keypoint can be checked in image 1.
    write_matrix(os.path.join(out, 'singular-homography', 'v_scene', 'H_1_5'),
                 np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 1.0], [1.0, 3.0, 4.0]]))

    good_scene(rng, os.path.join(out, 'non-numeric', 'i_scene'), 'i')
    with open(os.path.join(out, 'non-numeric', 'i_scene', 'H_1_2'), 'w') as f:
        f.write('1 0 0\n0 1 abc\n0 0 1\n')

    good_scene(rng, os.path.join(out, 'truncated-ppm', 'v_scene'))
    path = os.path.join(out, 'truncated-ppm', 'v_scene', '5.ppm')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])     # header intact, half the pixels missing

    # RDNIM layout: an image without its homography file.
    root = os.path.join(out, 'rdnim-missing-homography')
    for sub in ('references/seq', 'images/seq', 'time_stamps'):
        os.makedirs(os.path.join(root, sub))
    h, w = BAD_SIZE
    for ref in ('day', 'night'):
        write_jpeg(os.path.join(root, 'references', 'seq', ref + '.jpg'),
                   rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
    write_jpeg(os.path.join(root, 'images', 'seq', '00000001.jpg'), rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
    with open(os.path.join(root, 'time_stamps', 'seq.txt'), 'w') as f:
        f.write('00000001.jpg 20260315 12 00\n')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default=os.path.join(os.path.dirname(__file__), '..', 'Tests', 'Fixtures', 'eval'))
    parser.add_argument('--seed', type=int, default=12)
    args = parser.parse_args()
    for sub, build, offset in (('hpatches-like', build_hpatches, 0), ('rdnim-like', build_rdnim, 1),
                               ('bad', build_bad, 2)):
        path = os.path.join(args.out_dir, sub)
        if os.path.exists(path):
            # README.md files are written by hand; everything else is regenerated
            keep = os.path.join(path, 'README.md')
            saved = open(keep).read() if os.path.exists(keep) else None
            shutil.rmtree(path)
        else:
            saved = None
        # one generator per folder, so changing one folder's recipe leaves the others' bytes alone
        build(np.random.default_rng([args.seed, offset]), path)
        if saved is not None:
            with open(os.path.join(path, 'README.md'), 'w') as f:
                f.write(saved)
        print(f'{sub}: written to {path}')


if __name__ == '__main__':
    main()
