import AISLFDCore
import AISLFDRuntime

/// Stores the weights whose rounding costs the network's outputs most, per byte, one step
/// wider — int8 -> fp16, or fp16 -> fp32 — until the file would pass the size budget.
///
/// Measured, not guessed: for each quantized weight the fp32 network runs on the seeded
/// sensitivity images (dead leaves, other seeds than GPTQ's) with that weight alone at its
/// stored value; its sensitivity is the mean, over the desc and meta maps of every variant
/// and their positions, of 1 - cos between the vectors of that run and of the fp32 run. Errors
/// of different layers add up almost exactly at these levels (their sum is within a few
/// percent of the error with all of them rounded), so promoting the largest sensitivity per
/// byte first is the greedy answer to "least error within the budget". A weight that does
/// not fit is skipped for smaller ones after it. At int8 a weight whose fp16 would overflow is
/// not promoted unless clamping is on.
///
/// The first conv of each backbone (fan-in 27, its error amplified by the BatchNorms after
/// it) is the typical first pick; nothing here knows that — it falls out of the measurement.
struct MixedPrecision: ConversionPass {
    let name = "MixedPrecision"
    /// Sensitivities measured in an earlier attempt (the converter retries with a larger
    /// reserve when the metadata outgrew it), by key.
    let measured: SensitivityCache

    struct Candidate {
        var index: Int
        var key: String
        var sensitivity: Double
        var cost: Int
        var promoted: StoredForm
        var error: StorageError
    }

    func run(_ state: inout ConversionState) throws -> JSONValue {
        guard let settings = state.options.calibration, let fraction = state.options.effectiveSizeBudget else {
            return .object(["ran": .bool(false)])
        }
        let payload = state.source.reduce(0) { $0 + $1.elementCount } * 4
        let budget = MixedPrecision.budget(state) ?? 0
        let base = state.tensors.reduce(0) { $0 + $1.fileBytes } + state.reservedBytes
        var record: JSONObject = [
            "budget_fraction": .double(fraction), "budget_bytes": json(budget), "source_payload_bytes": json(payload),
            "bytes_before": json(base), "reserved_for_header_metadata_table": json(state.reservedBytes),
        ]
        guard base < budget else {
            record["ran"] = .bool(false)
            record["reason"] = json("the file is already at or over the budget before any promotion")
            return .object(record)
        }
        let network: CalibrationNetwork
        switch CalibrationNetwork.make(state) {
        case .failure(let reason):
            record["ran"] = .bool(false)
            record["reason"] = json(reason.text + "; nothing promoted")
            return .object(record)
        case .success(let n): network = n
        }

        var candidates: [Candidate] = []
        var notCandidates: [JSONValue] = []
        for (i, t) in state.tensors.enumerated() where state.plan.quantized(t.key) {
            guard state.int8Compute[t.key] == nil else {
                notCandidates.append(.object(["key": json(t.key), "reason": json("computes in int8 (ChooseInt8Compute)")]))
                continue
            }
            switch t.stored {
            case .int8:
                let fp16 = QuantizeFP16.convert(t.values)
                guard fp16.error.fp16Overflow == 0 || state.options.clamp else {
                    notCandidates.append(.object(["key": json(t.key), "reason": json("its fp16 would overflow and clamping is off")]))
                    continue
                }
                let promoted = StoredForm.fp16(fp16.bits)
                candidates.append(Candidate(index: i, key: t.key, sensitivity: 0,
                                            cost: StoredForm.fileBytes(promoted, count: t.values.count, rows: t.shape.first ?? 1) - t.fileBytes,
                                            promoted: promoted, error: fp16.error))
            case .fp16:
                candidates.append(Candidate(index: i, key: t.key, sensitivity: 0,
                                            cost: StoredForm.fileBytes(.fp32, count: t.values.count, rows: t.shape.first ?? 1) - t.fileBytes,
                                            promoted: .fp32, error: StorageError()))
            case .fp32:
                continue
            }
        }

        // Sensitivities on images GPTQ never saw.
        let images = try (0..<settings.sensitivityImages).map { i in
            try CalibrationNetwork.image(CalibrationImages.deadLeaves(seed: settings.sensitivityImageSeed(i), height: settings.sensitivityHeight,
                                                                      width: settings.sensitivityWidth),
                                         height: settings.sensitivityHeight, width: settings.sensitivityWidth)
        }
        var referenceOutputs: [ModelOutputs] = []
        if !candidates.allSatisfy({ measured.values[$0.key] != nil }) {
            let reference = network.reference
            referenceOutputs = try images.map { try reference.forward(image: $0) }
        }
        for c in candidates.indices {
            let t = state.tensors[candidates[c].index]
            state.progress?("calibration: sensitivity of weight \(c + 1) of \(candidates.count)")
            if let known = measured.values[t.key] { candidates[c].sensitivity = known; continue }
            let model = try network.model(replacing: [t.key: t.storedValues])
            var total = 0.0
            for (image, expected) in zip(images, referenceOutputs) { total += outputError(try model.forward(image: image), expected) }
            // A network that is not finite on the images gives no usable measurement.
            let mean = images.isEmpty ? 0 : total / Double(images.count)
            candidates[c].sensitivity = mean.isFinite ? mean : 0
            measured.values[t.key] = candidates[c].sensitivity
        }

        // Greedy by sensitivity per byte.
        let ranked = candidates.sorted {
            let a = $0.sensitivity / Double(max($0.cost, 1)), b = $1.sensitivity / Double(max($1.cost, 1))
            return a != b ? a > b : $0.index < $1.index
        }
        var used = base
        var rows: [JSONValue] = []
        var promotedCount = 0
        for (rank, c) in ranked.enumerated() {
            let fits = c.sensitivity > 0 && used + c.cost <= budget
            var row: JSONObject = ["key": json(c.key), "sensitivity": .double(c.sensitivity), "extra_bytes": json(c.cost),
                                           "rank": json(rank + 1), "promoted_to": fits ? json(c.promoted.storageName) : .null]
            if !fits { row["reason"] = json(c.sensitivity > 0 ? "does not fit the budget" : "no measurable effect") }
            rows.append(.object(row))
            let from = state.tensors[c.index].stored.storageName
            state.tensors[c.index].sensitivity = c.sensitivity
            guard fits else { continue }
            used += c.cost
            promotedCount += 1
            let why = "\(c.promoted.storageName) instead of \(from): alone at \(from) it makes the outputs' mean 1 - cos "
                + "\(formatError(c.sensitivity)) on \(images.count) calibration images; rank \(rank + 1) by error per byte, +\(c.cost) bytes"
            state.tensors[c.index].stored = c.promoted
            state.tensors[c.index].error = c.error
            state.tensors[c.index].promotion = "promoted from \(from) (rank \(rank + 1) by error per byte)"
            state.tensors[c.index].rounding = nil
            state.tensors[c.index].history.append("promoted by MixedPrecision to " + why)
        }
        record["ran"] = .bool(true)
        record["sensitivity_images"] = json(images.count)
        record["sensitivity_seeds"] = .array((0..<settings.sensitivityImages).map { .double(Double(settings.sensitivityImageSeed($0))) })
        record["sensitivity"] = json("mean over desc and meta maps and positions of 1 - cos to the fp32 network, this weight alone at its stored value")
        record["promoted"] = json(promotedCount)
        record["bytes_after"] = json(used)
        record["candidates"] = .array(rows)
        if !notCandidates.isEmpty { record["not_candidates"] = .array(notCandidates) }
        return .object(record)
    }
}

extension MixedPrecision {
    /// The size budget in bytes: its fraction of the source's fp32 payload; nil without calibration or budget.
    static func budget(_ state: ConversionState) -> Int? {
        guard state.options.calibrates, let fraction = state.options.effectiveSizeBudget else { return nil }
        return Int((fraction * Double(state.source.reduce(0) { $0 + $1.elementCount } * 4)).rounded(.down))
    }
}

final class SensitivityCache {
    var values: [String: Double] = [:]
}
