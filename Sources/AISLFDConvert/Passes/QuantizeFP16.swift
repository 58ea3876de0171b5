import AISLFDCore

/// Conv and linear weights to IEEE binary16, rounded to nearest, ties to even, subnormals
/// kept (Swift's `Float16(_: Float)`). Overflow is IEEE's: a value overflows when its
/// rounding is infinite, |x| >= 65520 (values in (65504, 65520) round to 65504 like any
/// other rounding). Such a tensor is refused, naming it, unless clamping is on; then those
/// values become +-65504 and are counted. Nonzero values whose fp16 is zero (|x| <= 2^-25)
/// are counted as flushed to zero.
struct QuantizeFP16: ConversionPass {
    let name = "QuantizeFP16"
    static let largest = Float16.greatestFiniteMagnitude  // 65504

    func run(_ state: inout ConversionState) throws -> JSONValue {
        let clamp = state.options.clamp
        var clamped = 0, flushed = 0
        var record = try Quantization.run(&state, storage: "fp16") { t in
            let (bits, e, largestOverflow) = QuantizeFP16.convert(t.values)
            if e.fp16Overflow > 0 && !clamp {
                throw ConversionError.fp16Overflow(key: t.key, count: e.fp16Overflow, largest: largestOverflow)
            }
            t.stored = .fp16(bits)
            t.error = e
            var note = "fp16 (nearest, ties to even), SQNR \(formatDecibels(decibels(signal: e.signal, noise: e.noise))), max abs error \(formatError(e.maxAbs))"
            if e.fp16Overflow > 0 { note += ", \(e.fp16Overflow) values clamped to +-65504" }
            if e.fp16FlushedToZero > 0 { note += ", \(e.fp16FlushedToZero) nonzero values flushed to zero" }
            t.history.append(note)
            clamped += e.fp16Overflow
            flushed += e.fp16FlushedToZero
        }
        record["rounding"] = json("to nearest, ties to even; subnormals kept")
        record["clamp"] = .bool(clamp)
        record["overflow_clamped"] = json(clamped)
        record["flushed_to_zero"] = json(flushed)
        return .object(record)
    }

    /// The binary16 bit patterns of `values`, what storing them costs, and the largest
    /// magnitude that overflowed (overflowing values become +-65504 — the caller refuses them
    /// unless clamping is on).
    static func convert(_ values: [Float]) -> (bits: [UInt16], error: StorageError, largestOverflow: Float) {
        var bits = [UInt16](repeating: 0, count: values.count)
        var e = StorageError()
        var largestOverflow: Float = 0
        for (j, x) in values.enumerated() {
            var h = Float16(x)
            if h.isInfinite {
                e.fp16Overflow += 1
                largestOverflow = max(largestOverflow, abs(x))
                h = x > 0 ? QuantizeFP16.largest : -QuantizeFP16.largest
            } else if h == 0 && x != 0 {
                e.fp16FlushedToZero += 1
            }
            bits[j] = h.bitPattern
            Quantization.account(x, Float(h), into: &e)
        }
        return (bits, e, largestOverflow)
    }
}
