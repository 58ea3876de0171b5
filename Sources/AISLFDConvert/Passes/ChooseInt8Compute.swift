import AISLFDCore
import AISLFDFormat
import AISLFDRuntime
import Foundation

/// int8 with calibration, after MixedPrecision: decides which convolutions compute in int8 (u8
/// inputs, s8 weights, int32 sums; the runtime's `Int8Convolution`) and which stay in fp32
/// arithmetic, by measuring, never by guessing. A layer can compute in int8 when its weight
/// (all of them, for layers that read one input together) is bound for int8 (one scale per
/// output channel) and calibration saw its input. A weight MixedPrecision promoted is measured
/// at its int8 form and, when accepted, stored int8 again; the converter then spends the bytes
/// freed in a second MixedPrecision attempt that leaves the int8-computing weights alone. Its input quantization covers the range calibration saw
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
        struct Group { var keys: [String]; var macs: Double; var candidate: Bool; var input: FeatureMap }
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
            let bound = input.weightKeys.allSatisfy { key in state.index(of: key).map { state.tensors[$0].int8Form != nil } ?? false }
            let measured = input.weightKeys.allSatisfy { state.inputRange($0) != nil }
            let candidate = bound && measured && ChooseInt8Compute.quantization(input.weightKeys, state) != nil
            if !candidate {
                skipped.append(.object(["weights": json(input.weightKeys), "reason": json(!bound || !measured
                    ? "not every weight is bound for int8 with its input measured (kept at fp32, or its input unmeasured)" : "its input range is empty")]))
            }
            groups.append(Group(keys: input.weightKeys, macs: macs, candidate: candidate, input: input.map))
        }
        let totalMACs = groups.reduce(0) { $0 + $1.macs }

        /// The low quantile of the desc and meta cosines over all maps, positions and images,
        /// with the stored values of `s` and the layers `chosen` computing in int8.
        func measure(_ s: ConversionState, _ chosen: [(keys: [String], input: ActivationQuantization)]) throws -> (desc: Double, meta: Double) {
            var stored: [String: [Float]] = [:]
            for t in s.tensors { stored[t.key] = t.storedValues }
            var layers: [String: Int8Layer] = [:]
            for (keys, input) in chosen {
                for key in keys {
                    guard let i = s.index(of: key), case .int8(let q, let scales)? = s.tensors[i].int8Form?.stored else { continue }
                    layers[key] = Int8Layer(weight: q, scales: scales, input: input)
                }
            }
            let model = try network.model(replacing: stored, int8Layers: layers)
            var desc: [Double] = [], meta: [Double] = []
            for (image, expected) in zip(images, reference) {
                let out = try model.forward(image: image)
                for v in Variant.allCases {
                    desc += positionCosines(out.desc[v], expected.desc[v])
                    meta += positionCosines(out.meta[v], expected.meta[v])
                }
            }
            return (lowQuantile(desc, ChooseInt8Compute.quantile), lowQuantile(meta, ChooseInt8Compute.quantile))
        }
        func keeps(_ r: (desc: Double, meta: Double)) -> Bool { r.desc >= ChooseInt8Compute.descriptorCosine && r.meta >= ChooseInt8Compute.metaCosine }
        /// How far inside the tolerances, in units of each tolerance's room to 1.
        func margin(_ r: (desc: Double, meta: Double)) -> Double {
            min((r.desc - ChooseInt8Compute.descriptorCosine) / (1 - ChooseInt8Compute.descriptorCosine),
                (r.meta - ChooseInt8Compute.metaCosine) / (1 - ChooseInt8Compute.metaCosine))
        }

        let storedOnly = try measure(state, [])
        var current = state
        var accepted: [(keys: [String], input: ActivationQuantization)] = []
        var acceptedMACs = 0.0
        var rows: [JSONValue] = []
        // A layer computing in int8 only adds error: when the stored weights alone are outside,
        // no layer can be inside.
        let room = keeps(storedOnly)
        for g in groups.filter({ $0.candidate && room }).sorted(by: { $0.macs > $1.macs }) {
            state.progress?("calibration: int8 arithmetic for \(g.keys[0])")
            let input = ChooseInt8Compute.quantization(g.keys, current)!
            let plain = try measure(current, accepted + [(g.keys, input)])
            // The same layer with its input equalized, when a producer allows it.
            var equalized: (state: ConversionState, input: ActivationQuantization, result: (desc: Double, meta: Double))? = nil
            if let link = InputEqualization.link(consumers: g.keys, current), let k = InputEqualization.factors(link, current),
               let trial = InputEqualization.apply(InputEqualization.Applied(link: link, factors: k), to: current),
               let q = ChooseInt8Compute.quantization(g.keys, trial) {
                equalized = (trial, q, try measure(trial, accepted + [(g.keys, q)]))
            }
            var row: JSONObject = [
                "weights": json(g.keys),
                "share_of_multiply_adds": .double((g.macs / max(totalMACs, 1) * 10_000).rounded() / 10_000),
                "desc_cosine_quantile": .double(plain.desc), "meta_cosine_quantile": .double(plain.meta),
            ]
            if let e = equalized {
                row["equalized_desc_cosine_quantile"] = .double(e.result.desc)
                row["equalized_meta_cosine_quantile"] = .double(e.result.meta)
            }
            let useEqualized = equalized.map { keeps($0.result) && (!keeps(plain) || margin($0.result) > margin(plain)) } ?? false
            var q = input
            if useEqualized, let e = equalized {
                current = e.state
                q = e.input
                row["input_equalized_by"] = json(e.state.equalizations.last!.link.producer)
            }
            let chosen = useEqualized || keeps(plain)
            if let sqnr = ChooseInt8Compute.outputSQNR(g.keys, g.input, current, input: q,
                                                        factors: useEqualized ? current.equalizations.last?.factors : nil) {
                row["output_sqnr_db"] = .double((sqnr * 10).rounded() / 10)
            }
            if chosen {
                accepted.append((g.keys, q))
                acceptedMACs += g.macs
                row["input_scale"] = .double(Double(q.scale))
                row["input_zero_point"] = json(q.zeroPoint)
            }
            row["compute"] = json(chosen ? "int8" : "fp32")
            rows.append(.object(row))
        }
        for (keys, input) in accepted {
            for key in keys {
                current.int8Compute[key] = AISWMetadata.Int8Compute(inputScale: input.scale, inputZeroPoint: input.zeroPoint)
                // A weight MixedPrecision stored wider goes back to its int8 form: int8 arithmetic
                // reads it (the measurement above ran it so); the bytes freed go to other weights.
                guard let i = current.index(of: key), let form = current.tensors[i].int8Form, current.tensors[i].promotion != nil else { continue }
                current.tensors[i].stored = form.stored
                current.tensors[i].error = form.error
                current.tensors[i].rounding = form.rounding
                current.tensors[i].history.append("back to int8 (ChooseInt8Compute): it computes in int8, \(current.tensors[i].promotion!)")
                current.tensors[i].promotion = nil
            }
        }
        let final = accepted.isEmpty ? storedOnly : try measure(current, accepted)
        state = current
        return .object([
            "ran": .bool(true),
            "rule": json("largest multiply-add count first; int8 while the \(ChooseInt8Compute.quantile) quantile of the per-position cosines "
                         + "to the fp32 network stays >= \(ChooseInt8Compute.descriptorCosine) (desc maps) and >= \(ChooseInt8Compute.metaCosine) (meta maps); "
                         + "each layer tried as it is and with its input equalized (InputEqualization), the one further inside kept"),
            "sensitivity_images": json(images.count),
            "weights_stored_only": .object(["desc_cosine_quantile": .double(storedOnly.desc), "meta_cosine_quantile": .double(storedOnly.meta)]),
            "chosen": .object(["desc_cosine_quantile": .double(final.desc), "meta_cosine_quantile": .double(final.meta)]),
            "int8_share_of_multiply_adds": .double((acceptedMACs / max(totalMACs, 1) * 10_000).rounded() / 10_000),
            "equalized_inputs": json(current.equalizations.count),
            "layers": .array(rows),
            "not_candidates": .array(skipped),
        ])
    }
}

extension ChooseInt8Compute {
    /// The layer's own output SQNR in dB computing in int8 (its int8 form in `state`, input
    /// quantization `input`) against fp32 arithmetic on its fp32 values in `state`, on the map
    /// `x` it reads on the first sensitivity image (scaled by `factors` when its input is
    /// equalized; both sides in the equalized network's terms): the error this one layer adds,
    /// apart from what it inherits.
    static func outputSQNR(_ keys: [String], _ x: FeatureMap, _ state: ConversionState,
                           input: ActivationQuantization, factors: [Float]?) -> Double? {
        let ops = KernelOps()
        var scaled = x
        if let factors, factors.count == x.channels {
            var values = x.values
            for c in 0..<x.channels {
                for j in (c * x.planeSize)..<((c + 1) * x.planeSize) { values[j] *= factors[c] }
            }
            guard let map = try? FeatureMap(channels: x.channels, height: x.height, width: x.width, values: values) else { return nil }
            scaled = map
        }
        var signal = 0.0, noise = 0.0
        for key in keys {
            guard let spec = state.schema.tensor(key), let layer = state.schema.layer(spec.layer), let i = state.index(of: key),
                  case .int8(let q, let scales)? = state.tensors[i].int8Form?.stored else { return nil }
            let k = layer.kernel ?? 1, stride = layer.stride ?? 1, padding = layer.padding ?? 0
            let weight = WeightTensor(shape: [layer.outChannels, layer.inChannels, k, k], values: state.tensors[i].values)
            let bias = state.index(of: layer.name + ".bias").map { state.tensors[$0].values }
            guard let reference = try? ops.conv2d(scaled, weight: weight, bias: bias, stride: stride, padding: padding),
                  let int8 = try? ops.int8Conv2d(scaled, layer: Int8Layer(weight: q, scales: scales, input: input), kernel: k,
                                                 bias: bias, stride: stride, padding: padding),
                  reference.values.count == int8.values.count else { return nil }
            for (a, b) in zip(int8.values, reference.values) {
                signal += Double(b) * Double(b)
                noise += Double(a - b) * Double(a - b)
            }
        }
        guard signal > 0, noise > 0 else { return nil }
        return 10 * log10(signal / noise)
    }

    /// The input quantization of the layers `keys` (one input) from what calibration saw of it.
    static func quantization(_ keys: [String], _ state: ConversionState) -> ActivationQuantization? {
        let ranges = keys.compactMap { state.inputRange($0) }
        guard let first = keys.first, ranges.count == keys.count else { return nil }
        return fitted(low: ranges.map(\.low).min()!, high: ranges.map(\.high).max()!, samples: state.inputSamples[first] ?? [])
    }

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
