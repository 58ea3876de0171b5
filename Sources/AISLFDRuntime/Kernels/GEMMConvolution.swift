/// Convolution as a matrix product: `out[Cout, positions] = W[Cout, K] x
/// columns[K, positions]` with K = Cin * k * k. The column matrix is built
/// for a band of output rows at a time so it stays within `columnBudget`
/// floats whatever the image size; 1x1 stride-1 convolutions multiply the
/// input directly. The epilogue runs on each band while it is in cache.
final class GEMMConvolution: Convolution {
    /// Floats of column buffer per band (4 MB).
    static let defaultColumnBudget = 1 << 20

    let geometry: ConvGeometry
    let weight: [Float]
    let epilogue: Epilogue
    let columnBudget: Int

    init(_ geometry: ConvGeometry, weight: [Float], epilogue: Epilogue, columnBudget: Int = defaultColumnBudget) {
        self.geometry = geometry
        self.weight = weight
        self.epilogue = epilogue
        self.columnBudget = columnBudget
    }

    private var isPointwise: Bool { geometry.kernel == 1 && geometry.stride == 1 && geometry.padding == 0 }

    func apply(_ x: FeatureMap) -> FeatureMap {
        let g = geometry
        let (outH, outW) = g.outputSize(height: x.height, width: x.width)
        var out = FeatureMap.uninitialized(channels: g.outChannels, height: outH, width: outW)
        guard outH > 0, outW > 0 else { return out }
        let k = g.inChannels * g.kernel * g.kernel
        let outPlane = outH * outW
        // At least one output row per band; a pointwise band is sized by its output
        // instead. Every thread gets at least one band.
        let budgetRows = max(1, columnBudget / (max(k, isPointwise ? g.outChannels : 0) * outW))
        let evenRows = (outH + RuntimeThreads.count - 1) / RuntimeThreads.count
        let bandRows = min(budgetRows, evenRows)
        let bands = (outH + bandRows - 1) / bandRows
        weight.withUnsafeBufferPointer { w in
            x.values.withUnsafeBufferPointer { input in
                out.values.withUnsafeMutableBufferPointer { output in
                    let output = output
                    // Each thread takes a run of bands with its own column buffer.
                    RuntimeThreads.forEachChunk(bands) { bandRange in
                        var columns = isPointwise ? [] : [Float](unsafeUninitializedCapacity: k * bandRows * outW) { _, n in n = k * bandRows * outW }
                        columns.withUnsafeMutableBufferPointer { col in
                            for band in bandRange {
                                let row0 = band * bandRows, rows = min(bandRows, outH - row0)
                                let p0 = row0 * outW, n = rows * outW
                                let c = output.baseAddress! + p0
                                if isPointwise {
                                    sgemm(m: g.outChannels, n: n, k: k, a: w.baseAddress!, lda: k,
                                          b: input.baseAddress! + p0, ldb: outPlane, c: c, ldc: outPlane)
                                } else {
                                    im2col(input.baseAddress!, height: x.height, width: x.width,
                                           rows: row0..<(row0 + rows), outWidth: outW, into: col.baseAddress!)
                                    sgemm(m: g.outChannels, n: n, k: k, a: w.baseAddress!, lda: k,
                                          b: col.baseAddress!, ldb: n, c: c, ldc: outPlane)
                                }
                                applyEpilogue(c, count: n, stride: outPlane)
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
    private func im2col(_ input: UnsafePointer<Float>, height: Int, width: Int, rows: Range<Int>, outWidth: Int,
                        into col: UnsafeMutablePointer<Float>) {
        let g = geometry, ks = g.kernel, s = g.stride, pad = g.padding
        let n = rows.count * outWidth
        do {
            for ci in 0..<g.inChannels {
                let plane = input + ci * height * width
                for ky in 0..<ks {
                    for kx in 0..<ks {
                        let dst = col + ((ci * ks + ky) * ks + kx) * n
                        // Output columns whose tap lands inside the input: ox*s - pad + kx in [0, width).
                        let first = max(0, (pad - kx + s - 1) / s)
                        let last = min(outWidth, (width - 1 + pad - kx) >= 0 ? (width - 1 + pad - kx) / s + 1 : 0)
                        for (i, oy) in rows.enumerated() {
                            let d = dst + i * outWidth
                            let iy = oy * s - pad + ky
                            if iy < 0 || iy >= height || first >= last {
                                d.update(repeating: 0, count: outWidth)
                                continue
                            }
                            d.update(repeating: 0, count: first)
                            let src = plane + iy * width - pad + kx
                            if s == 1 {
                                (d + first).update(from: src + first, count: last - first)
                            } else {
                                for ox in first..<last { d[ox] = src[ox * s] }
                            }
                            (d + last).update(repeating: 0, count: outWidth - last)
                        }
                    }
                }
            }
        }
    }

    private func applyEpilogue(_ c: UnsafeMutablePointer<Float>, count n: Int, stride: Int) {
        let e = epilogue
        if e.scale == nil && e.bias == nil && !e.relu && e.post == nil { return }
        do {
            for ch in 0..<geometry.outChannels {
                let p = c + ch * stride
                let scale = e.scale?[ch] ?? 1, bias = e.bias?[ch] ?? 0
                if e.scale != nil {
                    for i in 0..<n { p[i] = p[i] * scale + bias }
                } else if bias != 0 {
                    for i in 0..<n { p[i] += bias }
                }
                if e.relu { for i in 0..<n { p[i] = max(p[i], 0) } }
                if let post = e.post {
                    let ps = post.scale[ch], pt = post.shift[ch]
                    for i in 0..<n { p[i] = p[i] * ps + pt }
                }
            }
        }
    }
}
