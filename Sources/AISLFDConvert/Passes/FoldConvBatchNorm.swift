import AISLFDRuntime
import AISLFDCore
import AISLFDFormat
import AISLFDSchema

/// conv -> BatchNorm with nothing in between (MSFE's blocks, MSFE heads' conv1/bn1): the
/// affine goes into the conv, per output channel o:
///     W'[o, ...] = W[o, ...] * scale[o],   b'[o] = b[o] * scale[o] + shift[o]
/// (b = 0 where the conv has none; it then gains `<conv>.bias`, role conv_bias). Exact for
/// any kernel, stride and padding: the affine acts on the conv's output. Needs the conv's
/// output to go only to this BatchNorm. The BatchNorm leaves the file and `folds` names it.
struct FoldConvBatchNorm: ConversionPass {
    let name = "FoldConvBatchNorm"
    static let kind = "batchnorm-into-preceding-conv"

    func run(_ state: inout ConversionState) throws -> JSONValue {
        var folded: [JSONValue] = []
        var kept: [JSONValue] = []
        let exposed = state.exposedLayers
        for bn in state.schema.layers where bn.op == .batchnorm2d {
            guard let affine = state.affines[bn.name] else { continue }
            let conv: LayerSpec
            switch producer(of: bn, state.schema, exposed) {
            case .failure(let reason):
                kept.append(.object(["layer": json(bn.name), "reason": json(reason.text)]))
                continue
            case .success(let c): conv = c
            }

            let weightKey = try convWeightKey(conv, state.schema)
            let biasKey = conv.name + ".bias"
            var weight = try state.values(of: weightKey, role: TensorRole.convWeight.rawValue)
            let outChannels = affine.scale.count
            guard outChannels > 0, weight.count % outChannels == 0 else {
                throw ConversionError.wrongShape(key: weightKey, expected: [conv.outChannels, conv.inChannels, conv.kernel ?? 0, conv.kernel ?? 0],
                                                 found: state.index(of: weightKey).map { state.tensors[$0].shape } ?? [])
            }
            let perChannel = weight.count / outChannels
            var newWeight = [Double](repeating: 0, count: weight.count)
            for o in 0..<outChannels {
                for j in (o * perChannel)..<((o + 1) * perChannel) { newWeight[j] = Double(weight[j]) * affine.scale[o] }
            }
            weight = try roundToFloat(newWeight, key: weightKey)

            let oldBias = state.index(of: biasKey).map { state.tensors[$0].values }
            if let b = oldBias, b.count != outChannels {
                throw ConversionError.wrongShape(key: biasKey, expected: [outChannels], found: [b.count])
            }
            var newBias = [Double](repeating: 0, count: outChannels)
            for o in 0..<outChannels { newBias[o] = Double(oldBias?[o] ?? 0) * affine.scale[o] + affine.shift[o] }
            let bias = try roundToFloat(newBias, key: biasKey)

            state.replaceFoldedConv(FoldedConv(kind: FoldConvBatchNorm.kind, bn: bn.name, conv: conv.name,
                                               weightKey: weightKey, weight: weight, weightRule: "W[o] * scale[o]",
                                               biasKey: biasKey, bias: bias, biasRule: "b[o] * scale[o] + shift[o]",
                                               createdBiasRule: "shift[o]"))
            folded.append(.object(["from": json(bn.name), "into": json(conv.name), "bias_created": .bool(oldBias == nil)]))
        }
        return .object(["folded": json(folded.count), "folds": .array(folded), "not_folded": .array(kept)])
    }

    /// The conv this BatchNorm can be folded into, or why there is none.
    private func producer(of bn: LayerSpec, _ schema: ArchitectureSchema, _ exposed: Set<String>) -> Result<LayerSpec, Reason> {
        guard let input = bn.input else { return .failure(Reason("it reads \(bn.inputs.count) inputs")) }
        guard let from = input.layer else { return .failure(Reason("it reads the image")) }
        guard input.isDirect else {
            return .failure(Reason(input.between.map(\.rawValue).joined(separator: ", ") + " between \(from) and it"))
        }
        guard let conv = schema.layer(from), conv.op == .conv2d else { return .failure(Reason("\(from) is not a conv2d")) }
        let readers = schema.consumers(of: from).map(\.name)
        guard readers == [bn.name] else {
            return .failure(Reason("\(from)'s output is also read by " + readers.filter { $0 != bn.name }.joined(separator: ", ")))
        }
        guard !exposed.contains(from) else { return .failure(Reason("\(from)'s output leaves its part")) }
        return .success(conv)
    }
}

struct Reason: Error {
    let text: String
    init(_ text: String) { self.text = text }
}

/// A conv's weight and bias after a BatchNorm was folded into it, and the rules that made them.
struct FoldedConv {
    var kind: String, bn: String, conv: String
    var weightKey: String, weight: [Float], weightRule: String
    var biasKey: String, bias: [Float], biasRule: String
    /// The rule, when the conv had no bias and the fold creates one.
    var createdBiasRule: String
}

extension ConversionState {
    /// Stores a fold's weight and bias (creating the bias when the conv had none), drops the
    /// BatchNorm's affine and records the fold: the same bookkeeping for either direction.
    mutating func replaceFoldedConv(_ f: FoldedConv) {
        if let at = index(of: f.weightKey) {
            tensors[at].values = f.weight
            tensors[at].history.append("folded \(f.bn) (\(f.kind)): \(f.weightRule)")
        }
        if let at = index(of: f.biasKey) {
            tensors[at].values = f.bias
            tensors[at].history.append("folded \(f.bn) (\(f.kind)): \(f.biasRule)")
        } else {
            insert(WorkingTensor(key: f.biasKey, role: TensorRole.convBias.rawValue, shape: [f.bias.count], values: f.bias,
                                 history: ["created by folding \(f.bn) (\(f.kind)): \(f.createdBiasRule), the conv had no bias"]),
                   after: f.weightKey)
        }
        remove(f.bn + ".scale")
        remove(f.bn + ".shift")
        affines[f.bn] = nil
        folds.append(AISWMetadata.Fold(kind: f.kind, from: f.bn, into: f.conv))
    }
}

/// The key of a conv layer's weight, from its role.
func convWeightKey(_ conv: LayerSpec, _ schema: ArchitectureSchema) throws -> String {
    guard let key = conv.tensorKeys.first(where: { schema.tensor($0)?.role == .convWeight }) else {
        throw ConversionError.inconsistentLayer(layer: conv.name, problem: "the schema gives it no conv_weight tensor")
    }
    return key
}
