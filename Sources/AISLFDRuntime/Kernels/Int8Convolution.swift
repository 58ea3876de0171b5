import CKernels

/// How a convolution's input becomes unsigned bytes when it computes in int8:
/// `q = clamp(round_half_even(x / scale) + zeroPoint, 0, 255)`, so `x ≈ scale * (q - zeroPoint)`
/// (zero is exact: padding is the byte `zeroPoint`).
public struct ActivationQuantization: Sendable, Equatable {
    public var scale: Float
    public var zeroPoint: Int

    public init(scale: Float, zeroPoint: Int) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// The asymmetric quantization covering `low ... high` (0 is always inside, so it stays
    /// exact); nil for a range no finite positive scale covers.
    public init?(low: Float, high: Float) {
        let lo = min(low, 0), hi = max(high, 0)
        let scale = (hi - lo) / 255
        guard scale.isFinite, scale > 0 else { return nil }
        self.scale = scale
        zeroPoint = Int(min(max((-lo / scale).rounded(.toNearestOrEven), 0), 255))
    }
}

/// A convolution that computes in int8: its weights as stored (symmetric per output
/// channel, `w ≈ q * scales[o]`, `[out, in, k, k]`) and how its input is quantized.
public struct Int8Layer: Sendable, Equatable {
    public var weight: [Int8]
    public var scales: [Float]
    public var input: ActivationQuantization

    public init(weight: [Int8], scales: [Float], input: ActivationQuantization) {
        self.weight = weight
        self.scales = scales
        self.input = input
    }

}

/// What the models know of a convolution beyond its fp32 weights: the weight keys of the
/// layers it computes (one, or several stacked that read the same input) and, when they
/// compute in int8, their int8 form.
struct LayerForm {
    var weightKeys: [String]
    var int8: Int8Layer?

    /// Layers that read the same input as one with their outputs stacked (the heads' four
    /// first convs, a PSA's query, key and value); int8 only if all are, with one input quantization.
    static func stacked(_ forms: [LayerForm]) -> LayerForm {
        var int8: Int8Layer? = forms.first?.int8
        for form in forms.dropFirst() {
            guard let layer = form.int8, layer.input == int8?.input else { int8 = nil; break }
            int8?.weight += layer.weight
            int8?.scales += layer.scales
        }
        return LayerForm(weightKeys: forms.flatMap(\.weightKeys), int8: int8)
    }
}

extension Kernels {
    /// The int8 convolution where the weights say this layer computes in int8, else the fp32
    /// one; named, so a pass that records layer inputs can say whose input each map is.
    func makeConvolution(_ geometry: ConvGeometry, weight: [Float], epilogue: Epilogue, form: LayerForm) -> Convolution {
        let conv = form.int8.map { makeInt8Convolution(geometry, layer: $0, epilogue: epilogue) }
            ?? makeConvolution(geometry, weight: weight, epilogue: epilogue)
        return NamedConvolution(conv, weightKeys: form.weightKeys)
    }
}

/// The input of every convolution of one forward pass, by the weight keys of its layers
/// (`Model.forward(image:recordLayerInputs:)`): what calibration measures.
public struct LayerInput: Sendable {
    /// The layers that read this input (several when stacked: they share it).
    public let weightKeys: [String]
    public let map: FeatureMap
}

final class LayerInputRecorder: @unchecked Sendable {
    private(set) var inputs: [LayerInput] = []
    @TaskLocal static var current: LayerInputRecorder?

    func record(_ keys: [String], _ map: FeatureMap) { inputs.append(LayerInput(weightKeys: keys, map: map)) }
}

/// A convolution that tells the pass's recorder (if any) what it reads.
final class NamedConvolution: Convolution {
    let conv: Convolution
    let weightKeys: [String]

    init(_ conv: Convolution, weightKeys: [String]) {
        self.conv = conv
        self.weightKeys = weightKeys
    }

    var geometry: ConvGeometry { conv.geometry }
    var workers: Workers { conv.workers }

    private var name: String { weightKeys.first ?? "" }

    func apply(_ x: FeatureMap) -> FeatureMap {
        LayerInputRecorder.current?.record(weightKeys, x)
        return LayerTimes.timeLayer(name) { conv.apply(x) }
    }

    func apply(_ x: FeatureMap, channels: Range<Int>) -> FeatureMap {
        LayerInputRecorder.current?.record(weightKeys, x.channelSlice(channels))
        return LayerTimes.timeLayer(name) { conv.apply(x, channels: channels) }
    }

    func applyThenPool2x2(_ x: FeatureMap) -> FeatureMap {
        LayerInputRecorder.current?.record(weightKeys, x)
        return LayerTimes.timeLayer(name) { conv.applyThenPool2x2(x) }
    }

    var int8Input: ActivationQuantization? { conv.int8Input }

    func applyQuantized(_ x: FeatureMap, for next: ActivationQuantization) -> ByteMap {
        LayerInputRecorder.current?.record(weightKeys, x)
        return LayerTimes.timeLayer(name) { conv.applyQuantized(x, for: next) }
    }

    // Byte inputs never come while layer inputs are recorded (`chain`):
    // they are recorded as fp32 maps.
    func applyQuantized(_ x: ByteMap, for next: ActivationQuantization) -> ByteMap {
        LayerTimes.timeLayer(name) { conv.applyQuantized(x, for: next) }
    }
    func apply(_ x: ByteMap) -> FeatureMap { LayerTimes.timeLayer(name) { conv.apply(x) } }
    func applyThenPool2x2(_ x: ByteMap) -> FeatureMap { LayerTimes.timeLayer(name) { conv.applyThenPool2x2(x) } }
}

/// u8 activations times s8 weights summed exactly in int32 (`ckernels_gemm_u8s8`: AVX-512
/// VNNI, AVX2 or portable C). Threads take bands of output rows; each copies its band's input
/// rows into a window, quantized to bytes on the way (`ckernels_int8_fill`: zero-padded,
/// stride phases, 4 channels interleaved per 32-bit word), and multiplies. The zero point,
/// the weight and input scales and the layer's own epilogue meet in one per-channel
/// multiply-add on the int32 sum, precomputed at load:
///     y[o] = acc[o] * A[o] + B[o],  A[o] = s_x s_w[o] scale[o],
///     B[o] = bias[o] - z_x (sum_j q_w[o, j]) A[o]
/// then ReLU and the post affine as in fp32. The output is fp32 — what follows (BatchNorm
/// affines, pooling, resizing, L2 normalisation, attention, NetVLAD) stays fp32 — or, when
/// another int8 convolution reads it next, bytes quantized for that one (`ByteMap`; the models
/// chain layers so, `chain`), or its 2x2 average pooling: those two
/// pass each band's fp32 values through a scratch band that stays in cache, so the full-size
/// fp32 map is never written (a 78 MB map at 480 x 640 in VGG's first block) and the next
/// layer's fill copies bytes instead of quantizing floats. Both give exactly the values of the
/// plain path (`Int8FusedPathTests`).
final class Int8Convolution: Convolution {
    let geometry: ConvGeometry
    let workers: Workers
    let level: Int32
    let input: ActivationQuantization
    /// Output positions per band at most (0: a window budget's worth); tests force many bands.
    let bandPositions: Int
    private let groups: Int
    private let packed: UnsafeMutableBufferPointer<Int8>
    /// A (as the scale), B (as the bias), post scale and post shift.
    private let epilogue: StoredEpilogue
    private let lastOutput = ReusableBuffer<Float>()
    private let lastBytes = ReusableBuffer<UInt8>()
    /// The model's pool of worker scratch (windows and scratch bands).
    private let scratch: ScratchPool

    /// `level`: 0 portable, 1 AVX2, 2 AVX-512 VNNI (at most `ckernels_int8_level()`).
    init(_ geometry: ConvGeometry, layer: Int8Layer, epilogue e: Epilogue, level: Int32, workers: Workers, bandPositions: Int = 0,
         scratch: ScratchPool) {
        let g = geometry, taps = g.kernel * g.kernel
        self.geometry = g
        self.scratch = scratch
        self.workers = workers
        self.level = level
        self.input = layer.input
        self.bandPositions = bandPositions
        groups = (g.inChannels + 3) / 4
        // [out, in, ky, kx] -> [out, group of 4 inputs, ky, kx, 4], zeros past the last input.
        let k4 = groups * taps
        var reordered = [Int8](repeating: 0, count: g.outChannels * 4 * k4)
        for o in 0..<g.outChannels {
            for ci in 0..<g.inChannels {
                for t in 0..<taps {
                    reordered[((o * groups + ci / 4) * taps + t) * 4 + ci % 4] = layer.weight[(o * g.inChannels + ci) * taps + t]
                }
            }
        }
        let packed = UnsafeMutableBufferPointer<Int8>.allocate(capacity: ckernels_int8_packed_count(Int32(g.outChannels), Int32(k4)))
        var rowSums = [Int32](repeating: 0, count: g.outChannels)
        reordered.withUnsafeBufferPointer { a in
            ckernels_int8_pack(a.baseAddress!, Int32(g.outChannels), Int32(k4), packed.baseAddress!, &rowSums)
        }
        self.packed = packed
        var a = [Float](repeating: 0, count: g.outChannels), b = a
        for o in 0..<g.outChannels {
            let multiplier = Double(layer.input.scale) * Double(layer.scales[o]) * Double(e.scale?[o] ?? 1)
            a[o] = Float(multiplier)
            b[o] = Float(Double(e.bias?[o] ?? 0) - Double(layer.input.zeroPoint) * Double(rowSums[o]) * multiplier)
        }
        epilogue = StoredEpilogue(Epilogue(scale: a, bias: b, relu: e.relu, post: e.post))
    }

    deinit { packed.deallocate() }

    var int8Input: ActivationQuantization? { input }

    func apply(_ x: FeatureMap) -> FeatureMap { apply(x, channels: 0..<x.channels) }

    func apply(_ x: FeatureMap, channels: Range<Int>) -> FeatureMap {
        x.values.withUnsafeBufferPointer { xs in
            floats(.floats(xs.baseAddress! + channels.lowerBound * x.planeSize), height: x.height, width: x.width, pooled: false)
        }
    }

    /// The pooled output straight from each band's scratch (the full-size map is never written).
    func applyThenPool2x2(_ x: FeatureMap) -> FeatureMap {
        x.values.withUnsafeBufferPointer { floats(.floats($0.baseAddress!), height: x.height, width: x.width, pooled: true) }
    }

    func apply(_ x: ByteMap) -> FeatureMap { floats(bytes: x, pooled: false) }

    func applyThenPool2x2(_ x: ByteMap) -> FeatureMap { floats(bytes: x, pooled: true) }

    private func floats(bytes x: ByteMap, pooled: Bool) -> FeatureMap {
        check(x)
        return x.bytes.withUnsafeBufferPointer { floats(.bytes($0.baseAddress!), height: x.height, width: x.width, pooled: pooled) }
    }

    private func check(_ x: ByteMap) {
        precondition(x.quantization == input && x.channels == geometry.inChannels, "a byte map quantized for another layer")
    }

    func applyQuantized(_ x: FeatureMap, for next: ActivationQuantization) -> ByteMap {
        x.values.withUnsafeBufferPointer { bytes(.floats($0.baseAddress!), height: x.height, width: x.width, for: next) }
    }

    func applyQuantized(_ x: ByteMap, for next: ActivationQuantization) -> ByteMap {
        check(x)
        return x.bytes.withUnsafeBufferPointer { bytes(.bytes($0.baseAddress!), height: x.height, width: x.width, for: next) }
    }

    private func bytes(_ source: Source, height: Int, width: Int, for next: ActivationQuantization) -> ByteMap {
        let (outH, outW) = geometry.outputSize(height: height, width: width)
        var bytes = lastBytes.take(count: geometry.outChannels * max(outH, 0) * max(outW, 0))
        defer { lastBytes.keep(bytes) }
        bytes.withUnsafeMutableBufferPointer { out in run(source, height: height, width: width, into: .bytes(out.baseAddress!, next)) }
        return ByteMap(channels: geometry.outChannels, height: max(outH, 0), width: max(outW, 0), bytes: bytes, quantization: next)
    }

    private enum Source {
        case floats(UnsafePointer<Float>)
        case bytes(UnsafePointer<UInt8>)
    }

    private enum Sink {
        /// The whole fp32 output map.
        case floats(UnsafeMutablePointer<Float>)
        /// Its 2x2 average pooling (`AveragePool.pool2x2`'s values).
        case pooled(UnsafeMutablePointer<Float>)
        /// The whole output as bytes for the next layer.
        case bytes(UnsafeMutablePointer<UInt8>, ActivationQuantization)

        /// Whether each band's fp32 values go through a scratch band first.
        var throughScratch: Bool {
            if case .floats = self { return false }
            return true
        }
    }

    private func floats(_ source: Source, height: Int, width: Int, pooled: Bool) -> FeatureMap {
        var (outH, outW) = geometry.outputSize(height: height, width: width)
        outH = max(outH, 0)
        outW = max(outW, 0)
        if pooled { (outH, outW) = (outH / 2, outW / 2) }
        var values = lastOutput.take(count: geometry.outChannels * outH * outW)
        defer { lastOutput.keep(values) }
        if outH > 0, outW > 0 {
            values.withUnsafeMutableBufferPointer { out in
                run(source, height: height, width: width, into: pooled ? .pooled(out.baseAddress!) : .floats(out.baseAddress!))
            }
        }
        return FeatureMap(trustedChannels: geometry.outChannels, height: outH, width: outW, values: values)
    }

    private func run(_ source: Source, height: Int, width: Int, into sink: Sink) {
        let g = geometry, s = g.stride
        let (outH, outW) = g.outputSize(height: height, width: width)
        guard outH > 0, outW > 0 else { return }
        let phaseWidth = (width + 2 * g.padding + s - 1) / s
        let bytesPerOutputRow = groups * s * s * phaseWidth * 4
        let threads = workers.pieces
        var bandRows = max(1, bandPositions > 0 ? bandPositions / outW : Int8Convolution.windowBudget / bytesPerOutputRow)
        if sink.throughScratch { bandRows = min(bandRows, max(1, Int8Convolution.scratchFloats / (g.outChannels * outW))) }
        let bands = min(outH, (((outH + bandRows - 1) / bandRows + threads - 1) / threads) * threads)
        bandRows = (outH + bands - 1) / bands
        // Pooled bands start on even rows.
        if case .pooled = sink { bandRows += bandRows % 2 }
        let paddedRows = s * (bandRows - 1) + g.kernel
        let windowBytes = groups * s * paddedRows * phaseWidth * 4
        var offsets: [Int] = []
        for group in 0..<groups {
            for ky in 0..<g.kernel {
                for kx in 0..<g.kernel {
                    offsets.append((((group * s + kx % s) * paddedRows + ky) * phaseWidth + kx / s) * 4)
                }
            }
        }
        let bandCount = (outH + bandRows - 1) / bandRows
        let inverse = 1 / input.scale, zeroPoint = Int32(input.zeroPoint)
        offsets.withUnsafeBufferPointer { o in
            // One buffer from the model's scratch pool: the window's bytes, then the scratch band.
            let windowFloats = (windowBytes + 3) / 4, scratchCount = sink.throughScratch ? g.outChannels * bandRows * outW : 0
            workers.forEachChunk(bandCount) { range in
                scratch.withBuffer(windowFloats + scratchCount) { buffer in
                    let window = UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: UInt8.self), band = buffer + windowFloats
                    epilogue.withPointer { e in
                        for index in range {
                            let oy0 = index * bandRows, rows = min(bandRows, outH - oy0)
                            switch source {
                            case .floats(let x):
                                ckernels_int8_fill(level, x, Int32(g.inChannels), Int32(height), Int32(width), Int32(s), Int32(g.padding),
                                                   Int32(g.kernel), Int32(oy0), Int32(rows), Int32(paddedRows), inverse, zeroPoint, window)
                            case .bytes(let x):
                                ckernels_int8_fill_bytes(x, Int32(g.inChannels), Int32(height), Int32(width), Int32(s), Int32(g.padding),
                                                         Int32(g.kernel), Int32(oy0), Int32(rows), Int32(paddedRows), zeroPoint, window)
                            }
                            var target = band, matrixRow = rows * outW
                            if case .floats(let output) = sink { (target, matrixRow) = (output + oy0 * outW, outH * outW) }
                            ckernels_gemm_u8s8(level, Int32(g.outChannels), Int32(rows), Int32(outW), Int32(o.count), packed.baseAddress!,
                                               window, s * phaseWidth * 4, o.baseAddress!, target, matrixRow, outW, e)
                            if sink.throughScratch { drain(band, rows: rows, firstRow: oy0, outH: outH, outW: outW, into: sink) }
                        }
                    }
                }
            }
        }
    }

    /// Rows `firstRow ..< firstRow + rows` of the output, in the scratch `band`, into a pooled
    /// or byte sink.
    private func drain(_ band: UnsafeMutablePointer<Float>, rows: Int, firstRow: Int, outH: Int, outW: Int, into sink: Sink) {
        switch sink {
        case .floats:
            break
        case .pooled(let output):
            let pooledH = outH / 2, pooledW = outW / 2
            for c in 0..<geometry.outChannels {
                for r in 0..<(rows / 2) {
                    let row = band + (c * rows + 2 * r) * outW
                    AveragePool.poolRows(row, row + outW, into: output + (c * pooledH + firstRow / 2 + r) * pooledW, count: pooledW)
                }
            }
        case .bytes(let output, let next):
            for c in 0..<geometry.outChannels {
                ckernels_quantize_bytes(level, band + c * rows * outW, Int32(rows * outW), 1 / next.scale, Int32(next.zeroPoint),
                                        output + (c * outH + firstRow) * outW)
            }
        }
    }

    /// Floats of a band's fp32 output on its way to bytes or pooling (512 KB: in L2 until then).
    static let scratchFloats = 1 << 17

    /// Bytes of quantized input a band reads (~256 KB: in L2 while the product reads it).
    static let windowBudget = 1 << 18
}

extension CPUKernels {
    func makeInt8Convolution(_ geometry: ConvGeometry, layer: Int8Layer, epilogue: Epilogue) -> Convolution {
        let made = Int8Convolution(geometry, layer: layer, epilogue: epilogue, level: Int8Convolution.level(level), workers: workers,
                                   bandPositions: columnBudget ?? 0, scratch: scratch)
        return LayerTimes.isEnabled ? TimedConvolution(made) : made
    }
}

extension Int8Convolution {
    /// The int8 kernels for a SIMD level: AVX-512 means VNNI where the CPU has it (else AVX2).
    static func level(_ simd: SIMDLevel) -> Int32 {
        switch simd {
        case .portable: return 0
        case .avx2: return min(1, ckernels_int8_level())
        case .avx512: return ckernels_int8_level()
        }
    }
}

extension KernelOps {
    /// Conv2d computed in int8 as the models do it (`Int8Convolution`): `input` quantized
    /// with `layer.input`, `layer.weight` `[out, in, kernel, kernel]` with one scale per
    /// output channel, then `bias`, the optional ReLU and, with `pooled`, 2x2 average pooling
    /// fused as the models fuse it. `bandPositions` forces bands of at most that many output
    /// positions (tests).
    public func int8Conv2d(_ input: FeatureMap, layer: Int8Layer, kernel: Int, bias: [Float]? = nil, stride: Int = 1,
                           padding: Int = 0, relu: Bool = false, pooled: Bool = false, bandPositions: Int? = nil) throws -> FeatureMap {
        let conv = try int8Convolution(input.channels, input.height, input.width, layer: layer, kernel: kernel, bias: bias, stride: stride,
                                       padding: padding, relu: relu, bandPositions: bandPositions)
        return pooled ? conv.applyThenPool2x2(input) : conv.apply(input)
    }

    /// Two int8 convolutions in a row as the models run them: the first's output handed to the
    /// second as bytes (`ByteMap`), then, with `pooled`, 2x2 average pooling as the models fuse
    /// it. The same values as `int8Conv2d` twice.
    public func int8Conv2dPair(_ input: FeatureMap, first: (layer: Int8Layer, bias: [Float]?), second: (layer: Int8Layer, bias: [Float]?),
                               kernel: Int, padding: Int = 0, relu: Bool = false, pooled: Bool = false,
                               bandPositions: Int? = nil) throws -> FeatureMap {
        let a = try int8Convolution(input.channels, input.height, input.width, layer: first.layer, kernel: kernel, bias: first.bias,
                                    stride: 1, padding: padding, relu: relu, bandPositions: bandPositions)
        let (h, w) = a.geometry.outputSize(height: input.height, width: input.width)
        let b = try int8Convolution(a.geometry.outChannels, h, w, layer: second.layer, kernel: kernel, bias: second.bias,
                                    stride: 1, padding: padding, relu: relu, bandPositions: bandPositions)
        return chain([a, b], input, pooled: pooled)
    }

    private func int8Convolution(_ channels: Int, _ height: Int, _ width: Int, layer: Int8Layer, kernel: Int, bias: [Float]?, stride: Int,
                                 padding: Int, relu: Bool, bandPositions: Int?) throws -> Convolution {
        let out = layer.scales.count
        guard kernel > 0, stride > 0, padding >= 0, out > 0, layer.weight.count == out * channels * kernel * kernel,
              height + 2 * padding >= kernel, width + 2 * padding >= kernel,
              layer.input.scale.isFinite, layer.input.scale > 0, (0...255).contains(layer.input.zeroPoint)
        else { throw RuntimeError.wrongShape(tensor: "int8 weight", expected: [out, channels, kernel, kernel], found: [layer.weight.count]) }
        if let bias, bias.count != out { throw RuntimeError.wrongShape(tensor: "bias", expected: [out], found: [bias.count]) }
        var kernels = kernels
        if let bandPositions { kernels.columnBudget = max(1, bandPositions) }
        let geometry = ConvGeometry(inChannels: channels, outChannels: out, kernel: kernel, stride: stride, padding: padding)
        return kernels.makeInt8Convolution(geometry, layer: layer, epilogue: Epilogue(bias: bias, relu: relu))
    }
}
