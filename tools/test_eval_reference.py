"""Hand-worked cases for tools/eval_reference.py (docs/evaluation.md): every expected value
below is computed by hand from the definitions, not by the code under test.

    .venv/bin/python tools/test_eval_reference.py
"""

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_reference as ev  # noqa: E402


def shift(dx, dy):
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def test_select_k_best():
    # image 1 is 20x20; H shifts by +10 in x, so x in [-7, 7) lands in [3, 17)
    pts = np.array([[0.0, 5.0], [8.0, 5.0], [-7.0, 5.0], [6.99, 5.0], [1.0, 2.99], [2.0, 5.0]])
    scores = np.array([0.5, 0.9, 0.2, 0.7, 0.8, 0.5])
    # valid: 0 (x 10), 2 (x 3, inclusive), 3 (x 16.99), 5; not 1 (x 18), not 4 (y 2.99)
    assert list(ev.select_k_best(pts, scores, 10, shift(10, 0), (20, 20))) == [0, 2, 3, 5]
    # k = 2: the best are 3 (0.7), then 0 and 5 tie at 0.5 -> the earlier index, 0
    assert list(ev.select_k_best(pts, scores, 2, shift(10, 0), (20, 20))) == [0, 3]


def test_mutual_matches():
    d = np.array([[0.1, 0.5, 0.9],
                  [0.35, 0.3, 0.9],
                  [0.9, 0.9, 0.4]])
    # row 0 -> 0, col 0 -> 0 (mutual); row 1 -> 1, col 1 -> 1; row 2 -> 2, col 2 -> 2
    assert ev.mutual_matches(d).tolist() == [[0, 0], [1, 1], [2, 2]]
    d[1, 0] = 0.05   # col 0 now prefers row 1, row 1 prefers col 0; row 0 still prefers col 0
    assert ev.mutual_matches(d).tolist() == [[1, 0], [2, 2]]
    tie = np.array([[0.3, 0.3], [0.3, 0.3]])
    assert ev.mutual_matches(tie).tolist() == [[0, 0]]     # first index on ties, both ways


def test_precision_recall():
    h = shift(2.0, 0.0)
    kp0 = np.array([[10.0, 10.0], [30.0, 10.0], [50.0, 10.0], [70.0, 10.0]])
    # kp1: exact correspondents of 0 and 1, 2.5 px off for 2, nothing near 3
    kp1 = np.array([[12.0, 10.0], [32.0, 10.0], [54.5, 10.0], [90.0, 40.0]])
    matches = np.array([[0, 0], [1, 2], [2, 1], [3, 3]])
    r = ev.pair_metrics(kp0, kp1, matches, h, (100, 100), (100, 100), threshold=3.0)
    # errors: (0,0) 0; (1,2) 22.5; (2,1) 20; (3,3) |(72,10)-(90,40)| = 34.99 (same in both images)
    assert r['precision'] == 0.25
    assert r['mma'] == [0.25] * 10
    # correspondents within 3 px: kp0[0] (0 px), kp0[1] (0), kp0[2] (2.5); kp0[3] none -> 3
    # correct matches: (0,0) only -> 1/3
    assert abs(r['recall'] - 1.0 / 3.0) < 1e-15
    assert r['h_estimation'] == 0.0      # 4 matches with 3 wrong: no consistent homography


def test_h_estimation_and_dump():
    rng = np.random.default_rng(0)
    kp0 = rng.uniform(10, 90, size=(30, 2))
    h = np.array([[1.02, 0.01, 3.0], [-0.01, 0.98, -2.0], [1e-4, 0.0, 1.0]])
    kp1 = ev.warp(kp0, h)
    matches = np.stack([np.arange(30), np.arange(30)], axis=1)
    r = ev.pair_metrics(kp0, kp1, matches, h, (100, 100), threshold=3.0)
    # OpenCV converts the points to float32 inside findHomography: microns, not ulps
    assert r['h_estimation'] == 1.0 and r['corner_error'] < 1e-4
    assert r['precision'] == 1.0 and r['recall'] == 1.0
    # fewer than 4 matches: no estimate, and precision on 3 matches still counts
    r3 = ev.pair_metrics(kp0, kp1, matches[:3], h, (100, 100))
    assert r3['h_estimation'] == 0.0 and r3['estimated_homography'] is None and r3['precision'] == 1.0
    # no matches: everything 0, nothing NaN
    r0 = ev.pair_metrics(kp0, kp1, np.zeros((0, 2), np.int64), h, (100, 100))
    assert (r0['h_estimation'], r0['precision'], r0['recall'], r0['mma']) == (0.0, 0.0, 0.0, [0.0] * 10)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'pair.npz')
        np.savez(path, keypoints0=kp0.astype(np.float32), keypoints1=kp1.astype(np.float32), matches=matches,
                 homography=h, image_shape0=np.array([100, 100]), image_shape1=np.array([100, 100]))
        rd = ev.metrics_from_dump(path)
        assert rd['h_estimation'] == 1.0 and rd['precision'] == 1.0


def test_readers():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, 'H')
        with open(p, 'w') as f:
            f.write('  1 0 2.5e0\n\n0 1 -3\n0 0 1\n')
        assert ev.read_homography(p).tolist() == [[1, 0, 2.5], [0, 1, -3], [0, 0, 1]]
        for text, word in (('1 0 0\n0 1 0\n', '3x3'), ('1 0 0\n0 1 x\n0 0 1\n', 'not a number'),
                           ('1 1 0\n1 1 0\n0 0 1\n', 'singular'), ('1 0 0\n0 1 0\n0 0 nan\n', 'not a number')):
            with open(p, 'w') as f:
                f.write(text)
            try:
                ev.read_homography(p)
            except ev.DatasetError as e:
                assert word in str(e), (text, str(e))
            else:
                raise AssertionError(f'accepted {text!r}')
        img = os.path.join(d, 'a.ppm')
        with open(img, 'wb') as f:
            f.write(b'P6\n# a comment\n2 1\n255\n' + bytes([1, 2, 3, 4, 5, 6]))
        assert ev.read_ppm(img).tolist() == [[[1, 2, 3], [4, 5, 6]]]
        with open(img, 'wb') as f:
            f.write(b'P6\n2 1\n255\n' + bytes([1, 2, 3]))
        try:
            ev.read_ppm(img)
        except ev.DatasetError as e:
            assert 'truncated' in str(e)
        else:
            raise AssertionError('accepted a truncated PPM')


if __name__ == '__main__':
    tests = [v for k, v in sorted(globals().items()) if k.startswith('test_')]
    for t in tests:
        t()
    print(f'{len(tests)} passed, 0 failed')
