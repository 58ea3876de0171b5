import AISLFDCore
import AISLFDFormat
import AISLFDRuntime
import AISLFDSchema
import Foundation

/// Evens out the channels of an int8 layer's input, so that its one input quantization fits
/// every channel (ChooseInt8Compute offers it for each layer it tries). A BatchNorm applied
/// after a ReLU scales its channels by 0.09 ... 17 (LISRD sample); quantized with one scale,
/// the small channels get a few levels only, and they make most of the error of a layer that
/// computes in int8, while its weights have room to spare.
///
/// For a producer P whose output only the layer's convs C read, through ReLU, 2x2 average
/// pooling or bilinear resizing (each commutes with a positive per-channel factor), output
/// channel c of P is multiplied by k[c] and input channel c of C divided by it:
///     P's rows (weight and bias, or its BatchNorm scale and shift) * k[c],  C[o, c] / k[c].
/// The network computes the same function, up to one fp32 rounding of each scaled value of P
/// (P's int8 scales and fp32 values are scaled, an fp16 P is rounded to fp16 again), which
/// only int8 layers read. C is rounded to int8 again (GPTQ, its input moments scaled the same
/// way). A share alpha of each channel's spread, in log scale, moves into the weight, as
/// SmoothQuant does:
///     k[c] ~ max_o |C[o, c]|^(1 - alpha) / max |x[c]|^alpha,
/// with max |x[c]| from the calibration images, normalised to a geometric mean of 1. alpha is
/// 0.7, not SmoothQuant's usual 0.5, because these inputs have heavier tails than its weights
/// (a few channels reach 100-250 where most stay under 3). The factors are not rounded to
/// powers of two, which would keep P exact to the bit but leaves each channel up to a factor
/// sqrt(2) off balance (docs/conversion.md and tools/equalization_alpha.py: the measurements).
/// P is a conv, a BatchNorm kept as an affine, or a BatchNorm folded into the conv before it,
/// and its output stays inside its part. Only layers that then compute in int8 are
/// equalized: for a layer computing in fp32 it would only make the weight harder to store.
enum InputEqualization {
    static let alpha = 0.7
    /// Factors are kept within 2^-maxExponent ... 2^maxExponent.
    static let maxExponent = 16

    struct Link {
        /// The layer whose output channels are scaled (a conv or a BatchNorm).
        var producer: String
        var channels: Int
        /// The tensors whose rows are scaled: a conv's weight and bias, or a BatchNorm's scale and shift.
        var producerTensors: [String]
        var consumers: [String]
    }

    /// A link with its factors, as applied, and the consumers' int8 forms it rounded (so
    /// applying it again, in a later size-budget attempt, repeats no GPTQ).
    struct Applied {
        var link: Link
        var factors: [Float]
        var rounded: [String: (q: [Int8], scales: [Float], rounding: String)] = [:]
    }

    /// The link whose consumers are exactly the weights `keys` (the layers reading one input), if any.
    static func link(consumers keys: [String], _ state: ConversionState) -> Link? {
        links(state).first { Set($0.consumers) == Set(keys) }
    }

    /// The factors for `link` from its consumers' fp32 weights and their inputs' per-channel
    /// ranges; nil when an input was not measured or no factor differs from 1.
    static func factors(_ link: Link, _ state: ConversionState) -> [Float]? {
        let n = link.channels
        var columnMax = [Float](repeating: 0, count: n), inputMax = columnMax
        for key in link.consumers {
            guard let i = state.index(of: key), let ranges = state.inputChannelRanges[key], ranges.count == n else { return nil }
            let w = state.tensors[i].values, rows = state.tensors[i].shape.first ?? 0
            guard rows > 0, w.count % (rows * n) == 0 else { return nil }
            let taps = w.count / rows / n
            for o in 0..<rows {
                for c in 0..<n {
                    for t in 0..<taps { columnMax[c] = max(columnMax[c], abs(w[(o * n + c) * taps + t])) }
                }
            }
            for c in 0..<n { inputMax[c] = max(inputMax[c], abs(ranges[c].low), abs(ranges[c].high)) }
        }
        let k = factors(columnMax: columnMax, inputMax: inputMax)
        return k.contains { $0 != 1 } ? k : nil
    }

    /// The factors: a share `alpha` of each channel's spread moved into the weight.
    static func factors(columnMax: [Float], inputMax: [Float]) -> [Float] {
        var logs = [Double?](repeating: nil, count: columnMax.count)
        for c in columnMax.indices where columnMax[c] > 0 && inputMax[c] > 0 {
            logs[c] = (1 - alpha) * log2(Double(columnMax[c])) - alpha * log2(Double(inputMax[c]))
        }
        let known = logs.compactMap { $0 }
        guard !known.isEmpty else { return [Float](repeating: 1, count: columnMax.count) }
        let mean = known.reduce(0, +) / Double(known.count)
        return logs.map { l in
            guard let l else { return 1 }
            return Float(pow(2, min(max(l - mean, -Double(maxExponent)), Double(maxExponent))))
        }
    }

    /// Scales the producer's rows and the consumers' input channels, re-rounds the consumers
    /// and scales what calibration measured of their input. Nil (the state untouched) when a
    /// stored fp16 value would overflow.
    static func apply(_ applied: Applied, to state: ConversionState) -> ConversionState? {
        var s = state
        var recorded = applied
        let link = applied.link, k = applied.factors, n = link.channels
        let note = "InputEqualization: channel c * k[c] (\(formatFactor(k.min() ?? 1)) ... \(formatFactor(k.max() ?? 1))) for "
            + link.consumers.joined(separator: ", ")
        for key in link.producerTensors {
            guard let i = s.index(of: key) else { continue }
            let perRow = s.tensors[i].values.count / n
            func factor(_ j: Int) -> Float { k[j / perRow] }
            for j in s.tensors[i].values.indices { s.tensors[i].values[j] *= factor(j) }
            guard let stored = scaled(s.tensors[i].stored, values: s.tensors[i].values, by: factor) else { return nil }
            s.tensors[i].stored = stored.form
            if let error = stored.error { s.tensors[i].error = error }
            if let form = s.tensors[i].int8Form {
                guard let again = scaled(form.stored, values: s.tensors[i].values, by: factor) else { return nil }
                s.tensors[i].int8Form = (again.form, form.error, form.rounding)
            }
            s.tensors[i].history.append(note)
        }
        if let affine = s.affines[link.producer] {
            s.affines[link.producer] = BatchNormAffine(scale: zip(affine.scale, k).map { $0 * Double($1) },
                                                       shift: zip(affine.shift, k).map { $0 * Double($1) })
        }
        let damping = s.options.calibration?.damping ?? GPTQ.defaultDamping
        for key in link.consumers {
            guard let i = s.index(of: key) else { continue }
            let rows = s.tensors[i].shape.first ?? 0, columns = s.tensors[i].values.count / max(rows, 1), taps = columns / n
            func factor(_ j: Int) -> Float { k[(j % columns) / taps] }
            for j in s.tensors[i].values.indices { s.tensors[i].values[j] /= factor(j) }
            let w = s.tensors[i].values
            // x' = k x: the moments H' = K H K, with K the factor of each column.
            func gptq() -> (q: [Int8], scales: [Float], rounding: String)? {
                guard var h = s.moments[key]?.matrix else { return nil }
                for a in 0..<columns {
                    for b in 0..<columns { h[a * columns + b] *= Double(factor(a)) * Double(factor(b)) }
                }
                return GPTQ.quantize(weight: w, rows: rows, columns: columns, moments: h, damping: damping).map { ($0.values, $0.scales, "gptq") }
            }
            func nearest() -> (q: [Int8], scales: [Float], rounding: String) {
                let r = QuantizeInt8.roundToNearest(w, channels: rows)
                return (r.values, r.scales, "nearest")
            }
            let int8 = applied.rounded[key] ?? gptq() ?? nearest()
            recorded.rounded[key] = int8
            var error = StorageError()
            let values = AISWDequantize.int8(int8.q, scales: int8.scales, rows: rows, group: 0)
            for j in w.indices { Quantization.account(w[j], values[j], into: &error) }
            let form = StoredForm.int8(int8.q, scales: int8.scales)
            s.tensors[i].int8Form = (form, error, int8.rounding)
            switch s.tensors[i].stored {
            case .int8:
                s.tensors[i].stored = form
                s.tensors[i].error = error
                s.tensors[i].rounding = int8.rounding
            case .fp16:
                let fp16 = QuantizeFP16.convert(w)
                s.tensors[i].stored = .fp16(fp16.bits)
                s.tensors[i].error = fp16.error
            case .fp32:
                break
            }
            s.tensors[i].history.append("InputEqualization: input channel c / k[c] (the factors of \(link.producer)), rounded to int8 again "
                                        + "(\(int8.rounding)), SQNR \(formatDecibels(decibels(signal: error.signal, noise: error.noise)))")
            if let r = s.inputChannelRanges[key] { s.inputChannelRanges[key] = zip(r, k).map { ($0.low * $1, $0.high * $1) } }
            if let samples = s.inputSamples[key], let channels = s.inputSampleChannels[key], channels.count == samples.count {
                s.inputSamples[key] = zip(samples, channels).map { $0 * k[Int($1)] }
            }
        }
        s.equalizations.append(recorded)
        return s
    }

    /// `form` with value j multiplied by `factor(j)`: int8 scales scaled (one scale per row: a
    /// row's values share a factor), fp16 rounded again from the scaled fp32 `values` (with
    /// its new error); nil where a value would overflow fp16.
    private static func scaled(_ form: StoredForm, values: [Float], by factor: (Int) -> Float) -> (form: StoredForm, error: StorageError?)? {
        switch form {
        case .fp32:
            return (.fp32, nil)
        case .fp16:
            let fp16 = QuantizeFP16.convert(values)
            guard fp16.error.fp16Overflow == 0 else { return nil }
            return (.fp16(fp16.bits), fp16.error)
        case .int8(let q, let scales):
            let perRow = scales.isEmpty ? 0 : q.count / scales.count
            return (.int8(q, scales: scales.indices.map { scales[$0] * factor($0 * perRow) }), nil)
        }
    }

    private static func formatFactor(_ k: Float) -> String { String(format: "%.3g", Double(k)) }

    /// Every producer whose output only int8-bound convs read, through steps that commute
    /// with a positive per-channel factor.
    static func links(_ state: ConversionState) -> [Link] {
        let schema = state.schema, exposed = state.exposedLayers
        let commuting: Set<Step> = [.relu, .avgPool2x2, .resizeBilinear]
        var out: [Link] = []
        for p in schema.layers where (p.op == .conv2d || p.op == .batchnorm2d) && !exposed.contains(p.name) {
            let readers = schema.consumers(of: p.name)
            guard !readers.isEmpty, readers.allSatisfy({ r in
                r.op == .conv2d && r.inputs.count == 1 && r.input?.layer == p.name && Set(r.input!.between).isSubset(of: commuting)
            }) else { continue }
            guard let weights = try? readers.map({ try convWeightKey($0, schema) }),
                  weights.allSatisfy({ state.plan.int8($0) && state.index(of: $0) != nil }) else { continue }
            var tensors: [String]
            if p.op == .batchnorm2d {
                if state.affines[p.name] != nil {
                    tensors = [p.name + ".scale", p.name + ".shift"]
                } else if let fold = state.folds.first(where: { $0.from == p.name && $0.kind == FoldConvBatchNorm.kind }),
                          let conv = schema.layer(fold.into), conv.op == .conv2d, !exposed.contains(conv.name),
                          schema.consumers(of: conv.name).map(\.name) == [p.name], let w = try? convWeightKey(conv, schema) {
                    tensors = [w, conv.name + ".bias"]
                } else { continue }
            } else {
                guard let w = try? convWeightKey(p, schema) else { continue }
                tensors = [w, p.name + ".bias"]
            }
            tensors = tensors.filter { state.index(of: $0) != nil }
            guard !tensors.isEmpty, tensors.allSatisfy({ state.tensors[state.index(of: $0)!].values.count % p.outChannels == 0 }) else { continue }
            out.append(Link(producer: p.name, channels: p.outChannels, producerTensors: tensors, consumers: weights))
        }
        return out
    }
}
