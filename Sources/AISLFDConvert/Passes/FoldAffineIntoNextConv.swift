import AISLFDRuntime
import AISLFDCore
import AISLFDSchema

/// conv -> ReLU -> BatchNorm (VGG backbone, LISRD heads): the ReLU stops the BatchNorm from
/// going back into the conv before it. It goes forward into the next conv C, per output o
/// and input channel i:
///     W'[o, i] = W[o, i] * scale[i],   b'[o] = b[o] + sum_i W[o, i] * shift[i]
/// (Double accumulation, one rounding), only where that is exact for every pixel: the
/// BatchNorm's output goes to C alone and leaves no part, C is 1x1 with stride 1 and padding
/// 0, and nothing (pooling, resize) sits between them. A zero-padded C would be wrong at the
/// border: its padding zeros do not pass through the affine (they would need to be -shift /
/// scale). In the four architectures this folds LISRD heads' bn_*_1 into conv_*_2. The
/// BatchNorms it leaves stay as `X.scale` / `X.shift`, applied after the ReLU.
///
/// Not at int8 when C's weight will be int8: its one scale per output channel would have to
/// cover the BatchNorm's spread of scales across input channels (0.09 ... 17 in the LISRD
/// sample), which costs about 20 dB of SQNR at the heads' output; the affine stays in fp32
/// instead (docs/conversion.md). Keeping C's weight at fp32 (`keep`) folds it again.
struct FoldAffineIntoNextConv: ConversionPass {
    let name = "FoldAffineIntoNextConv"
    static let kind = "batchnorm-into-next-conv"

    func run(_ state: inout ConversionState) throws -> JSONValue {
        var folded: [JSONValue] = []
        var kept: [JSONValue] = []
        let exposed = state.exposedLayers
        for bn in state.schema.layers where bn.op == .batchnorm2d {
            guard let affine = state.affines[bn.name] else { continue }
            let conv: LayerSpec
            switch consumer(of: bn, state.schema, exposed) {
            case .failure(let reason):
                kept.append(.object(["layer": json(bn.name), "reason": json(reason.text)]))
                continue
            case .success(let c): conv = c
            }

            let weightKey = try convWeightKey(conv, state.schema)
            if state.plan.int8(weightKey) {
                kept.append(.object(["layer": json(bn.name), "reason": json(
                    "\(weightKey) will be int8 with one scale per output channel, which cannot absorb the BatchNorm's per-input-channel scales without a large loss; the affine stays fp32")]))
                continue
            }
            let biasKey = conv.name + ".bias"
            let weight = try state.values(of: weightKey, role: TensorRole.convWeight.rawValue)
            let inChannels = affine.scale.count
            let outChannels = conv.outChannels
            // 1x1: W is [out, in, 1, 1], so W[o, i] is weight[o * in + i].
            guard weight.count == outChannels * inChannels else {
                throw ConversionError.wrongShape(key: weightKey, expected: [outChannels, inChannels, 1, 1],
                                                 found: state.index(of: weightKey).map { state.tensors[$0].shape } ?? [])
            }
            let oldBias = state.index(of: biasKey).map { state.tensors[$0].values }
            if let b = oldBias, b.count != outChannels {
                throw ConversionError.wrongShape(key: biasKey, expected: [outChannels], found: [b.count])
            }
            var newWeight = [Double](repeating: 0, count: weight.count)
            var newBias = [Double](repeating: 0, count: outChannels)
            for o in 0..<outChannels {
                var sum = Double(oldBias?[o] ?? 0)
                for i in 0..<inChannels {
                    let w = Double(weight[o * inChannels + i])
                    newWeight[o * inChannels + i] = w * affine.scale[i]
                    sum += w * affine.shift[i]
                }
                newBias[o] = sum
            }
            let w = try roundToFloat(newWeight, key: weightKey)
            let b = try roundToFloat(newBias, key: biasKey)

            state.replaceFoldedConv(FoldedConv(kind: FoldAffineIntoNextConv.kind, bn: bn.name, conv: conv.name,
                                               weightKey: weightKey, weight: w, weightRule: "W[o, i] * scale[i]",
                                               biasKey: biasKey, bias: b, biasRule: "b[o] + sum_i W[o, i] * shift[i]",
                                               createdBiasRule: "sum_i W[o, i] * shift[i]"))
            folded.append(.object(["from": json(bn.name), "into": json(conv.name), "bias_created": .bool(oldBias == nil)]))
        }
        return .object(["folded": json(folded.count), "folds": .array(folded), "kept_as_affine": .array(kept)])
    }

    /// The conv this BatchNorm can be folded forward into, or why there is none.
    private func consumer(of bn: LayerSpec, _ schema: ArchitectureSchema, _ exposed: Set<String>) -> Result<LayerSpec, Reason> {
        if exposed.contains(bn.name) { return .failure(Reason("its output leaves its part")) }
        let readers = schema.consumers(of: bn.name)
        guard readers.count == 1, let conv = readers.first else {
            return .failure(Reason("its output is read by \(readers.count) layers"))
        }
        guard conv.op == .conv2d else { return .failure(Reason("\(conv.name) is not a conv2d")) }
        guard conv.inputs.count == 1, let input = conv.input, input.layer == bn.name else {
            return .failure(Reason("\(conv.name) sums \(conv.inputs.count) inputs"))
        }
        guard input.isDirect else {
            return .failure(Reason(input.between.map(\.rawValue).joined(separator: ", ") + " between it and \(conv.name)"))
        }
        let k = conv.kernel ?? 0, s = conv.stride ?? 0, p = conv.padding ?? -1
        guard k == 1, s == 1, p == 0 else {
            return .failure(Reason("\(conv.name) is \(k)x\(k), stride \(s), padding \(p): only a 1x1, stride 1, unpadded conv takes it exactly"))
        }
        return .success(conv)
    }
}
