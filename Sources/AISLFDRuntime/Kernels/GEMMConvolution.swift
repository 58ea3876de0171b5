/// Convolution as a matrix product: `out[Cout, positions] = W[Cout, K] x
/// columns[K, positions]` with K = Cin * k * k. The column matrix is built
/// for a band of output positions at a time so it stays within
/// `columnBudget` floats whatever the image size; 1x1 stride-1 convolutions
/// multiply the input directly. Threads take runs of bands, each with its
/// own column buffer and a single-threaded sgemm, and run the epilogue on
/// each band while it is in cache.
final class GEMMConvolution: Convolution {
    /// Floats of column buffer per thread (4 MB).
    static let defaultColumnBudget = 1 << 20

    let geometry: ConvGeometry
    let weight: [Float]
    let epilogue: Epilogue
    let columnBudget: Int
    let workers: Workers

    init(_ geometry: ConvGeometry, weight: [Float], epilogue: Epilogue, columnBudget: Int = defaultColumnBudget, workers: Workers) {
        self.geometry = geometry
        self.weight = weight
        self.epilogue = epilogue
        self.columnBudget = columnBudget
        self.workers = workers
    }

    private var isPointwise: Bool { geometry.kernel == 1 && geometry.stride == 1 && geometry.padding == 0 }

    func apply(_ x: FeatureMap) -> FeatureMap {
        let g = geometry
        let (outH, outW) = g.outputSize(height: x.height, width: x.width)
        var out = FeatureMap.uninitialized(channels: g.outChannels, height: outH, width: outW)
        guard outH > 0, outW > 0 else { return out }
        let k = g.inChannels * g.kernel * g.kernel
        let positions = outH * outW
        // A pointwise band is sized by its output instead; every thread gets a band.
        let budgetPositions = max(1, columnBudget / max(k, isPointwise ? g.outChannels : 0))
        let bandSize = min(budgetPositions, (positions + workers.count - 1) / workers.count)
        let bands = (positions + bandSize - 1) / bandSize
        weight.withUnsafeBufferPointer { w in
            x.values.withUnsafeBufferPointer { input in
                out.values.withUnsafeMutableBufferPointer { output in
                    let output = output
                    workers.forEachChunk(bands) { bandRange in
                        let columnCount = isPointwise ? 0 : k * bandSize
                        var columns = [Float](unsafeUninitializedCapacity: columnCount) { _, n in n = columnCount }
                        columns.withUnsafeMutableBufferPointer { col in
                            for band in bandRange {
                                let p0 = band * bandSize, n = min(bandSize, positions - p0)
                                let c = output.baseAddress! + p0
                                if isPointwise {
                                    sgemm(m: g.outChannels, n: n, k: k, a: w.baseAddress!, lda: k,
                                          b: input.baseAddress! + p0, ldb: positions, c: c, ldc: positions)
                                } else {
                                    im2col(input.baseAddress!, height: x.height, width: x.width,
                                           positions: p0..<(p0 + n), outWidth: outW, into: col.baseAddress!)
                                    sgemm(m: g.outChannels, n: n, k: k, a: w.baseAddress!, lda: k,
                                          b: col.baseAddress!, ldb: n, c: c, ldc: positions)
                                }
                                applyEpilogue(c, count: n, stride: positions)
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Column row r = (ci * k + ky) * k + kx holds, for each output position of
    /// the band, the input value that kernel tap meets (0 in the padding).
    private func im2col(_ input: UnsafePointer<Float>, height: Int, width: Int, positions: Range<Int>, outWidth: Int,
                        into col: UnsafeMutablePointer<Float>) {
        let g = geometry, ks = g.kernel, s = g.stride, pad = g.padding
        let n = positions.count
        let firstRow = positions.lowerBound / outWidth, lastRow = (positions.upperBound - 1) / outWidth
        for ci in 0..<g.inChannels {
            let plane = input + ci * height * width
            for ky in 0..<ks {
                for kx in 0..<ks {
                    let dst = col + ((ci * ks + ky) * ks + kx) * n
                    // Output columns whose tap lands inside the input: ox*s - pad + kx in [0, width).
                    let valid = max(0, (pad - kx + s - 1) / s)..<min(outWidth, width - 1 + pad - kx >= 0 ? (width - 1 + pad - kx) / s + 1 : 0)
                    for oy in firstRow...lastRow {
                        // The part of this output row inside the band.
                        let rowStart = oy * outWidth
                        let from = max(positions.lowerBound, rowStart) - rowStart
                        let to = min(positions.upperBound, rowStart + outWidth) - rowStart
                        let d = dst + (rowStart + from - positions.lowerBound) - from  // d[ox] is position ox of row oy
                        let iy = oy * s - pad + ky
                        let lo = max(from, valid.lowerBound), hi = min(to, valid.upperBound)
                        if iy < 0 || iy >= height || lo >= hi {
                            (d + from).update(repeating: 0, count: to - from)
                            continue
                        }
                        (d + from).update(repeating: 0, count: lo - from)
                        let src = plane + iy * width - pad + kx
                        if s == 1 {
                            (d + lo).update(from: src + lo, count: hi - lo)
                        } else {
                            for ox in lo..<hi { d[ox] = src[ox * s] }
                        }
                        (d + hi).update(repeating: 0, count: to - hi)
                    }
                }
            }
        }
    }

    /// One pass per channel: `v * scale + bias`, ReLU, `v * postScale + postShift`.
    /// Missing parts are the identity (x * 1 and x + 0 are exact).
    private func applyEpilogue(_ c: UnsafeMutablePointer<Float>, count n: Int, stride: Int) {
        let e = epilogue
        if e.scale == nil && e.bias == nil && !e.relu && e.post == nil { return }
        for ch in 0..<geometry.outChannels {
            let p = c + ch * stride
            let scale = e.scale?[ch] ?? 1, bias = e.bias?[ch] ?? 0
            let postScale = e.post?.scale[ch] ?? 1, postShift = e.post?.shift[ch] ?? 0
            if e.relu {
                for i in 0..<n { p[i] = max(p[i] * scale + bias, 0) * postScale + postShift }
            } else {
                for i in 0..<n { p[i] = (p[i] * scale + bias) * postScale + postShift }
            }
        }
    }
}
