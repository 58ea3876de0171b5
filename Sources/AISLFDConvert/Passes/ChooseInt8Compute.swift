import AISLFDCore
import AISLFDFormat
import AISLFDRuntime
import Foundation

/// int8 with calibration, after MixedPrecision (so a weight it promoted, which is worth more
/// stored wider, is never held at int8 for compute): decides which convolutions compute in int8 (u8 inputs, s8
/// weights, int32 sums; the runtime's `Int8Convolution`) and which stay in fp32 arithmetic,
/// by measuring, never by guessing. A layer can compute in int8 when its weight (all of them,
/// for layers that read one input together) is stored int8 with one scale per output channel
/// and calibration saw its input. Its input quantization covers the range calibration saw
/// (`ActivationQuantization(low:high:)`, asymmetric u8, zero exact).
///
/// Greedy, largest multiply-add count first (the most time saved): a layer is accepted when
/// the network with it and every layer accepted before it computing in int8 (weights at their
/// stored values) still keeps, on the sensitivity images, the low quantile (`quantile`) of the
/// per-position cosines to the fp32 network at or above `descriptorCosine` for the desc maps
/// and `metaCosine` for the meta maps — aislfd-verify's int8 tolerances for keypoint
/// descriptors (0.998) and meta descriptors (0.999). Verify takes the least cosine over its
/// keypoints (40 per variant in the parity tests, about a 1/40 quantile); the 1/500 quantile
/// over every position of every map is stricter than that, yet free of the image's few worst
/// pixels (flat regions where the descriptor nearly vanishes), which no keypoint detector picks. Attention,
/// softmax, BatchNorm affines, pooling, resizing, L2 normalisation and NetVLAD are never int8.
struct ChooseInt8Compute: ConversionPass {
    let name = "ChooseInt8Compute"
    /// aislfd-verify's int8 tolerances (Tolerances.forPrecision(.int8)); a test holds them equal.
    static let descriptorCosine = 0.998
    static let metaCosine = 0.999
    static let quantile = 0.002

    func run(_ state: inout ConversionState) throws -> JSONValue {
        guard state.options.precision == .int8, !state.options.weightsOnly, let settings = state.options.calibration else {
            return .object(["ran": .bool(false), "reason": json(state.options.weightsOnly ? "--weights-only: every layer computes in fp32"
                                                                   : "no calibration: every layer computes in fp32")])
        }
        let network: CalibrationNetwork
        switch CalibrationNetwork.make(state) {
        case .failure(let reason): return .object(["ran": .bool(false), "reason": json(reason.text + "; every layer computes in fp32")])
        case .success(let n): network = n
        }
        let images = try (0..<settings.sensitivityImages).map { i in
            try CalibrationNetwork.image(CalibrationImages.deadLeaves(seed: settings.sensitivityImageSeed(i), height: settings.sensitivityHeight,
                                                                      width: settings.sensitivityWidth),
                                         height: settings.sensitivityHeight, width: settings.sensitivityWidth)
        }
        guard let first = images.first else { return .object(["ran": .bool(false), "reason": json("no sensitivity images")]) }
        let reference = try images.map { try network.reference.forward(image: $0) }

        // The layers in the order the network runs them, with their multiply-adds on the first image.
        var stored: [String: [Float]] = [:]
        var int8Forms: [String: (q: [Int8], scales: [Float])] = [:]
        for t in state.tensors {
            stored[t.key] = t.storedValues
            if case .int8(let q, let scales) = t.stored { int8Forms[t.key] = (q, scales) }
        }
        struct Group { var keys: [String]; var macs: Double; var input: ActivationQuantization? }
        var groups: [Group] = []
        var skipped: [JSONValue] = []
        for input in try network.reference.forward(image: first, recordLayerInputs: true).layerInputs {
            let m = input.map
            var macs = 0.0
            for key in input.weightKeys {
                guard let spec = state.schema.tensor(key), let layer = state.schema.layer(spec.layer) else { continue }
                let k = layer.kernel ?? 1, s = layer.stride ?? 1, p = layer.padding ?? 0
                let outH = layer.op == .linear ? m.height : (m.height + 2 * p - k) / s + 1
                let outW = layer.op == .linear ? m.width : (m.width + 2 * p - k) / s + 1
                macs += Double(layer.outChannels * layer.inChannels * k * k * outH * outW)
            }
            let ranges = input.weightKeys.compactMap { state.inputRanges[$0] }
            let eligible = input.weightKeys.allSatisfy { int8Forms[$0] != nil } && ranges.count == input.weightKeys.count
            let quantization = eligible ? ChooseInt8Compute.fitted(low: ranges.map(\.low).min()!, high: ranges.map(\.high).max()!,
                                                                   samples: state.inputSamples[input.weightKeys[0]] ?? []) : nil
            if quantization == nil {
                skipped.append(.object(["weights": json(input.weightKeys), "reason": json(eligible ? "its input range is empty"
                    : "not every weight is int8 with per-channel scales (kept, promoted, or its input unmeasured)")]))
            }
            groups.append(Group(keys: input.weightKeys, macs: macs, input: quantization))
        }
        let totalMACs = groups.reduce(0) { $0 + $1.macs }

        func layers(_ chosen: [Group]) -> [String: Int8Layer] {
            var out: [String: Int8Layer] = [:]
            for g in chosen {
                for key in g.keys { out[key] = Int8Layer(weight: int8Forms[key]!.q, scales: int8Forms[key]!.scales, input: g.input!) }
            }
            return out
        }
        /// The low quantile of the desc and meta cosines over all maps, positions and images.
        func measure(_ chosen: [Group]) throws -> (desc: Double, meta: Double) {
            let model = try network.model(replacing: stored, int8Layers: layers(chosen))
            var desc: [Double] = [], meta: [Double] = []
            for (image, expected) in zip(images, reference) {
                let out = try model.forward(image: image)
                for v in Variant.allCases {
                    desc += positionCosines(out.desc[v], expected.desc[v])
                    meta += positionCosines(out.meta[v], expected.meta[v])
                }
            }
            let result = (desc: lowQuantile(desc, ChooseInt8Compute.quantile), meta: lowQuantile(meta, ChooseInt8Compute.quantile))
            return result
        }

        let storedOnly = try measure([])
        var accepted: [Group] = []
        var rows: [JSONValue] = []
        // A layer computing in int8 only adds error: when the stored weights alone are outside,
        // no layer can be inside.
        let room = storedOnly.desc >= ChooseInt8Compute.descriptorCosine && storedOnly.meta >= ChooseInt8Compute.metaCosine
        for g in groups.filter({ $0.input != nil && room }).sorted(by: { $0.macs > $1.macs }) {
            let result = try measure(accepted + [g])
            let keeps = result.desc >= ChooseInt8Compute.descriptorCosine && result.meta >= ChooseInt8Compute.metaCosine
            if keeps { accepted.append(g) }
            rows.append(.object([
                "weights": json(g.keys), "compute": json(keeps ? "int8" : "fp32"),
                "share_of_multiply_adds": .double((g.macs / max(totalMACs, 1) * 10_000).rounded() / 10_000),
                "input_scale": .double(Double(g.input!.scale)), "input_zero_point": json(g.input!.zeroPoint),
                "desc_cosine_quantile": .double(result.desc), "meta_cosine_quantile": .double(result.meta),
            ]))
        }
        for (key, layer) in layers(accepted) {
            state.int8Compute[key] = AISWMetadata.Int8Compute(inputScale: layer.input.scale, inputZeroPoint: layer.input.zeroPoint)
        }
        let final = accepted.isEmpty ? storedOnly : try measure(accepted)
        return .object([
            "ran": .bool(true),
            "rule": json("largest multiply-add count first; int8 while the \(ChooseInt8Compute.quantile) quantile of the per-position cosines "
                         + "to the fp32 network stays >= \(ChooseInt8Compute.descriptorCosine) (desc maps) and >= \(ChooseInt8Compute.metaCosine) (meta maps)"),
            "sensitivity_images": json(images.count),
            "weights_stored_only": .object(["desc_cosine_quantile": .double(storedOnly.desc), "meta_cosine_quantile": .double(storedOnly.meta)]),
            "chosen": .object(["desc_cosine_quantile": .double(final.desc), "meta_cosine_quantile": .double(final.meta)]),
            "int8_share_of_multiply_adds": .double((accepted.reduce(0) { $0 + $1.macs } / max(totalMACs, 1) * 10_000).rounded() / 10_000),
            "layers": .array(rows),
            "not_candidates": .array(skipped),
        ])
    }
}

extension ChooseInt8Compute {
    /// The u8 quantization of an input whose values calibration saw in `low ... high`: of the
    /// ranges `f * low ... f * high` (f = 2^(-k/4) from 1 down to 1/64), the one with the least
    /// squared error on `samples`: the inputs are heavy-tailed (the calibration images' largest
    /// value is tens of standard deviations out), so clipping the few outliers buys much finer
    /// steps for everything else.
    static func fitted(low: Float, high: Float, samples: [Float]) -> ActivationQuantization? {
        var best: (error: Double, q: ActivationQuantization)? = nil
        for k in 0...24 {
            let f = Float(pow(2, -Double(k) / 4))
            guard let q = ActivationQuantization(low: low * f, high: high * f) else { continue }
            let inverse = 1 / q.scale, z = Float(q.zeroPoint)
            var error = 0.0
            for x in samples {
                let level = min(max((x * inverse).rounded(.toNearestOrEven) + z, 0), 255)
                let d = Double((level - z) * q.scale - x)
                error += d * d
            }
            if best.map({ error < $0.error }) ?? true { best = (error, q) }
        }
        return best?.q
    }
}
