import Foundation
import AISLFDCore

/// A point correspondence: `source` in the first image, `target` in the second.
public struct Correspondence: Sendable, Equatable {
    public var source: (x: Double, y: Double)
    public var target: (x: Double, y: Double)

    public init(source: (x: Double, y: Double), target: (x: Double, y: Double)) {
        self.source = source
        self.target = target
    }

    public static func == (a: Correspondence, b: Correspondence) -> Bool {
        a.source == b.source && a.target == b.target
    }
}

/// The homography through a set of correspondences with outliers, the way OpenCV's
/// `findHomography(method=RANSAC)` defines it (the reference the tests compare with):
/// RANSAC over minimal samples of 4 (samples with three collinear points, or whose points
/// change orientation between the images, are drawn again), each fitted by normalised DLT;
/// a correspondence is an inlier when its forward reprojection error is at most
/// `threshold`; the iteration count adapts to reach `confidence`; the best model is refitted
/// on all its inliers by DLT and refined by Levenberg-Marquardt on their reprojection errors.
/// Seeded: the same input gives the same answer.
public struct HomographyEstimator: Sendable {
    public var threshold = 3.0
    public var confidence = 0.995
    public var maximumIterations = 2000
    public var seed: UInt64 = 1

    public init(threshold: Double = 3, confidence: Double = 0.995, maximumIterations: Int = 2000, seed: UInt64 = 1) {
        self.threshold = threshold
        self.confidence = confidence
        self.maximumIterations = maximumIterations
        self.seed = seed
    }

    public struct Result: Sendable, Equatable {
        public var homography: Homography
        /// One flag per correspondence.
        public var inliers: [Bool]
        public var iterations: Int
    }

    /// nil when there is no homography: fewer than 4 correspondences, or no sample of 4 that
    /// is not degenerate.
    public func estimate(_ pairs: [Correspondence]) -> Result? {
        let n = pairs.count
        guard n >= 4, pairs.allSatisfy({ $0.source.x.isFinite && $0.source.y.isFinite && $0.target.x.isFinite && $0.target.y.isFinite })
        else { return nil }
        if n == 4 {
            guard Self.isGoodSample(pairs), let h = Self.fitDLT(pairs) else { return nil }
            return Result(homography: h, inliers: [Bool](repeating: true, count: 4), iterations: 1)
        }
        var random = SplitMix64(seed: seed)
        var best: (h: Homography, inliers: [Bool], count: Int)? = nil
        var iterations = maximumIterations, done = 0
        let limit = threshold * threshold
        while done < iterations {
            done += 1
            // A set where 1000 draws find no good sample has none worth searching for.
            guard let sample = drawSample(pairs, &random) else { break }
            guard let h = Self.fitDLT(sample) else { continue }
            let flags = pairs.map { Self.squaredError(h, $0).map { $0 <= limit } ?? false }
            let count = flags.reduce(0) { $0 + ($1 ? 1 : 0) }
            if count > max(best?.count ?? 0, 3) {
                best = (h, flags, count)
                iterations = min(iterations, Self.iterationsNeeded(confidence: confidence, outlierShare: Double(n - count) / Double(n),
                                                                   current: iterations))
            }
        }
        guard let found = best else { return nil }
        let inlierPairs = zip(pairs, found.inliers).filter { $0.1 }.map(\.0)
        var h = Self.fitDLT(inlierPairs) ?? found.h
        h = Self.refine(h, inlierPairs)
        return Result(homography: h.normalized, inliers: found.inliers, iterations: done)
    }

    /// RANSAC's adaptive count: samples needed so that one is outlier-free with
    /// probability `confidence`, never more than `current`.
    static func iterationsNeeded(confidence: Double, outlierShare: Double, current: Int) -> Int {
        let p = max(min(confidence, 1), 0), e = max(min(outlierShare, 1), 0)
        let numerator = log(max(1 - p, Double.leastNormalMagnitude))
        let denominator = log(max(1 - pow(1 - e, 4), Double.leastNormalMagnitude))
        guard denominator < 0, -numerator < Double(current) * -denominator else { return current }
        return Int((numerator / denominator).rounded())
    }

    /// Four distinct correspondences forming a good sample, drawn at most 1000 times.
    private func drawSample(_ pairs: [Correspondence], _ random: inout SplitMix64) -> [Correspondence]? {
        for _ in 0..<1000 {
            var indices: [Int] = []
            while indices.count < 4 {
                let i = Int(random.next() % UInt64(pairs.count))
                if !indices.contains(i) { indices.append(i) }
            }
            let sample = indices.map { pairs[$0] }
            if Self.isGoodSample(sample) { return sample }
        }
        return nil
    }

    /// No three points collinear in either image, and every triple keeps its orientation
    /// (a homography of a real scene does not mirror it).
    static func isGoodSample(_ s: [Correspondence]) -> Bool {
        let a = s.map(\.source), b = s.map(\.target)
        for i in 0..<4 {
            for j in (i + 1)..<4 {
                for k in (j + 1)..<4 {
                    let ta = turn(a[i], a[j], a[k]), tb = turn(b[i], b[j], b[k])
                    if ta.collinear || tb.collinear || (ta.cross > 0) != (tb.cross > 0) { return false }
                }
            }
        }
        return true
    }

    private static func turn(_ p: (x: Double, y: Double), _ q: (x: Double, y: Double), _ r: (x: Double, y: Double)) -> (cross: Double, collinear: Bool) {
        let dx1 = q.x - p.x, dy1 = q.y - p.y, dx2 = r.x - p.x, dy2 = r.y - p.y
        let cross = dx1 * dy2 - dy1 * dx2
        // Relative to the lengths involved, in float precision as the points' own accuracy.
        return (cross, abs(cross) <= Double(Float.ulpOfOne) * (abs(dx1) + abs(dy1) + abs(dx2) + abs(dy2)))
    }

    /// Forward reprojection error squared, or nil where the point maps to infinity.
    static func squaredError(_ h: Homography, _ c: Correspondence) -> Double? {
        guard let p = h.apply(c.source.x, c.source.y) else { return nil }
        let dx = p.x - c.target.x, dy = p.y - c.target.y
        return dx * dx + dy * dy
    }

    /// Normalised DLT: each point set moved to its centroid and scaled to unit mean absolute
    /// deviation per axis, the 9-vector minimising |A h| with |h| = 1 (the eigenvector of
    /// AᵀA with the least eigenvalue), mapped back. nil for degenerate input.
    static func fitDLT(_ pairs: [Correspondence]) -> Homography? {
        guard pairs.count >= 4 else { return nil }
        guard let ns = Normalization(pairs.map(\.source)), let nt = Normalization(pairs.map(\.target)) else { return nil }
        var ata = [Double](repeating: 0, count: 81)
        for c in pairs {
            let (x, y) = ns.apply(c.source), (u, v) = nt.apply(c.target)
            let rows: [[Double]] = [[x, y, 1, 0, 0, 0, -u * x, -u * y, -u], [0, 0, 0, x, y, 1, -v * x, -v * y, -v]]
            for r in rows {
                for i in 0..<9 where r[i] != 0 {
                    for j in 0..<9 { ata[i * 9 + j] += r[i] * r[j] }
                }
            }
        }
        guard let h = SymmetricEigen.leastEigenvector(ata, size: 9) else { return nil }
        // H = Tt⁻¹ Ĥ Ts.
        let result = nt.inverseMatrix.composed(after: Homography(h)).composed(after: ns.matrix)
        guard result.values.allSatisfy(\.isFinite), result.values[8] != 0 else { return nil }
        return result.normalized
    }

    /// Levenberg-Marquardt on the sum of squared forward reprojection errors, h8 fixed at 1.
    static func refine(_ start: Homography, _ pairs: [Correspondence], iterations: Int = 10) -> Homography {
        var h = start.normalized
        guard pairs.count >= 4, h.values[8] == 1 else { return h }
        func cost(_ h: Homography) -> Double {
            pairs.reduce(0) { $0 + (squaredError(h, $1) ?? .infinity) }
        }
        var current = cost(h), lambda = 1e-3
        for _ in 0..<iterations {
            var jtj = [Double](repeating: 0, count: 64), jtr = [Double](repeating: 0, count: 8)
            let v = h.values
            for c in pairs {
                let x = c.source.x, y = c.source.y
                let w = v[6] * x + v[7] * y + 1
                guard w != 0 else { continue }
                let px = (v[0] * x + v[1] * y + v[2]) / w, py = (v[3] * x + v[4] * y + v[5]) / w
                let rx = px - c.target.x, ry = py - c.target.y
                let jx: [Double] = [x / w, y / w, 1 / w, 0, 0, 0, -px * x / w, -px * y / w]
                let jy: [Double] = [0, 0, 0, x / w, y / w, 1 / w, -py * x / w, -py * y / w]
                for i in 0..<8 {
                    jtr[i] += jx[i] * rx + jy[i] * ry
                    for j in 0..<8 { jtj[i * 8 + j] += jx[i] * jx[j] + jy[i] * jy[j] }
                }
            }
            var improved = false
            for _ in 0..<10 {
                var a = jtj
                for i in 0..<8 { a[i * 8 + i] *= 1 + lambda }
                guard let step = solve(a, jtr.map { -$0 }, size: 8) else { lambda *= 10; continue }
                let candidate = Homography((0..<8).map { v[$0] + step[$0] } + [1])
                let c = cost(candidate)
                if c < current {
                    h = candidate
                    current = c
                    lambda = max(lambda / 10, 1e-12)
                    improved = true
                    break
                }
                lambda *= 10
            }
            if !improved { break }
        }
        return h
    }

    /// Gaussian elimination with partial pivoting; nil for a singular system.
    static func solve(_ matrix: [Double], _ rhs: [Double], size n: Int) -> [Double]? {
        var a = matrix, b = rhs
        for col in 0..<n {
            var pivot = col
            for r in (col + 1)..<n where abs(a[r * n + col]) > abs(a[pivot * n + col]) { pivot = r }
            guard abs(a[pivot * n + col]) > 1e-300 else { return nil }
            if pivot != col {
                for k in 0..<n { a.swapAt(col * n + k, pivot * n + k) }
                b.swapAt(col, pivot)
            }
            for r in (col + 1)..<n {
                let f = a[r * n + col] / a[col * n + col]
                if f == 0 { continue }
                for k in col..<n { a[r * n + k] -= f * a[col * n + k] }
                b[r] -= f * b[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = b[r]
            for k in (r + 1)..<n { s -= a[r * n + k] * x[k] }
            x[r] = s / a[r * n + r]
        }
        return x.allSatisfy(\.isFinite) ? x : nil
    }
}

/// A point set moved to its centroid and scaled per axis to unit mean absolute deviation.
private struct Normalization {
    let cx: Double, cy: Double, sx: Double, sy: Double

    init?(_ points: [(x: Double, y: Double)]) {
        let n = Double(points.count)
        let mx = points.reduce(0) { $0 + $1.x } / n, my = points.reduce(0) { $0 + $1.y } / n
        let dx = points.reduce(0) { $0 + abs($1.x - mx) } / n, dy = points.reduce(0) { $0 + abs($1.y - my) } / n
        cx = mx
        cy = my
        guard dx > 0, dy > 0, dx.isFinite, dy.isFinite else { return nil }
        sx = 1 / dx
        sy = 1 / dy
    }

    func apply(_ p: (x: Double, y: Double)) -> (Double, Double) { ((p.x - cx) * sx, (p.y - cy) * sy) }

    var matrix: Homography { Homography([sx, 0, -cx * sx, 0, sy, -cy * sy, 0, 0, 1]) }
    var inverseMatrix: Homography { Homography([1 / sx, 0, cx, 0, 1 / sy, cy, 0, 0, 1]) }
}

/// Eigenvectors of small symmetric matrices by cyclic Jacobi rotations (robust, and 9x9 is tiny).
enum SymmetricEigen {
    /// The unit eigenvector of the least eigenvalue of the symmetric `size` x `size` matrix.
    static func leastEigenvector(_ matrix: [Double], size n: Int) -> [Double]? {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in (i + 1)..<n { off += a[i * n + j] * a[i * n + j] } }
            if off < 1e-30 { break }
            for p in 0..<n {
                for q in (p + 1)..<n where a[p * n + q] != 0 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        guard a.allSatisfy(\.isFinite) else { return nil }
        let least = (0..<n).min { a[$0 * n + $0] < a[$1 * n + $1] }!
        let vector = (0..<n).map { v[$0 * n + least] }
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? vector.map { $0 / norm } : nil
    }
}
