import Foundation

/// The default kernels: matrix products through CKernels (AVX2 / AVX-512)
/// where the CPU has them, else through OpenBLAS; the rest as plain loops
/// split over the configuration's threads.
struct CPUKernels: Kernels, Sendable {
    var level: SIMDLevel
    let workers: Workers
    /// Floats of attention scores held at once per thread (a block of query
    /// rows times all keys), so memory grows with N * block, never N^2.
    var attentionBudget = 1 << 20
    /// Portable path: floats of im2col buffer per thread. CKernels path: when
    /// set, output positions per band (forces many bands; for tests).
    var columnBudget: Int? = nil
    /// Output tile side of Winograd 3x3 convolutions (2 or 4), 0 for direct
    /// ones only (see `winogradTile(for:)`).
    var winogradTile = 4
    /// Winograd only where the products, not the transforms, dominate (not
    /// VGG's 3 -> 64 layer); tests lower it to run Winograd on small fixtures.
    var winogradMinimumInChannels = 16

    /// F(4x4) where the network keeps its outputs within 1e-5 of PyTorch's with
    /// it, F(2x2) for PSA models: F(4x4) rounds a few times more (its
    /// transforms multiply by up to 8 and 1/24), and PSA's softmax amplifies the
    /// error of the maps it attends over (aislfd-a 2e-5 with F(4x4), 8e-6 with
    /// F(2x2)). AISLFD_WINOGRAD=0|2|4 overrides it (benchmarks, error measurements).
    static func winogradTile(for architecture: Architecture) -> Int {
        switch ProcessInfo.processInfo.environment["AISLFD_WINOGRAD"] {
        case "0": return 0
        case "2": return 2
        case "4": return 4
        default: return architecture.meta == .psa ? 2 : 4
        }
    }

    /// The convolutions' scratch buffers, shared by every layer of a model.
    let scratch = ScratchPool()

    init(_ configuration: RuntimeConfiguration) {
        level = configuration.simd
        workers = configuration.workers
    }

    func makeConvolution(_ geometry: ConvGeometry, weight: [Float], epilogue: Epilogue) -> Convolution {
        let made = makeUntimedConvolution(geometry, weight: weight, epilogue: epilogue)
        return LayerTimes.isEnabled ? TimedConvolution(made) : made
    }

    private func makeUntimedConvolution(_ geometry: ConvGeometry, weight: [Float], epilogue: Epilogue) -> Convolution {
        if level == .portable {
            return GEMMConvolution(geometry, weight: weight, epilogue: epilogue,
                                   columnBudget: columnBudget ?? GEMMConvolution.defaultColumnBudget, workers: workers)
        }
        if winogradTile > 0, WinogradConvolution.computes(geometry), geometry.inChannels >= winogradMinimumInChannels {
            return WinogradConvolution(geometry, weight: weight, epilogue: epilogue, level: level, workers: workers, tile: winogradTile,
                                       scratch: scratch)
        }
        return DirectConvolution(geometry, weight: weight, epilogue: epilogue, level: level, workers: workers,
                                 bandPositions: columnBudget ?? 0, scratch: scratch)
    }

    func averagePool2x2(_ x: FeatureMap) -> FeatureMap { AveragePool.pool2x2(x, workers: workers) }

    func resizeBilinear(_ x: FeatureMap, height: Int, width: Int) -> FeatureMap {
        guard height > 0, width > 0, x.height > 0, x.width > 0, x.channels > 0 else {
            return FeatureMap.zeros(channels: x.channels, height: max(0, height), width: max(0, width))
        }
        let ys = BilinearTaps(input: x.height, output: height)
        let xs = BilinearTaps(input: x.width, output: width)
        return mapPlanes(x, height: height, width: width, workers: workers) { plane, o in
            for oy in 0..<height {
                let r0 = plane + ys.index0[oy] * x.width, r1 = plane + ys.index1[oy] * x.width
                let wy0 = ys.weight0[oy], wy1 = ys.weight1[oy]
                for ox in 0..<width {
                    let i0 = xs.index0[ox], i1 = xs.index1[ox]
                    let wx0 = xs.weight0[ox], wx1 = xs.weight1[ox]
                    o[oy * width + ox] = (r0[i0] * wx0 + r0[i1] * wx1) * wy0 + (r1[i0] * wx0 + r1[i1] * wx1) * wy1
                }
            }
        }
    }

    func add(_ a: inout FeatureMap, _ b: FeatureMap) {
        a.values.withUnsafeMutableBufferPointer { x in
            b.values.withUnsafeBufferPointer { y in
                let px = x.baseAddress!, py = y.baseAddress!
                workers.forEachChunk(x.count, minimumChunk: 1 << 14) { range in
                    for i in range { px[i] += py[i] }
                }
            }
        }
    }

    func normalizePositions(_ x: inout FeatureMap) {
        let channels = x.channels, plane = x.planeSize
        guard !x.values.isEmpty else { return }
        x.values.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            workers.forEachChunk(plane, minimumChunk: 256) { positions in
                // Blocks of positions so the squared norms stay in cache while all channels pass.
                var start = positions.lowerBound
                var norms = [Float](repeating: 0, count: 1024)
                while start < positions.upperBound {
                    let n = min(1024, positions.upperBound - start)
                    norms.withUnsafeMutableBufferPointer { norm in
                        for i in 0..<n { norm[i] = 0 }
                        for c in 0..<channels {
                            let p = base + c * plane + start
                            for i in 0..<n { norm[i] += p[i] * p[i] }
                        }
                        for i in 0..<n { norm[i] = max(norm[i].squareRoot(), 1e-12) }
                        for c in 0..<channels {
                            let p = base + c * plane + start
                            for i in 0..<n { p[i] /= norm[i] }
                        }
                    }
                    start += n
                }
            }
        }
    }

    func netVLAD(normalized x: FeatureMap, logits: FeatureMap, centroids: [Float]) -> FeatureMap {
        NetVLADKernel.apply(normalized: x, logits: logits, centroids: centroids, workers: workers)
    }

    func attention(_ projections: FeatureMap, scale: Float) -> FeatureMap {
        LayerTimes.time("attention") {
            if level == .portable {
                return BlockAttention.apply(projections, scale: scale, budget: attentionBudget, workers: workers)
            }
            return PackedAttention.apply(projections, scale: scale, budget: attentionBudget, level: level, workers: workers)
        }
    }

    func gridSample(_ map: FeatureMap, gridX: [Float], gridY: [Float]) -> [Float] {
        GridSample.bilinearZeros(map, gridX: gridX, gridY: gridY, workers: workers)
    }
}

/// Source indices and weights of `F.interpolate(mode='bilinear',
/// align_corners=False)` along one axis, computed in float32 as PyTorch does.
struct BilinearTaps {
    var index0: [Int], index1: [Int], weight0: [Float], weight1: [Float]

    init(input: Int, output: Int) {
        let scale = Float(input) / Float(output)
        index0 = []; index1 = []; weight0 = []; weight1 = []
        for i in 0..<output {
            // The source index is clamped at 0 before the floor (PyTorch does the same).
            let source = max(scale * (Float(i) + 0.5) - 0.5, 0)
            let i0 = min(Int(source), input - 1)
            let lambda = min(max(source - Float(i0), 0), 1)
            index0.append(i0)
            index1.append(i0 < input - 1 ? i0 + 1 : i0)
            weight0.append(1 - lambda)
            weight1.append(lambda)
        }
    }
}

/// 2x2 average pooling, stride 2, floor mode.
enum AveragePool {
    static func pool2x2(_ x: FeatureMap, workers: Workers) -> FeatureMap {
        let outH = x.height / 2, outW = x.width / 2, w = x.width
        guard outH > 0, outW > 0 else { return FeatureMap.uninitialized(channels: x.channels, height: outH, width: outW) }
        return mapPlanes(x, height: outH, width: outW, workers: workers) { plane, o in
            for oy in 0..<outH { poolRows(plane + 2 * oy * w, plane + (2 * oy + 1) * w, into: o + oy * outW, count: outW) }
        }
    }

    /// One output row from two input rows.
    @inline(__always)
    static func poolRows(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, into o: UnsafeMutablePointer<Float>, count: Int) {
        for ox in 0..<count {
            // PyTorch's summation order, then the division.
            o[ox] = (r0[2 * ox] + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1]) / 4
        }
    }
}

/// A map of `height x width` planes, each computed from the input plane of the same channel
/// by `body(input plane, output plane)`; channels are spread over the threads.
func mapPlanes(_ x: FeatureMap, height: Int, width: Int, workers: Workers,
               _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> FeatureMap {
    var out = FeatureMap.uninitialized(channels: x.channels, height: height, width: width)
    x.values.withUnsafeBufferPointer { input in
        out.values.withUnsafeMutableBufferPointer { output in
            let src = input.baseAddress!, dst = output.baseAddress!
            workers.forEachChunk(x.channels) { channels in
                for c in channels { body(src + c * x.planeSize, dst + c * height * width) }
            }
        }
    }
    return out
}
