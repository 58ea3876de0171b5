import AISLFDCore
import AISLFDFormat
import AISLFDRuntime

/// int8 with calibration: decides which convolutions compute in int8 (u8 inputs, s8
/// weights, int32 sums; the runtime's `Int8Convolution`) and which stay in fp32 arithmetic,
/// by measuring, never by guessing. A layer can compute in int8 when its weight (all of them,
/// for layers that read one input together) is stored int8 with one scale per output channel
/// and calibration saw its input. Its input quantization covers the range calibration saw
/// (`ActivationQuantization(low:high:)`, asymmetric u8, zero exact).
///
/// Greedy, largest multiply-add count first (the most time saved): a layer is accepted when
/// the network with it and every layer accepted before it computing in int8 (weights at their
/// stored values) still keeps, on the sensitivity images, every desc map's least per-position
/// cosine to the fp32 network at or above `descriptorCosine` and every meta map's at or above
/// `metaCosine` — aislfd-verify's int8 tolerances for keypoint descriptors (0.998) and meta
/// descriptors (0.999), taken over all positions rather than sampled keypoints. Attention,
/// softmax, BatchNorm affines, pooling, resizing, L2 normalisation and NetVLAD are never int8.
struct ChooseInt8Compute: ConversionPass {
    let name = "ChooseInt8Compute"
    /// Measurements of earlier attempts (the converter repeats the last passes when the file
    /// outgrew its budget), by the weights' storage and the layers computing in int8.
    let computed: ComputeCache
    /// aislfd-verify's int8 tolerances (Tolerances.forPrecision(.int8)); a test holds them equal.
    static let descriptorCosine = 0.998
    static let metaCosine = 0.999

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
            let quantization = eligible ? ActivationQuantization(low: ranges.map(\.low).min()!, high: ranges.map(\.high).max()!) : nil
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
        /// Least desc and meta cosines over all maps, positions and images.
        let storage = state.tensors.map { "\($0.key)=\($0.stored.storageName)" }.joined(separator: ",")
        func measure(_ chosen: [Group]) throws -> (desc: Double, meta: Double) {
            let cacheKey = storage + "|" + chosen.flatMap(\.keys).joined(separator: ",")
            if let known = computed.results[cacheKey] { return known }
            let model = try network.model(replacing: stored, int8Layers: layers(chosen))
            var desc = 1.0, meta = 1.0
            for (image, expected) in zip(images, reference) {
                let out = try model.forward(image: image)
                for v in Variant.allCases {
                    desc = min(desc, leastPositionCosine(out.desc[v], expected.desc[v]))
                    meta = min(meta, leastPositionCosine(out.meta[v], expected.meta[v]))
                }
            }
            computed.results[cacheKey] = (desc, meta)
            return (desc, meta)
        }

        let storedOnly = try measure([])
        var accepted: [Group] = []
        var rows: [JSONValue] = []
        for g in groups.filter({ $0.input != nil }).sorted(by: { $0.macs > $1.macs }) {
            let result = try measure(accepted + [g])
            let keeps = result.desc >= ChooseInt8Compute.descriptorCosine && result.meta >= ChooseInt8Compute.metaCosine
            if keeps { accepted.append(g) }
            rows.append(.object([
                "weights": json(g.keys), "compute": json(keeps ? "int8" : "fp32"),
                "share_of_multiply_adds": .double((g.macs / max(totalMACs, 1) * 10_000).rounded() / 10_000),
                "input_scale": .double(Double(g.input!.scale)), "input_zero_point": json(g.input!.zeroPoint),
                "least_desc_cosine": .double(result.desc), "least_meta_cosine": .double(result.meta),
            ]))
        }
        for (key, layer) in layers(accepted) {
            state.int8Compute[key] = AISWMetadata.Int8Compute(inputScale: layer.input.scale, inputZeroPoint: layer.input.zeroPoint)
        }
        let final = try measure(accepted)
        return .object([
            "ran": .bool(true),
            "rule": json("largest multiply-add count first; int8 where every desc map keeps least position cosine >= "
                         + "\(ChooseInt8Compute.descriptorCosine) and every meta map >= \(ChooseInt8Compute.metaCosine) to the fp32 network"),
            "sensitivity_images": json(images.count),
            "weights_stored_only": .object(["least_desc_cosine": .double(storedOnly.desc), "least_meta_cosine": .double(storedOnly.meta)]),
            "chosen": .object(["least_desc_cosine": .double(final.desc), "least_meta_cosine": .double(final.meta)]),
            "int8_share_of_multiply_adds": .double((accepted.reduce(0) { $0 + $1.macs } / max(totalMACs, 1) * 10_000).rounded() / 10_000),
            "layers": .array(rows),
            "not_candidates": .array(skipped),
        ])
    }
}

final class ComputeCache {
    var results: [String: (desc: Double, meta: Double)] = [:]
}
