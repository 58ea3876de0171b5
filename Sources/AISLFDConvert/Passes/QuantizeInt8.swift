import AISLFDIO

/// Conv and linear weights to symmetric per-output-channel int8 (axis 0), fp32 scales:
///     scale[c] = max_j |w[c, j]| / 127   (float32 division)
///     q[c, j]  = round_half_even(w[c, j] / scale[c])   (float32 division), in [-127, 127]
/// and the stored value is Float(q) * scale[c], as the .aisw reader computes it. Ties go to
/// even like `np.rint`, `torch.round` and PyTorch's own quantize_per_channel. An all-zero
/// channel gets scale 0 and all q = 0 (the format allows scale 0, and it dequantizes to the
/// exact zeros); so does a channel whose max/127 underflows to zero.
struct QuantizeInt8: ConversionPass {
    let name = "QuantizeInt8"

    func run(_ state: inout ConversionState) throws -> AISWJSON {
        var zeroChannels = 0
        var record = try Quantization.run(&state, storage: "int8") { t in
            let channels = t.shape.first ?? 1
            let count = t.values.count
            let perChannel = channels > 0 ? count / channels : 0
            var q = [Int8](repeating: 0, count: count)
            var scales = [Float](repeating: 0, count: channels)
            var e = StorageError()
            var zero = 0
            for c in 0..<channels {
                let range = (c * perChannel)..<((c + 1) * perChannel)
                var maxAbs: Float = 0
                for j in range { maxAbs = max(maxAbs, abs(t.values[j])) }
                let scale = maxAbs / 127
                if scale == 0 {
                    zero += 1
                    for j in range { Quantization.account(t.values[j], 0, into: &e) }
                    continue
                }
                scales[c] = scale
                for j in range {
                    let r = (t.values[j] / scale).rounded(.toNearestOrEven)
                    let v = Int8(min(max(r, -127), 127))
                    q[j] = v
                    Quantization.account(t.values[j], Float(v) * scale, into: &e)
                }
            }
            t.stored = .int8(q, scales: scales)
            t.error = e
            var note = "int8 per output channel (scale = max|w|/127, round half to even), SQNR \(formatDecibels(decibels(signal: e.signal, noise: e.noise))), max abs error \(formatError(e.maxAbs))"
            if zero > 0 { note += ", \(zero) all-zero channels (scale 0)" }
            t.history.append(note)
            zeroChannels += zero
        }
        record["rounding"] = json("round half to even, clamped to [-127, 127]")
        record["scales"] = json("per output channel (axis 0), float32, max|w|/127; 0 for an all-zero channel")
        record["zero_channels"] = json(zeroChannels)
        return .object(record)
    }
}
