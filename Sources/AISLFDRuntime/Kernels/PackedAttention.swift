import CKernels

/// `softmax(Q K^T * scale) V` with the CKernels products, a block of queries
/// at a time. Keys (times `scale`) and values are packed once per call; for
/// each block the transposed scores S^T (N x block) are one product, the
/// softmax runs down its columns, and the output columns are V S^T divided
/// by the column sums. The block is at most 32 queries wide, so S^T
/// (N x 32 floats, 600 KB at N = 4800) stays in L2 between the three passes.
enum PackedAttention {
    static let widestBlock = 32

    /// `projections` holds query, key and value, each C x N (one position per
    /// column), stacked; the result is C x N. `budget` caps the floats of
    /// scores per thread.
    static func apply(_ projections: FeatureMap, scale: Float, budget: Int, level: SIMDLevel, workers: Workers) -> FeatureMap {
        let n = projections.planeSize, c = projections.channels / 3, cv = c
        var out = FeatureMap.uninitialized(channels: cv, height: projections.height, width: projections.width)
        guard n > 0 else { return out }
        let blockWidth = max(1, min(widestBlock, budget / n))
        let blocks = (n + blockWidth - 1) / blockWidth
        let lvl = Int32(level.rawValue)
        let packedKeys = UnsafeMutableBufferPointer<Float>.allocate(capacity: ckernels_packed_count(lvl, Int32(n), Int32(c)))
        let packedValues = UnsafeMutableBufferPointer<Float>.allocate(capacity: ckernels_packed_count(lvl, Int32(cv), Int32(n)))
        defer { packedKeys.deallocate(); packedValues.deallocate() }
        // K^T: row j (a key) is column j of the C x N map.
        projections.values.withUnsafeBufferPointer { qkv in
            packInParallel(qkv.baseAddress! + c * n, rowStride: 1, columnStride: n, rows: n, columns: c, scale: scale,
                           into: packedKeys.baseAddress!, level: lvl, workers: workers)
            packInParallel(qkv.baseAddress! + 2 * c * n, rowStride: n, columnStride: 1, rows: cv, columns: n, scale: 1,
                           into: packedValues.baseAddress!, level: lvl, workers: workers)
        }
        // A query block is copied to C rows of blockWidth floats (read from 128
        // rows a page apart, every product would miss the TLB); row j of S^T is
        // blockWidth floats too.
        let queryOffsets = (0..<c).map { $0 * blockWidth }
        let scoreOffsets = (0..<n).map { $0 * blockWidth }
        projections.values.withUnsafeBufferPointer { q in
            out.values.withUnsafeMutableBufferPointer { o in
                let q = q.baseAddress!, o = o.baseAddress!
                queryOffsets.withUnsafeBufferPointer { queryOffsets in
                    scoreOffsets.withUnsafeBufferPointer { scoreOffsets in
                        workers.forEachChunk(blocks) { blockRange in
                            let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * blockWidth)
                            let inverseSums = UnsafeMutablePointer<Float>.allocate(capacity: blockWidth)
                            let queryBlock = UnsafeMutablePointer<Float>.allocate(capacity: c * blockWidth)
                            defer { scores.deallocate(); inverseSums.deallocate(); queryBlock.deallocate() }
                            var none = ckernels_epilogue()
                            for block in blockRange {
                                let i0 = block * blockWidth, width = min(blockWidth, n - i0)
                                for ch in 0..<c { (queryBlock + ch * blockWidth).update(from: q + ch * n + i0, count: width) }
                                // S^T[j][i] = sum_ch (scale K)[ch][j] Q[ch][i0 + i]
                                ckernels_gemm(lvl, Int32(n), 1, Int32(width), Int32(c), packedKeys.baseAddress!, queryBlock, 0,
                                              queryOffsets.baseAddress!, scores, blockWidth, 0, &none)
                                ckernels_exp_columns(lvl, scores, Int32(n), Int32(width), blockWidth, inverseSums)
                                // out[ch][i0 + i] = sum_j V[ch][j] E^T[j][i], then / the column's sum.
                                ckernels_gemm(lvl, Int32(cv), 1, Int32(width), Int32(n), packedValues.baseAddress!, scores, 0,
                                              scoreOffsets.baseAddress!, o + i0, n, 0, &none)
                                for ch in 0..<cv {
                                    let column = o + ch * n + i0
                                    for i in 0..<width { column[i] *= inverseSums[i] }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// `ckernels_pack` of whole panels at a time, spread over the threads.
    static func packInParallel(_ a: UnsafePointer<Float>, rowStride: Int, columnStride: Int, rows: Int, columns: Int,
                               scale: Float, into packed: UnsafeMutablePointer<Float>, level: Int32, workers: Workers) {
        let panelRows = Int(ckernels_panel_rows(level))
        workers.forEachChunk((rows + panelRows - 1) / panelRows) { panels in
            let r0 = panels.lowerBound * panelRows, r1 = min(rows, panels.upperBound * panelRows)
            ckernels_pack(level, a + r0 * rowStride, rowStride, columnStride, Int32(r1 - r0), Int32(columns), scale,
                          packed + r0 * columns)
        }
    }
}
