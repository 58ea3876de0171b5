import Dispatch
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

/// Eq. 1 and mutual nearest neighbours. Distances are computed a block of
/// rows at a time (dot products through sgemm), so memory grows with the
/// second set's size times the block, never with the product of both;
/// threads take runs of blocks.
public enum Matching {
    static let blockBudget = 1 << 18

    /// `dis(q, k) = sum_s softmax_s(m_s^q . m_s^k) * d_s(q, k)`, row-major
    /// [a.count, b.count]. For large sets prefer `mutualNearestNeighbours`,
    /// which never holds the whole matrix.
    public static func distances(_ a: KeypointDescriptors, _ b: KeypointDescriptors, kind: DistanceKind = .eq1,
                                 threads: Int? = nil) throws -> [Float] {
        try check(a, b)
        var out = [Float](repeating: 0, count: a.count * b.count)
        out.withUnsafeMutableBufferPointer { out in
            let out = out
            forEachBlock(a, b, kind: kind, chunks: RuntimeConfiguration(threads: threads).threads) { _, rows, block in
                for (i, r) in rows.enumerated() {
                    for j in 0..<b.count { out[r * b.count + j] = block[i * b.count + j] }
                }
            }
        }
        return out
    }

    /// Pairs (i, j) where j is i's nearest neighbour in `b` and i is j's in
    /// `a`, in increasing i. Ties go to the lowest index on both sides. `threads`: all cores
    /// unless given.
    public static func mutualNearestNeighbours(_ a: KeypointDescriptors, _ b: KeypointDescriptors,
                                               kind: DistanceKind = .eq1, threads: Int? = nil) throws -> [Match] {
        try check(a, b)
        let nb = b.count, chunks = RuntimeConfiguration(threads: threads).threads
        var rowBest = [Int](repeating: -1, count: a.count), rowDistance = [Float](repeating: .infinity, count: a.count)
        // Column minima per thread, merged afterwards in row order.
        var columnBest = [Int](repeating: -1, count: chunks * nb), columnDistance = [Float](repeating: .infinity, count: chunks * nb)
        rowBest.withUnsafeMutableBufferPointer { rowBest in rowDistance.withUnsafeMutableBufferPointer { rowDistance in
        columnBest.withUnsafeMutableBufferPointer { columnBest in columnDistance.withUnsafeMutableBufferPointer { columnDistance in
            let rowBest = rowBest, rowDistance = rowDistance, columnBest = columnBest, columnDistance = columnDistance
            forEachBlock(a, b, kind: kind, chunks: chunks) { chunk, rows, block in
                let cb = columnBest.baseAddress! + chunk * nb, cd = columnDistance.baseAddress! + chunk * nb
                for (i, r) in rows.enumerated() {
                    for j in 0..<nb {
                        let d = block[i * nb + j]
                        // Strictly smaller only: the first (lowest) index keeps a tie.
                        if d < rowDistance[r] { rowDistance[r] = d; rowBest[r] = j }
                        if d < cd[j] { cd[j] = d; cb[j] = r }
                    }
                }
            }
        }}}}
        for chunk in 1..<chunks {
            for j in 0..<nb where columnDistance[chunk * nb + j] < columnDistance[j] {
                columnDistance[j] = columnDistance[chunk * nb + j]
                columnBest[j] = columnBest[chunk * nb + j]
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

    /// Splits the rows of `a` into `chunks` contiguous runs (lower chunks hold
    /// lower rows), one per thread, and calls `body(chunk, rows, distances)`
    /// for consecutive blocks of each run.
    private static func forEachBlock(_ a: KeypointDescriptors, _ b: KeypointDescriptors, kind: DistanceKind,
                                     chunks: Int,
                                     _ body: (Int, Range<Int>, UnsafeBufferPointer<Float>) -> Void) {
        let na = a.count, nb = b.count, v = KeypointDescriptors.variants, c = descriptorChannels, d = a.metaDimension
        guard na > 0, nb > 0 else { return }
        let blockRows = min((na + chunks - 1) / chunks, max(1, blockBudget / nb))
        let normsA = squaredNorms(a.local, count: na * v, width: c), normsB = squaredNorms(b.local, count: nb * v, width: c)
        a.local.withUnsafeBufferPointer { la in b.local.withUnsafeBufferPointer { lb in
        a.meta.withUnsafeBufferPointer { ma in b.meta.withUnsafeBufferPointer { mb in
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let rowsOfChunk = (na * chunk / chunks)..<(na * (chunk + 1) / chunks)
                // Per variant: local dot products, then meta dot products, each blockRows x nb.
                var dots = [Float](repeating: 0, count: 2 * v * blockRows * nb)
                var result = [Float](repeating: 0, count: blockRows * nb)
                var row0 = rowsOfChunk.lowerBound
                while row0 < rowsOfChunk.upperBound {
                    let rows = min(blockRows, rowsOfChunk.upperBound - row0)
                    let plane = rows * nb
                    dots.withUnsafeMutableBufferPointer { dots in
                        for s in 0..<v {
                            sgemm(transposeB: true, m: rows, n: nb, k: c, a: la.baseAddress! + (row0 * v + s) * c, lda: v * c,
                                  b: lb.baseAddress! + s * c, ldb: v * c, c: dots.baseAddress! + s * plane, ldc: nb)
                            sgemm(transposeB: true, m: rows, n: nb, k: d, a: ma.baseAddress! + (row0 * v + s) * d, lda: v * d,
                                  b: mb.baseAddress! + s * d, ldb: v * d, c: dots.baseAddress! + (v + s) * plane, ldc: nb)
                        }
                    }
                    for i in 0..<rows {
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
                                    // ||x - y|| from the dot product, as torch.cdist computes it.
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
                    result.withUnsafeBufferPointer { body(chunk, row0..<(row0 + rows), UnsafeBufferPointer(rebasing: $0[0..<plane])) }
                    row0 += rows
                }
            }
        }}}}
    }

    private static func squaredNorms(_ x: [Float], count: Int, width: Int) -> [Float] {
        (0..<count).map { i in
            var sum: Float = 0
            for j in 0..<width { sum += x[i * width + j] * x[i * width + j] }
            return sum
        }
    }
}
