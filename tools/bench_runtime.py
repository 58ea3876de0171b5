"""Runner speed: the Swift runtime against PyTorch and onnxruntime, same weights,
same image, same thread count, all in one run of this script.

    .venv/bin/python tools/bench_runtime.py [--rounds 5] [--repeat 3] [--threads 2]
        [--height 480] [--width 640] [--no-build] [--no-quantized] [--simd-levels] [--json OUT.json]

What it does (from the repository root):
1. Builds the Swift commands (`swift build -c release --product aislfd-run`, and
   `aislfd-convert`), unless --no-build.
2. Draws a seeded synthetic image (tools/synthetic.py, seed 7) and saves it as
   float32 [3, H, W] .npy: every engine reads exactly the same input.
3. Counts each model's FLOPs from its layer shapes (forward hooks on the PyTorch
   definition: every Conv2d and Linear, and PSA's two N x N products), 2 per
   multiply-add.
4. Exports each model to ONNX from the PyTorch definition (tools/export_onnx.py).
5. Times, in `rounds` interleaved rounds (engine order rotated every round),
   each engine in its own child process: `aislfd-run MODEL IMAGE -o RUN.npz
   --repeat N` (fp32, the source weights file); PyTorch with
   torch.set_num_threads(T); onnxruntime with T intra-op threads. Each child
   reports the min and median of its N passes (PyTorch and onnxruntime after
   one untimed warm-up pass); the report takes the best min and the median of
   the medians over the rounds.
6. Converts the weights to fp16 and int8 `.aisw` with aislfd-convert and times
   those too (the runtime dequantizes at load), unless --no-quantized.
7. Peak resident memory of every child (/usr/bin/time's maximum resident set
   size), the Swift fp32 run on aislfd-c included.
8. Parity on this image: the Swift outputs (last round) against PyTorch's, as
   max |a - b| / max |b| per output group.
--simd-levels also times the Swift runner at AISLFD_SIMD=portable and avx2
(OpenBLAS + Swift loops, and the AVX2 kernels) to show what the kernels buy.
The models are the sample weights in Weights/ (lisrd.h5, aislfd-c.safetensors).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / 'tools'
sys.path.insert(0, str(TOOLS))

WEIGHTS = {'lisrd': ROOT / 'Weights' / 'lisrd.h5', 'aislfd-c': ROOT / 'Weights' / 'aislfd-c.safetensors'}
IMAGE_SEED = 7
TIME = Path('/usr/bin/time')


# ---------------------------------------------------------------- workers (child processes)

def worker_torch(args):
    import torch
    import make_reference
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    model = make_reference.build_model(make_reference.load_weights(args.weights))
    image = torch.from_numpy(np.load(args.image))[None]
    times = []
    with torch.inference_mode():
        out = model(image)
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = model(image)
            times.append(time.perf_counter() - start)
    if args.save:
        np.savez(args.save, **{k: v.numpy() for k, v in out.items()})
    return times


def worker_ort(args):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.onnx, options, providers=['CPUExecutionProvider'])
    feed = {'image': np.load(args.image)[None]}
    names = [o.name for o in session.get_outputs()]
    out = session.run(None, feed)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = session.run(None, feed)
        times.append(time.perf_counter() - start)
    if args.save:
        np.savez(args.save, **dict(zip(names, out)))
    return times


def worker_main(args):
    times = worker_torch(args) if args.worker == 'torch' else worker_ort(args)
    print(json.dumps({'min': min(times), 'median': statistics.median(times), 'passes': len(times)}))


# ---------------------------------------------------------------- FLOPs from layer shapes

def count_flops(arch, height, width):
    """{'total', 'conv', 'linear', 'attention'} in FLOPs (2 per multiply-add), from the
    shapes each Conv2d / Linear / PSA meets in a forward pass on the meta device."""
    import torch
    import models
    model = models.build(arch).to('meta')
    counts = {'conv': 0, 'linear': 0, 'attention': 0}

    def conv_hook(module, inputs, output):
        n, cout, h, w = output.shape
        cin_per_group = module.in_channels // module.groups
        counts['conv'] += 2 * n * cout * h * w * cin_per_group * module.kernel_size[0] * module.kernel_size[1]

    def linear_hook(module, inputs, output):
        counts['linear'] += 2 * output.numel() * module.in_features

    def psa_hook(module, inputs, output):
        n, c, h, w = inputs[0].shape
        counts['attention'] += 2 * (2 * n * (h * w) ** 2 * c)  # Q K^T and A V, each N x N x C multiply-adds

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(conv_hook)
        elif isinstance(module, torch.nn.Linear):
            module.register_forward_hook(linear_hook)
        elif isinstance(module, models.PSA):
            module.register_forward_hook(psa_hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width, device='meta'))
    counts['total'] = sum(counts.values())
    return counts


# ---------------------------------------------------------------- the run

def spawn(command, env=None):
    """Runs a child to completion; returns (returncode, stdout, stderr, peak RSS bytes or None).
    The peak comes from /usr/bin/time: a child's own getrusage high-water mark would
    include this (large, torch-importing) process's memory at the fork."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / 'peak'
        timed = ['/usr/bin/time', '-f', '%M', '-o', str(peak_file)] + command if TIME.exists() else command
        process = subprocess.run(timed, capture_output=True, text=True, env=env, cwd=ROOT)
        peak = None
        if peak_file.exists():
            lines = peak_file.read_text().split()
            peak = int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else None
        return process.returncode, process.stdout, process.stderr, peak


def parse_swift(stdout):
    """min and median seconds from aislfd-run --repeat's report."""
    found = {}
    for key in ('min', 'median'):
        m = re.search(key + r'[^0-9]*([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?', stdout)
        if m is None:
            raise RuntimeError(f'no {key} time in aislfd-run output: {stdout!r}')
        found[key] = float(m.group(1)) / (1000 if m.group(2) == 'ms' else 1)
    return found


class Engine:
    def __init__(self, label, arch, command, env=None, parse=json.loads, save=None):
        self.label, self.arch, self.command, self.env, self.parse, self.save = label, arch, command, env, parse, save
        self.mins, self.medians, self.peak, self.error = [], [], 0, None

    def run(self):
        if self.error:
            return
        code, stdout, stderr, peak = spawn(self.command, self.env)
        if code != 0:
            self.error = f'exit {code}: {stderr.strip().splitlines()[-1] if stderr.strip() else stdout.strip()}'
            return
        try:
            result = self.parse(stdout.strip().splitlines()[-1] if self.parse is json.loads else stdout)
        except (ValueError, RuntimeError, IndexError) as e:
            self.error = str(e)
            return
        self.mins.append(result['min'])
        self.medians.append(result['median'])
        self.peak = max(self.peak, peak or 0)

    @property
    def best(self):
        return min(self.mins) if self.mins else None

    @property
    def median(self):
        return statistics.median(self.medians) if self.medians else None


def relative_errors(run_path, reference_path):
    """{'desc': e, 'meta': e}: the largest max|a - b| / max|b| over each group's outputs."""
    run, ref = np.load(run_path), np.load(reference_path)
    errors = {}
    for group in ('desc', 'meta'):
        keys = [k for k in ref.files if k.startswith(group + '.')]
        if not keys or any(k not in run.files for k in keys):
            errors[group] = float('nan')
            continue
        errors[group] = max(float(np.abs(run[k].reshape(ref[k].shape) - ref[k]).max() / np.abs(ref[k]).max()) for k in keys)
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--repeat', type=int, default=3, help='timed passes per child')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--archs', default='lisrd,aislfd-c')
    parser.add_argument('--no-build', action='store_true')
    parser.add_argument('--no-quantized', action='store_true')
    parser.add_argument('--simd-levels', action='store_true')
    parser.add_argument('--json', help='also write the results here')
    # Worker mode (internal).
    parser.add_argument('--worker', choices=['torch', 'ort'])
    parser.add_argument('--weights')
    parser.add_argument('--image')
    parser.add_argument('--onnx')
    parser.add_argument('--save')
    args = parser.parse_args()
    if args.worker:
        return worker_main(args)

    archs = args.archs.split(',')
    python = sys.executable
    swift_bin = ROOT / '.build' / 'release'
    if not args.no_build:
        for product in ('aislfd-run', 'aislfd-convert'):
            subprocess.run(['swift', 'build', '-c', 'release', '--product', product], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
    print(f'machine: {os.cpu_count()} CPUs, load average {open("/proc/loadavg").read().split()[:3]}')
    print(f'image {args.height}x{args.width}, {args.threads} threads, {args.rounds} rounds x {args.repeat} passes per engine')

    with tempfile.TemporaryDirectory(prefix='aislfd-bench-') as tmp:
        tmp = Path(tmp)
        import synthetic
        image = (synthetic.draw_image(IMAGE_SEED, args.height, args.width).astype(np.float32) / np.float32(255))
        image_path = tmp / 'image.npy'
        np.save(image_path, np.ascontiguousarray(image.transpose(2, 0, 1)))

        import export_onnx
        flops, engines = {}, []
        env = dict(os.environ, AISLFD_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
                   MKL_NUM_THREADS=str(args.threads))
        for arch in archs:
            flops[arch] = count_flops(arch, args.height, args.width)
            onnx_path = tmp / f'{arch}.onnx'
            export_onnx.export(WEIGHTS[arch], onnx_path, arch, args.height, args.width)
            common = ['--image', str(image_path), '--repeat', str(args.repeat), '--threads', str(args.threads)]
            swift = [str(swift_bin / 'aislfd-run'), str(WEIGHTS[arch]), str(image_path), '--repeat', str(args.repeat),
                     '--threads', str(args.threads)]
            engines.append(Engine('swift fp32', arch, swift + ['-o', str(tmp / f'{arch}.swift.npz')], env, parse_swift,
                                  save=tmp / f'{arch}.swift.npz'))
            engines.append(Engine('pytorch', arch, [python, __file__, '--worker', 'torch', '--weights', str(WEIGHTS[arch]),
                                                   '--save', str(tmp / f'{arch}.torch.npz')] + common, env,
                                  save=tmp / f'{arch}.torch.npz'))
            engines.append(Engine('onnxruntime', arch, [python, __file__, '--worker', 'ort', '--onnx', str(onnx_path),
                                                       '--save', str(tmp / f'{arch}.ort.npz')] + common, env,
                                  save=tmp / f'{arch}.ort.npz'))
            if args.simd_levels:
                for level in ('portable', 'avx2'):
                    npz = tmp / f'{arch}.swift-{level}.npz'
                    engines.append(Engine(f'swift fp32 {level}', arch, swift + ['-o', str(npz)],
                                          dict(env, AISLFD_SIMD=level), parse_swift, save=npz))
            if not args.no_quantized:
                for precision in ('fp16', 'int8'):
                    aisw = tmp / f'{arch}.{precision}.aisw'
                    code, out, err, _ = spawn([str(swift_bin / 'aislfd-convert'), str(WEIGHTS[arch]), str(aisw),
                                               '--precision', precision])
                    npz = tmp / f'{arch}.swift-{precision}.npz'
                    engine = Engine(f'swift {precision}', arch,
                                    [str(swift_bin / 'aislfd-run'), str(aisw), str(image_path), '--repeat', str(args.repeat),
                                     '--threads', str(args.threads),
                                     '-o', str(npz)], env, parse_swift, save=npz)
                    if code != 0:
                        engine.error = f'aislfd-convert failed: {(err or out).strip()}'
                    engines.append(engine)

        for round_index in range(args.rounds):
            shift = round_index % len(engines)
            for engine in engines[shift:] + engines[:shift]:
                engine.run()
            print(f'round {round_index + 1}/{args.rounds} done, load average {open("/proc/loadavg").read().split()[:3]}',
                  flush=True)

        results = {'image': [args.height, args.width], 'threads': args.threads, 'rounds': args.rounds,
                   'repeat': args.repeat, 'flops': flops, 'engines': []}
        print()
        for arch in archs:
            f = flops[arch]
            print(f'{arch}: {f["total"] / 1e9:.1f} GFLOP (convolutions {f["conv"] / 1e9:.1f}, linear {f["linear"] / 1e9:.2f}, '
                  f'PSA attention products {f["attention"] / 1e9:.1f})')
            print(f'  {"engine":<22}{"min s":>9}{"median s":>10}{"GFLOP/s":>9}{"peak RSS":>10}   parity vs PyTorch (desc, meta)')
            reference = tmp / f'{arch}.torch.npz'
            by_label = {}
            for e in (e for e in engines if e.arch == arch):
                by_label[e.label] = e
                if e.error or e.best is None:
                    print(f'  {e.label:<22}  not timed: {e.error}')
                    results['engines'].append({'arch': arch, 'engine': e.label, 'error': e.error})
                    continue
                parity = relative_errors(e.save, reference) if e.label != 'pytorch' and reference.exists() else None
                parity_text = f'{parity["desc"]:.1e}, {parity["meta"]:.1e}' if parity else ''
                print(f'  {e.label:<22}{e.best:9.3f}{e.median:10.3f}{f["total"] / e.best / 1e9:9.1f}'
                      f'{e.peak / 2**20:8.0f} MB   {parity_text}')
                results['engines'].append({'arch': arch, 'engine': e.label, 'min': e.best, 'median': e.median,
                                           'gflops': f['total'] / e.best / 1e9, 'peak_rss': e.peak, 'parity': parity})
            swift = by_label.get('swift fp32')
            for other in ('pytorch', 'onnxruntime'):
                o = by_label.get(other)
                if swift and o and swift.best and o.best:
                    print(f'  Swift / {other}: {swift.best / o.best:.2f} (min), {swift.median / o.median:.2f} (median)')
                    results.setdefault('ratios', {})[f'{arch} swift/{other}'] = {
                        'min': swift.best / o.best, 'median': swift.median / o.median}
            print()
        c = next((e for e in engines if e.arch == 'aislfd-c' and e.label == 'swift fp32' and e.peak), None)
        if c:
            verdict = 'within' if c.peak <= 2**30 else 'OVER'
            print(f'peak resident memory of the Swift fp32 run on aislfd-c: {c.peak / 2**20:.0f} MB ({verdict} 1 GB)')
        print(f'load average at the end: {open("/proc/loadavg").read().split()[:3]}')
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + '\n')


if __name__ == '__main__':
    main()
