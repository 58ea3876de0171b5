import CKernels

/// Convolution as a matrix product without an im2col matrix: the weights are
/// packed once, at load, into the kernels' panels, and the product reads the
/// input through one offset per kernel tap (`ckernels_gemm`). A 1x1 stride-1
/// convolution reads its input as it is; any other copies the input rows of
/// each band of output rows zero-padded, split into `stride` column phases,
/// so every tap of a row of outputs is a contiguous run (`PaddedWindow`). The
/// epilogue runs on each result as it is stored. Threads take bands.
final class DirectConvolution: Convolution {
    let geometry: ConvGeometry
    let level: SIMDLevel
    /// Output positions per call at most (0: one band per thread); tests use it to force many bands.
    let bandPositions: Int
    let workers: Workers
    private let packed: UnsafeMutableBufferPointer<Float>
    private let epilogue: StoredEpilogue
    /// The output of the previous call, written over by the next call of the
    /// same size: fresh memory costs the kernel zeroing every page, which took
    /// ~10% of a pass at 480 x 640. Copy-on-write keeps any map still held elsewhere intact.
    private let lastOutput = ReusableBuffer<Float>()

    private let scratch: ScratchPool

    init(_ geometry: ConvGeometry, weight: [Float], epilogue e: Epilogue, level: SIMDLevel, workers: Workers, bandPositions: Int = 0,
         scratch: ScratchPool) {
        self.geometry = geometry
        self.scratch = scratch
        self.level = level
        self.bandPositions = bandPositions
        self.workers = workers
        let k = geometry.inChannels * geometry.kernel * geometry.kernel
        let lvl = Int32(level.rawValue)
        let packed = UnsafeMutableBufferPointer<Float>.allocate(capacity: ckernels_packed_count(lvl, Int32(geometry.outChannels), Int32(k)))
        weight.withUnsafeBufferPointer { w in
            ckernels_pack(lvl, w.baseAddress!, k, 1, Int32(geometry.outChannels), Int32(k), 1, packed.baseAddress!)
        }
        self.packed = packed
        epilogue = StoredEpilogue(e)
    }

    deinit { packed.deallocate() }

    private var isPointwise: Bool { geometry.kernel == 1 && geometry.stride == 1 && geometry.padding == 0 }

    func apply(_ x: FeatureMap) -> FeatureMap { apply(x, channels: 0..<x.channels) }

    func apply(_ x: FeatureMap, channels: Range<Int>) -> FeatureMap {
        let g = geometry
        let first = channels.lowerBound * x.planeSize
        let (outH, outW) = g.outputSize(height: x.height, width: x.width)
        let plane = outH * outW
        var values = lastOutput.take(count: g.outChannels * plane)
        defer { lastOutput.keep(values) }
        guard outH > 0, outW > 0 else { return FeatureMap(trustedChannels: g.outChannels, height: outH, width: outW, values: values) }
        let k = g.inChannels * g.kernel * g.kernel
        values.withUnsafeMutableBufferPointer { output in
            let output = output.baseAddress!
            if isPointwise {
                // One row of `plane` positions; tap j is input channel j.
                let offsets = (0..<k).map { $0 * plane }
                x.values.withUnsafeBufferPointer { input in
                    let input = input.baseAddress! + first
                    forEachBand(plane) { positions in
                        multiply(rows: 1, n: positions.count, k: k, b: input + positions.lowerBound, bRow: 0, offsets: offsets,
                                 c: output + positions.lowerBound, cMatrixRow: plane, cRow: 0)
                    }
                }
            } else {
                x.values.withUnsafeBufferPointer { input in
                    applyPadded(input.baseAddress! + first, height: x.height, width: x.width, outH: outH, outW: outW,
                                output: output, pooled: false)
                }
            }
        }
        return FeatureMap(trustedChannels: g.outChannels, height: outH, width: outW, values: values)
    }

    /// Each band's output rows are pooled while they are in cache, so the
    /// full-size output (78 MB after VGG's first block at 480 x 640) is never
    /// written to memory. Same values as `averagePool2x2(apply(x))`.
    func applyThenPool2x2(_ x: FeatureMap) -> FeatureMap {
        let g = geometry
        let (outH, outW) = g.outputSize(height: x.height, width: x.width)
        let pooledH = outH / 2, pooledW = outW / 2
        guard !isPointwise, pooledH > 0, pooledW > 0 else { return AveragePool.pool2x2(apply(x), workers: workers) }
        var values = lastOutput.take(count: g.outChannels * pooledH * pooledW)
        defer { lastOutput.keep(values) }
        values.withUnsafeMutableBufferPointer { output in
            x.values.withUnsafeBufferPointer { input in
                // Floor mode: a last odd row is never computed.
                applyPadded(input.baseAddress!, height: x.height, width: x.width, outH: 2 * pooledH, outW: outW,
                            output: output.baseAddress!, pooled: true)
            }
        }
        return FeatureMap(trustedChannels: g.outChannels, height: pooledH, width: pooledW, values: values)
    }

    /// Bands of output rows; each thread copies the padded input rows of its
    /// band into a window (~1 MB, so it is in L2 when the product reads it) and
    /// multiplies, band after band. With `pooled`, bands are whole row pairs,
    /// multiplied into a band-sized scratch and pooled into `output`
    /// (outH / 2 x outW / 2 per channel).
    private func applyPadded(_ input: UnsafePointer<Float>, height: Int, width: Int, outH: Int, outW: Int,
                             output: UnsafeMutablePointer<Float>, pooled: Bool) {
        let g = geometry, s = g.stride
        let phaseWidth = (width + 2 * g.padding + s - 1) / s
        let rowsPerOutputRow = g.inChannels * s * s * phaseWidth
        // Bands in units of 1 row (2 when pooling): at least a few per thread
        // (forEachChunk balances them), in a whole number per thread.
        let unit = pooled ? 2 : 1, units = outH / unit
        let threads = workers.pieces
        var bandUnits = max(1, (bandPositions > 0 ? bandPositions / outW : DirectConvolution.windowBudget / rowsPerOutputRow) / unit)
        let bands = min(units, (((units + bandUnits - 1) / bandUnits + threads - 1) / threads) * threads)
        bandUnits = (units + bands - 1) / bands
        let bandRows = bandUnits * unit
        let window = PaddedWindow(channels: g.inChannels, stride: s, padding: g.padding, kernel: g.kernel,
                                  width: width, outputRows: bandRows)
        let k = g.inChannels * g.kernel * g.kernel
        var offsets: [Int] = []
        offsets.reserveCapacity(k)
        for ci in 0..<g.inChannels {
            for ky in 0..<g.kernel {
                for kx in 0..<g.kernel {
                    offsets.append(ci * window.channelStride + (kx % s) * window.phaseStride + ky * window.rowStride + kx / s)
                }
            }
        }
        let bandCount = (outH + bandRows - 1) / bandRows
        let outC = g.outChannels, pooledW = outW / 2, pooledPlane = (outH / 2) * pooledW
        let bandOutputs = pooled ? outC * bandRows * outW : 0
        workers.forEachChunk(bandCount) { range in
          self.scratch.withBuffer(window.count + bandOutputs) { buffer in
            let scratch = buffer + window.count
            for band in range {
                let oy0 = band * bandRows, rows = min(bandRows, outH - oy0)
                window.fill(buffer, from: input, height: height, firstOutputRow: oy0, outputRows: rows)
                guard pooled else {
                    multiply(rows: rows, n: outW, k: k, b: buffer, bRow: s * window.rowStride, offsets: offsets,
                             c: output + oy0 * outW, cMatrixRow: outH * outW, cRow: outW)
                    continue
                }
                multiply(rows: rows, n: outW, k: k, b: buffer, bRow: s * window.rowStride, offsets: offsets,
                         c: scratch, cMatrixRow: bandRows * outW, cRow: outW)
                for ch in 0..<outC {
                    let band = scratch + ch * bandRows * outW
                    for pr in 0..<(rows / 2) {
                        AveragePool.poolRows(band + 2 * pr * outW, band + (2 * pr + 1) * outW,
                                             into: output + ch * pooledPlane + (oy0 / 2 + pr) * pooledW, count: pooledW)
                    }
                }
            }
          }
        }
    }

    /// Floats of padded input a band reads (1 MB).
    static let windowBudget = 1 << 18

    private func multiply(rows: Int, n: Int, k: Int, b: UnsafePointer<Float>, bRow: Int, offsets: [Int],
                          c: UnsafeMutablePointer<Float>, cMatrixRow: Int, cRow: Int) {
        offsets.withUnsafeBufferPointer { o in
            epilogue.withPointer { e in
                ckernels_gemm(Int32(level.rawValue), Int32(geometry.outChannels), Int32(rows), Int32(n), Int32(k),
                              packed.baseAddress!, b, bRow, o.baseAddress!, c, cMatrixRow, cRow, e)
            }
        }
    }

    /// Splits `0..<count` positions into bands run in parallel (multiples of
    /// 32 positions, the kernels' tile, where possible).
    private func forEachBand(_ count: Int, _ body: (Range<Int>) -> Void) {
        let pieces = workers.pieces
        let even = ((count + pieces - 1) / pieces + 31) / 32 * 32
        let band = bandPositions > 0 ? max(1, min(even, bandPositions)) : even
        let bands = (count + band - 1) / band
        workers.forEachChunk(bands) { range in
            for i in range { body((i * band)..<min(count, (i + 1) * band)) }
        }
    }
}

/// An `Epilogue` as the C kernels take it: scale, bias, post scale and post
/// shift (each `outChannels` long where present) copied to memory of their own,
/// at a fixed address for the life of the convolution.
final class StoredEpilogue: @unchecked Sendable {
    private let values: UnsafeMutableBufferPointer<Float>
    private let epilogue: ckernels_epilogue

    init(_ e: Epilogue) {
        let parts = [e.scale, e.bias, e.post?.scale, e.post?.shift]
        values = .allocate(capacity: max(1, parts.reduce(0) { $0 + ($1?.count ?? 0) }))
        var pointers: [UnsafePointer<Float>?] = []
        var next = values.baseAddress!
        for part in parts {
            guard let part else { pointers.append(nil); continue }
            next.initialize(from: part, count: part.count)
            pointers.append(UnsafePointer(next))
            next += part.count
        }
        epilogue = ckernels_epilogue(scale: pointers[0], bias: pointers[1], relu: e.relu ? 1 : 0,
                                     post_scale: pointers[2], post_shift: pointers[3])
    }

    deinit { values.deallocate() }

    func withPointer<R>(_ body: (UnsafePointer<ckernels_epilogue>) -> R) -> R {
        withUnsafePointer(to: epilogue, body)
    }
}

/// The input rows a band of output rows reads, zero-padded by `padding` on
/// every side, each channel's columns split into `stride` phases (phase p
/// holds padded columns p, p + stride, ...), so that the taps of consecutive
/// outputs of a strided convolution are consecutive values.
struct PaddedWindow {
    let channels: Int, stride: Int, padding: Int, kernel: Int, width: Int
    let phaseWidth: Int, paddedRows: Int
    /// Floats between consecutive rows of a phase, phases of a channel, channels.
    var rowStride: Int { phaseWidth }
    var phaseStride: Int { paddedRows * phaseWidth }
    var channelStride: Int { stride * phaseStride }
    var count: Int { channels * channelStride }

    init(channels: Int, stride: Int, padding: Int, kernel: Int, width: Int, outputRows: Int) {
        self.channels = channels
        self.stride = stride
        self.padding = padding
        self.kernel = kernel
        self.width = width
        phaseWidth = (width + 2 * padding + stride - 1) / stride
        paddedRows = stride * (outputRows - 1) + kernel
    }

    /// Copies the padded rows of output rows `firstOutputRow ..< + outputRows` into `window`.
    func fill(_ window: UnsafeMutablePointer<Float>, from input: UnsafePointer<Float>, height: Int,
              firstOutputRow: Int, outputRows: Int) {
        let rows = stride * (outputRows - 1) + kernel
        for c in 0..<channels {
            for phase in 0..<stride {
                let out = window + c * channelStride + phase * phaseStride
                for wr in 0..<rows {
                    let row = out + wr * phaseWidth
                    let y = stride * firstOutputRow + wr - padding
                    guard y >= 0 && y < height else { row.update(repeating: 0, count: phaseWidth); continue }
                    let line = input + (c * height + y) * width
                    if stride == 1 {
                        row.update(repeating: 0, count: padding)
                        (row + padding).update(from: line, count: width)
                        (row + padding + width).update(repeating: 0, count: phaseWidth - padding - width)
                    } else {
                        // Columns j with 0 <= j * stride + phase - padding < width come from the line.
                        let firstInside = min(phaseWidth, max(0, (padding - phase + stride - 1) / stride))
                        let lastColumn = width - 1 + padding - phase
                        let endInside = max(firstInside, min(phaseWidth, lastColumn < 0 ? 0 : lastColumn / stride + 1))
                        row.update(repeating: 0, count: firstInside)
                        let source = line + (firstInside * stride + phase - padding)
                        for j in 0..<(endInside - firstInside) { row[firstInside + j] = source[j * stride] }
                        (row + endInside).update(repeating: 0, count: phaseWidth - endInside)
                    }
                }
            }
        }
    }

}
