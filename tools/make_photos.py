"""Copies the bundled photographs into Tests/Fixtures/photos/ from scikit-image's wheel.

The photos are real scenes with redistributable licences (public domain or CC0, see
Tests/Fixtures/photos/README.md). They are reduced so that the longest side is at most
MAX_SIDE pixels and written as 8-bit RGB PNG (grayscale originals get three equal
channels), so every consumer reads one pixel format.

    .venv/bin/python tools/make_photos.py [--out-dir Tests/Fixtures/photos]
"""

import argparse
import hashlib
import os

import numpy as np
from PIL import Image
import skimage

MAX_SIDE = 480

# name in the fixture folder -> file inside skimage/data
PHOTOS = {
    'astronaut': 'astronaut.png',
    'camera': 'camera.png',
    'chelsea': 'chelsea.png',
    'coffee': 'coffee.png',
    'rocket': 'rocket.jpg',
    'brick': 'brick.png',
}


def load_photo(name, photos_dir=None):
    """One bundled photo as uint8 [H, W, 3] (from the fixture folder)."""
    if photos_dir is None:
        photos_dir = os.path.join(os.path.dirname(__file__), '..', 'Tests', 'Fixtures', 'photos')
    return np.asarray(Image.open(os.path.join(photos_dir, name + '.png')).convert('RGB'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default=os.path.join(os.path.dirname(__file__), '..', 'Tests', 'Fixtures', 'photos'))
    args = parser.parse_args()
    data_dir = os.path.join(os.path.dirname(skimage.__file__), 'data')
    os.makedirs(args.out_dir, exist_ok=True)
    for name, source in PHOTOS.items():
        image = Image.open(os.path.join(data_dir, source)).convert('RGB')
        w, h = image.size
        scale = min(1.0, MAX_SIDE / max(w, h))
        if scale < 1.0:
            image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        path = os.path.join(args.out_dir, name + '.png')
        # optimize=False keeps the bytes a function of the pixels and the zlib level alone
        image.save(path, format='PNG', compress_level=9)
        with open(path, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print(f'{name}.png {image.size[0]}x{image.size[1]} {os.path.getsize(path)} bytes sha256 {digest}')


if __name__ == '__main__':
    main()
