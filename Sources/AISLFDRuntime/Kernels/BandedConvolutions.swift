/// `averagePool2x2(second(first(x)))` for two 3x3 stride-1 convolutions with
/// padding 1, band by band of output rows, so neither full-resolution map
/// exists whole: VGG's first block on a 1920 x 1080 photo would otherwise
/// hold two 530 MB maps. Each band reads its input rows with a halo of two
/// rows (one per convolution), whose values at the band's edges are computed
/// but dropped; the rest are the same convolutions of the same values.
enum BandedConvolutions {
    /// Floats of `first`'s output per band (32 MB): a few bands at 480 x 640,
    /// ~70 rows of a 1920-wide image.
    static let bandFloats = 8 << 20

    static func thenPool2x2(_ x: FeatureMap, _ first: Convolution, _ second: Convolution, workers: Workers,
                            bandFloats: Int = BandedConvolutions.bandFloats) -> FeatureMap {
        let h = x.height, w = x.width, pooledH = h / 2, pooledW = w / 2
        let most = max(1, bandFloats / max(1, 2 * first.geometry.outChannels * w))
        guard most < pooledH, pooledW > 0 else { return second.applyThenPool2x2(first.apply(x)) }
        // Bands of equal length (the first and last shifted inside the image), so each
        // convolution's output buffer is reused from band to band and pass to pass.
        let bandPooledRows = (pooledH + (pooledH + most - 1) / most - 1) / ((pooledH + most - 1) / most)
        let length = min(h, 2 * bandPooledRows + 4)
        let channels = second.geometry.outChannels
        var out = FeatureMap.uninitialized(channels: channels, height: pooledH, width: pooledW)
        for p0 in stride(from: 0, to: pooledH, by: bandPooledRows) {
            let p1 = min(pooledH, p0 + bandPooledRows)
            // second's rows 2p0 ..< 2p1 need first's rows 2p0 - 1 ..< 2p1 + 1, which need input
            // rows 2p0 - 2 ..< 2p1 + 2, inside a ..< b. second runs on all of first's rows a ..< b:
            // the rows it gets wrong near a band's edges (zeros in place of the rows beyond) are
            // outside 2p0 ..< 2p1.
            let a = min(max(0, 2 * p0 - 2), h - length), b = a + length
            let skip = 2 * p0 - a
            if skip % 2 == 0, first.int8Input != nil, second.int8Input != nil {
                // int8: the band comes out pooled (Int8Convolution pools in cache); its rows
                // skip / 2 ..< skip / 2 + p1 - p0 are the wanted ones.
                let pooled = chain([first, second], x.rowSlice(a..<b), pooled: true)
                pooled.values.withUnsafeBufferPointer { input in
                    out.values.withUnsafeMutableBufferPointer { output in
                        for ch in 0..<channels {
                            (output.baseAddress! + ch * pooledH * pooledW + p0 * pooledW)
                                .update(from: input.baseAddress! + ch * pooled.planeSize + skip / 2 * pooledW, count: (p1 - p0) * pooledW)
                        }
                    }
                }
                continue
            }
            let band = chain([first, second], x.rowSlice(a..<b))
            band.values.withUnsafeBufferPointer { input in
                out.values.withUnsafeMutableBufferPointer { output in
                    let src = input.baseAddress!, dst = output.baseAddress!
                    workers.forEachChunk(channels) { range in
                        for ch in range {
                            let plane = src + ch * band.planeSize
                            for r in 0..<(p1 - p0) {
                                AveragePool.poolRows(plane + (skip + 2 * r) * w, plane + (skip + 2 * r + 1) * w,
                                                     into: dst + ch * pooledH * pooledW + (p0 + r) * pooledW, count: pooledW)
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
