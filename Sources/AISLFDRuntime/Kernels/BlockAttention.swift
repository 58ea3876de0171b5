/// `softmax(Q K^T * scale) V` one block of query rows at a time: the scores of
/// a block (rows x N) are the only N-sized buffer, so memory grows with
/// N * block * threads. Each block's score rows are complete, so its softmax
/// is the exact one (no running rescaling needed). Threads take runs of blocks.
/// The portable path (OpenBLAS); CKernels levels use PackedAttention.
enum BlockAttention {
    /// `projections` holds query, key and value, each C x N (one position per
    /// column), stacked as a 1x1 convolution leaves them; the result is C x N.
    static func apply(_ projections: FeatureMap, scale: Float, budget: Int, workers: Workers) -> FeatureMap {
        let n = projections.planeSize, c = projections.channels / 3, cv = c
        var out = FeatureMap.uninitialized(channels: cv, height: projections.height, width: projections.width)
        guard n > 0 else { return out }
        let pieces = workers.pieces
        let blockRows = min((n + pieces - 1) / pieces, max(16, budget / n))
        let blocks = (n + blockRows - 1) / blockRows
        projections.values.withUnsafeBufferPointer { qkv in
            out.values.withUnsafeMutableBufferPointer { o in
                let q = qkv.baseAddress!, k = q + c * n, v = q + 2 * c * n, o = o.baseAddress!
                workers.forEachChunk(blocks) { blockRange in
                    let scores = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * n)
                    let inverseSums = UnsafeMutablePointer<Float>.allocate(capacity: blockRows)
                    defer { scores.deallocate(); inverseSums.deallocate() }
                    for block in blockRange {
                        let row0 = block * blockRows, rows = min(blockRows, n - row0)
                        // S[rows x N] = Q[row0.., :] K^T: Q is stored C x N, hence transposed.
                        sgemm(transposeA: true, m: rows, n: n, k: c, alpha: scale,
                              a: q + row0, lda: n, b: k, ldb: n, c: scores, ldc: n)
                        for r in 0..<rows { inverseSums[r] = 1 / expRow(scores + r * n, count: n) }
                        // out[:, row0..] (C x rows) = V (C x N) E^T, then each column
                        // divided by its row's sum: softmax's normalisation costs
                        // C x rows multiplications instead of a pass over the scores.
                        sgemm(transposeB: true, m: cv, n: rows, k: n, a: v, lda: n, b: scores, ldb: n, c: o + row0, ldc: n)
                        for ch in 0..<cv {
                            let column = o + ch * n + row0
                            for r in 0..<rows { column[r] *= inverseSums[r] }
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
