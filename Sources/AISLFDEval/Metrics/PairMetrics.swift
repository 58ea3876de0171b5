import Foundation

/// A point (x, y) in float64.
public typealias Point = (x: Double, y: Double)

/// The metrics of one pair, docs/evaluation.md sections 4-6, from its selected keypoints,
/// matches, ground truth and image 0's shape: nothing else, so a dump can be re-scored.
public struct PairMetrics: Sendable, Equatable {
    public var keypoints0: Int
    public var keypoints1: Int
    public var matches: Int
    /// 1 when the estimated homography's mean corner error is at most the threshold, else 0.
    public var hEstimation: Double
    /// nil without an estimate (or when a corner went to infinity).
    public var cornerError: Double?
    public var precision: Double
    public var recall: Double
    /// Precision at 1, 2, ..., 10 px.
    public var mma: [Double]
    public var estimated: Homography?

    public static let mmaThresholds = Array(1...10).map(Double.init)

    /// `shape0` is (height, width) of image 0; `matches` are (index in kp0, index in kp1).
    /// `estimator` gives the H-estimation its homography (OpenCV's RANSAC defaults: 3 px
    /// whatever `threshold` is, as LISRD calls it).
    public static func compute(keypoints0 kp0: [Point], keypoints1 kp1: [Point], matches: [(Int, Int)], truth: Homography,
                               shape0: (height: Int, width: Int), threshold: Double = 3,
                               estimator: HomographyEstimator = HomographyEstimator()) -> PairMetrics {
        let m0 = matches.map { kp0[$0.0] }, m1 = matches.map { kp1[$0.1] }
        let inverse = truth.inverse

        // 4. H-estimation: image 0's corners through the estimate and back through the truth.
        var estimated: Homography? = nil
        var cornerError: Double? = nil
        if matches.count >= 4, let result = estimator.estimate(zip(m0, m1).map { Correspondence(source: $0, target: $1) }) {
            estimated = result.homography
            let (h, w) = (Double(shape0.height), Double(shape0.width))
            let corners: [Point] = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]
            var total = 0.0
            for c in corners { total += distance(warp(warp(c, result.homography), inverse), c) }
            let mean = total / 4
            cornerError = mean.isFinite ? mean : nil
        }
        let hEstimation = (cornerError.map { $0 <= threshold } ?? false) ? 1.0 : 0.0

        // 5. Precision, measured in both images.
        let dist0 = zip(m0, m1).map { distance($0, warp($1, inverse)) }
        let dist1 = zip(m0, m1).map { distance($1, warp($0, truth)) }
        func precision(_ t: Double) -> Double {
            guard !matches.isEmpty else { return 0 }
            let n = Double(matches.count)
            return (Double(dist0.filter { $0 <= t }.count) / n + Double(dist1.filter { $0 <= t }.count) / n) / 2
        }

        // 6. Recall over every selected keypoint of image 0.
        var recall = 0.0
        if !kp0.isEmpty, !kp1.isEmpty, !matches.isEmpty {
            var closest = [Int](repeating: 0, count: kp0.count), hasCorrespondent = [Bool](repeating: false, count: kp0.count)
            for (i, p) in kp0.enumerated() {
                let q = warp(p, truth)
                var best = Double.infinity, arg = 0
                for (j, k) in kp1.enumerated() {
                    let d = distance(q, k)
                    if d < best { best = d; arg = j }   // NaN never wins: it counts as +inf
                }
                closest[i] = arg
                hasCorrespondent[i] = best <= threshold
            }
            let correct = matches.filter { closest[$0.0] == $0.1 && hasCorrespondent[$0.0] }.count
            let total = hasCorrespondent.filter { $0 }.count
            if total > 0 { recall = Double(correct) / Double(total) }
        }
        return PairMetrics(keypoints0: kp0.count, keypoints1: kp1.count, matches: matches.count, hEstimation: hEstimation,
                           cornerError: cornerError, precision: precision(threshold), recall: recall,
                           mma: mmaThresholds.map(precision), estimated: estimated)
    }

    /// p through h: (u / w, v / w); w = 0 gives infinities or NaN as IEEE division does.
    public static func warp(_ p: Point, _ h: Homography?) -> Point {
        guard let h else { return (.nan, .nan) }
        let v = h.values
        let u = p.x * v[0] + p.y * v[1] + v[2], t = p.x * v[3] + p.y * v[4] + v[5], w = p.x * v[6] + p.y * v[7] + v[8]
        return (u / w, t / w)
    }

    static func distance(_ a: Point, _ b: Point) -> Double {
        ((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)).squareRoot()
    }

    public static func == (a: PairMetrics, b: PairMetrics) -> Bool {
        a.keypoints0 == b.keypoints0 && a.keypoints1 == b.keypoints1 && a.matches == b.matches && a.hEstimation == b.hEstimation
            && a.cornerError == b.cornerError && a.precision == b.precision && a.recall == b.recall && a.mma == b.mma
            && a.estimated == b.estimated
    }
}

/// LISRD's select_k_best (docs/evaluation.md section 2): the indices, in input order, of the
/// `k` best-scoring keypoints among those whose image under `h` lies at least `margin` px
/// inside `otherShape` (lower bound inclusive, upper exclusive); ties go to the earlier index.
public func selectKBest(_ points: [Point], scores: [Double], k: Int, h: Homography?, otherShape: (height: Int, width: Int),
                        margin: Double = 3) -> [Int] {
    let valid = points.indices.filter { i in
        let q = PairMetrics.warp(points[i], h)
        return q.x >= margin && q.x < Double(otherShape.width) - margin && q.y >= margin && q.y < Double(otherShape.height) - margin
    }
    let best = valid.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.prefix(max(0, k))
    return best.sorted()
}
