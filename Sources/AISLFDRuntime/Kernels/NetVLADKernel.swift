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
        var vlads = [[Float]](repeating: [], count: tiles)
        x.values.withUnsafeBufferPointer { xs in
            assignment.withUnsafeBufferPointer { a in
                vlads.withUnsafeMutableBufferPointer { results in
                    let results = results
                    RuntimeThreads.forEachChunk(tiles) { range in
                        for t in range {
                            let ty = t / grid, tx = t % grid
                            var v = [Float](repeating: 0, count: dimension)
                            for k in 0..<clusters {
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
                                    v[k * channels + d] = Float(sum)
                                }
                                normalize(&v, range: (k * channels)..<((k + 1) * channels))
                            }
                            normalize(&v, range: 0..<dimension)
                            results[t] = v
                        }
                    }
                }
            }
        }
        for t in 0..<tiles {
            for i in 0..<dimension { out.values[i * tiles + t] = vlads[t][i] }
        }
        return out
    }

    /// `F.normalize` of `v[range]`.
    static func normalize(_ v: inout [Float], range: Range<Int>) {
        var sum: Double = 0
        for i in range { sum += Double(v[i]) * Double(v[i]) }
        let norm = max(Float(sum.squareRoot()), 1e-12)
        for i in range { v[i] /= norm }
    }
}
