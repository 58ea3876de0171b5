/// `softmax(Q K^T * scale) V` one block of query rows at a time: the scores of
/// a block (rows x N) are the only N-sized buffer, so memory grows with
/// N * block * threads. Each block's score rows are complete, so its softmax
/// is the exact one (no running rescaling needed). Threads take runs of blocks.
enum BlockAttention {
    /// `query`, `key`, `value` are C x N (one position per column), as a
    /// 1x1 convolution leaves them; so is the result.
    static func apply(query: FeatureMap, key: FeatureMap, value: FeatureMap, scale: Float, budget: Int) -> FeatureMap {
        let n = query.planeSize, c = query.channels, cv = value.channels
        var out = FeatureMap.uninitialized(channels: cv, height: query.height, width: query.width)
        guard n > 0 else { return out }
        let evenRows = (n + RuntimeThreads.count - 1) / RuntimeThreads.count
        let blockRows = min(evenRows, max(16, budget / n))
        let blocks = (n + blockRows - 1) / blockRows
        query.values.withUnsafeBufferPointer { q in
            key.values.withUnsafeBufferPointer { k in
                value.values.withUnsafeBufferPointer { v in
                    out.values.withUnsafeMutableBufferPointer { o in
                        let o = o
                        RuntimeThreads.forEachChunk(blocks) { blockRange in
                            var scores = [Float](unsafeUninitializedCapacity: blockRows * n) { _, count in count = blockRows * n }
                            var inverseSums = [Float](repeating: 0, count: blockRows)
                            scores.withUnsafeMutableBufferPointer { s in
                                for block in blockRange {
                                    let row0 = block * blockRows, rows = min(blockRows, n - row0)
                                    // S[rows x N] = Q[row0.., :] K^T: Q is stored C x N, hence transposed.
                                    sgemm(transposeA: true, m: rows, n: n, k: c, alpha: scale,
                                          a: q.baseAddress! + row0, lda: n, b: k.baseAddress!, ldb: n,
                                          c: s.baseAddress!, ldc: n)
                                    for r in 0..<rows { inverseSums[r] = 1 / expRow(s.baseAddress! + r * n, count: n) }
                                    // out[:, row0..] (C x rows) = V (C x N) E^T, then each column
                                    // divided by its row's sum: softmax's normalisation costs
                                    // C x rows multiplications instead of a pass over the scores.
                                    sgemm(transposeB: true, m: cv, n: rows, k: n,
                                          a: v.baseAddress!, lda: n, b: s.baseAddress!, ldb: n,
                                          c: o.baseAddress! + row0, ldc: n)
                                    for ch in 0..<cv {
                                        let column = o.baseAddress! + ch * n + row0
                                        for r in 0..<rows { column[r] *= inverseSums[r] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// `row[i] = exp(row[i] - max(row))`; returns the sum (softmax's denominator).
    static func expRow(_ row: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, row[i]) }
        return FastExp.expSubtracting(m, row, count: count)
    }
}
