"""Exports a network to ONNX from the PyTorch definition (models.py) and a
weights file, for the onnxruntime comparison in bench_runtime.py.

    .venv/bin/python tools/export_onnx.py WEIGHTS OUT.onnx [--arch ID] [--height 480] [--width 640]

WEIGHTS: any format make_reference.py reads. The graph is traced at one input
size (the spec's shape-dependent steps, NetVLAD's resize and the size checks,
are fixed by the trace), input `image` [1, 3, H, W], outputs `desc.<v>` then
`meta.<v>` in variant order, opset 17. PSA is exported as models.py writes it:
the full N x N score matrix, one MatMul, Softmax, MatMul.
"""

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_reference  # noqa: E402
import models  # noqa: E402


class Outputs(torch.nn.Module):
    """forward() as a tuple in interfaces.md's order (ONNX needs positional outputs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        out = self.model(image)
        return tuple(out[f'desc.{v}'] for v in models.VARIANTS) + tuple(out[f'meta.{v}'] for v in models.VARIANTS)


def export(weights_path, out_path, arch=None, height=480, width=640):
    model = make_reference.build_model(make_reference.load_weights(weights_path), arch)
    names = [f'desc.{v}' for v in models.VARIANTS] + [f'meta.{v}' for v in models.VARIANTS]
    image = torch.zeros(1, 3, height, width)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings about the shape checks, expected
        torch.onnx.export(Outputs(model), (image,), str(out_path), input_names=['image'], output_names=names,
                          opset_version=17, dynamo=False)
    return model.arch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('weights')
    parser.add_argument('output')
    parser.add_argument('--arch', choices=models.ARCHS)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    args = parser.parse_args()
    arch = export(args.weights, args.output, args.arch, args.height, args.width)
    print(f'{args.output}: {arch}, input [1, 3, {args.height}, {args.width}]')


if __name__ == '__main__':
    main()
