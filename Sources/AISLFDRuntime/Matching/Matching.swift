import Foundation

/// How two local descriptors are compared inside Eq. 1.
public enum DistanceKind: String, CaseIterable, Sendable {
    /// The paper's Eq. 1: `||l_q - l_k||_2`.
    case eq1
    /// LISRD's own code: `2 - 2 l_q . l_k`.
    case squared
}

public struct Match: Sendable, Equatable {
    public let index0: Int
    public let index1: Int
    public let distance: Float

    public init(index0: Int, index1: Int, distance: Float) {
        self.index0 = index0
        self.index1 = index1
        self.distance = distance
    }
}

/// Eq. 1 and mutual nearest neighbours. The distances of a block of rows
/// are computed at once (dot products through sgemm), so memory grows with
/// the second set's size times the block, never with the product of both.
public enum Matching {
    static let blockBudget = 1 << 20

    /// `dis(q, k) = sum_s softmax_s(m_s^q . m_s^k) * d_s(q, k)`, row-major
    /// [a.count, b.count]. For large sets prefer `mutualNearestNeighbours`,
    /// which never holds the whole matrix.
    public static func distances(_ a: KeypointDescriptors, _ b: KeypointDescriptors, kind: DistanceKind = .eq1) throws -> [Float] {
        try check(a, b)
        var out = [Float](repeating: 0, count: a.count * b.count)
        forEachBlock(a, b, kind: kind) { rows, block in
            for (i, r) in rows.enumerated() {
                for j in 0..<b.count { out[r * b.count + j] = block[i * b.count + j] }
            }
        }
        return out
    }

    /// Pairs (i, j) where j is i's nearest neighbour in `b` and i is j's in
    /// `a`, in increasing i. Ties go to the lowest index.
    public static func mutualNearestNeighbours(_ a: KeypointDescriptors, _ b: KeypointDescriptors,
                                               kind: DistanceKind = .eq1) throws -> [Match] {
        try check(a, b)
        var rowBest = [Int](repeating: -1, count: a.count), rowDistance = [Float](repeating: .infinity, count: a.count)
        var columnBest = [Int](repeating: -1, count: b.count), columnDistance = [Float](repeating: .infinity, count: b.count)
        forEachBlock(a, b, kind: kind) { rows, block in
            for (i, r) in rows.enumerated() {
                for j in 0..<b.count {
                    let d = block[i * b.count + j]
                    // Strictly smaller only: the first (lowest) index wins a tie.
                    if d < rowDistance[r] { rowDistance[r] = d; rowBest[r] = j }
                    if d < columnDistance[j] { columnDistance[j] = d; columnBest[j] = r }
                }
            }
        }
        return (0..<a.count).compactMap { i in
            let j = rowBest[i]
            return j >= 0 && columnBest[j] == i ? Match(index0: i, index1: j, distance: rowDistance[i]) : nil
        }
    }

    private static func check(_ a: KeypointDescriptors, _ b: KeypointDescriptors) throws {
        guard a.metaDimension == b.metaDimension else {
            throw RuntimeError.incompatibleDescriptors("meta descriptors have \(a.metaDimension) and \(b.metaDimension) channels")
        }
    }

    /// Calls `body` with consecutive blocks of rows of the distance matrix.
    private static func forEachBlock(_ a: KeypointDescriptors, _ b: KeypointDescriptors, kind: DistanceKind,
                                     _ body: (Range<Int>, UnsafeBufferPointer<Float>) -> Void) {
        let na = a.count, nb = b.count, v = KeypointDescriptors.variants, c = descriptorChannels, d = a.metaDimension
        guard na > 0, nb > 0 else { return }
        let blockRows = min(na, max(1, blockBudget / (nb * (2 * v + 1))))
        let squaredNorms = { (x: [Float], count: Int, width: Int) -> [Float] in
            (0..<(count * v)).map { i in (0..<width).reduce(Float(0)) { $0 + x[i * width + $1] * x[i * width + $1] } }
        }
        let normsA = squaredNorms(a.local, na, c), normsB = squaredNorms(b.local, nb, c)
        // Per variant: local dot products, then meta dot products, each blockRows x nb.
        var dots = [Float](repeating: 0, count: 2 * v * blockRows * nb)
        var result = [Float](repeating: 0, count: blockRows * nb)
        a.local.withUnsafeBufferPointer { la in b.local.withUnsafeBufferPointer { lb in
        a.meta.withUnsafeBufferPointer { ma in b.meta.withUnsafeBufferPointer { mb in
        dots.withUnsafeMutableBufferPointer { dots in result.withUnsafeMutableBufferPointer { result in
            let dots = dots, result = result
            var row0 = 0
            while row0 < na {
                let rows = min(blockRows, na - row0)
                let plane = rows * nb
                for s in 0..<v {
                    sgemm(transposeB: true, m: rows, n: nb, k: c, a: la.baseAddress! + (row0 * v + s) * c, lda: v * c,
                          b: lb.baseAddress! + s * c, ldb: v * c, c: dots.baseAddress! + s * plane, ldc: nb)
                    sgemm(transposeB: true, m: rows, n: nb, k: d, a: ma.baseAddress! + (row0 * v + s) * d, lda: v * d,
                          b: mb.baseAddress! + s * d, ldb: v * d, c: dots.baseAddress! + (v + s) * plane, ldc: nb)
                }
                RuntimeThreads.forEachChunk(rows, minimumChunk: 8) { range in
                    for i in range {
                        for j in 0..<nb {
                            let p = i * nb + j
                            var m = -Float.infinity
                            for s in 0..<v { m = max(m, dots[(v + s) * plane + p]) }
                            var weightSum: Float = 0, total: Float = 0
                            for s in 0..<v {
                                let weight = Foundation.exp(dots[(v + s) * plane + p] - m)
                                let dot = dots[s * plane + p]
                                let distance: Float
                                switch kind {
                                case .eq1:
                                    distance = max(normsA[(row0 + i) * v + s] + normsB[j * v + s] - 2 * dot, 0).squareRoot()
                                case .squared:
                                    distance = 2 - 2 * dot
                                }
                                weightSum += weight
                                total += weight * distance
                            }
                            result[p] = total / weightSum
                        }
                    }
                }
                body(row0..<(row0 + rows), UnsafeBufferPointer(rebasing: result[0..<plane]))
                row0 += rows
            }
        }}}}}}
    }
}
