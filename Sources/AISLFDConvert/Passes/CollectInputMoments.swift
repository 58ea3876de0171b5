import AISLFDCore
import AISLFDRuntime
import AISLFDSchema
import Dispatch

/// int8 with calibration: runs the fp32 network (after folding) on the seeded dead-leaves
/// images and gathers, for every weight bound for int8, the second moments of the vectors it
/// multiplies — what GPTQ needs (QuantizeInt8) — and the range of its input (what its int8
/// input quantization covers, ChooseInt8Compute). The inputs are the runtime's own maps: it
/// hands out each convolution's input as it runs (`Model.forward(image:recordLayerInputs:)`),
/// so nothing here re-implements a layer. Weights that read one input together (the four
/// heads' first convs, a PSA's query, key and value) share one accumulator.
struct CollectInputMoments: ConversionPass {
    let name = "CollectInputMoments"

    func run(_ state: inout ConversionState) throws -> JSONValue {
        guard let settings = state.options.calibration else { return .object(["ran": .bool(false)]) }
        guard settings.images > 0 else {
            return .object(["ran": .bool(false), "reason": json("no calibration images asked for; int8 weights are rounded to nearest")])
        }
        let network: CalibrationNetwork
        switch CalibrationNetwork.make(state) {
        case .failure(let reason):
            return .object(["ran": .bool(false), "reason": json(reason.text + "; int8 weights are rounded to nearest")])
        case .success(let n): network = n
        }
        let model = network.reference

        // One accumulator per input read by int8-bound weights, in the order the network reads them.
        var groups: [(keys: [String], layer: LayerSpec)] = []
        var accumulators: [InputMoments] = []
        var ranges: [[(low: Float, high: Float)]] = []
        var samples: [[Float]] = []
        var sampleChannels: [[Int32]] = []
        var unavailable = Set<Int>()
        for i in 0..<settings.images {
            state.progress?("calibration: layer inputs of image \(i + 1) of \(settings.images)")
            let values = CalibrationImages.deadLeaves(seed: settings.gptqImageSeed(i), height: settings.height, width: settings.width)
            let image = try CalibrationNetwork.image(values, height: settings.height, width: settings.width)
            let inputs = try model.forward(image: image, recordLayerInputs: true).layerInputs.filter { input in
                input.weightKeys.contains { state.plan.int8($0) }
            }
            if i == 0 {
                for input in inputs {
                    guard let spec = state.schema.tensor(input.weightKeys[0]), let layer = state.schema.layer(spec.layer) else {
                        throw ConversionError.unexpectedTensor(key: input.weightKeys[0])
                    }
                    groups.append((input.weightKeys.filter { state.plan.int8($0) }, layer))
                    accumulators.append(InputMoments(size: columns(layer)))
                    ranges.append([(low: Float, high: Float)](repeating: (.infinity, -.infinity), count: layer.inChannels))
                    samples.append([])
                    sampleChannels.append([])
                }
            }
            guard inputs.count == groups.count else { throw ConversionError.unexpectedTensor(key: inputs.last?.weightKeys.first ?? "") }
            var added = [Bool](repeating: false, count: groups.count)
            // Each accumulator is touched by one iteration only.
            accumulators.withUnsafeMutableBufferPointer { acc in
                added.withUnsafeMutableBufferPointer { ok in
                    ranges.withUnsafeMutableBufferPointer { bounds in
                        let moments = acc.baseAddress!, flags = ok.baseAddress!, range = bounds.baseAddress!
                        DispatchQueue.concurrentPerform(iterations: groups.count) { s in
                            let layer = groups[s].layer, map = inputs[s].map
                            guard map.channels == layer.inChannels else { return }
                            map.values.withUnsafeBufferPointer { v in
                                for c in 0..<map.channels {
                                    var low = range[s][c].low, high = range[s][c].high
                                    for j in (c * map.planeSize)..<((c + 1) * map.planeSize) {
                                        low = min(low, v[j])
                                        high = max(high, v[j])
                                    }
                                    range[s][c] = (low, high)
                                }
                            }
                            if layer.op == .linear {
                                flags[s] = moments[s].addPositions(map.values, channels: map.channels)
                            } else {
                                flags[s] = moments[s].addConvolutionPatches(map.values, channels: map.channels, height: map.height, width: map.width,
                                                                            kernel: layer.kernel ?? 0, stride: layer.stride ?? 0, padding: layer.padding ?? -1)
                            }
                        }
                    }
                }
            }
            for (s, ok) in added.enumerated() where !ok { unavailable.insert(s) }
            for s in groups.indices {
                let values = inputs[s].map.values
                let step = max(1, values.count / CollectInputMoments.samplesPerImage)
                samples[s] += stride(from: 0, to: values.count, by: step).map { values[$0] }
                let plane = max(1, inputs[s].map.planeSize)
                sampleChannels[s] += stride(from: 0, to: values.count, by: step).map { Int32($0 / plane) }
            }
        }

        var layers: [JSONValue] = []
        for (s, group) in groups.enumerated() {
            if unavailable.contains(s) {
                layers.append(.object(["weights": json(group.keys), "moments": .null,
                                       "reason": json("its input does not have the layer's shape; rounded to nearest")]))
                continue
            }
            for key in group.keys {
                state.moments[key] = accumulators[s]
                state.inputChannelRanges[key] = ranges[s]
                state.inputSamples[key] = samples[s]
                state.inputSampleChannels[key] = sampleChannels[s]
            }
            let (low, high) = state.inputRange(group.keys[0]) ?? (0, 0)
            layers.append(.object(["weights": json(group.keys), "size": json(accumulators[s].size), "vectors": json(accumulators[s].count),
                                   "input_range": .array([.double(Double(low)), .double(Double(high))])]))
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

    /// Values of each input kept per image for fitting its int8 quantization.
    static let samplesPerImage = 1 << 15

    /// Values each output of the layer multiplies: in x k x k for a conv, in for a linear.
    private func columns(_ layer: LayerSpec) -> Int {
        layer.op == .linear ? layer.inChannels : layer.inChannels * (layer.kernel ?? 1) * (layer.kernel ?? 1)
    }
}
