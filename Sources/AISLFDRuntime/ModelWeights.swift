import AISLFDCore
import AISLFDFormat
import Foundation

/// How a model's weights were stored. The runtime computes in fp32 whatever the storage.
public enum Precision: String, Codable, CaseIterable, Sendable {
    case fp32, fp16, int8
}

/// Everything a model needs, already as float32: the state_dict tensors by
/// key (a source weights file or a dequantized `.aisw`) and the BatchNorm
/// layers that a converter folded away into a neighbouring convolution.
public struct ModelWeights: Sendable {
    public var architecture: Architecture
    public var tensors: [String: WeightTensor]
    /// Prefixes (e.g. `msfe.stem.bn`) of BatchNorm layers that have no tensors
    /// left because they were folded into a convolution.
    public var foldedLayers: Set<String>
    /// How the values were stored before they became these floats.
    public var precision: Precision
    /// The eps of every BatchNorm still given by its statistics (the schema's; PyTorch's 1e-5).
    public var batchNormEpsilon: Double
    /// Convolutions that compute in int8, by weight key (`<layer>.weight`); every other one
    /// computes in fp32 on `tensors`.
    public var int8Layers: [String: Int8Layer] = [:]

    public init(architecture: Architecture, tensors: [String: WeightTensor], foldedLayers: Set<String> = [],
                precision: Precision = .fp32, batchNormEpsilon: Double = ModelWeights.pytorchBatchNormEpsilon) {
        self.architecture = architecture
        self.tensors = tensors
        self.foldedLayers = foldedLayers
        self.precision = precision
        self.batchNormEpsilon = batchNormEpsilon
    }

    public static let pytorchBatchNormEpsilon = 1e-5

    /// Every tensor of a reader's contents converted to float32 (integer
    /// tensors such as `num_batches_tracked` too; they are never used).
    public init(architecture: Architecture, contents: WeightsContents, batchNormEpsilon: Double = ModelWeights.pytorchBatchNormEpsilon) {
        var tensors: [String: WeightTensor] = [:]
        for t in contents.tensors { tensors[t.key] = WeightTensor(shape: t.shape, values: t.floats()) }
        let half = contents.tensors.contains { $0.dtype == .float16 || $0.dtype == .bfloat16 }
        self.init(architecture: architecture, tensors: tensors, precision: half ? .fp16 : .fp32, batchNormEpsilon: batchNormEpsilon)
    }

    /// The weights of a converted `.aisw` file, every checksum verified, fp16 and int8
    /// values widened to float32 as the format defines.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let file = try AISWFile.open(path: path, verifyData: true)
        let meta = file.metadata
        guard let architecture = Architecture(rawValue: meta.architecture) else {
            throw FileError(path: path, problem: RuntimeError.unknownArchitecture(meta.architecture), status: .invalid)
        }
        guard let precision = Precision(rawValue: meta.options.precision) else {
            throw FileError(path: path, problem: RuntimeError.unknownPrecision(meta.options.precision), status: .invalid)
        }
        var tensors: [String: WeightTensor] = [:]
        for entry in file.tensors {
            tensors[entry.key] = WeightTensor(shape: entry.shape, values: try file.floats(entry.key))
        }
        // A file holds the eps its schema gave; older files without it used PyTorch's.
        var eps = ModelWeights.pytorchBatchNormEpsilon
        if let values = meta.architectureConfig["batchnorm_eps"] {
            let numbers = values.array?.compactMap(\.double) ?? []
            guard numbers.count == 1, values.array?.count == 1, let only = numbers.first else {
                throw FileError(path: path, problem: RuntimeError.invalidMetadata("architecture_config.batchnorm_eps must hold one number"), status: .invalid)
            }
            eps = only
        }
        self.init(architecture: architecture, tensors: tensors, foldedLayers: Set(meta.folds.map(\.from)),
                  precision: precision, batchNormEpsilon: eps)
        // The reader checked that each names an int8 tensor with one scale per output channel.
        for (key, compute) in meta.int8Compute ?? [:] {
            guard let entry = file.entry(key) else { continue }
            int8Layers[key] = Int8Layer(weight: try file.int8Values(key), scales: entry.scales ?? [],
                                        input: ActivationQuantization(scale: compute.inputScale, zeroPoint: compute.inputZeroPoint))
        }
    }
}

/// Per-channel `y = x * scale + shift`.
struct ChannelAffine {
    var scale: [Float]
    var shift: [Float]
}

/// Reads tensors by name with shape checks and resolves the three forms a
/// BatchNorm may come in, so every model runs one code path whatever the
/// converter did.
final class WeightLoader {
    let weights: ModelWeights
    private(set) var used: Set<String> = []

    init(_ weights: ModelWeights) { self.weights = weights }

    func has(_ name: String) -> Bool { weights.tensors[name] != nil }

    func tensor(_ name: String, shape: [Int]) throws -> [Float] {
        guard let t = weights.tensors[name] else { throw RuntimeError.missingTensor(name) }
        guard t.shape == shape else { throw RuntimeError.wrongShape(tensor: name, expected: shape, found: t.shape) }
        guard t.values.count == shape.reduce(1, *) else {
            throw RuntimeError.valueCountMismatch(name: "tensor \(name)", shape: t.shape, count: t.values.count)
        }
        used.insert(name)
        return t.values
    }

    /// The convolution at `prefix`: its weight key, and its int8 form when it computes in int8.
    func layer(_ prefix: String, _ g: ConvGeometry) throws -> LayerForm {
        let key = "\(prefix).weight"
        guard let layer = weights.int8Layers[key] else { return LayerForm(weightKeys: [key]) }
        let count = g.outChannels * g.inChannels * g.kernel * g.kernel
        guard layer.weight.count == count, layer.scales.count == g.outChannels else {
            throw RuntimeError.invalidValue(tensor: key, problem: "int8 compute needs \(count) values and \(g.outChannels) scales, has \(layer.weight.count) and \(layer.scales.count)")
        }
        usedInt8.insert(key)
        return LayerForm(weightKeys: [key], int8: layer)
    }

    /// int8 layers no convolution took (a plan naming something that is not a convolution here).
    var unusedInt8Layers: [String] { weights.int8Layers.keys.filter { !usedInt8.contains($0) }.sorted() }
    private var usedInt8: Set<String> = []

    func optionalTensor(_ name: String, shape: [Int]) throws -> [Float]? {
        has(name) ? try tensor(name, shape: shape) : nil
    }

    /// A convolution's weight `[out, in, k, k]` and its bias: required where
    /// the architecture has one, optional where it has none (a BatchNorm
    /// folded into the convolution makes one appear).
    func convolution(_ prefix: String, _ geometry: ConvGeometry, biasRequired: Bool) throws -> (weight: [Float], bias: [Float]?) {
        let g = geometry
        let weight = try tensor("\(prefix).weight", shape: [g.outChannels, g.inChannels, g.kernel, g.kernel])
        let bias = biasRequired ? try tensor("\(prefix).bias", shape: [g.outChannels])
                                : try optionalTensor("\(prefix).bias", shape: [g.outChannels])
        return (weight, bias)
    }

    /// The BatchNorm at `prefix` as a per-channel affine, or nil when it was
    /// folded away.
    func batchNorm(_ prefix: String, channels: Int) throws -> ChannelAffine? {
        let statisticsNames = ["weight", "bias", "running_mean", "running_var"].map { "\(prefix).\($0)" }
        let affineNames = ["scale", "shift"].map { "\(prefix).\($0)" }
        let present = (statisticsNames + affineNames).filter(has)
        // Never needed, whatever the form.
        if has("\(prefix).num_batches_tracked") { used.insert("\(prefix).num_batches_tracked") }
        if weights.foldedLayers.contains(prefix) {
            if let name = present.first { throw RuntimeError.foldedLayerHasTensor(layer: prefix, tensor: name) }
            return nil
        }
        let hasStatistics = statisticsNames.contains(where: has)
        let hasAffine = affineNames.contains(where: has)
        if hasStatistics && hasAffine { throw RuntimeError.conflictingBatchNormForms(layer: prefix) }
        if hasAffine {
            return ChannelAffine(scale: try tensor(affineNames[0], shape: [channels]),
                                 shift: try tensor(affineNames[1], shape: [channels]))
        }
        // Neither form (and not folded) reports the first statistics tensor as missing.
        let gamma = try tensor(statisticsNames[0], shape: [channels])
        let beta = try tensor(statisticsNames[1], shape: [channels])
        let mean = try tensor(statisticsNames[2], shape: [channels])
        let variance = try tensor(statisticsNames[3], shape: [channels])
        do {
            let affine = try BatchNormAffine(weight: gamma, bias: beta, mean: mean, variance: variance, eps: weights.batchNormEpsilon)
            return ChannelAffine(scale: affine.scale.map { Float($0) }, shift: affine.shift.map { Float($0) })
        } catch let e as BatchNormAffine.NonPositiveVariance {
            throw RuntimeError.invalidValue(tensor: statisticsNames[3], problem: "running_var + eps is \(e.value) at channel \(e.channel), must be > 0")
        }
    }

    /// Tensors the model never read, in name order.
    var unusedTensors: [String] { weights.tensors.keys.filter { !used.contains($0) }.sorted() }
}
