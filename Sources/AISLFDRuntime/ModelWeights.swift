import AISLFDCore

/// Everything a model needs, already as float32: the state_dict tensors by
/// key (a source weights file or a dequantized `.aisw`) and the BatchNorm
/// layers that a converter folded away into a neighbouring convolution.
public struct ModelWeights: Sendable {
    public var arch: String
    public var tensors: [String: WeightTensor]
    /// Prefixes (e.g. `msfe.stem.bn`) of BatchNorm layers that have no tensors
    /// left because they were folded into a convolution.
    public var foldedLayers: Set<String>

    public init(arch: String, tensors: [String: WeightTensor], foldedLayers: Set<String> = []) {
        self.arch = arch
        self.tensors = tensors
        self.foldedLayers = foldedLayers
    }

    /// Every tensor of a reader's contents converted to float32 (integer
    /// tensors such as `num_batches_tracked` too; they are never used).
    public init(arch: String, contents: WeightsContents, foldedLayers: Set<String> = []) {
        var tensors: [String: WeightTensor] = [:]
        for t in contents.tensors { tensors[t.key] = WeightTensor(shape: t.shape, values: t.floats()) }
        self.init(arch: arch, tensors: tensors, foldedLayers: foldedLayers)
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
    static let batchNormEpsilon: Float = 1e-5

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
        var scale = [Float](repeating: 0, count: channels)
        var shift = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            guard variance[c] >= 0 else {
                throw RuntimeError.invalidValue(tensor: statisticsNames[3], problem: "variance \(variance[c]) at channel \(c) is not >= 0")
            }
            // PyTorch computes (x - mean) / sqrt(var + eps) * weight + bias; as an
            // affine that is x * s + (bias - mean * s) with s = weight / sqrt(var + eps).
            let s = gamma[c] / (variance[c] + WeightLoader.batchNormEpsilon).squareRoot()
            scale[c] = s
            shift[c] = beta[c] - mean[c] * s
        }
        return ChannelAffine(scale: scale, shift: shift)
    }

    /// Tensors the model never read, in name order.
    var unusedTensors: [String] { weights.tensors.keys.filter { !used.contains($0) }.sorted() }
}
