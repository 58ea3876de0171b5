import CKernels

/// Convolution as a matrix product without an im2col matrix: the weights are
/// packed once, at load, into the kernels' panels, and the product reads the
/// input through one offset per kernel tap (`ckernels_gemm`). A 1x1 stride-1
/// convolution reads its input as it is; any other first copies the input
/// zero-padded, split into `stride` column phases so every tap of a row of
/// outputs is a contiguous run. The epilogue runs on each result as it is
/// stored. Threads take bands of output rows.
final class DirectConvolution: Convolution {
    let geometry: ConvGeometry
    let level: SIMDLevel
    /// Output positions per call at most (0: one band per thread); tests use it to force many bands.
    let bandPositions: Int
    private let packed: UnsafeMutableBufferPointer<Float>
    /// scale, bias, post scale, post shift (each `outChannels` long where present), kept at a fixed address.
    private let epilogueValues: UnsafeMutableBufferPointer<Float>
    private let epilogue: ckernels_epilogue

    init(_ geometry: ConvGeometry, weight: [Float], epilogue e: Epilogue, level: SIMDLevel, bandPositions: Int = 0) {
        self.geometry = geometry
        self.level = level
        self.bandPositions = bandPositions
        let k = geometry.inChannels * geometry.kernel * geometry.kernel
        let packed = UnsafeMutableBufferPointer<Float>.allocate(capacity: ckernels_packed_count(Int32(geometry.outChannels), Int32(k)))
        weight.withUnsafeBufferPointer { w in
            ckernels_pack(w.baseAddress!, k, 1, Int32(geometry.outChannels), Int32(k), 1, packed.baseAddress!)
        }
        self.packed = packed
        let parts = [e.scale, e.bias, e.post?.scale, e.post?.shift]
        let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, parts.reduce(0) { $0 + ($1?.count ?? 0) }))
        epilogueValues = values
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

    deinit {
        packed.deallocate()
        epilogueValues.deallocate()
    }

    private var isPointwise: Bool { geometry.kernel == 1 && geometry.stride == 1 && geometry.padding == 0 }

    func apply(_ x: FeatureMap) -> FeatureMap {
        let g = geometry
        let (outH, outW) = g.outputSize(height: x.height, width: x.width)
        var out = FeatureMap.uninitialized(channels: g.outChannels, height: outH, width: outW)
        guard outH > 0, outW > 0 else { return out }
        let k = g.inChannels * g.kernel * g.kernel
        let plane = outH * outW
        out.values.withUnsafeMutableBufferPointer { output in
            let output = output.baseAddress!
            if isPointwise {
                // One row of `plane` positions; tap j is input channel j.
                let offsets = (0..<k).map { $0 * plane }
                x.values.withUnsafeBufferPointer { input in
                    let input = input.baseAddress!
                    forEachBand(plane) { positions in
                        multiply(rows: 1, n: positions.count, k: k, b: input + positions.lowerBound, bRow: 0, offsets: offsets,
                                 c: output + positions.lowerBound, cMatrixRow: plane, cRow: 0)
                    }
                }
            } else {
                let phases = PaddedPhases(x, padding: g.padding, stride: g.stride)
                var offsets: [Int] = []
                offsets.reserveCapacity(k)
                for ci in 0..<g.inChannels {
                    for ky in 0..<g.kernel {
                        for kx in 0..<g.kernel {
                            offsets.append(ci * phases.channelStride + (kx % g.stride) * phases.phaseStride
                                           + ky * phases.rowStride + kx / g.stride)
                        }
                    }
                }
                phases.values.withUnsafeBufferPointer { input in
                    let input = input.baseAddress!
                    // Output row oy starts at padded row stride * oy.
                    let bRow = g.stride * phases.rowStride
                    forEachBand(outH, unit: outW) { rows in
                        multiply(rows: rows.count, n: outW, k: k, b: input + rows.lowerBound * bRow, bRow: bRow, offsets: offsets,
                                 c: output + rows.lowerBound * outW, cMatrixRow: plane, cRow: outW)
                    }
                }
            }
        }
        return out
    }

    private func multiply(rows: Int, n: Int, k: Int, b: UnsafePointer<Float>, bRow: Int, offsets: [Int],
                          c: UnsafeMutablePointer<Float>, cMatrixRow: Int, cRow: Int) {
        var e = epilogue
        offsets.withUnsafeBufferPointer { o in
            ckernels_gemm(Int32(level.rawValue), Int32(geometry.outChannels), Int32(rows), Int32(n), Int32(k),
                          packed.baseAddress!, b, bRow, o.baseAddress!, c, cMatrixRow, cRow, &e)
        }
    }

    /// Splits `0..<count` items (rows of `unit` positions) into bands run in parallel.
    private func forEachBand(_ count: Int, unit: Int = 1, _ body: (Range<Int>) -> Void) {
        let perThread = (count + RuntimeThreads.count - 1) / RuntimeThreads.count
        let band = bandPositions > 0 ? max(1, min(perThread, bandPositions / unit)) : perThread
        let bands = (count + band - 1) / band
        RuntimeThreads.forEachChunk(bands) { range in
            for i in range { body((i * band)..<min(count, (i + 1) * band)) }
        }
    }
}

/// A map zero-padded by `padding` on every side, each channel's columns split
/// into `stride` phases (phase p holds padded columns p, p + stride, ...), so
/// that the taps of consecutive outputs of a strided convolution are
/// consecutive values.
struct PaddedPhases {
    let values: [Float]
    /// Floats between consecutive rows of a phase, phases of a channel, channels.
    let rowStride: Int, phaseStride: Int, channelStride: Int

    init(_ x: FeatureMap, padding: Int, stride: Int) {
        let paddedH = x.height + 2 * padding, paddedW = x.width + 2 * padding
        let phaseW = (paddedW + stride - 1) / stride
        rowStride = phaseW
        phaseStride = paddedH * phaseW
        channelStride = stride * phaseStride
        let count = x.channels * channelStride
        let (h, w, plane, channelStride, phaseStride) = (x.height, x.width, x.planeSize, channelStride, phaseStride)
        values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let dst = buffer.baseAddress!
            LargeBuffers.adviseHugePages(UnsafeMutableRawPointer(dst), bytes: count * 4)
            x.values.withUnsafeBufferPointer { input in
                let src = input.baseAddress!
                RuntimeThreads.forEachChunk(x.channels) { channels in
                    for c in channels {
                        for phase in 0..<stride {
                            let out = dst + c * channelStride + phase * phaseStride
                            for py in 0..<paddedH {
                                let row = out + py * phaseW
                                let y = py - padding
                                guard y >= 0 && y < h else { row.update(repeating: 0, count: phaseW); continue }
                                let line = src + c * plane + y * w
                                if stride == 1 {
                                    row.update(repeating: 0, count: padding)
                                    row.advanced(by: padding).update(from: line, count: w)
                                    row.advanced(by: padding + w).update(repeating: 0, count: phaseW - padding - w)
                                } else {
                                    for j in 0..<phaseW {
                                        let xx = j * stride + phase - padding
                                        row[j] = xx >= 0 && xx < w ? line[xx] : 0
                                    }
                                }
                            }
                        }
                    }
                }
            }
            initialized = count
        }
    }
}
