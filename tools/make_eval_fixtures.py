"""Writes Tests/Fixtures/eval/expected/ and Tests/Fixtures/eval/homography/.

    OMP_NUM_THREADS=1 .venv/bin/python tools/make_eval_fixtures.py [--only homography|expected]

expected/<model>/<dataset>/<pair>.npz   per-pair dumps (docs/evaluation.md, "Output")
expected/<model>/<dataset>.json         per-pair and mean metrics of that run
    model: `random-lisrd` (Weights/lisrd.h5) and `trained-lisrd` (Weights/trained/lisrd.pth);
    dataset: `hpatches-like`, `rdnim-like-day`, `rdnim-like-night`.
homography/<case>.npz                   a match set and OpenCV's findHomography result
homography/cases.json                   the same results, readable

Run from anywhere; paths in the JSON files are relative to the repository root.
"""

import argparse
import json
import os
import shutil
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..'))
sys.path.insert(0, HERE)
import eval_reference as ev  # noqa: E402
import warps  # noqa: E402

MODELS = {'random-lisrd': 'Weights/lisrd.h5', 'trained-lisrd': 'Weights/trained/lisrd.pth'}
DATASETS = {'hpatches-like': ('Tests/Fixtures/eval/hpatches-like', 'day'),
            'rdnim-like-day': ('Tests/Fixtures/eval/rdnim-like', 'day'),
            'rdnim-like-night': ('Tests/Fixtures/eval/rdnim-like', 'night')}
OUT = os.path.join(ROOT, 'Tests', 'Fixtures', 'eval')


def jsonable(x):
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None      # JSON has no NaN; a corner error of a missing estimate
    if isinstance(x, np.generic):
        return jsonable(x.item())
    return x


def make_expected(models):
    base = os.path.join(OUT, 'expected')
    for model in models:
        if os.path.exists(os.path.join(base, model)):
            shutil.rmtree(os.path.join(base, model))
    os.makedirs(base, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(ROOT)     # relative paths in the outputs
    try:
        keypoints = {}
        for model in models:
            weights = MODELS[model]
            describer = ev.Describer(weights)
            for name, (dataset, reference) in DATASETS.items():
                dump = os.path.join('Tests', 'Fixtures', 'eval', 'expected', model, name)
                summary = ev.evaluate(weights, dataset, reference=reference, dump_dir=dump,
                                      describer=describer, keypoints_cache=keypoints)
                summary['dataset'] = dataset
                # Compressed dumps: the fixtures' size; the Swift NPZ reader inflates them.
                for f in sorted(os.listdir(dump)):
                    path = os.path.join(dump, f)
                    with np.load(path) as z:
                        arrays = {k: z[k] for k in z.files}
                    np.savez_compressed(path, **arrays)
                with open(dump + '.json', 'w') as f:
                    json.dump(jsonable(summary), f, indent=1)
                    f.write('\n')
                m = summary['mean']
                print(f'{model} {name}: H {m["h_estimation"]:.3f} precision {m["precision"]:.3f} '
                      f'recall {m["recall"]:.3f} over {m["pairs"]} pairs')
    finally:
        os.chdir(cwd)


def homography_cases():
    """Match sets (float64 (x, y) [N, 2] in images of 256x192) covering the estimator's cases."""
    rng = np.random.default_rng(7)
    w, h = 256, 192
    gt, _ = warps.random_homography(rng, w, h, max_angle=0.4, perspective=0.2)
    gt = gt / gt[2, 2]

    def spread(n):
        return np.stack([rng.uniform(0, w - 1, n), rng.uniform(0, h - 1, n)], axis=1)

    cases = {}
    p = spread(40)
    cases['exact'] = (p, warps.warp_points(p, gt), gt, 'all matches exact')
    p = spread(60)
    q = warps.warp_points(p, gt) + rng.normal(0, 0.5, p.shape)
    out = rng.random(60) < 0.3
    q[out] = spread(int(out.sum()))
    cases['noisy-outliers'] = (p, q, gt, '0.5 px noise, 30% outliers at random places')
    p = spread(50)
    q = warps.warp_points(p, gt) + rng.normal(0, 0.3, p.shape)
    out = rng.random(50) < 0.7
    q[out] = spread(int(out.sum()))
    cases['mostly-outliers'] = (p, q, gt, '0.3 px noise, 70% outliers')
    p = spread(30)
    cases['all-outliers'] = (p, spread(30), gt, 'no relation between the two sides')
    p = spread(4)
    cases['four-exact'] = (p, warps.warp_points(p, gt), gt, 'the minimum: 4 exact matches')
    p = spread(3)
    cases['three'] = (p, warps.warp_points(p, gt), gt, 'fewer than 4 matches: no homography')
    cases['empty'] = (np.zeros((0, 2)), np.zeros((0, 2)), gt, 'no matches')
    t = np.linspace(0, 1, 12)[:, None]
    p = np.array([[20.0, 30.0]]) + t * np.array([[200.0, 120.0]])
    cases['collinear'] = (p, warps.warp_points(p, gt), gt, 'all points on one line: degenerate')
    p = np.concatenate([np.array([[20.0, 30.0]]) + np.linspace(0, 1, 9)[:, None] * np.array([[200.0, 120.0]]),
                        np.array([[200.0, 40.0]])])
    cases['collinear-but-one'] = (p, warps.warp_points(p, gt), gt, '9 collinear points and one off the line')
    p = np.repeat(np.array([[100.0, 80.0]]), 8, axis=0)
    cases['coincident'] = (p, warps.warp_points(p, gt), gt, 'eight copies of one point')
    p = spread(20)
    cases['identity'] = (p, p.copy(), np.eye(3), 'image 1 = image 0')
    # Real match sets from the random sample's dumps: what the estimator meets in practice.
    for pair in ('v_rocket-2', 'v_coffee-4', 'i_chelsea-3'):
        path = os.path.join(OUT, 'expected', 'random-lisrd', 'hpatches-like', pair + '.npz')
        if os.path.exists(path):
            with np.load(path) as z:
                m = z['matches']
                cases[f'dump-{pair}'] = (z['keypoints0'][m[:, 0]].astype(np.float64),
                                         z['keypoints1'][m[:, 1]].astype(np.float64), z['homography'],
                                         f'the matches of expected/random-lisrd/hpatches-like/{pair}.npz')
    return cases, (h, w)


def make_homography():
    base = os.path.join(OUT, 'homography')
    keep = os.path.join(base, 'README.md')
    readme = open(keep).read() if os.path.exists(keep) else None
    if os.path.exists(base):
        shutil.rmtree(base)
    os.makedirs(base)
    if readme:
        with open(keep, 'w') as f:
            f.write(readme)
    cases, shape = homography_cases()
    summary = {'opencv': cv2.__version__, 'method': 'cv2.findHomography(src, dst, cv2.RANSAC, 3.0)',
               'image_shape': list(shape), 'cases': {}}
    for name, (src, dst, gt, what) in cases.items():
        try:
            est, mask = cv2.findHomography(src, dst, cv2.RANSAC, ev.RANSAC_THRESHOLD)
            raised = None
        except cv2.error as e:
            est, mask, raised = None, None, ' '.join(str(e).split())
        found = est is not None
        inliers = mask.reshape(-1).astype(bool) if found else np.zeros(len(src), dtype=bool)
        error = ev.corner_error(est, gt, shape) if found else float('nan')
        ok = bool(found and np.isfinite(error) and error <= 3.0)
        singular = bool(found and abs(np.linalg.det(est / np.abs(est).max())) < ev.SINGULAR_LIMIT)
        np.savez(os.path.join(base, name + '.npz'), src=src.astype(np.float64), dst=dst.astype(np.float64),
                 ground_truth=gt.astype(np.float64), found=np.bool_(found),
                 homography=(est if found else np.full((3, 3), np.nan)).astype(np.float64),
                 inliers=inliers, corner_error=np.float64(error), h_estimation=np.float64(ok),
                 image_shape=np.array(shape, dtype=np.int64))
        summary['cases'][name] = jsonable({
            'what': what, 'matches': len(src), 'opencv_raised': raised, 'found': found,
            'singular': singular, 'inliers': int(inliers.sum()),
            'homography': est.tolist() if found else None, 'corner_error': error, 'h_estimation': float(ok)})
        print(f'{name}: {len(src)} matches, found {found}, singular {singular}, inliers {int(inliers.sum())}, '
              f'corner error {error:.4g}, H-estimation {ok:d}' + (f' (OpenCV: {raised})' if raised else ''))
    with open(os.path.join(base, 'cases.json'), 'w') as f:
        json.dump(summary, f, indent=1)
        f.write('\n')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', choices=('homography', 'expected'))
    parser.add_argument('--models', nargs='+', choices=tuple(MODELS), default=list(MODELS))
    args = parser.parse_args()
    if args.only != 'homography':
        make_expected(args.models)
    if args.only != 'expected':
        make_homography()


if __name__ == '__main__':
    main()
