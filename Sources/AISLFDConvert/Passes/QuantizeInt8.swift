import AISLFDCore
import AISLFDFormat
import Dispatch

/// Conv and linear weights to symmetric per-output-channel int8 (axis 0), fp32 scales:
///     scale[c] = max_j |w[c, j]| / 127   (float32 division)
/// and the stored value is Float(q) * scale[c], as the .aisw reader computes it. An all-zero
/// channel gets scale 0 and all q = 0 (the format allows scale 0, and it dequantizes to the
/// exact zeros); so does a channel whose max/127 underflows to zero.
///
/// q itself is chosen one of two ways:
/// - **GPTQ** where CollectInputMoments measured the weight's inputs: the rounding that
///   minimises the layer's output error on the calibration inputs (`GPTQ`);
/// - **nearest** otherwise: q[c, j] = round_half_even(w[c, j] / scale[c]) (float32 division),
///   in [-127, 127] — ties go to even like `np.rint`, `torch.round` and PyTorch's
///   quantize_per_channel.
/// Each tensor's history gives its output noise (tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) on the
/// calibration inputs) for the rounding used and for rounding to nearest, where measured.
struct QuantizeInt8: ConversionPass {
    let name = "QuantizeInt8"

    func run(_ state: inout ConversionState) throws -> JSONValue {
        state.progress?("calibration: rounding the int8 weights")
        let damping = state.options.calibration?.damping ?? GPTQ.defaultDamping
        // GPTQ per tensor is independent: run them side by side, then record in order.
        let indices = state.tensors.indices.filter { state.plan.int8(state.tensors[$0].key) }
        // Each task builds its layer's moment matrix once and uses it for the rounding and for
        // the two output-noise figures the history gives.
        struct Solved { var result: GPTQ.Result, count: Int, noise: Double, nearestNoise: Double }
        var solved = [Solved?](repeating: nil, count: indices.count)
        let snapshot = state.tensors, moments = state.moments
        solved.withUnsafeMutableBufferPointer { out in
            let results = out.baseAddress!
            DispatchQueue.concurrentPerform(iterations: indices.count) { n in
                let t = snapshot[indices[n]]
                guard let m = moments[t.key] else { return }
                let rows = t.shape.first ?? 1, columns = t.values.count / max(rows, 1), matrix = m.matrix
                guard let g = GPTQ.quantize(weight: t.values, rows: rows, columns: columns, moments: matrix, damping: damping) else { return }
                let nearest = QuantizeInt8.roundToNearest(t.values, channels: rows)
                func noise(_ q: [Int8], _ scales: [Float]) -> Double {
                    GPTQ.outputNoiseRatio(weight: t.values, stored: AISWDequantize.int8(q, scales: scales, rows: rows, group: 0),
                                          rows: rows, columns: columns, moments: matrix)
                }
                results[n] = Solved(result: g, count: m.count, noise: noise(g.values, g.scales), nearestNoise: noise(nearest.values, nearest.scales))
            }
        }
        var solvedByKey: [String: Solved] = [:]
        for (n, s) in solved.enumerated() { if let s { solvedByKey[snapshot[indices[n]].key] = s } }

        var zeroChannels = 0, byGPTQ = 0, byNearest = 0
        var record = try Quantization.run(&state, storage: "int8") { t in
            let channels = t.shape.first ?? 1
            let nearest = QuantizeInt8.roundToNearest(t.values, channels: channels)
            var q = nearest.values, scales = nearest.scales
            var note: String
            if let s = solvedByKey[t.key] {
                q = s.result.values
                scales = s.result.scales
                t.rounding = "gptq"
                byGPTQ += 1
                note = "int8 per output channel (scale = max|w|/127), GPTQ rounding"
                note += " on \(s.count) calibration input vectors (damping \(s.result.damping)): output SQNR \(formatDecibels(-10 * s.noise.log10)) dB"
                    + " (rounding to nearest: \(formatDecibels(-10 * s.nearestNoise.log10)) dB)"
            } else {
                t.rounding = "nearest"
                byNearest += 1
                note = "int8 per output channel (scale = max|w|/127, round half to even)"
                if moments[t.key] != nil { note += "; GPTQ could not factor the damped input moments" }
            }
            var e = StorageError()
            var zero = 0
            let perChannel = channels > 0 ? t.values.count / channels : 0
            for c in 0..<channels {
                if scales[c] == 0 { zero += 1 }
                for j in (c * perChannel)..<((c + 1) * perChannel) { Quantization.account(t.values[j], Float(q[j]) * scales[c], into: &e) }
            }
            t.stored = .int8(q, scales: scales)
            t.error = e
            note += ", SQNR \(formatDecibels(decibels(signal: e.signal, noise: e.noise))), max abs error \(formatError(e.maxAbs))"
            if zero > 0 { note += ", \(zero) all-zero channels (scale 0)" }
            t.history.append(note)
            t.int8Form = (t.stored, e, t.rounding)
            zeroChannels += zero
        }
        record["rounding"] = json("GPTQ where calibration measured the weight's inputs, else round half to even; clamped to [-127, 127]")
        record["rounded_by_gptq"] = json(byGPTQ)
        record["rounded_to_nearest"] = json(byNearest)
        record["gptq_damping"] = .double(damping)
        record["scales"] = json("per output channel (axis 0), float32, max|w|/127; 0 for an all-zero channel")
        record["zero_channels"] = json(zeroChannels)
        return .object(record)
    }

    /// Round half to even of w / scale (float32), per row.
    static func roundToNearest(_ values: [Float], channels: Int) -> (values: [Int8], scales: [Float]) {
        let perChannel = channels > 0 ? values.count / channels : 0
        let scales = GPTQ.rowScales(values, rows: channels, columns: perChannel)
        var q = [Int8](repeating: 0, count: values.count)
        for c in 0..<channels where scales[c] > 0 {
            for j in (c * perChannel)..<((c + 1) * perChannel) {
                q[j] = Int8(min(max((values[j] / scales[c]).rounded(.toNearestOrEven), -127), 127))
            }
        }
        return (q, scales)
    }
}
