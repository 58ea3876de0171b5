/// NetVLAD aggregation over a 3x3 grid of tiles (architectures.md, NetVLAD
/// steps 2-3), given the L2-normalised map (its height and width multiples
/// of 3) and the soft-assignment logits.
enum NetVLADKernel {
    static let grid = 3

    static func apply(normalized x: FeatureMap, logits: FeatureMap, centroids: [Float], workers: Workers) -> FeatureMap {
        let clusters = logits.channels, channels = x.channels
        let tiles = grid * grid
        let dimension = clusters * channels
        // Each tile's positions gathered next to each other (tile-major, then
        // channel): the sums below run over contiguous values.
        let tileX = TileMajor(x, grid: grid, workers: workers)
        var assignment = TileMajor(logits, grid: grid, workers: workers)
        softmaxOverClusters(&assignment.values, clusters: clusters, positions: assignment.tileSize * tiles, workers: workers)
        // One VLAD vector per tile, k-major; (tile, cluster) pairs run in parallel
        // (9 tiles alone would leave one of two threads idle a ninth of the time).
        var vlads = [Float](repeating: 0, count: tiles * dimension)
        let q = tileX.tileSize
        tileX.values.withUnsafeBufferPointer { xs in
            assignment.values.withUnsafeBufferPointer { a in
                centroids.withUnsafeBufferPointer { centroids in
                    vlads.withUnsafeMutableBufferPointer { results in
                        let results = results
                        workers.forEachChunk(tiles * clusters) { range in
                            for item in range {
                                let t = item / clusters, k = item % clusters
                                let weights = a.baseAddress! + (t * clusters + k) * q
                                let v = results.baseAddress! + t * dimension + k * channels
                                for d in 0..<channels {
                                    v[d] = weightedResidualSum(weights, xs.baseAddress! + (t * channels + d) * q, count: q,
                                                               centre: centroids[k * channels + d])
                                }
                                normalizeL2(v, count: channels)
                            }
                        }
                    }
                }
            }
        }
        var out = FeatureMap.zeros(channels: dimension, height: grid, width: grid)
        for t in 0..<tiles {
            vlads.withUnsafeMutableBufferPointer { normalizeL2($0.baseAddress! + t * dimension, count: dimension) }
            for i in 0..<dimension { out.values[i * tiles + t] = vlads[t * dimension + i] }
        }
        return out
    }

    /// sum_i w[i] * (x[i] - centre), in eight float partial sums (as PyTorch,
    /// float; the partial sums keep the rounding below a plain running sum's).
    @inline(__always)
    static func weightedResidualSum(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int, centre: Float) -> Float {
        var acc = SIMD8<Float>(), i = 0
        let c = SIMD8<Float>(repeating: centre)
        while i + 8 <= count {
            let wv = UnsafeRawPointer(w + i).loadUnaligned(as: SIMD8<Float>.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            acc += wv * (xv - c)
            i += 8
        }
        var tail: Float = 0
        while i < count { tail += w[i] * (x[i] - centre); i += 1 }
        return acc.sum() + tail
    }

    /// Softmax over the clusters at each position; `values` is [clusters x
    /// positions] for each tile, tiles one after another.
    static func softmaxOverClusters(_ values: inout [Float], clusters: Int, positions total: Int, workers: Workers) {
        let perTile = total / (grid * grid)
        values.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            workers.forEachChunk(grid * grid) { tileRange in
                for t in tileRange {
                    let tile = base + t * clusters * perTile
                    for p in 0..<perTile {
                        var m = -Float.infinity
                        for k in 0..<clusters { m = max(m, tile[k * perTile + p]) }
                        var sum: Float = 0
                        for k in 0..<clusters {
                            let e = FastExp.exp(tile[k * perTile + p] - m)
                            tile[k * perTile + p] = e
                            sum += e
                        }
                        for k in 0..<clusters { tile[k * perTile + p] /= sum }
                    }
                }
            }
        }
    }

}

/// A map's values regrouped by the tiles of a grid x grid split: tile t
/// (row-major) holds, channel after channel, its positions row-major.
struct TileMajor {
    var values: [Float]
    /// Positions per tile.
    let tileSize: Int

    init(_ map: FeatureMap, grid: Int, workers: Workers) {
        let tileH = map.height / grid, tileW = map.width / grid, channels = map.channels
        let tileSize = tileH * tileW
        self.tileSize = tileSize
        let count = grid * grid * channels * tileSize
        let (width, plane) = (map.width, map.planeSize)
        values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let dst = buffer.baseAddress!
            map.values.withUnsafeBufferPointer { src in
                let src = src.baseAddress!
                workers.forEachChunk(channels) { channelRange in
                    for c in channelRange {
                        for t in 0..<(grid * grid) {
                            let ty = t / grid, tx = t % grid
                            let out = dst + (t * channels + c) * tileSize
                            for y in 0..<tileH {
                                (out + y * tileW).update(from: src + c * plane + (ty * tileH + y) * width + tx * tileW, count: tileW)
                            }
                        }
                    }
                }
            }
            initialized = count
        }
    }
}
