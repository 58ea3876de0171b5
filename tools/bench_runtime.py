"""Runner speed: the Swift runtime against PyTorch and onnxruntime, same weights,
same image, same thread count, all in one run of this script.

    .venv/bin/python tools/bench_runtime.py [--rounds 5] [--repeat 3] [--threads 2]
        [--height 480] [--width 640] [--no-build] [--no-quantized] [--simd-levels]
        [--large 1080x1920] [--json OUT.json]

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
6. Unless --no-quantized, int8 on the trained checkpoints (Weights/trained: which layers
   compute in int8 depends on the weights, so random ones would say little): each is
   converted to fp32, fp16 and int8 `.aisw` (aislfd-convert, calibrated) and exported to
   ONNX, and onnxruntime's own int8 is made from that ONNX with quantize_static (QDQ,
   per-channel s8 weights, u8 activations, MinMax on ORT_CALIBRATION seeded synthetic
   photos), once for every op it quantizes and once for the convolutions only. All are
   timed like the rest, and each one's accuracy is printed beside its time: the least and
   mean per-position cosine of its desc and meta maps to PyTorch fp32 on the same trained
   weights. The ratios the int8 work is judged by follow: Swift int8 / Swift fp32, and
   onnxruntime int8 / onnxruntime fp32.
7. Peak resident memory of every child (/usr/bin/time's maximum resident set
   size), the Swift fp32 run on aislfd-c included.
8. Parity on this image: the Swift outputs (last round) against PyTorch's, as
   max |a - b| / max |b| per output group.
9. The machine's peaks: tools/peak.c (built with cc) runs register-only
   fused multiply-adds, AVX-512 and AVX2, on 1 and T threads, timed by each
   thread's CPU time. Every engine's GFLOP/s is printed as a share of the T-thread
   peak of the widest ISA, and so is each layer kind's (3x3 convolutions, 1x1
   convolutions, attention products with their softmax, the rest): the Swift
   runner times kinds itself (AISLFD_PROFILE=1), PyTorch through module hooks
   (one extra pass), onnxruntime through its profiler (one extra run). Winograd
   layers count the FLOPs of the direct convolution (effective GFLOP/s).
10. Swift fp32 at a large image (--large, default 1080x1920; 'none' skips it):
   one pass per model, its time and peak resident memory, against 1 GB.
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
TRAINED = {'lisrd': ROOT / 'Weights' / 'trained' / 'lisrd.pth', 'aislfd-c': ROOT / 'Weights' / 'trained' / 'aislfd-c.pth'}
# Swift int8 / Swift fp32 targets (the int8 issue): aislfd-c's attention stays fp32.
INT8_TARGETS = {'lisrd': 0.50, 'aislfd-c': 0.70}
ORT_CALIBRATION = (101, 102, 103, 104)
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
    return times, torch_kinds(model, image)


def torch_kinds(model, image):
    """Seconds per layer kind in one more pass, from module hooks: Conv2d by kernel
    size, Linear as 1x1 convolutions, PSA less its Linear layers as attention."""
    import torch
    import models
    kinds, starts, inside_psa = {}, {}, []

    def kind_of(module):
        if isinstance(module, torch.nn.Conv2d):
            return f'conv{module.kernel_size[0]}x{module.kernel_size[1]}'
        return 'conv1x1' if isinstance(module, torch.nn.Linear) else 'attention'

    def before(module, inputs):
        starts[id(module)] = time.perf_counter()

    def after(module, inputs, output):
        elapsed = time.perf_counter() - starts.pop(id(module))
        kind = kind_of(module)
        kinds[kind] = kinds.get(kind, 0) + elapsed
        if kind == 'conv1x1' and isinstance(module, torch.nn.Linear):
            inside_psa.append(elapsed)

    handles = []
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear, models.PSA)):
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    with torch.inference_mode():
        start = time.perf_counter()
        model(image)
        total = time.perf_counter() - start
    for h in handles:
        h.remove()
    kinds['attention'] = kinds.get('attention', 0) - sum(inside_psa)
    kinds['rest'] = total - sum(kinds.values())
    return kinds


def ort_kinds(args, options, feed):
    """Seconds per layer kind in one profiled run of the optimised graph: Conv by
    kernel size, MatMul of two activations and Softmax as attention, a MatMul or
    Gemm with a constant operand as a 1x1 convolution (PSA's projections)."""
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / 'profile')
        options.optimized_model_filepath = str(Path(tmp) / 'optimized.onnx')
        session = ort.InferenceSession(args.onnx, options, providers=['CPUExecutionProvider'])
        session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        graph = onnx.load(options.optimized_model_filepath).graph
    constants = {i.name for i in graph.initializer}
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    kind_of = {}
    for node in graph.node:
        kind = 'rest'
        if node.op_type in ('Conv', 'FusedConv'):
            kernel = next((list(a.ints) for a in node.attribute if a.name == 'kernel_shape'), None)
            kernel = kernel or shapes.get(node.input[1], [0, 0, 0, 0])[2:]
            kind = f'conv{kernel[0]}x{kernel[1]}'
        elif node.op_type in ('MatMul', 'FusedMatMul', 'Gemm'):
            kind = 'conv1x1' if any(i in constants for i in node.input[:2]) else 'attention'
        elif node.op_type == 'Softmax':
            kind = 'attention'
        kind_of[node.name] = kind
    kinds = {}
    for event in events:
        if event.get('cat') == 'Node' and event.get('name', '').endswith('_kernel_time'):
            kind = kind_of.get(event['name'][:-len('_kernel_time')], 'rest')
            kinds[kind] = kinds.get(kind, 0) + event['dur'] / 1e6
    return kinds


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
    return times, ort_kinds(args, options, feed)


def worker_main(args):
    times, kinds = worker_torch(args) if args.worker == 'torch' else worker_ort(args)
    print(json.dumps({'min': min(times), 'median': statistics.median(times), 'passes': len(times), 'kinds': kinds}))


# ---------------------------------------------------------------- FLOPs from layer shapes

def count_flops(arch, height, width):
    """{'total', 'conv', 'linear', 'attention'} in FLOPs (2 per multiply-add), from the
    shapes each Conv2d / Linear / PSA meets in a forward pass on the meta device."""
    import torch
    import models
    model = models.build(arch).to('meta')
    counts = {'conv': 0, 'conv3x3': 0, 'conv1x1': 0, 'linear': 0, 'attention': 0}

    def conv_hook(module, inputs, output):
        n, cout, h, w = output.shape
        cin_per_group = module.in_channels // module.groups
        flops = 2 * n * cout * h * w * cin_per_group * module.kernel_size[0] * module.kernel_size[1]
        counts['conv'] += flops
        counts[f'conv{module.kernel_size[0]}x{module.kernel_size[1]}'] = counts.get(f'conv{module.kernel_size[0]}x{module.kernel_size[1]}', 0) + flops

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
    counts['total'] = counts['conv'] + counts['linear'] + counts['attention']
    # PSA's projections are Linear layers here and 1x1 convolutions in the Swift runner and ONNX.
    counts['conv1x1'] += counts['linear']
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
    """min and median seconds from aislfd-run --repeat's report, and the seconds
    per layer kind when it printed them (AISLFD_PROFILE=1)."""
    found = {}
    m = re.search(r'time by layer kind per pass: (.*)', stdout)
    if m:
        found['kinds'] = {k: float(v) for k, v in re.findall(r'(\w+) ([0-9.]+) s', m.group(1))}
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
        self.kinds = []

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
        if result.get('kinds'):
            self.kinds.append(result['kinds'])
        self.peak = max(self.peak, peak or 0)

    @property
    def best(self):
        return min(self.mins) if self.mins else None

    @property
    def median(self):
        return statistics.median(self.medians) if self.medians else None

    @property
    def kind_seconds(self):
        """Per kind, the least seconds over the rounds (like the best time)."""
        if not self.kinds:
            return None
        return {k: min(r.get(k, 0) for r in self.kinds) for k in self.kinds[0]}


PEAK_SOURCE = TOOLS / 'peak.c'


def measure_peak(threads, tmp):
    """{'avx512_1', 'avx512_n', 'avx2_1', 'avx2_n'} GFLOP/s (those the CPU has), or an error string."""
    binary = Path(tmp) / 'peak'
    build = subprocess.run(['cc', '-O2', '-pthread', str(PEAK_SOURCE), '-o', str(binary)], capture_output=True, text=True)
    if build.returncode != 0:
        return f'cc failed: {build.stderr.strip()[:200]}'
    run = subprocess.run([str(binary), str(threads)], capture_output=True, text=True)
    return json.loads(run.stdout) if run.returncode == 0 else f'peak failed: {run.stderr.strip()[:200]}'


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


def position_cosines(run_path, reference_path):
    """{'desc': (least, mean), 'meta': (least, mean)}: cosines between the two runs' vectors
    at every position of every map of the group."""
    run, ref = np.load(run_path), np.load(reference_path)
    found = {}
    for group in ('desc', 'meta'):
        keys = [k for k in ref.files if k.startswith(group + '.')]
        if not keys or any(k not in run.files for k in keys):
            found[group] = (float('nan'), float('nan'))
            continue
        cosines = []
        for k in keys:
            b = ref[k].reshape(ref[k].shape[-3], -1).astype(np.float64)
            a = run[k].reshape(b.shape).astype(np.float64)
            cosines.append((a * b).sum(0) / np.maximum(np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0), 1e-30))
        c = np.concatenate(cosines)
        found[group] = (float(c.min()), float(c.mean()))
    return found


def quantize_onnx(fp32_path, out_path, height, width, convolutions_only):
    """onnxruntime's static int8 (QDQ, per-channel) of an ONNX model, calibrated by MinMax
    on the ORT_CALIBRATION synthetic photos; None or an error string."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    import synthetic

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.images = iter(ORT_CALIBRATION)

        def get_next(self):
            seed = next(self.images, None)
            if seed is None:
                return None
            image = synthetic.draw_image(seed, height, width).astype(np.float32) / np.float32(255)
            return {'image': np.ascontiguousarray(image.transpose(2, 0, 1))[None]}

    try:
        quantize_static(str(fp32_path), str(out_path), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=['Conv'] if convolutions_only else None)
    except Exception as e:  # report, do not stop the benchmark
        return f'quantize_static failed: {e}'.splitlines()[0]
    return None


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
    parser.add_argument('--large', default='1080x1920', help="HxW of the large-image run, or 'none'")
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
        peak = measure_peak(args.threads, tmp)
        if isinstance(peak, str):
            print(f'fp32 peak: not measured ({peak})')
            peak_value = None
        else:
            isa = 'avx512' if 'avx512_n' in peak else 'avx2'
            peak_value = peak.get(f'{isa}_n')
            print('fp32 peak (register-only FMA loop, per-thread CPU time): ' +
                  ', '.join(f'{k.split("_")[0].upper()} {"1 thread" if k.endswith("_1") else f"{args.threads} threads"} '
                            f'{v:.0f} GFLOP/s' for k, v in peak.items() if k != 'threads' and not k.startswith('vnni')))
            if 'vnni_n' in peak:
                print(f'int8 peak (register-only vpdpbusd loop): 1 thread {peak["vnni_1"]:.0f}, {args.threads} threads '
                      f'{peak["vnni_n"]:.0f} G int-ops/s (2 per multiply-add), {peak["vnni_n"] / max(peak_value or 1, 1e-9):.1f}x the fp32 peak')
            print(f'shares below are of the {isa.upper()} {args.threads}-thread peak, {peak_value:.0f} GFLOP/s')
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
            engines.append(Engine('swift fp32', arch, swift + ['-o', str(tmp / f'{arch}.swift.npz')],
                                  dict(env, AISLFD_PROFILE='1'), parse_swift,
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
            if not args.no_quantized and TRAINED.get(arch, Path('/nonexistent')).exists():
                trained = TRAINED[arch]
                engines.append(Engine('trained pytorch', arch, [python, __file__, '--worker', 'torch', '--weights', str(trained),
                                                               '--save', str(tmp / f'{arch}.trained-torch.npz')] + common, env,
                                      save=tmp / f'{arch}.trained-torch.npz'))
                for precision in ('fp32', 'fp16', 'int8'):
                    aisw = tmp / f'{arch}.trained-{precision}.aisw'
                    start = time.perf_counter()
                    code, out, err, _ = spawn([str(swift_bin / 'aislfd-convert'), str(trained), str(aisw), '--precision', precision])
                    if precision == 'int8':
                        print(f'{arch}: calibrated int8 conversion of the trained checkpoint took {time.perf_counter() - start:.1f} s')
                    npz = tmp / f'{arch}.trained-swift-{precision}.npz'
                    engine = Engine(f'trained swift {precision}', arch,
                                    [str(swift_bin / 'aislfd-run'), str(aisw), str(image_path), '--repeat', str(args.repeat),
                                     '--threads', str(args.threads), '-o', str(npz)], env, parse_swift, save=npz)
                    if code != 0:
                        engine.error = f'aislfd-convert failed: {(err or out).strip()}'
                    engines.append(engine)
                trained_onnx = tmp / f'{arch}.trained.onnx'
                export_onnx.export(trained, trained_onnx, arch, args.height, args.width)
                engines.append(Engine('trained onnxruntime', arch, [python, __file__, '--worker', 'ort', '--onnx', str(trained_onnx),
                                                                   '--save', str(tmp / f'{arch}.trained-ort.npz')] + common, env,
                                      save=tmp / f'{arch}.trained-ort.npz'))
                for label, only in (('trained ort int8 QDQ', False), ('trained ort int8 conv', True)):
                    q_path = tmp / f'{arch}.trained-{"conv" if only else "all"}.int8.onnx'
                    problem = quantize_onnx(trained_onnx, q_path, args.height, args.width, only)
                    npz = tmp / f'{arch}.trained-{"conv" if only else "all"}-ort-int8.npz'
                    engine = Engine(label, arch, [python, __file__, '--worker', 'ort', '--onnx', str(q_path), '--save', str(npz)] + common,
                                    env, save=npz)
                    engine.error = problem
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
            print(f'  {"engine":<22}{"min s":>9}{"median s":>10}{"GFLOP/s":>9}{"of peak":>9}{"peak RSS":>10}   parity vs PyTorch (desc, meta)')
            reference = tmp / f'{arch}.torch.npz'
            by_label = {}
            for e in (e for e in engines if e.arch == arch):
                by_label[e.label] = e
                if e.error or e.best is None:
                    print(f'  {e.label:<22}  not timed: {e.error}')
                    results['engines'].append({'arch': arch, 'engine': e.label, 'error': e.error})
                    continue
                trained_reference = tmp / f'{arch}.trained-torch.npz'
                if e.label.startswith('trained'):
                    cosines = position_cosines(e.save, trained_reference) if e.label != 'trained pytorch' and trained_reference.exists() else None
                    parity = None
                    parity_text = (f'cosine to PyTorch least/mean: desc {cosines["desc"][0]:.4f}/{cosines["desc"][1]:.5f}, '
                                   f'meta {cosines["meta"][0]:.4f}/{cosines["meta"][1]:.5f}') if cosines else ''
                else:
                    cosines = None
                    parity = relative_errors(e.save, reference) if e.label != 'pytorch' and reference.exists() else None
                    parity_text = f'{parity["desc"]:.1e}, {parity["meta"]:.1e}' if parity else ''
                share = f'{f["total"] / e.best / 1e9 / peak_value:8.0%}' if peak_value else f'{"-":>8}'
                print(f'  {e.label:<22}{e.best:9.3f}{e.median:10.3f}{f["total"] / e.best / 1e9:9.1f} {share}'
                      f'{e.peak / 2**20:8.0f} MB   {parity_text}')
                results['engines'].append({'arch': arch, 'engine': e.label, 'min': e.best, 'median': e.median,
                                           'gflops': f['total'] / e.best / 1e9, 'peak_rss': e.peak, 'parity': parity,
                                           'cosines': cosines})
            print_kinds(arch, f, [by_label.get(k) for k in ('swift fp32', 'pytorch', 'onnxruntime')], peak_value, results)
            swift = by_label.get('swift fp32')
            for other, target in (('pytorch', 0.6), ('onnxruntime', 0.7)):
                o = by_label.get(other)
                if swift and o and swift.best and o.best:
                    ratio = swift.best / o.best
                    print(f'  Swift / {other}: {ratio:.2f} (min), {swift.median / o.median:.2f} (median); '
                          f'target <= {target:.2f}: {"met" if ratio <= target else "NOT met"}')
                    results.setdefault('ratios', {})[f'{arch} swift/{other}'] = {
                        'min': swift.best / o.best, 'median': swift.median / o.median}
            for a, b, target in (('trained swift int8', 'trained swift fp32', INT8_TARGETS.get(arch)),
                                 ('trained ort int8 QDQ', 'trained onnxruntime', None),
                                 ('trained ort int8 conv', 'trained onnxruntime', None),
                                 ('trained swift int8', 'trained ort int8 QDQ', None),
                                 ('trained swift int8', 'trained onnxruntime', None)):
                x, y = by_label.get(a), by_label.get(b)
                if x and y and x.best and y.best:
                    verdict = f'; target <= {target:.2f}: {"met" if x.best / y.best <= target else "NOT met"}' if target else ''
                    print(f'  {a} / {b}: {x.best / y.best:.2f} (min), {x.median / y.median:.2f} (median){verdict}')
                    results.setdefault('ratios', {})[f'{arch} {a}/{b}'] = {'min': x.best / y.best, 'median': x.median / y.median}
            print()
        c = next((e for e in engines if e.arch == 'aislfd-c' and e.label == 'swift fp32' and e.peak), None)
        if c:
            verdict = 'within' if c.peak <= 2**30 else 'OVER'
            print(f'peak resident memory of the Swift fp32 run on aislfd-c: {c.peak / 2**20:.0f} MB ({verdict} 1 GB)')
        if args.large != 'none':
            run_large(args, archs, swift_bin, env, tmp, results)
        print(f'load average at the end: {open("/proc/loadavg").read().split()[:3]}')
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + '\n')


KIND_LABELS = {'conv3x3': '3x3 convolutions', 'conv1x1': '1x1 convolutions (and Linear)',
               'attention': 'attention products + softmax', 'rest': 'the rest'}


def print_kinds(arch, flops, engines, peak, results):
    """Per layer kind and engine: seconds per pass, GFLOP/s and share of peak."""
    timed = [e for e in engines if e and e.kind_seconds]
    if not timed:
        return
    print(f'  by layer kind (seconds per pass, GFLOP/s, share of peak; one profiled pass per round, best):')
    for kind, label in KIND_LABELS.items():
        cells = []
        for e in timed:
            seconds = e.kind_seconds.get(kind, 0)
            work = flops.get(kind, 0)
            if kind == 'rest' or not work:
                cells.append(f'{e.label} {seconds:.3f} s')
                continue
            rate = work / seconds / 1e9 if seconds > 0 else float('nan')
            share = f' {rate / peak:.0%}' if peak else ''
            cells.append(f'{e.label} {seconds:.3f} s {rate:.0f}{share}')
            results.setdefault('kinds', {}).setdefault(arch, {}).setdefault(e.label, {})[kind] = {
                'seconds': seconds, 'gflops': rate, 'share': rate / peak if peak else None}
        extra = f' ({flops[kind] / 1e9:.1f} GFLOP)' if flops.get(kind) else ''
        print(f'    {label}{extra}: ' + '; '.join(cells))
    swift = next((e for e in timed if e.label == 'swift fp32'), None)
    if swift and peak and flops.get('conv3x3') and swift.kind_seconds.get('conv3x3'):
        share = flops['conv3x3'] / swift.kind_seconds['conv3x3'] / 1e9 / peak
        print(f'  Swift 3x3 convolutions at {share:.0%} of peak (effective, Winograd layers counted as direct); '
              f'target >= 80%: {"met" if share >= 0.8 else "NOT met"}')


def run_large(args, archs, swift_bin, env, tmp, results):
    """One Swift fp32 pass per model on a large seeded image: time and peak RSS."""
    import synthetic
    height, width = (int(v) for v in args.large.split('x'))
    image = synthetic.draw_image(IMAGE_SEED, height, width).astype(np.float32) / np.float32(255)
    path = tmp / 'large.npy'
    np.save(path, np.ascontiguousarray(image.transpose(2, 0, 1)))
    print(f'large image {height}x{width}, Swift fp32, {args.threads} threads, one pass:')
    for arch in archs:
        code, stdout, stderr, peak = spawn([str(swift_bin / 'aislfd-run'), str(WEIGHTS[arch]), str(path),
                                            '-o', str(tmp / 'large.npz'), '--threads', str(args.threads)], env)
        if code != 0:
            print(f'  {arch}: not run: {stderr.strip()}')
            continue
        seconds = parse_swift(stdout)['min']
        verdict = 'within' if peak and peak <= 2**30 else 'OVER'
        print(f'  {arch}: {seconds:.2f} s, peak RSS {peak / 2**20:.0f} MB ({verdict} 1 GB)')
        results.setdefault('large', {})[arch] = {'seconds': seconds, 'peak_rss': peak}


if __name__ == '__main__':
    main()
