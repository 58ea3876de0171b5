import AISLFDCore
import AISLFDSchema

/// Every float tensor becomes float32 (float16 and bfloat16 widen exactly, float64 rounds to
/// nearest even); BatchNorm's `num_batches_tracked` (an integer role, training only) is not
/// stored. Tensors keep their source order, keys and shapes.
struct ToFloat32: ConversionPass {
    let name = "ToFloat32"

    func run(_ state: inout ConversionState) throws -> JSONValue {
        var converted: [String: Int] = [:]   // source dtype -> tensors
        var dropped: [String] = []
        var rounded = 0
        for t in state.source {
            guard let spec = state.schema.tensor(t.key) else { throw ConversionError.unexpectedTensor(key: t.key) }
            if !spec.role.isNeededForInference {
                dropped.append(t.key)
                continue
            }
            guard t.dtype.isFloatingPoint else {
                throw ConversionError.wrongDType(key: t.key, dtype: t.dtype, role: spec.role.rawValue)
            }
            let values = t.floats()
            if let first = values.firstIndex(where: { !$0.isFinite }) {
                throw ConversionError.nonFinite(key: t.key, count: values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }, firstIndex: first)
            }
            var tensor = WorkingTensor(key: t.key, role: spec.role.rawValue, shape: t.shape, values: values)
            switch t.dtype {
            case .float32: break
            case .float64:
                let changed = changedByRounding(t, values)
                rounded += changed
                tensor.history.append("float64 -> float32, \(changed) of \(values.count) values rounded to nearest")
            default:
                tensor.history.append("\(t.dtype.rawValue) -> float32 (exact)")
            }
            converted[t.dtype.rawValue, default: 0] += 1
            state.tensors.append(tensor)
        }
        return .object([
            "tensors_by_source_dtype": .object(JSONObject(converted.mapValues(json))),
            "float64_values_rounded": json(rounded),
            "not_stored": json(dropped),
            "not_stored_reason": json("integer role bn_num_batches_tracked: BatchNorm's step counter, used only in training"),
        ])
    }

    /// float64 values that float32 cannot hold exactly.
    private func changedByRounding(_ t: NamedTensor, _ values: [Float]) -> Int {
        t.data.withUnsafeBytes { raw in
            var n = 0
            for i in 0..<values.count {
                let d = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                if Double(values[i]) != d { n += 1 }
            }
            return n
        }
    }
}
