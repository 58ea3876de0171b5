import AISLFDCore
import AISLFDFormat
import AISLFDSchema

/// The result of a conversion: the file, ready to write, and what it cost.
public struct Conversion: Sendable {
    public let writer: AISWWriter
    public let report: ConversionReport

    public var metadata: AISWMetadata { writer.metadata }

    /// Writes the .aisw atomically; refuses when OUTPUT is the input file itself.
    public func write(to path: String, refusing inputPath: String? = nil) throws {
        try writer.write(to: path, refusing: inputPath)
    }

    /// BatchNorm layers folded away (no tensors left), for a runtime given these weights
    /// without the file.
    public var foldedLayers: Set<String> { Set(writer.metadata.folds.map(\.from)) }

    /// Every stored tensor as float32, the values an .aisw reader gives (fp16 widened, int8
    /// dequantized as Float(q) * scale), in file order.
    public func storedTensors() -> [NamedTensor] {
        writer.tensors.map { t in
            let values = t.data.withUnsafeBytes { raw in
                switch t.storage {
                case .fp32: return AISWDequantize.fp32(raw)
                case .fp16: return AISWDequantize.fp16(raw)
                case .int8: return AISWDequantize.int8(raw, scales: t.scales ?? [], rows: t.shape.first ?? 0, group: t.scaleGroup)
                }
            }
            return NamedTensor(key: t.key, shape: t.shape, floats: values)
        }
    }
}

/// Turns validated source weights into an .aisw file: ToFloat32, then (with folding)
/// FoldBatchNorm, FoldConvBatchNorm, FoldAffineIntoNextConv, then QuantizeFP16 or
/// QuantizeInt8 for those precisions. Folds are chosen from the schema's roles and layer
/// wiring, never from tensor names. docs/conversion.md describes every pass.
public enum Converter {
    public static let name = "aislfd-convert"
    public static let version = AISLFDVersion.text
    /// The least desc and meta cosines to the fp32 network ChooseInt8Compute keeps (aislfd-verify's int8 tolerances).
    public static var int8ComputeCosines: (descriptor: Double, meta: Double) { (ChooseInt8Compute.descriptorCosine, ChooseInt8Compute.metaCosine) }

    /// The passes `options` runs, in order.
    public static func passNames(_ options: ConversionOptions) -> [String] {
        passes(options).map(\.name)
    }

    static func passes(_ options: ConversionOptions, measured: SensitivityCache = SensitivityCache()) -> [any ConversionPass] {
        var list: [any ConversionPass] = [ToFloat32()]
        if options.fold { list += [FoldBatchNorm(), FoldConvBatchNorm(), FoldAffineIntoNextConv()] }
        switch options.precision {
        case .fp32: break
        case .fp16: list.append(QuantizeFP16())
        case .int8: list += (options.calibrates ? [CollectInputMoments()] : []) + [QuantizeInt8()]
        }
        if options.calibrates { list.append(MixedPrecision(measured: measured)) }
        if options.calibrates && options.precision == .int8 { list.append(ChooseInt8Compute()) }
        return list
    }

    /// `contents` should already have passed `Validator`; anything that would stop the
    /// conversion is still caught here and thrown as a `ConversionError` naming the tensor.
    /// `progress` hears about each calibration step (seconds of work at fp16 and int8).
    public static func convert(_ contents: WeightsContents, schema: ArchitectureSchema, source: AISWMetadata.Source,
                               options: ConversionOptions = ConversionOptions(),
                               converter: AISWMetadata.Converter = AISWMetadata.Converter(name: Converter.name, version: Converter.version),
                               progress: ConversionProgress? = nil) throws -> Conversion {
        if let b = options.sizeBudget, !(b.isFinite && b > 0 && b <= 1) { throw ConversionError.invalidSizeBudget(b) }
        try checkInput(contents, schema)
        var state = ConversionState(schema: schema, options: options, source: contents.tensors)
        state.progress = progress
        var records: [AISWMetadata.Pass] = []
        let list = passes(options, measured: SensitivityCache())
        // MixedPrecision fills the size budget, once per attempt at the room left for header,
        // metadata and table (its sensitivities are measured once and kept). ChooseInt8Compute
        // then decides, once, among the weights bound for int8; a later attempt keeps its decision
        // (those weights stay int8) and only re-spends the budget on the others.
        let split = list.firstIndex { $0 is MixedPrecision } ?? list.count
        for pass in list[..<split] {
            records.append(AISWMetadata.Pass(name: pass.name, details: try pass.run(&state)))
        }
        let tail = Array(list[split...])
        guard let mixed = tail.first, let budget = MixedPrecision.budget(state) else {
            for pass in tail { records.append(AISWMetadata.Pass(name: pass.name, details: try pass.run(&state))) }
            return try assemble(state, records, contents, options, source, converter)
        }
        func overhead(_ c: Conversion, _ s: ConversionState) -> Int { c.report.totals.outputBytes - s.tensors.reduce(0) { $0 + $1.fileBytes } }
        var reserve = overhead(try assemble(state, records, contents, options, source, converter), state)
        var decided: (compute: [String: AISWMetadata.Int8Compute], equalizations: [InputEqualization.Applied], records: [AISWMetadata.Pass])? = nil
        var attempt = 0
        while true {
            var trial = state
            trial.reservedBytes = reserve
            if let decided {
                // The inputs ChooseInt8Compute equalized, equalized again (exact, deterministic).
                for e in decided.equalizations { trial = InputEqualization.apply(e, to: trial) ?? trial }
                trial.int8Compute = decided.compute
            }
            var trialRecords = records + [AISWMetadata.Pass(name: mixed.name, details: try mixed.run(&trial))]
            if let decided {
                trialRecords += decided.records
            } else {
                var later: [AISWMetadata.Pass] = []
                for pass in tail.dropFirst() { later.append(AISWMetadata.Pass(name: pass.name, details: try pass.run(&trial))) }
                decided = (trial.int8Compute, trial.equalizations, later)
                trialRecords += later
            }
            let result = try assemble(trial, trialRecords, contents, options, source, converter)
            attempt += 1
            // After the first attempt, int8-computing weights MixedPrecision had promoted are int8
            // again: one more attempt spends the bytes they freed on the others.
            let respend = attempt == 1 && !(decided?.compute.isEmpty ?? true)
            if (result.report.totals.outputBytes <= budget && !respend) || attempt == 4 { return result }
            // The room this attempt's file needed (fewer promotions make smaller records, so this settles at once).
            reserve = max(reserve + AISWFormat.alignment, overhead(result, trial))
        }
    }

    /// The second moments CollectInputMoments gathers for each int8-bound weight (by key) with
    /// `options` (precision int8, calibration set) — what GPTQ works from; empty when it
    /// gathers none. The same folds run first, so the inputs are those of the stored network.
    public static func inputMoments(_ contents: WeightsContents, schema: ArchitectureSchema,
                                    options: ConversionOptions) throws -> [String: InputMoments] {
        guard options.precision == .int8, options.calibration != nil else { return [:] }
        try checkInput(contents, schema)
        var state = ConversionState(schema: schema, options: options, source: contents.tensors)
        for pass in passes(options) {
            _ = try pass.run(&state)
            if pass is CollectInputMoments { break }
        }
        return state.moments
    }

    /// The file and its report from the state the passes left.
    static func assemble(_ state: ConversionState, _ records: [AISWMetadata.Pass], _ contents: WeightsContents,
                         _ options: ConversionOptions, _ source: AISWMetadata.Source,
                         _ converter: AISWMetadata.Converter) throws -> Conversion {
        let schema = state.schema
        let stored = state.tensors.map(aiswTensor)
        var history: [String: [String]] = [:]
        for t in state.tensors where !t.history.isEmpty { history[t.key] = t.history }
        var notes: [String] = []
        let unmatched = options.keep.filter { p in !state.tensors.contains { KeyPattern.matches(p, $0.key) } }
        if !unmatched.isEmpty { notes.append("keep patterns matching no stored tensor: " + unmatched.joined(separator: " ")) }
        if options.precision == .fp32 && !options.keep.isEmpty { notes.append("precision fp32: every tensor is fp32, keep patterns change nothing") }

        var extra: [String: JSONValue] = [:]
        if !contents.notes.isEmpty { extra["source_notes"] = json(contents.notes) }
        let metadata = AISWMetadata(
            architecture: schema.id, architectureConfig: architectureConfig(schema),
            schema: AISWMetadata.Schema(id: schema.id, sha256: schema.sha256), source: source, converter: converter,
            options: options.metadataOptions, passes: records, folds: state.folds, tensorHistory: history, extra: extra,
            int8Compute: state.int8Compute.isEmpty ? nil : state.int8Compute)
        let writer = AISWWriter(metadata: metadata, tensors: stored)
        let outputBytes = try writer.encodedLength()
        let report = makeReport(state, contents, records, outputBytes: outputBytes, notes: notes)
        return Conversion(writer: writer, report: report)
    }

    /// Duplicates, unknown keys, wrong shapes and missing tensors would make a pass index
    /// out of range or store something the runtime cannot use.
    static func checkInput(_ contents: WeightsContents, _ schema: ArchitectureSchema) throws {
        var seen = Set<String>()
        for t in contents.tensors {
            guard seen.insert(t.key).inserted else { throw ConversionError.duplicateTensor(key: t.key) }
            guard let spec = schema.tensor(t.key) else { throw ConversionError.unexpectedTensor(key: t.key) }
            guard t.shape == spec.shape else { throw ConversionError.wrongShape(key: t.key, expected: spec.shape, found: t.shape) }
        }
        for spec in schema.tensors where !spec.optional && !seen.contains(spec.key) {
            throw ConversionError.missingTensor(key: spec.key, role: spec.role.rawValue)
        }
    }

    static func aiswTensor(_ t: WorkingTensor) -> AISWTensor {
        switch t.stored {
        case .fp32: return .fp32(key: t.key, shape: t.shape, values: t.values, role: t.role)
        case .fp16(let bits): return .fp16(key: t.key, shape: t.shape, bits: bits, role: t.role)
        case .int8(let q, let scales): return .int8(key: t.key, shape: t.shape, values: q, scales: scales, role: t.role)
        }
    }

    /// What a runtime needs to know beyond the tensors: variants, the blocks and meta settings.
    static func architectureConfig(_ schema: ArchitectureSchema) -> [String: JSONValue] {
        var config: [String: JSONValue] = [
            "variants": json(schema.variants),
            "parts": .array(schema.parts.map { p in
                .object(["name": json(p.name), "block": json(p.block), "prefix": json(p.prefix), "per_variant": .bool(p.perVariant)])
            }),
        ]
        let epsilons = schema.batchNormEpsilons
        if !epsilons.isEmpty { config["batchnorm_eps"] = .array(epsilons.sorted().map(JSONValue.double)) }
        if let vlad = schema.layers.first(where: { $0.op == .netvlad }) {
            config["netvlad"] = .object(["clusters": json(vlad.outChannels), "dim": json(vlad.inChannels), "grid": json(vlad.grid ?? 0)])
        }
        if let linear = schema.layers.first(where: { $0.op == .linear }) {
            config["psa"] = .object(["dim": json(linear.inChannels)])
        }
        return config
    }

    static func makeReport(_ state: ConversionState, _ contents: WeightsContents, _ records: [AISWMetadata.Pass],
                           outputBytes: Int, notes: [String]) -> ConversionReport {
        var rows: [ConversionReport.Tensor] = []
        var signal = 0.0, noise = 0.0, qSignal = 0.0, qNoise = 0.0
        var lowest: (key: String, db: Double)? = nil
        var byStorage: [String: Int] = [:]
        var overflow = 0, flushed = 0, payload = 0, values = 0
        for t in state.tensors {
            var e = t.error
            let storage = t.stored.storageName, bytes: Int
            switch t.stored {
            case .fp32:
                bytes = t.values.count * 4
                // Exact: the signal an SQNR of inf is reported against.
                e.signal = t.values.reduce(0) { $0 + Double($1) * Double($1) }
            case .fp16:
                bytes = t.values.count * 2
            case .int8(_, let scales):
                bytes = t.values.count + scales.count * 4
            }
            if storage != "fp32" {
                qSignal += e.signal
                qNoise += e.noise
                let db = decibels(signal: e.signal, noise: e.noise)
                if lowest.map({ db < $0.db }) ?? true { lowest = (t.key, db) }
            }
            signal += e.signal
            noise += e.noise
            overflow += e.fp16Overflow
            flushed += e.fp16FlushedToZero
            payload += bytes
            values += t.values.count
            byStorage[storage, default: 0] += 1
            rows.append(ConversionReport.Tensor(key: t.key, role: t.role, shape: t.shape, storage: storage, bytes: bytes,
                                                sqnr: Decibels(signal: e.signal, noise: e.noise), maxAbsError: e.maxAbs,
                                                fp16Overflow: e.fp16Overflow, fp16FlushedToZero: e.fp16FlushedToZero, keptBy: t.keptBy,
                                                rounding: t.rounding, sensitivity: t.sensitivity, promotion: t.promotion))
        }
        let sourceValues = contents.tensors.reduce(0) { $0 + $1.elementCount }
        let sourcePayload = sourceValues * 4
        let totals = ConversionReport.Totals(
            sourceTensors: contents.tensors.count, sourceValues: sourceValues, sourcePayloadBytes: sourcePayload,
            storedTensors: state.tensors.count, storedValues: values, storedPayloadBytes: payload, outputBytes: outputBytes,
            ratio: sourcePayload > 0 ? Double(outputBytes) / Double(sourcePayload) : 0,
            sqnr: Decibels(signal: signal, noise: noise), quantizedSQNR: Decibels(signal: qSignal, noise: qNoise),
            lowestSQNR: Decibels(lowest?.db ?? .infinity), lowestSQNRTensor: lowest?.key,
            tensorsByStorage: byStorage, fp16Overflow: overflow, fp16FlushedToZero: flushed,
            sizeBudget: state.options.calibrates ? state.options.effectiveSizeBudget : nil)
        return ConversionReport(architecture: state.schema.id, precision: state.options.precision.rawValue, fold: state.options.fold,
                                clamp: state.options.clamp, keep: state.options.keep, passes: records.map(\.name),
                                folds: state.folds, tensors: rows, totals: totals, int8Layers: int8Layers(records), notes: notes)
    }

    /// ChooseInt8Compute's layer rows, from its record; nil when it did not run.
    private static func int8Layers(_ records: [AISWMetadata.Pass]) -> [ConversionReport.Int8Layer]? {
        guard let record = records.last(where: { $0.name == "ChooseInt8Compute" })?.details, record["ran"] == .bool(true),
              case .array(let layers)? = record["layers"] else { return nil }
        return layers.map { l in
            let weights: [String]
            if case .array(let keys)? = l["weights"] { weights = keys.compactMap(\.string) } else { weights = [] }
            return ConversionReport.Int8Layer(weights: weights, compute: l["compute"]?.string ?? "fp32",
                                              shareOfMultiplyAdds: l["share_of_multiply_adds"]?.double ?? 0,
                                              outputSQNR: l["output_sqnr_db"]?.double.map(Decibels.init),
                                              inputEqualizedBy: l["input_equalized_by"]?.string)
        }
    }
}
