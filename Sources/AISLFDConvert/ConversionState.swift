import AISLFDRuntime
import AISLFDCore
import AISLFDFormat
import AISLFDSchema

/// Called with one line about the step a long conversion is at ("sensitivity 12 of 57").
public typealias ConversionProgress = @Sendable (String) -> Void

/// How a tensor will be stored, once a quantization pass has decided.
enum StoredForm {
    case fp32
    /// IEEE binary16 bit patterns.
    case fp16([UInt16])
    /// Symmetric per-output-channel int8: value = Float(q) * scales[c].
    case int8([Int8], scales: [Float])
}

/// What storing a tensor costs in accuracy, against its fp32 value after folding.
struct StorageError {
    var signal: Double = 0      // sum of x^2
    var noise: Double = 0       // sum of (stored - x)^2
    var maxAbs: Double = 0
    var fp16Overflow = 0
    var fp16FlushedToZero = 0
}

/// One tensor on its way to the file: fp32 values until a quantization pass gives it a
/// storage form.
struct WorkingTensor {
    var key: String
    /// The role stored in the file's table: a schema role, or `affine_scale` / `affine_shift`.
    var role: String
    var shape: [Int]
    var values: [Float]
    var history: [String] = []
    var stored: StoredForm = .fp32
    var error = StorageError()
    /// The keep pattern that held it at fp32, if one did.
    var keptBy: String?
    /// How its int8 values were rounded: "gptq" or "nearest" (nil unless int8).
    var rounding: String?
    /// Why it is stored wider than the asked precision (MixedPrecision), if it is.
    var promotion: String?
    /// Mean output error with this tensor alone at the asked precision (MixedPrecision).
    var sensitivity: Double?
    /// Its int8 form as QuantizeInt8 made it, with that form's error, rounding and history line,
    /// kept when MixedPrecision stores it wider: a layer chosen to compute in int8 goes back to it.
    var int8Form: (stored: StoredForm, error: StorageError, rounding: String?)?
}

extension WorkingTensor {
    /// The float32 values a reader gets from the stored form.
    var storedValues: [Float] {
        switch stored {
        case .fp32: return values
        case .fp16(let bits): return bits.map { Float(Float16(bitPattern: $0)) }
        case .int8(let q, let scales): return AISWDequantize.int8(q, scales: scales, rows: shape.first ?? 0, group: 0)
        }
    }

    /// Bytes of its data region (and int8 scales region) in an .aisw file, each padded to the format's alignment.
    var fileBytes: Int { StoredForm.fileBytes(stored, count: values.count, rows: shape.first ?? 1) }
}

extension StoredForm {
    static func fileBytes(_ form: StoredForm, count: Int, rows: Int) -> Int {
        func aligned(_ n: Int) -> Int { (n + AISWFormat.alignment - 1) / AISWFormat.alignment * AISWFormat.alignment }
        switch form {
        case .fp32: return aligned(4 * count)
        case .fp16: return aligned(2 * count)
        case .int8: return aligned(count) + aligned(4 * rows)
        }
    }

    var storageName: String {
        switch self {
        case .fp32: return "fp32"
        case .fp16: return "fp16"
        case .int8: return "int8"
        }
    }
}

/// Where each tensor is bound, decided once from the schema's roles and the options and read
/// by every pass: eligible (a conv or linear weight), held at fp32 by which keep pattern, and
/// so whether it is quantized at the asked precision. Tensors the folds create (affines,
/// biases) are not eligible.
struct QuantizationPlan {
    struct Decision {
        var eligible: Bool
        var keptBy: String?
        /// Quantized at the asked precision (fp16 or int8) unless a later pass promotes it.
        var quantized: Bool { eligible && keptBy == nil }
    }
    let precision: Precision
    private let decisions: [String: Decision]

    init(schema: ArchitectureSchema, options: ConversionOptions, source: [NamedTensor]) {
        precision = options.precision
        var decisions: [String: Decision] = [:]
        for t in source {
            let role = schema.tensor(t.key)?.role.rawValue ?? ""
            decisions[t.key] = Decision(eligible: options.precision != .fp32 && Quantization.roles.contains(role),
                                        keptBy: Quantization.keepPattern(for: t.key, options.keep))
        }
        self.decisions = decisions
    }

    func decision(_ key: String) -> Decision { decisions[key] ?? Decision(eligible: false) }
    func quantized(_ key: String) -> Bool { decision(key).quantized }
    /// Bound for int8 storage: what GPTQ's moments are gathered for and what stops a fold into it.
    func int8(_ key: String) -> Bool { precision == .int8 && quantized(key) }
}

/// Everything the passes share.
struct ConversionState {
    let schema: ArchitectureSchema
    let options: ConversionOptions
    /// The source tensors, in file order; ToFloat32 turns them into `tensors`.
    var source: [NamedTensor]
    /// Stored tensors in their final order.
    var tensors: [WorkingTensor] = []
    /// BatchNorm layers currently stored as `X.scale` / `X.shift`.
    var affines: [String: BatchNormAffine] = [:]
    var folds: [AISWMetadata.Fold] = []
    /// Second moments of each int8-bound weight's input on the calibration images, by weight
    /// key (CollectInputMoments); weights reading the same input share one.
    var moments: [String: InputMoments] = [:]
    /// Bytes the mixed-precision pass leaves for the file's header, metadata and table.
    var reservedBytes = 0
    /// Told what the calibration passes are doing, step by step (the commands show it).
    var progress: ConversionProgress?
    let plan: QuantizationPlan
    /// An evenly spread sample of each such input's values (CollectInputMoments), by weight key:
    /// what the int8 input quantization's clipping range is fitted to.
    var inputSamples: [String: [Float]] = [:]
    /// Least and greatest value of each input channel of each int8-bound weight's input on the
    /// calibration images (CollectInputMoments), by weight key: what InputEqualization evens out.
    var inputChannelRanges: [String: [(low: Float, high: Float)]] = [:]
    /// The input channel of each value of `inputSamples`, by weight key.
    var inputSampleChannels: [String: [Int32]] = [:]
    /// The producers whose output channels InputEqualization scaled for int8 layers, with
    /// their factors (ChooseInt8Compute), in the order applied.
    var equalizations: [InputEqualization.Applied] = []
    /// The layers that compute in int8 (ChooseInt8Compute), by weight key.
    var int8Compute: [String: AISWMetadata.Int8Compute] = [:]

    init(schema: ArchitectureSchema, options: ConversionOptions, source: [NamedTensor]) {
        self.schema = schema
        self.options = options
        self.source = source
        plan = QuantizationPlan(schema: schema, options: options, source: source)
    }

    func index(of key: String) -> Int? { tensors.firstIndex { $0.key == key } }

    /// Least and greatest value of the weight's input over all its channels: the range its int8
    /// input quantization covers; nil when calibration did not measure it.
    func inputRange(_ key: String) -> (low: Float, high: Float)? {
        inputChannelRanges[key].map { ranges in (ranges.map(\.low).min() ?? 0, ranges.map(\.high).max() ?? 0) }
    }

    /// The tensor's values; a missing one is named with the role the schema gives it.
    func values(of key: String, role: String) throws -> [Float] {
        guard let i = index(of: key) else { throw ConversionError.missingTensor(key: key, role: role) }
        return tensors[i].values
    }

    /// Layers whose output leaves their part (the backbone's features, the heads' maps):
    /// someone outside the layer graph may read them, so their values must not change.
    var exposedLayers: Set<String> {
        Set(schema.parts.flatMap { $0.outputs.values.compactMap(\.layer) })
    }

    mutating func remove(_ key: String) {
        tensors.removeAll { $0.key == key }
    }

    /// Puts `tensor` right after `key` (at the end if `key` is not stored).
    mutating func insert(_ tensor: WorkingTensor, after key: String) {
        let at = index(of: key).map { $0 + 1 } ?? tensors.count
        tensors.insert(tensor, at: at)
    }
}

/// One named step of the conversion. `run` changes the state and returns the pass's record
/// for the file's metadata.
protocol ConversionPass {
    var name: String { get }
    func run(_ state: inout ConversionState) throws -> JSONValue
}

// Small builders for metadata records.
func json(_ n: Int) -> JSONValue { .int(n) }
func json(_ s: String) -> JSONValue { .string(s) }
func json(_ strings: [String]) -> JSONValue { .array(strings.map(JSONValue.string)) }
/// A finite number, or the string "inf" (JSON has no infinity).
func json(decibels: Double) -> JSONValue { decibels.isFinite ? .double(decibels) : .string(decibels > 0 ? "inf" : "-inf") }

/// Rounds folded Double values to float32, refusing overflow (named by the stored key).
func roundToFloat(_ values: [Double], key: String) throws -> [Float] {
    var out = [Float](repeating: 0, count: values.count)
    for (i, v) in values.enumerated() {
        out[i] = Float(v)
        guard out[i].isFinite else { throw ConversionError.foldOverflow(key: key, index: i) }
    }
    return out
}
