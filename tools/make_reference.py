"""Writes a reference NPZ (interfaces.md) from PyTorch: the image as the network saw
it, the raw and meta maps, sampled keypoint descriptors and, with --acts, the
recorded intermediate activations (see models.py for the list).

    .venv/bin/python tools/make_reference.py WEIGHTS IMAGE [--keypoints KP.npy] [--arch ID] [--acts] [--check-float64] -o REF.npz

WEIGHTS: .h5/.hdf5, .npz, .pth/.pt (a state_dict or a checkpoint with
'model_state_dict') or .safetensors, recognised by content. IMAGE: PNG or JPEG
(RGB, uint8 / 255 in float32) or .npy float32 [3, H, W] or [1, 3, H, W], used as is.
PyTorch runs in float32, as a user's would, on one thread (same input, same bytes).
Besides the keys of interfaces.md the file holds `arch`, a 0-d unicode string array.
--check-float64 also runs the model in float64 and prints how far float32 is from it.
The fixture commands are in Tests/Fixtures/reference/README.md (tools/make_fixtures.py).
"""

import argparse
import os
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from safetensors.numpy import load_file as load_safetensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402


def load_weights(path):
    """state_dict (key -> numpy array) from any of the four source formats."""
    path = Path(path)
    with open(path, 'rb') as f:
        head = f.read(8)
    if head == b'\x89HDF\r\n\x1a\n':
        arrays = OrderedDict()
        with h5py.File(path, 'r') as f:
            f.visititems(lambda name, obj: arrays.__setitem__(name.replace('/', '.'), obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
        return arrays
    if head[:2] == b'PK':
        import zipfile
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if all(n.endswith('.npy') for n in names):
            with np.load(path, allow_pickle=False) as z:
                return OrderedDict((k, z[k]) for k in z.files)
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        state = checkpoint.get('model_state_dict', checkpoint)
        return OrderedDict((k, v.numpy()) for k, v in state.items())
    return OrderedDict(load_safetensors(str(path)))


def load_image(path):
    """[1, 3, H, W] float32."""
    path = Path(path)
    if path.suffix.lower() == '.npy':
        a = np.load(path, allow_pickle=False)
        if a.dtype != np.float32 or a.ndim not in (3, 4) or a.shape[-3] != 3 or (a.ndim == 4 and a.shape[0] != 1):
            raise SystemExit(f'{path}: expected float32 [3, H, W] or [1, 3, H, W], got {a.dtype} {list(a.shape)}')
        return torch.from_numpy(a.reshape(1, *a.shape[-3:]).copy())
    with Image.open(path) as im:
        rgb = np.asarray(im.convert('RGB'))
    return torch.from_numpy(rgb.astype(np.float32) / np.float32(255)).permute(2, 0, 1).unsqueeze(0).contiguous()


def build_model(weights, arch=None):
    detected = models.detect_arch(weights.keys())
    arch = arch or detected
    if arch is None:
        raise SystemExit('the weights match none of the architectures; pass --arch to see what is missing')
    model = models.build(arch)
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [k for k in expected if k in weights and tuple(np.shape(weights[k])) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise SystemExit(f'the weights do not fit {arch}: {len(missing)} missing (first {missing[:1]}), '
                         f'{len(unexpected)} unexpected (first {unexpected[:1]}), {len(wrong)} of wrong shape (first {wrong[:1]})')
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()}, strict=True)
    return model.eval()


def run(model, image, keypoints=None, record_acts=False, dtype=np.float32):
    """Ordered dict of numpy arrays (float32 by default) as in a reference file."""
    acts = {} if record_acts else None
    with torch.no_grad():
        out = model(image, acts)
        result = OrderedDict(image=image)
        result.update(out)
        if keypoints is not None:
            kp_desc, kp_meta = models.sample_keypoints(out, keypoints, image.shape[2], image.shape[3])
            result.update(keypoints=keypoints, kp_desc=kp_desc, kp_meta=kp_meta)
        if acts:
            result.update(acts)
    return OrderedDict((k, v.numpy().astype(dtype)) for k, v in result.items())


def check_float64(model, image, keypoints, result32, verbose=True):
    """Per output: max |f32 - f64| over max |f64| (printed if verbose); returns {key: relative}."""
    model64 = models.build(model.arch)
    model64.load_state_dict(model.state_dict())
    model64 = model64.double().eval()
    result64 = run(model64, image.double(), None if keypoints is None else keypoints.double(),
                   record_acts=True, dtype=np.float64)
    relative = OrderedDict()
    for k, a64 in result64.items():
        if k in ('image', 'keypoints'):
            continue
        diff = np.abs(result32[k].astype(np.float64) - a64).max() if k in result32 else None
        if diff is None:
            continue
        relative[k] = diff / max(np.abs(a64).max(), 1e-30)
        if verbose:
            print(f'float32 vs float64 {k}: max abs {diff:.3g}, relative to max {relative[k]:.3g}')
    if verbose:
        print(f'float32 vs float64: worst relative {max(relative.values()):.3g}')
    return relative


def save_npz(path, arrays):
    """np.savez to a temporary file in the same folder, then renamed: never a partial output."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name + '.')
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('weights')
    parser.add_argument('image')
    parser.add_argument('--keypoints')
    parser.add_argument('--arch', choices=models.ARCHS)
    parser.add_argument('--acts', action='store_true')
    parser.add_argument('--check-float64', action='store_true')
    parser.add_argument('-o', '--output', required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = build_model(load_weights(args.weights), args.arch)
    image = load_image(args.image)
    keypoints = None
    if args.keypoints:
        kp = np.load(args.keypoints, allow_pickle=False)
        if kp.dtype != np.float32 or kp.ndim != 2 or kp.shape[1] != 2:
            raise SystemExit(f'{args.keypoints}: expected float32 [N, 2], got {kp.dtype} {list(kp.shape)}')
        keypoints = torch.from_numpy(kp)
    try:
        result = run(model, image, keypoints, args.acts)
    except ValueError as error:  # e.g. an image smaller than 24x24
        raise SystemExit(f'{args.image}: {error}')
    result['arch'] = np.array(model.arch)
    if args.check_float64:
        check_float64(model, image, keypoints, result)
    save_npz(args.output, result)
    print(f'{args.output}: {model.arch}, image {list(image.shape)}, {len(result)} arrays')


if __name__ == '__main__':
    main()
