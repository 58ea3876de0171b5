import Foundation

/// NetVLAD aggregation over a 3x3 grid of tiles (architectures.md, NetVLAD
/// steps 2-3), given the L2-normalised map (its height and width multiples
/// of 3) and the soft-assignment logits.
enum NetVLADKernel {
    static let grid = 3

    static func apply(normalized x: FeatureMap, logits: FeatureMap, centroids: [Float]) -> FeatureMap {
        let clusters = logits.channels, channels = x.channels, plane = x.planeSize
        let tileH = x.height / grid, tileW = x.width / grid
        let dimension = clusters * channels
        var out = FeatureMap.zeros(channels: dimension, height: grid, width: grid)
        // Soft assignment: softmax over clusters at each position.
        var assignment = logits.values
        for p in 0..<plane {
            var m = -Float.infinity
            for k in 0..<clusters { m = max(m, assignment[k * plane + p]) }
            var sum: Float = 0
            for k in 0..<clusters {
                let e = Foundation.exp(assignment[k * plane + p] - m)
                assignment[k * plane + p] = e
                sum += e
            }
            for k in 0..<clusters { assignment[k * plane + p] /= sum }
        }
        let tiles = grid * grid
        // One VLAD vector per tile, k-major; (tile, cluster) pairs run in parallel
        // (9 tiles alone would leave one of two threads idle a ninth of the time).
        var vlads = [Float](repeating: 0, count: tiles * dimension)
        x.values.withUnsafeBufferPointer { xs in
            assignment.withUnsafeBufferPointer { a in
                vlads.withUnsafeMutableBufferPointer { results in
                    let results = results
                    RuntimeThreads.forEachChunk(tiles * clusters) { range in
                        for item in range {
                            let t = item / clusters, k = item % clusters
                            let ty = t / grid, tx = t % grid
                            let v = results.baseAddress! + t * dimension + k * channels
                            for d in 0..<channels {
                                let centroid = centroids[k * channels + d]
                                var sum: Double = 0
                                for y in (ty * tileH)..<((ty + 1) * tileH) {
                                    let row = y * x.width
                                    for xx in (tx * tileW)..<((tx + 1) * tileW) {
                                        let p = row + xx
                                        sum += Double(a[k * plane + p] * (xs[d * plane + p] - centroid))
                                    }
                                }
                                v[d] = Float(sum)
                            }
                            normalize(v, count: channels)
                        }
                    }
                }
            }
        }
        for t in 0..<tiles {
            vlads.withUnsafeMutableBufferPointer { normalize($0.baseAddress! + t * dimension, count: dimension) }
            for i in 0..<dimension { out.values[i * tiles + t] = vlads[t * dimension + i] }
        }
        return out
    }

    /// `F.normalize` of `count` floats.
    static func normalize(_ v: UnsafeMutablePointer<Float>, count: Int) {
        var sum: Double = 0
        for i in 0..<count { sum += Double(v[i]) * Double(v[i]) }
        let norm = max(Float(sum.squareRoot()), 1e-12)
        for i in 0..<count { v[i] /= norm }
    }
}
