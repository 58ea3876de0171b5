import AISLFDCore
import AISLFDRuntime
import XCTest

/// The int8 convolution at every SIMD level against plain integer loops. Scales of 1 and
/// inputs that are whole numbers in the quantizer's range make the int8 result exact, so
/// any slip of a byte (interleaving, padding, stride phases, zero point, masking, bands)
/// shows as a difference, not as noise.
final class Int8ConvolutionTests: XCTestCase {
    struct Case {
        var inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, height: Int, width: Int, zeroPoint: Int
    }

    static let cases: [Case] = [
        Case(inChannels: 3, outChannels: 5, kernel: 3, stride: 1, padding: 1, height: 7, width: 9, zeroPoint: 0),
        Case(inChannels: 3, outChannels: 64, kernel: 3, stride: 2, padding: 1, height: 11, width: 37, zeroPoint: 17),
        Case(inChannels: 8, outChannels: 9, kernel: 3, stride: 2, padding: 1, height: 10, width: 10, zeroPoint: 255),
        Case(inChannels: 13, outChannels: 17, kernel: 1, stride: 1, padding: 0, height: 5, width: 41, zeroPoint: 128),
        Case(inChannels: 16, outChannels: 24, kernel: 3, stride: 1, padding: 1, height: 6, width: 70, zeroPoint: 3),
        Case(inChannels: 6, outChannels: 8, kernel: 1, stride: 2, padding: 0, height: 9, width: 8, zeroPoint: 100),
    ]

    func testExactAgainstIntegerLoops() throws {
        var random = SplitMix64(seed: 11)
        for (n, c) in Int8ConvolutionTests.cases.enumerated() {
            let taps = c.kernel * c.kernel
            let weight = (0..<(c.outChannels * c.inChannels * taps)).map { _ in Int8(random.int(in: -127...127)) }
            // x = q - zeroPoint with q a byte: exactly representable by the quantizer.
            let x = (0..<(c.inChannels * c.height * c.width)).map { _ in Float(random.int(in: 0...255) - c.zeroPoint) }
            let bias = (0..<c.outChannels).map { Float($0 * 3 - 7) }
            let input = try FeatureMap(channels: c.inChannels, height: c.height, width: c.width, values: x)
            let expected = integerConvolution(c, weight, x, bias)
            let layer = Int8Layer(weight: weight, scales: [Float](repeating: 1, count: c.outChannels),
                                  input: ActivationQuantization(scale: 1, zeroPoint: c.zeroPoint))
            for level in availableSIMDLevels {
                let ops = KernelOps(RuntimeConfiguration(threads: 2, simd: level))
                for bands in [nil, 7] as [Int?] {
                    let out = try ops.int8Conv2d(input, layer: layer, kernel: c.kernel, bias: bias, stride: c.stride,
                                                 padding: c.padding, bandPositions: bands)
                    XCTAssertEqual(out.values.count, expected.count, "case \(n)")
                    let wrong = zip(out.values, expected).filter { $0 != $1 }.count
                    XCTAssertEqual(wrong, 0, "case \(n) \(level) bands \(bands.map(String.init) ?? "default"): \(wrong) values differ")
                }
            }
        }
    }

    /// The models' fused int8 paths against plain integer loops, exactly as above: two layers
    /// with the first's output handed over as bytes (quantized for the second, saturating),
    /// the 2x2 pooling taken from each band, and VGG's banded first block in int8.
    func testBytesBetweenLayersAndPoolingAgainstIntegerLoops() throws {
        var random = SplitMix64(seed: 23)
        let shapes: [(c0: Int, c1: Int, c2: Int, kernel: Int, padding: Int, height: Int, width: Int)] = [
            (3, 8, 5, 3, 1, 7, 9), (5, 16, 7, 3, 1, 10, 21), (4, 6, 9, 1, 0, 5, 17), (3, 4, 6, 3, 1, 13, 8),
        ]
        let z1 = 9, z2 = 30
        for (n, s) in shapes.enumerated() {
            let first = Case(inChannels: s.c0, outChannels: s.c1, kernel: s.kernel, stride: 1, padding: s.padding, height: s.height, width: s.width, zeroPoint: z1)
            let second = Case(inChannels: s.c1, outChannels: s.c2, kernel: s.kernel, stride: 1, padding: s.padding, height: s.height, width: s.width, zeroPoint: z2)
            let taps = s.kernel * s.kernel
            let reach = s.kernel == 1 ? 8 : 2
            let w1 = (0..<(s.c1 * s.c0 * taps)).map { _ in Int8(random.int(in: -reach...reach)) }
            let w2 = (0..<(s.c2 * s.c1 * taps)).map { _ in Int8(random.int(in: -127...127)) }
            let b1 = (0..<s.c1).map { Float($0 * 5 - 20) }, b2 = (0..<s.c2).map { Float($0 * 3 - 7) }
            let x = (0..<(s.c0 * s.height * s.width)).map { _ in Float(random.int(in: 0...60) - z1) }
            // Some of the first layer's outputs leave the second's byte range: they saturate.
            let y1 = integerConvolution(first, w1, x, b1).map { max($0, 0) }
            XCTAssertTrue(y1.contains { $0 > Float(255 - z2) } && y1.contains { $0 > 0 && $0 < Float(255 - z2) }, "case \(n): saturation and the range between")
            let y2 = integerConvolution(second, w2, y1.map { min(max($0 + Float(z2), 0), 255) - Float(z2) }, b2).map { max($0, 0) }
            let pooled = pool(y2, channels: s.c2, height: s.height, width: s.width)
            let input = try FeatureMap(channels: s.c0, height: s.height, width: s.width, values: x)
            let l1 = Int8Layer(weight: w1, scales: [Float](repeating: 1, count: s.c1), input: ActivationQuantization(scale: 1, zeroPoint: z1))
            let l2 = Int8Layer(weight: w2, scales: [Float](repeating: 1, count: s.c2), input: ActivationQuantization(scale: 1, zeroPoint: z2))
            for level in availableSIMDLevels {
                let ops = KernelOps(RuntimeConfiguration(threads: 2, simd: level))
                for bands in [nil, 7, 30] as [Int?] {
                    let label = "case \(n) \(level) bands \(bands.map(String.init) ?? "default")"
                    for isPooled in [false, true] {
                        let out = try ops.int8Conv2dPair(input, first: (l1, b1), second: (l2, b2), kernel: s.kernel, padding: s.padding,
                                                         relu: true, pooled: isPooled, bandPositions: bands)
                        XCTAssertEqual(out.values, isPooled ? pooled : y2, "\(label) pooled \(isPooled)")
                    }
                    let single = try ops.int8Conv2d(input, layer: l1, kernel: s.kernel, bias: b1, padding: s.padding, relu: true,
                                                    pooled: true, bandPositions: bands)
                    XCTAssertEqual(single.values, pool(y1, channels: s.c1, height: s.height, width: s.width), "\(label) one layer pooled")
                }
                guard s.kernel == 3 else { continue }
                let shapeOnly = { (o: Int, i: Int) in WeightTensor(shape: [o, i, 3, 3], values: [Float](repeating: 0, count: o * i * 9)) }
                for bandFloats in [2 * s.c1 * s.width, 1 << 20] {
                    let banded = try ops.bandedConvolutionsThenPool2x2(input, first: (shapeOnly(s.c1, s.c0), b1), second: (shapeOnly(s.c2, s.c1), b2),
                                                                     int8: (l1, l2), bandFloats: bandFloats)
                    XCTAssertEqual(banded.values, pooled, "case \(n) \(level) banded, \(bandFloats) floats per band")
                }
            }
        }
    }

    /// 2x2 average pooling, stride 2, floor; PyTorch's summation order.
    private func pool(_ x: [Float], channels: Int, height: Int, width: Int) -> [Float] {
        let h = height / 2, w = width / 2
        var out: [Float] = []
        for c in 0..<channels {
            for y in 0..<h {
                for xx in 0..<w {
                    let at = { (dy: Int, dx: Int) in x[(c * height + 2 * y + dy) * width + 2 * xx + dx] }
                    out.append((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4)
                }
            }
        }
        return out
    }

    /// Real scales: the result is the fp32 convolution of the dequantized input and weights,
    /// up to float rounding of the epilogue, and ReLU applies after it.
    func testScalesAndReLU() throws {
        var random = SplitMix64(seed: 5)
        let c = Case(inChannels: 5, outChannels: 6, kernel: 3, stride: 1, padding: 1, height: 6, width: 19, zeroPoint: 40)
        let weight = (0..<(c.outChannels * c.inChannels * 9)).map { _ in Int8(random.int(in: -127...127)) }
        let scales = (0..<c.outChannels).map { Float($0 + 1) * 0.01 }
        let quant = ActivationQuantization(scale: 0.05, zeroPoint: c.zeroPoint)
        let q = (0..<(c.inChannels * c.height * c.width)).map { _ in random.int(in: 0...255) }
        let x = q.map { Float($0 - c.zeroPoint) * quant.scale }
        let input = try FeatureMap(channels: c.inChannels, height: c.height, width: c.width, values: x)
        let integer = integerConvolution(c, weight, q.map { Float($0 - c.zeroPoint) }, [Float](repeating: 0, count: c.outChannels))
        let plane = c.height * c.width
        let expected = integer.enumerated().map { i, v in max(Double(v) * Double(quant.scale) * Double(scales[i / plane]), 0) }
        for level in availableSIMDLevels {
            let out = try KernelOps(RuntimeConfiguration(simd: level)).int8Conv2d(
                input, layer: Int8Layer(weight: weight, scales: scales, input: quant), kernel: 3, padding: 1, relu: true)
            let worst = zip(out.values, expected).map { abs(Double($0) - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-4, "\(level)")
            XCTAssertTrue(out.values.allSatisfy { $0 >= 0 }, "\(level): ReLU")
        }
    }

    /// Inputs outside the quantizer's range saturate at 0 and 255, and ties round to even.
    func testQuantizerClampsAndRoundsHalfToEven() throws {
        // One 1x1 conv, weight 1, scale 1: the output is the quantized input minus the zero point.
        let x: [Float] = [-500, -10.5, -9.5, 0, 0.5, 1.5, 2.5, 244.5, 1000]
        let input = try FeatureMap(channels: 1, height: 1, width: x.count, values: x)
        let layer = Int8Layer(weight: [1], scales: [1], input: ActivationQuantization(scale: 1, zeroPoint: 10))
        for level in availableSIMDLevels {
            let out = try KernelOps(RuntimeConfiguration(simd: level)).int8Conv2d(input, layer: layer, kernel: 1)
            XCTAssertEqual(out.values, [-10, -10, -10, 0, 0, 2, 2, 244, 245], "\(level)")
        }
    }

    func testActivationRange() {
        let q = ActivationQuantization(low: -1, high: 3)
        XCTAssertEqual(q?.scale, Float(4) / 255)
        XCTAssertEqual(q?.zeroPoint, 64)
        XCTAssertEqual(ActivationQuantization(low: 0.5, high: 2)?.zeroPoint, 0, "0 is always in range")
        XCTAssertNil(ActivationQuantization(low: 0, high: 0))
    }

    /// Sum over taps of w * x with zero padding, in integers, then + bias.
    private func integerConvolution(_ c: Case, _ w: [Int8], _ x: [Float], _ bias: [Float]) -> [Float] {
        let outH = (c.height + 2 * c.padding - c.kernel) / c.stride + 1, outW = (c.width + 2 * c.padding - c.kernel) / c.stride + 1
        var out = [Float](repeating: 0, count: c.outChannels * outH * outW)
        for o in 0..<c.outChannels {
            for oy in 0..<outH {
                for ox in 0..<outW {
                    var acc = 0
                    for ci in 0..<c.inChannels {
                        for ky in 0..<c.kernel {
                            for kx in 0..<c.kernel {
                                let y = oy * c.stride + ky - c.padding, xx = ox * c.stride + kx - c.padding
                                guard y >= 0, y < c.height, xx >= 0, xx < c.width else { continue }
                                acc += Int(w[((o * c.inChannels + ci) * c.kernel + ky) * c.kernel + kx]) * Int(x[(ci * c.height + y) * c.width + xx])
                            }
                        }
                    }
                    out[(o * outH + oy) * outW + ox] = Float(acc) + bias[o]
                }
            }
        }
        return out
    }
}

private extension SplitMix64 {
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}

/// A model layer computing in int8 stays close to its fp32 self: the model path (weights
/// loaded, epilogue composed with the BatchNorm affine after it, bands) and not only the kernel.
final class Int8ModelLayerTests: XCTestCase {
    func testVGGLayerInInt8() throws {
        let tensors = SpecWeights.make("lisrd")
        var random = SplitMix64(seed: 3)
        let image = try FeatureMap(channels: 3, height: 48, width: 64, values: (0..<(3 * 48 * 64)).map { _ in Float(random.uniform()) })
        let fp32 = try Model(weights: ModelWeights(architecture: .lisrd, tensors: tensors)).forward(image: image, recordActivations: true)
        let input = try XCTUnwrap(fp32.activations.first { $0.name == "_backbone._bn3_1" })
        let key = "_backbone._conv3_2.weight"
        let w = try XCTUnwrap(tensors[key])
        let rows = w.shape[0], per = w.values.count / rows
        var q = [Int8](repeating: 0, count: w.values.count), scales = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            let m = w.values[(r * per)..<((r + 1) * per)].map(abs).max() ?? 0
            scales[r] = m / 127
            for j in 0..<per where m > 0 { q[r * per + j] = Int8((w.values[r * per + j] / scales[r]).rounded()) }
        }
        var quantizedWeights = tensors
        quantizedWeights[key]?.values = zip(q.indices, q).map { Float($1) * scales[$0 / per] }
        var weights = ModelWeights(architecture: .lisrd, tensors: quantizedWeights)
        let storedOnly = try Model(weights: weights).forward(image: image, recordActivations: true)
        weights.int8Layers[key] = Int8Layer(weight: q, scales: scales,
                                            input: try XCTUnwrap(ActivationQuantization(low: input.values.min()!, high: input.values.max()!)))
        for level in availableSIMDLevels {
            let int8 = try Model(weights: weights, configuration: RuntimeConfiguration(simd: level)).forward(image: image, recordActivations: true)
            let a = try XCTUnwrap(int8.activations.first { $0.name == "_backbone._bn3_2" })
            let b = try XCTUnwrap(storedOnly.activations.first { $0.name == "_backbone._bn3_2" })
            let signal = b.values.reduce(0) { $0 + Double($1) * Double($1) }
            let noise = zip(a.values, b.values).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            XCTAssertGreaterThan(10 * log10(signal / noise), 30, "\(level): int8 compute of conv3_2 vs the same weights in fp32")
        }
    }
}

/// Models whose backbone computes in int8 hand bytes from layer to layer (lisrd also pools
/// from the bands); recording activations takes the plain path (every map in fp32). Both give
/// the same outputs to the bit.
final class Int8FusedPathTests: XCTestCase {
    func testFusedPathsChangeNoValue() throws {
        let vgg = ["1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2"].map { "_backbone._conv\($0).weight" }
        let msfe = ["stem", "layer1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"].map { "msfe.\($0).conv.weight" }
        for (architecture, keys) in [(Architecture.lisrd, vgg), (.aislfdC, msfe)] {
            let tensors = SpecWeights.make(architecture.rawValue)
            var random = SplitMix64(seed: 9)
            let image = try FeatureMap(channels: 3, height: 40, width: 56, values: (0..<(3 * 40 * 56)).map { _ in Float(random.uniform()) })
            var weights = ModelWeights(architecture: architecture, tensors: tensors)
            for key in keys {
                let w = try XCTUnwrap(tensors[key], key)
                let rows = w.shape[0], per = w.values.count / rows
                var q = [Int8](repeating: 0, count: w.values.count), scales = [Float](repeating: 1, count: rows)
                for r in 0..<rows {
                    let m = w.values[(r * per)..<((r + 1) * per)].map(abs).max() ?? 0
                    if m > 0 { scales[r] = m / 127 }
                    for j in 0..<per { q[r * per + j] = Int8((w.values[r * per + j] / scales[r]).rounded()) }
                }
                weights.int8Layers[key] = Int8Layer(weight: q, scales: scales, input: try XCTUnwrap(ActivationQuantization(low: -2, high: 6)))
            }
            for level in availableSIMDLevels {
                let model = try Model(weights: weights, configuration: RuntimeConfiguration(simd: level))
                let fused = try model.forward(image: image), plain = try model.forward(image: image, recordActivations: true)
                for v in Variant.allCases {
                    XCTAssertEqual(fused.desc[v].values, plain.desc[v].values, "\(architecture) \(level) desc \(v)")
                    XCTAssertEqual(fused.meta[v].values, plain.meta[v].values, "\(architecture) \(level) meta \(v)")
                }
            }
        }
    }
}
