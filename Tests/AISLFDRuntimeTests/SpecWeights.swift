import AISLFDCore
import AISLFDRuntime
import Foundation

/// Deterministic pseudo-random numbers (SplitMix64) for test weights and images.
struct SeededRandom {
    private var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [low, high).
    mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }

    mutating func values(_ count: Int, _ low: Float, _ high: Float) -> [Float] {
        (0..<count).map { _ in uniform(low, high) }
    }
}

/// State dicts of the four architectures with random values, every name
/// and shape written from architectures.md (independently of the runtime).
enum SpecWeights {
    static let variants = ["rot_var_illum_var", "rot_invar_illum_var", "rot_var_illum_invar", "rot_invar_illum_invar"]

    static func make(_ arch: String, seed: UInt64 = 1) -> [String: WeightTensor] {
        var rng = SeededRandom(seed: seed)
        var t: [String: WeightTensor] = [:]
        func put(_ name: String, _ shape: [Int], _ low: Float, _ high: Float) {
            t[name] = WeightTensor(shape: shape, values: rng.values(shape.reduce(1, *), low, high))
        }
        func conv(_ p: String, _ cin: Int, _ cout: Int, _ k: Int, bias: Bool) {
            // He-style range keeps activations of order 1 through the deep stacks.
            let a = (6 / Float(cin * k * k)).squareRoot()
            put("\(p).weight", [cout, cin, k, k], -a, a)
            if bias { put("\(p).bias", [cout], -0.1, 0.1) }
        }
        func bn(_ p: String, _ c: Int) {
            put("\(p).weight", [c], 0.8, 1.2)
            put("\(p).bias", [c], -0.1, 0.1)
            put("\(p).running_mean", [c], -0.1, 0.1)
            put("\(p).running_var", [c], 0.5, 1.5)
            t["\(p).num_batches_tracked"] = WeightTensor(shape: [], values: [7])
        }
        let vgg = arch == "lisrd" || arch == "aislfd-a"
        if vgg {
            for (n, cin, cout) in [("1_1", 3, 64), ("1_2", 64, 64), ("2_1", 64, 64), ("2_2", 64, 64),
                                   ("3_1", 64, 128), ("3_2", 128, 128), ("4_1", 128, 256), ("4_2", 256, 256)] {
                conv("_backbone._conv\(n)", cin, cout, 3, bias: true)
                bn("_backbone._bn\(n)", cout)
            }
            for v in variants {
                let parts = v.split(separator: "_")  // rot, A, illum, B
                let base = "illum_\(parts[3])_rot_\(parts[1])"
                conv("conv_\(base)_1", 256, 256, 3, bias: true)
                bn("bn_\(base)_1", 256)
                conv("conv_\(base)_2", 256, 128, 1, bias: true)
            }
        } else {
            for (n, cin, cout) in [("stem", 3, 64), ("layer1", 64, 64), ("layer2.0", 64, 128), ("layer2.1", 128, 128),
                                   ("layer3.0", 128, 256), ("layer3.1", 256, 256), ("layer4.0", 256, 256),
                                   ("layer4.1", 256, 256), ("smooth", 256, 256)] {
                conv("msfe.\(n).conv", cin, cout, 3, bias: false)
                bn("msfe.\(n).bn", cout)
            }
            conv("msfe.lateral2", 128, 256, 1, bias: true)
            conv("msfe.lateral3", 256, 256, 1, bias: true)
            conv("msfe.lateral4", 256, 256, 1, bias: true)
            for v in variants {
                conv("msfe.heads.\(v).conv1", 256, 256, 3, bias: false)
                bn("msfe.heads.\(v).bn1", 256)
                conv("msfe.heads.\(v).conv2", 256, 128, 1, bias: true)
            }
        }
        if arch == "lisrd" || arch == "aislfd-b" {
            for v in variants {
                put("vlad_\(v).centroids", [8, 128], -0.1, 0.1)
                conv("vlad_\(v).conv", 128, 8, 1, bias: true)
            }
        } else {
            for v in variants {
                for n in ["query", "key", "value"] {
                    put("psa.\(v).\(n).weight", [128, 128], -0.3, 0.3)
                    put("psa.\(v).\(n).bias", [128], -0.1, 0.1)
                }
            }
        }
        return t
    }

    static func image(height: Int, width: Int, seed: UInt64 = 7) throws -> Image {
        var rng = SeededRandom(seed: seed)
        return try Image(channels: 3, height: height, width: width, values: rng.values(3 * height * width, 0, 1))
    }

    // MARK: The converter's folded forms, computed here in Double.

    /// BatchNorm prefixes (those with running statistics).
    static func batchNorms(_ t: [String: WeightTensor]) -> [String] {
        t.keys.filter { $0.hasSuffix(".running_var") }.map { String($0.dropLast(".running_var".count)) }.sorted()
    }

    static func affine(_ t: [String: WeightTensor], _ bn: String) -> (scale: [Double], shift: [Double]) {
        let g = t["\(bn).weight"]!.values, b = t["\(bn).bias"]!.values
        let m = t["\(bn).running_mean"]!.values, v = t["\(bn).running_var"]!.values
        let s = (0..<g.count).map { Double(g[$0]) / (Double(v[$0]) + 1e-5).squareRoot() }
        return (s, (0..<g.count).map { Double(b[$0]) - Double(m[$0]) * s[$0] })
    }

    static func removeBatchNorm(_ t: inout [String: WeightTensor], _ bn: String) {
        for n in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"] { t["\(bn).\(n)"] = nil }
    }

    /// Every BatchNorm as `scale` / `shift`.
    static func asScaleShift(_ t: [String: WeightTensor]) -> [String: WeightTensor] {
        var out = t
        for bn in batchNorms(t) {
            let (s, sh) = affine(t, bn)
            removeBatchNorm(&out, bn)
            out["\(bn).scale"] = WeightTensor(shape: [s.count], values: s.map(Float.init))
            out["\(bn).shift"] = WeightTensor(shape: [s.count], values: sh.map(Float.init))
        }
        return out
    }

    /// conv -> BN folded into the conv (weight scaled, bias appears).
    static func foldIntoConv(_ t: inout [String: WeightTensor], conv: String, bn: String) {
        let (s, sh) = affine(t, bn)
        var w = t["\(conv).weight"]!
        let per = w.values.count / s.count
        for o in 0..<s.count { for i in 0..<per { w.values[o * per + i] = Float(Double(w.values[o * per + i]) * s[o]) } }
        let oldBias = t["\(conv).bias"]?.values
        t["\(conv).weight"] = w
        t["\(conv).bias"] = WeightTensor(shape: [s.count], values: (0..<s.count).map { Float(Double(oldBias?[$0] ?? 0) * s[$0] + sh[$0]) })
        removeBatchNorm(&t, bn)
    }

    /// ReLU -> BN -> 1x1 conv: the BN folded forward into the conv's input channels.
    static func foldForward(_ t: inout [String: WeightTensor], bn: String, into conv: String) {
        let (s, sh) = affine(t, bn)
        var w = t["\(conv).weight"]!, b = t["\(conv).bias"]!
        let cin = s.count, cout = w.shape[0]
        for o in 0..<cout {
            var extra = 0.0
            for i in 0..<cin {
                extra += Double(w.values[o * cin + i]) * sh[i]
                w.values[o * cin + i] = Float(Double(w.values[o * cin + i]) * s[i])
            }
            b.values[o] = Float(Double(b.values[o]) + extra)
        }
        t["\(conv).weight"] = w
        t["\(conv).bias"] = b
        removeBatchNorm(&t, bn)
    }

    /// Everything foldable folded as the converter will: MSFE conv -> BN into
    /// the conv, LISRD heads' ReLU -> BN forward into conv_2, and the VGG
    /// BNs (followed by pooling and padded 3x3 convs) as scale/shift.
    static func folded(_ arch: String, _ t: [String: WeightTensor]) -> ModelWeights {
        var out = t
        var folded: Set<String> = []
        for bn in batchNorms(t) {
            if bn.hasPrefix("msfe.") {
                let conv = bn.hasSuffix(".bn1") ? String(bn.dropLast(4)) + ".conv1" : String(bn.dropLast(3)) + ".conv"
                foldIntoConv(&out, conv: conv, bn: bn)
                folded.insert(bn)
            } else if bn.hasPrefix("bn_") {
                foldForward(&out, bn: bn, into: "conv_" + bn.dropFirst(3).dropLast(2) + "_2")
                folded.insert(bn)
            }
        }
        return ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: asScaleShift(out), foldedLayers: folded)
    }
}
