import AISLFDCore
import AISLFDRuntime
import AISLFDSchema
import Dispatch

/// int8 with calibration: runs the fp32 network (after folding) on the seeded dead-leaves
/// images and gathers, for every weight that will be int8, the second moments of the
/// vectors it multiplies — what GPTQ needs (QuantizeInt8). Weights that read the same input
/// the same way (the four LISRD heads' first convs, a PSA's query, key and value) share one.
/// Which input a layer reads comes from the schema's wiring (LayerInputs).
struct CollectInputMoments: ConversionPass {
    let name = "CollectInputMoments"

    func run(_ state: inout ConversionState) throws -> JSONValue {
        guard let settings = state.options.calibration else { return .object(["ran": .bool(false)]) }
        guard settings.images > 0 else {
            return .object(["ran": .bool(false), "reason": json("no calibration images asked for; int8 weights are rounded to nearest")])
        }
        // Weight key -> its layer, for weights bound for int8.
        var targets: [(key: String, layer: LayerSpec)] = []
        for t in state.tensors where Quantization.roles.contains(t.role) && Quantization.keepPattern(for: t.key, state.options.keep) == nil {
            guard let spec = state.schema.tensor(t.key), let layer = state.schema.layer(spec.layer) else { continue }
            targets.append((t.key, layer))
        }
        let network: CalibrationNetwork
        switch CalibrationNetwork.make(state) {
        case .failure(let reason):
            return .object(["ran": .bool(false), "reason": json(reason.text + "; int8 weights are rounded to nearest")])
        case .success(let n): network = n
        }
        let model = network.reference

        // One accumulator per distinct input.
        var signatures: [String] = []
        var layerOfSignature: [LayerSpec] = []
        var signatureOfKey: [String: Int] = [:]
        for (key, layer) in targets {
            let s = signature(layer)
            if let i = signatures.firstIndex(of: s) { signatureOfKey[key] = i; continue }
            signatures.append(s)
            layerOfSignature.append(layer)
            signatureOfKey[key] = signatures.count - 1
        }
        var accumulators = layerOfSignature.map { InputMoments(size: columns($0)) }
        var unavailable = Set<Int>()

        for i in 0..<settings.images {
            state.progress?("calibration: layer inputs of image \(i + 1) of \(settings.images)")
            let values = CalibrationImages.deadLeaves(seed: settings.gptqImageSeed(i), height: settings.height, width: settings.width)
            let image = try CalibrationNetwork.image(values, height: settings.height, width: settings.width)
            let outputs = try model.forward(image: image, recordActivations: true)
            let inputs = LayerInputs(schema: state.schema, image: image, outputs: outputs)
            let maps = layerOfSignature.map { inputs.input(of: $0) }
            var added = [Bool](repeating: false, count: layerOfSignature.count)
            // Each accumulator is touched by one iteration only.
            accumulators.withUnsafeMutableBufferPointer { acc in
                added.withUnsafeMutableBufferPointer { ok in
                    let moments = acc.baseAddress!, flags = ok.baseAddress!
                    DispatchQueue.concurrentPerform(iterations: layerOfSignature.count) { s in
                        let layer = layerOfSignature[s]
                        guard let map = maps[s], map.channels == layer.inChannels else { return }
                        if layer.op == .linear {
                            flags[s] = moments[s].addPositions(map.values, channels: map.channels)
                        } else {
                            flags[s] = moments[s].addConvolutionPatches(map.values, channels: map.channels, height: map.height, width: map.width,
                                                                        kernel: layer.kernel ?? 0, stride: layer.stride ?? 0, padding: layer.padding ?? -1)
                        }
                    }
                }
            }
            for (s, ok) in added.enumerated() where !ok { unavailable.insert(s) }
        }

        var layers: [JSONValue] = []
        for (s, layer) in layerOfSignature.enumerated() {
            let keys = targets.filter { signatureOfKey[$0.key] == s }.map(\.key)
            if unavailable.contains(s) {
                layers.append(.object(["weights": json(keys), "moments": .null,
                                       "reason": json("its input could not be rebuilt from the recorded activations; rounded to nearest")]))
                continue
            }
            for key in keys { state.moments[key] = accumulators[s] }
            layers.append(.object(["weights": json(keys), "input": json(describeInput(layer)), "size": json(accumulators[s].size),
                                   "vectors": json(accumulators[s].count)]))
        }
        return .object([
            "ran": .bool(true),
            "images": json(settings.images),
            "image_size": .array([json(settings.height), json(settings.width)]),
            "seeds": .array((0..<settings.images).map { .double(Double(settings.gptqImageSeed($0))) }),
            "generator": json("dead leaves (CalibrationImages.deadLeaves)"),
            "inputs": .array(layers),
        ])
    }

    /// Values each output of the layer multiplies: in x k x k for a conv, in for a linear.
    private func columns(_ layer: LayerSpec) -> Int {
        layer.op == .linear ? layer.inChannels : layer.inChannels * (layer.kernel ?? 1) * (layer.kernel ?? 1)
    }

    private func signature(_ layer: LayerSpec) -> String {
        describeInput(layer) + "|\(layer.op.rawValue)|k\(layer.kernel ?? 0)|s\(layer.stride ?? 0)|p\(layer.padding ?? 0)|c\(layer.inChannels)"
    }

    private func describeInput(_ layer: LayerSpec) -> String {
        layer.inputs.map { i in
            ([i.layer ?? "$image"] + i.between.map(\.rawValue)).joined(separator: " -> ")
        }.joined(separator: " + ")
    }
}
