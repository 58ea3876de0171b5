import AISLFDCore
import AISLFDRuntime
import AISLFDSchema

/// Every BatchNorm X becomes a per-channel affine y = x * scale + shift (`BatchNormAffine`,
/// with the schema's eps), computed in Double and rounded once to float32, stored as `X.scale` / `X.shift` (roles
/// `affine_scale` / `affine_shift`) where X's tensors were. The next two passes fold some
/// of these into convolutions; the rest stay, applied where the BatchNorm was.
struct FoldBatchNorm: ConversionPass {
    let name = "FoldBatchNorm"

    static let scaleRole = "affine_scale"
    static let shiftRole = "affine_shift"

    func run(_ state: inout ConversionState) throws -> JSONValue {
        var layers: [String] = []
        var epsilons = Set<Double>()
        for layer in state.schema.layers where layer.op == .batchnorm2d {
            let eps = layer.eps ?? ModelWeights.pytorchBatchNormEpsilon
            let keys = try roleKeys(layer, state.schema)
            let weight = try state.values(of: keys.weight, role: TensorRole.bnWeight.rawValue)
            let bias = try state.values(of: keys.bias, role: TensorRole.bnBias.rawValue)
            let mean = try state.values(of: keys.mean, role: TensorRole.bnRunningMean.rawValue)
            let variance = try state.values(of: keys.variance, role: TensorRole.bnRunningVar.rawValue)
            let channels = layer.outChannels
            for (key, v) in [(keys.weight, weight), (keys.bias, bias), (keys.mean, mean), (keys.variance, variance)] where v.count != channels {
                throw ConversionError.wrongShape(key: key, expected: [channels], found: [v.count])
            }

            let affine: BatchNormAffine
            do {
                affine = try BatchNormAffine(weight: weight, bias: bias, mean: mean, variance: variance, eps: eps)
            } catch let e as BatchNormAffine.NonPositiveVariance {
                throw ConversionError.invalidVariance(key: keys.variance, channel: e.channel, value: e.value)
            }
            let scaleKey = layer.name + ".scale", shiftKey = layer.name + ".shift"
            let scale = try roundToFloat(affine.scale, key: scaleKey)
            let shift = try roundToFloat(affine.shift, key: shiftKey)

            // The affine takes the place of the first of the BatchNorm's tensors.
            let statistics = [keys.weight, keys.bias, keys.mean, keys.variance]
            let at = statistics.compactMap(state.index(of:)).min() ?? state.tensors.count
            let from = "from \(layer.name).{weight, bias, running_mean, running_var}, eps \(eps)"
            for key in statistics { state.remove(key) }
            let position = min(at, state.tensors.count)
            state.tensors.insert(contentsOf: [
                WorkingTensor(key: scaleKey, role: FoldBatchNorm.scaleRole, shape: [channels], values: scale,
                              history: ["scale = weight / sqrt(running_var + eps) \(from)"]),
                WorkingTensor(key: shiftKey, role: FoldBatchNorm.shiftRole, shape: [channels], values: shift,
                              history: ["shift = bias - running_mean * scale \(from)"]),
            ], at: position)
            state.affines[layer.name] = affine
            layers.append(layer.name)
            epsilons.insert(eps)
        }
        return .object([
            "batchnorms": json(layers.count),
            "eps": .array(epsilons.sorted().map(JSONValue.double)),
            "arithmetic": json("float64, rounded once to float32"),
        ])
    }

    private func roleKeys(_ layer: LayerSpec, _ schema: ArchitectureSchema) throws -> (weight: String, bias: String, mean: String, variance: String) {
        func key(_ role: TensorRole) throws -> String {
            guard let k = layer.tensorKeys.first(where: { schema.tensor($0)?.role == role }) else {
                throw ConversionError.inconsistentLayer(layer: layer.name, problem: "the schema gives it no \(role.rawValue) tensor")
            }
            return k
        }
        return (try key(.bnWeight), try key(.bnBias), try key(.bnRunningMean), try key(.bnRunningVar))
    }
}
