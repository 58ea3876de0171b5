"""Expected values for the converter's tests (Tests/AISLFDConvertTests), from PyTorch and
NumPy, written to Tests/Fixtures/convert/. Regenerate from the repository root with

    .venv/bin/python tools/make_fold_fixtures.py

Deterministic: seeded, PyTorch on one thread; a rerun gives the same bytes.

What it writes:
- folds.json + <case>.bin: small seeded modules with trained-like BatchNorm statistics
  (running_mean far from 0, running_var far from 1, weight far from 1, bias far from 0),
  in eval mode, on a 13x11 input. conv -> BN cases: random statistics, one channel's
  running_var 1e-4 so that eps matters. conv -> ReLU -> BN cases: statistics measured
  on the BN's own input over a calibration batch (as training leaves them), conv1's
  channels spread ~100x in size, so running_var spreads over ~4 decades:
    conv-bn-s1            conv 3x3 pad 1 stride 1, no bias -> BN          (MSFE block)
    conv-bn-s2            the same with stride 2                          (MSFE downsampling)
    conv-bias-bn          conv 3x3 with bias -> BN
    conv-relu-bn-conv1x1  conv 3x3 -> ReLU -> BN -> conv 1x1             (LISRD head shape)
    conv-relu-bn          conv 3x3 -> ReLU -> BN                          (VGG block)
    conv-relu-bn-conv3x3  conv 3x3 -> ReLU -> BN -> conv 3x3 pad 1        (where a forward fold is wrong)
  For each: the block (schema JSON) describing its wiring, the state_dict (float32 in
  order, num_batches_tracked as an int64 value), the input and PyTorch's output of the
  UNFOLDED module. Arrays are raw little-endian float32 in <case>.bin at the listed
  offsets (bytes), C order.
  For conv-relu-bn-conv1x1 also the output SQNR (dB, against PyTorch's fp32 output) of
  the two int8 forms: both convs int8 with the BatchNorm kept as an fp32 affine, and the
  BatchNorm folded forward into the 1x1 conv before quantizing it.
- fp16.json: float32 inputs (bit patterns) and NumPy's float16 rounding of them
  (x.astype(np.float16): nearest, ties to even, subnormals kept), plus which overflow
  (infinite result) and which flush to zero; and the clamped rounding
  np.clip(x, -65504, 65504).astype(np.float16).
- int8.json: weights with an all-zero channel, exact ties, a subnormal scale, an outlier,
  and NumPy's symmetric per-channel int8: scale = max|w| / 127 (float32),
  q = clip(rint(w / scale), -127, 127) (float32 division, ties to even), scale 0 and q 0
  for an all-zero channel; dequantized values q * scale and SQNR in dB (float64).
- dtypes.json: float16 and float64 bit patterns and NumPy's float32 of them, bfloat16
  bit patterns and PyTorch's float32 of them.
- lisrd-heads-int8.json: a measurement behind a converter decision, on the committed
  LISRD sample (Weights/lisrd.h5) and its reference activations
  (Tests/Fixtures/reference/lisrd.npz, act.bn_*_1): SQNR of each head's conv_*_2 output
  with that conv at int8 / fp16, the BatchNorm kept as an affine or folded forward.
"""

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / 'Tests' / 'Fixtures' / 'convert'
INPUT_SHAPE = (1, 4, 13, 11)
EPS = 1e-5


def away_from(rng, size, low, high, negative_share):
    value = rng.uniform(low, high, size=size)
    return np.where(rng.uniform(size=size) < negative_share, -value, value)


def init_conv(conv, rng):
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    w = rng.normal(0, np.sqrt(2.0 / fan_in), size=conv.weight.shape)
    conv.weight.data = torch.from_numpy(w.astype(np.float32))
    if conv.bias is not None:
        conv.bias.data = torch.from_numpy(rng.normal(0, 0.3, size=conv.out_channels).astype(np.float32))


def init_bn(bn, rng):
    c = bn.num_features
    bn.running_mean.copy_(torch.from_numpy(away_from(rng, c, 0.5, 3.0, 0.5).astype(np.float32)))
    var = np.exp(rng.uniform(np.log(0.01), np.log(20.0), size=c))
    var[1] = 1e-4  # a nearly dead channel, where forgetting eps shows
    bn.running_var.copy_(torch.from_numpy(var.astype(np.float32)))
    bn.weight.data = torch.from_numpy(away_from(rng, c, 0.4, 2.2, 0.2).astype(np.float32))
    bn.bias.data = torch.from_numpy(away_from(rng, c, 0.5, 2.0, 0.5).astype(np.float32))
    bn.num_batches_tracked.fill_(5000)


def conv_layer(name, conv, inputs):
    return {
        "name": name, "op": "conv2d",
        "inChannels": conv.in_channels, "outChannels": conv.out_channels, "kernel": conv.kernel_size[0],
        "stride": conv.stride[0], "padding": conv.padding[0], "bias": conv.bias is not None,
        "inputs": inputs,
        "tensors": [{"name": "weight", "shape": list(conv.weight.shape), "dtype": "float", "role": "conv_weight"}]
        + ([{"name": "bias", "shape": [conv.out_channels], "dtype": "float", "role": "conv_bias"}] if conv.bias is not None else []),
    }


def bn_layer(name, bn, inputs):
    c = bn.num_features
    return {
        "name": name, "op": "batchnorm2d", "channels": c, "eps": EPS, "inputs": inputs,
        "tensors": [
            {"name": "weight", "shape": [c], "dtype": "float", "role": "bn_weight"},
            {"name": "bias", "shape": [c], "dtype": "float", "role": "bn_bias"},
            {"name": "running_mean", "shape": [c], "dtype": "float", "role": "bn_running_mean"},
            {"name": "running_var", "shape": [c], "dtype": "float", "role": "bn_running_var"},
            {"name": "num_batches_tracked", "shape": [], "dtype": "integer", "role": "bn_num_batches_tracked", "optional": True},
        ],
    }


class ConvBN(nn.Module):
    def __init__(self, stride, bias):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=stride, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(6, eps=EPS)

    def forward(self, x):
        return self.bn(self.conv(x))

    def layers(self):
        return [conv_layer("conv", self.conv, [{"from": "$input"}]), bn_layer("bn", self.bn, [{"from": "conv"}])], {"from": "bn"}


class ConvReluBN(nn.Module):
    def __init__(self, next_kernel):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 6, 3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(6, eps=EPS)
        self.conv2 = None if next_kernel is None else nn.Conv2d(6, 5, next_kernel, padding=next_kernel // 2, bias=True)

    def forward(self, x):
        y = self.bn1(torch.relu(self.conv1(x)))
        return y if self.conv2 is None else self.conv2(y)

    def layers(self):
        layers = [conv_layer("conv1", self.conv1, [{"from": "$input"}]),
                  bn_layer("bn1", self.bn1, [{"from": "conv1", "between": ["relu"]}])]
        if self.conv2 is None:
            return layers, {"from": "bn1"}
        return layers + [conv_layer("conv2", self.conv2, [{"from": "bn1"}])], {"from": "conv2"}


CASES = [
    ("conv-bn-s1", lambda: ConvBN(stride=1, bias=False)),
    ("conv-bn-s2", lambda: ConvBN(stride=2, bias=False)),
    ("conv-bias-bn", lambda: ConvBN(stride=1, bias=True)),
    ("conv-relu-bn-conv1x1", lambda: ConvReluBN(next_kernel=1)),
    ("conv-relu-bn", lambda: ConvReluBN(next_kernel=None)),
    ("conv-relu-bn-conv3x3", lambda: ConvReluBN(next_kernel=3)),
]


def calibrate_after_relu(module, rng):
    """As in a trained net: conv1's output channels differ in size by up to ~100x, and bn1's
    statistics are those of its own input, ReLU(conv1(x)), over a calibration batch."""
    conv = module.conv1
    factor = torch.from_numpy(np.exp(away_from(rng, conv.out_channels, 0.5, 2.3, 0.5)).astype(np.float32))
    conv.weight.data *= factor[:, None, None, None]
    conv.bias.data *= factor
    batch = torch.from_numpy(rng.uniform(-1, 1, size=(8,) + INPUT_SHAPE[1:]).astype(np.float32))
    with torch.no_grad():
        h = torch.relu(conv(batch))
    c = h.shape[1]
    module.bn1.running_mean.copy_(h.mean(dim=(0, 2, 3)))
    module.bn1.running_var.copy_(h.transpose(0, 1).reshape(c, -1).var(dim=1).clamp(min=1e-4))


def write_case(index, name, make):
    rng = np.random.default_rng([7, index])
    module = make()
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            init_conv(m, rng)
        elif isinstance(m, nn.BatchNorm2d):
            init_bn(m, rng)
    if isinstance(module, ConvReluBN):
        calibrate_after_relu(module, rng)
    module.eval()
    x = torch.from_numpy(rng.uniform(-1, 1, size=INPUT_SHAPE).astype(np.float32))
    with torch.no_grad():
        y = module(x)

    blob = bytearray()
    arrays = []

    def add(key, t):
        a = np.ascontiguousarray(t.detach().numpy().astype('<f4'))
        arrays.append({"key": key, "shape": list(a.shape), "offset": len(blob)})
        blob.extend(a.tobytes())

    state = []
    for key, t in module.state_dict().items():
        if t.dtype == torch.int64:
            state.append({"key": key, "dtype": "int64", "value": int(t.item())})
        else:
            state.append({"key": key, "dtype": "float32"})
            add(key, t)
    add("input", x)
    add("output", y)
    (OUT / f"{name}.bin").write_bytes(bytes(blob))
    layers, output = module.layers()
    block = {"kind": "block", "id": name, "description": f"fixture {name}", "output": output, "layers": layers}
    case = {"name": name, "bin": f"{name}.bin", "block": block, "state_dict": state, "arrays": arrays}
    if isinstance(module, ConvReluBN) and module.conv2 is not None and module.conv2.kernel_size[0] == 1:
        with torch.no_grad():
            case["int8_output_sqnr_db"] = int8_forms(module, x, y)
    return case


def dequantized_int8(w):
    """float32 values of the symmetric per-channel int8 form (see int8_reference)."""
    return np.asarray(int8_reference(np.asarray(w, dtype=np.float32))["dequantized_array"])


def sqnr_db(reference, approximation):
    reference, approximation = np.asarray(reference, np.float64), np.asarray(approximation, np.float64)
    return float(10 * np.log10((reference ** 2).sum() / ((approximation - reference) ** 2).sum()))


def affine64(bn):
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.double() - bn.running_mean.double() * scale


def int8_forms(module, x, y):
    """Output SQNR of conv1 -> ReLU -> BN -> conv2 (1x1) with both convs int8: the BN kept as
    an affine (stored float32, applied in float64) or folded forward into conv2 first."""
    d = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
    w1 = d(dequantized_int8(module.conv1.weight.detach().numpy()))
    h = torch.relu(F.conv2d(x.double(), w1, module.conv1.bias.double(), padding=1))
    scale, shift = affine64(module.bn1)
    w2 = module.conv2.weight.detach().double()
    kept = F.conv2d(h * scale.float().double()[None, :, None, None] + shift.float().double()[None, :, None, None],
                    d(dequantized_int8(w2.float().numpy())), module.conv2.bias.double())
    folded_w = (w2 * scale[None, :, None, None]).float()
    folded_b = (module.conv2.bias.double() + (w2[:, :, 0, 0] * shift[None, :]).sum(dim=1)).float()
    folded = F.conv2d(h, d(dequantized_int8(folded_w.numpy())), folded_b.double())
    return {"affine_kept": sqnr_db(y.numpy(), kept.numpy()), "forward_folded": sqnr_db(y.numpy(), folded.numpy())}


def lisrd_heads_measurement():
    """The LISRD sample's heads: conv_*_2 output SQNR against the exact float64 output, per
    storage of conv_*_2 and per form of bn_*_1 (its input is the reference's BN output)."""
    with h5py.File(ROOT / 'Weights' / 'lisrd.h5', 'r') as f:
        weights = {}
        f.visititems(lambda n, o: weights.__setitem__(n.replace('/', '.'), o[()]) if isinstance(o, h5py.Dataset) else None)
    acts = np.load(ROOT / 'Tests' / 'Fixtures' / 'reference' / 'lisrd.npz')
    fp16 = lambda w: w.astype(np.float32).astype(np.float16).astype(np.float64)
    int8 = lambda w: dequantized_int8(w.astype(np.float32).reshape(w.shape[0], -1, 1, 1)).reshape(w.shape).astype(np.float64)
    result = {}
    for key in sorted(k for k in acts.files if k.startswith('act.bn_')):
        bn = key[len('act.'):]
        head = bn[len('bn_'):-len('_1')]
        g, b, m, v = (weights[f"{bn}.{n}"].astype(np.float64) for n in ('weight', 'bias', 'running_mean', 'running_var'))
        scale = g / np.sqrt(v + EPS)
        shift = b - m * scale
        after_bn = acts[key][0].reshape(len(g), -1).astype(np.float64)
        after_relu = (after_bn - shift[:, None]) / scale[:, None]
        w = weights[f"conv_{head}_2.weight"].astype(np.float64)[:, :, 0, 0]
        bias = weights[f"conv_{head}_2.bias"].astype(np.float64)
        exact = w @ after_bn + bias[:, None]
        folded_w, folded_b = w * scale[None, :], bias + w @ shift
        row = {"bn_scale_min": float(np.abs(scale).min()), "bn_scale_max": float(np.abs(scale).max())}
        for name, q in (("int8", int8), ("fp16", fp16)):
            row[f"{name}_affine_kept"] = sqnr_db(exact, q(w) @ after_bn + bias[:, None])
            row[f"{name}_forward_folded"] = sqnr_db(exact, q(folded_w) @ after_relu + folded_b[:, None])
        result[f"conv_{head}_2"] = row
    return result


def f32_bits(a):
    return [int(b) for b in np.asarray(a, dtype='<f4').view('<u4')]


def f16_bits(a):
    return [int(b) for b in np.asarray(a, dtype='<f2').view('<u2')]


def fp16_fixture():
    f = np.float32
    special = [
        65504, -65504, np.nextafter(f(65520), f(0)), 65520, -65520, 1e5, 3e38,    # top of the range
        1e-8, -1e-8, 2.0 ** -24, -(2.0 ** -24), 2.0 ** -25, np.nextafter(f(2.0 ** -25), f(1)),
        3 * 2.0 ** -25, 5 * 2.0 ** -25, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -24, 6e-5, 1e-6, -3.3e-7,  # subnormals
        1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 2049, 2051, -2049, 0.1, -0.1, 1 / 3,            # ties and inexact
        0.0, -0.0, 1.0, -1.0,
    ]
    rng = np.random.default_rng(11)
    values = np.concatenate([np.array(special, dtype=np.float32),
                             (rng.normal(0, 1, 32) * np.exp(rng.uniform(-12, 12, 32))).astype(np.float32)])
    with np.errstate(over='ignore'):
        h = values.astype(np.float16)
    clamped = np.clip(values, f(-65504), f(65504)).astype(np.float16)
    overflow = np.isinf(h) & np.isfinite(values)
    flushed = (h == 0) & (values != 0)
    in_range = ~overflow
    return {
        "values": f32_bits(values),
        "fp16": f16_bits(h),
        "fp16_clamped": f16_bits(clamped),
        "overflow": [bool(b) for b in overflow],
        "flushed_to_zero": [bool(b) for b in flushed],
        "overflow_count": int(overflow.sum()),
        "flushed_count": int(flushed.sum()),
        "flushed_count_in_range": int((flushed & in_range).sum()),
        "largest_overflow": float(np.abs(values[overflow]).max()),
    }


def int8_reference(w):
    c = w.shape[0]
    flat = w.reshape(c, -1)
    max_abs = np.abs(flat).max(axis=1)
    scale = (max_abs / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    q = np.clip(np.rint(flat / safe[:, None]), -127, 127)
    q = np.where(scale[:, None] > 0, q, 0).astype(np.int8)
    deq = q.astype(np.float32) * scale[:, None]
    noise = ((deq.astype(np.float64) - flat.astype(np.float64)) ** 2).sum()
    signal = (flat.astype(np.float64) ** 2).sum()
    return {
        "shape": list(w.shape), "values": f32_bits(w.ravel()),
        "scales": f32_bits(scale), "q": [int(v) for v in q.ravel()], "dequantized": f32_bits(deq.ravel()),
        "sqnr_db": float(10 * np.log10(signal / noise)) if noise > 0 else "inf",
        "max_abs_error": float(np.abs(deq.astype(np.float64) - flat.astype(np.float64)).max()),
        "dequantized_array": deq.reshape(w.shape),
    }


def int8_fixture():
    rng = np.random.default_rng(12)
    per = 2 * 3 * 3
    channels = []
    channels.append(np.zeros(per))                                                     # all zero
    ties = np.array([127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.5, -3.5, 64.5, -64.5, 0.49, 100, -100, 1, -127])
    channels.append(ties)                                                              # scale 1: exact ties
    channels.append(rng.uniform(-1.27, 1.27, per))
    channels.append(rng.normal(0, 1e-3, per))
    outlier = rng.normal(0, 0.01, per)
    outlier[5] = -2.0
    channels.append(outlier)                                                           # one outlier
    channels.append(rng.uniform(-1, 1, per) * 1e-37)                                   # scale is subnormal
    conv = np.stack(channels).astype(np.float32).reshape(len(channels), 2, 3, 3)
    linear = (rng.normal(0, 0.2, size=(4, 6))).astype(np.float32)
    linear[2] = 0
    def public(r):
        return {k: v for k, v in r.items() if k != "dequantized_array"}
    return {"conv": public(int8_reference(conv)), "linear": public(int8_reference(linear))}


def dtypes_fixture():
    rng = np.random.default_rng(13)
    f16 = np.concatenate([np.array([0, -0.0, 1, 65504, -65504, 2 ** -24, 6.1e-5, 0.1], dtype=np.float16),
                          rng.normal(0, 3, 8).astype(np.float16)])
    f64 = np.concatenate([np.array([1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, 1e-40, 1e-46, 3.4028235e38, -3.4028235e38,
                                    0.1, 1 / 3, 0.0, -0.0]), rng.normal(0, 1e3, 6)])
    bf16 = torch.from_numpy(rng.normal(0, 10, 12).astype(np.float32)).to(torch.bfloat16)
    bf16_bits = [int(b) for b in bf16.view(torch.int16).numpy().astype(np.uint16)]
    return {
        "float16": f16_bits(f16), "float16_as_float32": f32_bits(f16.astype(np.float32)),
        "float64": [format(int(b), '016x') for b in f64.view('<u8')], "float64_as_float32": f32_bits(f64.astype(np.float32)),
        "float64_too_large": format(int(np.array([1e39]).view('<u8')[0]), '016x'),
        "bfloat16": bf16_bits, "bfloat16_as_float32": f32_bits(bf16.to(torch.float32).numpy()),
    }


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    cases = [write_case(i, name, make) for i, (name, make) in enumerate(CASES)]
    regenerate = ".venv/bin/python tools/make_fold_fixtures.py"
    documents = {
        "folds.json": {"generated_by": regenerate, "torch": torch.__version__, "eps": EPS, "cases": cases},
        "fp16.json": {"generated_by": regenerate, "numpy": np.__version__, **fp16_fixture()},
        "int8.json": {"generated_by": regenerate, "numpy": np.__version__, **int8_fixture()},
        "dtypes.json": {"generated_by": regenerate, "numpy": np.__version__, "torch": torch.__version__, **dtypes_fixture()},
        "lisrd-heads-int8.json": {"generated_by": regenerate, "numpy": np.__version__, "heads": lisrd_heads_measurement()},
    }
    for file, doc in documents.items():
        (OUT / file).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} fold cases and {len(documents) - 1} more fixtures to {OUT.relative_to(ROOT)}")


if __name__ == '__main__':
    sys.exit(main())
