import AISLFDCore
import Foundation
import AISLFDSchema

/// What the quantization passes share: which tensors they touch and how their records look.
enum Quantization {
    /// Conv and linear weights: the bulk of the bytes, and robust to rounding. Biases,
    /// BatchNorm-derived vectors (or the BatchNorm tensors themselves without folding) and
    /// NetVLAD centroids stay fp32: together under 1% of the values, and each of their
    /// errors lands unscaled on a whole output channel.
    static let roles: Set<String> = [TensorRole.convWeight.rawValue, TensorRole.linearWeight.rawValue]

    /// The first keep pattern matching `key`.
    static func keepPattern(for key: String, _ patterns: [String]) -> String? {
        patterns.first { KeyPattern.matches($0, key) }
    }

    /// Runs `quantize` on every tensor with a quantized role that no keep pattern holds at
    /// fp32, and returns the pass's record.
    static func run(_ state: inout ConversionState, storage: String,
                    _ quantize: (inout WorkingTensor) throws -> Void) throws -> JSONObject {
        var quantized = 0, keptByRole = 0
        var keptByPattern: [String] = []
        var signal = 0.0, noise = 0.0
        var worst: (key: String, db: Double)? = nil
        for i in state.tensors.indices {
            let decision = state.plan.decision(state.tensors[i].key)
            guard decision.eligible else {
                keptByRole += 1
                continue
            }
            if let pattern = decision.keptBy {
                state.tensors[i].keptBy = pattern
                state.tensors[i].history.append("kept at fp32 by keep pattern \"\(pattern)\"")
                keptByPattern.append(state.tensors[i].key)
                continue
            }
            try quantize(&state.tensors[i])
            let e = state.tensors[i].error
            signal += e.signal
            noise += e.noise
            let db = decibels(signal: e.signal, noise: e.noise)
            if worst.map({ db < $0.db }) ?? true { worst = (state.tensors[i].key, db) }
            quantized += 1
        }
        var record: JSONObject = [
            "quantized": json(quantized),
            "kept_fp32_by_role": json(keptByRole),
            "kept_fp32_by_pattern": json(keptByPattern),
            "sqnr_db_quantized_tensors": json(decibels: rounded(decibels(signal: signal, noise: noise))),
            "storage": json(storage),
        ]
        if let worst {
            record["lowest_sqnr"] = .object(["key": json(worst.key), "sqnr_db": json(decibels: rounded(worst.db))])
        }
        return record
    }

    /// Accumulates the error of storing `stored` for `value`.
    @inline(__always)
    static func account(_ value: Float, _ stored: Float, into e: inout StorageError) {
        let x = Double(value), d = Double(stored) - x
        e.signal += x * x
        e.noise += d * d
        e.maxAbs = max(e.maxAbs, abs(d))
    }
}

/// Signal-to-quantization-noise ratio in dB; +infinity when storing was exact.
func decibels(signal: Double, noise: Double) -> Double {
    noise == 0 ? .infinity : 10 * (signal / noise).log10
}

/// Decibels to 0.01 dB for the metadata (more digits would be noise).
func rounded(_ db: Double) -> Double { db.isFinite ? (db * 100).rounded() / 100 : db }

extension Double {
    var log10: Double { Foundation.log10(self) }
}
