import AISLFDRuntime
import AISLFDSchema

/// The network being converted, run by the Swift runtime on calibration images: with the
/// fp32 values after folding, or with chosen tensors replaced by their stored values.
struct CalibrationNetwork {
    let schema: ArchitectureSchema
    let tensors: [String: WeightTensor]
    let foldedLayers: Set<String>
    /// The runtime's model of the fp32 values, built once (building packs every weight).
    let reference: Model

    /// Nil and why, when the runtime cannot run this schema (fixture schemas it does not know)
    /// or refuses the weights.
    static func make(_ state: ConversionState) -> Result<CalibrationNetwork, Reason> {
        guard Architecture(rawValue: state.schema.id) != nil else {
            return .failure(Reason("the runtime has no model of architecture \(state.schema.id)"))
        }
        var tensors: [String: WeightTensor] = [:]
        for t in state.tensors { tensors[t.key] = WeightTensor(shape: t.shape, values: t.values) }
        let foldedLayers = Set(state.folds.map(\.from))
        do {
            let reference = try makeModel(state.schema, tensors, foldedLayers)
            return .success(CalibrationNetwork(schema: state.schema, tensors: tensors, foldedLayers: foldedLayers, reference: reference))
        } catch {
            return .failure(Reason("the runtime refuses the weights: \(error)"))
        }
    }

    private static func makeModel(_ schema: ArchitectureSchema, _ tensors: [String: WeightTensor], _ foldedLayers: Set<String>) throws -> Model {
        guard let architecture = Architecture(rawValue: schema.id) else { throw RuntimeError.unknownArchitecture(schema.id) }
        return try Model(weights: ModelWeights(architecture: architecture, tensors: tensors, foldedLayers: foldedLayers,
                                               batchNormEpsilon: schema.batchNormEpsilons.first ?? ModelWeights.pytorchBatchNormEpsilon))
    }

    /// The runtime's model with `replaced` tensors' values swapped in.
    func model(replacing replaced: [String: [Float]]) throws -> Model {
        var weights = tensors
        for (key, values) in replaced { weights[key]?.values = values }
        return try Self.makeModel(schema, weights, foldedLayers)
    }

    static func image(_ values: [Float], height: Int, width: Int) throws -> Image {
        try Image(channels: 3, height: height, width: width, values: values)
    }
}

/// A feature map during calibration: channels x height x width, C order.
struct CalibrationMap {
    var channels: Int, height: Int, width: Int
    var values: [Float]
}

/// Rebuilds each layer's input from one forward pass: the runtime records the output of every
/// BatchNorm (act.<layer>, interfaces.md) and lateral, and returns the descriptor maps; the
/// schema says which of them a layer reads and what happens in between (ReLU, pooling,
/// resizing, L2 normalisation), so nothing here depends on tensor names.
struct LayerInputs {
    let schema: ArchitectureSchema
    let image: CalibrationMap
    let recorded: [String: CalibrationMap]

    init(schema: ArchitectureSchema, image: Image, outputs: ModelOutputs) {
        self.schema = schema
        self.image = CalibrationMap(channels: image.channels, height: image.height, width: image.width, values: image.values)
        var recorded: [String: CalibrationMap] = [:]
        for a in outputs.activations where a.shape.count == 4 && a.shape[0] == 1 {
            recorded[a.name] = CalibrationMap(channels: a.shape[1], height: a.shape[2], width: a.shape[3], values: a.values)
        }
        // A per-variant part that hands something on gives the descriptor maps.
        for part in schema.parts where part.perVariant {
            for (variant, output) in part.outputs where output.between.isEmpty {
                guard let layer = output.layer, let v = Variant(rawValue: variant) else { continue }
                let map = outputs.desc[v]
                recorded[layer] = CalibrationMap(channels: map.channels, height: map.height, width: map.width, values: map.values)
            }
        }
        self.recorded = recorded
    }

    /// The input of `layer` (inputs summed), or nil when some part of it was not recorded or
    /// a step's target size is unknown.
    func input(of layer: LayerSpec) -> CalibrationMap? {
        var resolved: [(map: CalibrationMap, resize: Bool)] = []
        for input in layer.inputs {
            guard var map = input.layer.map({ recorded[$0] }) ?? (input.isImage ? image : nil) else { return nil }
            var resize = false
            for step in input.between {
                switch step {
                case .relu: map.values = map.values.map { max($0, 0) }
                case .avgPool2x2: map = averagePool2x2(map)
                case .resizeBilinear: resize = true
                case .l2Normalize:
                    if resize { guard let resized = resizeForConsumer(map, layer) else { return nil }; map = resized; resize = false }
                    map = l2Normalized(map)
                case .softmax: return nil
                }
            }
            resolved.append((map, resize))
        }
        // Resized inputs take the size of the one that is not resized (MSFE's fusion).
        let target = resolved.first { !$0.resize }?.map
        var sum: CalibrationMap? = nil
        for var r in resolved {
            if r.resize {
                if let t = target {
                    r.map = resizeBilinear(r.map, height: t.height, width: t.width)
                } else {
                    guard let m = resizeForConsumer(r.map, layer) else { return nil }
                    r.map = m
                }
            }
            guard var s = sum else { sum = r.map; continue }
            guard s.channels == r.map.channels, s.height == r.map.height, s.width == r.map.width else { return nil }
            for i in s.values.indices { s.values[i] += r.map.values[i] }
            sum = s
        }
        return sum
    }

    /// A layer reading the same input as a NetVLAD layer works at that layer's grid: the map
    /// is resized to multiples of the grid when it is not one already (architectures.md).
    private func resizeForConsumer(_ map: CalibrationMap, _ layer: LayerSpec) -> CalibrationMap? {
        let partner = schema.layers.first { other in
            other.op == .netvlad && other.inputs.contains { $0.layer == layer.inputs.first?.layer && $0.between.contains(.resizeBilinear) }
        }
        guard let grid = partner?.grid, grid > 0 else { return nil }
        let h = grid * (map.height / grid), w = grid * (map.width / grid)
        guard h > 0, w > 0 else { return nil }
        return (h, w) == (map.height, map.width) ? map : resizeBilinear(map, height: h, width: w)
    }
}

/// 2x2 average pool, stride 2, floor mode.
func averagePool2x2(_ m: CalibrationMap) -> CalibrationMap {
    let h = m.height / 2, w = m.width / 2
    var out = CalibrationMap(channels: m.channels, height: h, width: w, values: [Float](repeating: 0, count: m.channels * h * w))
    for c in 0..<m.channels {
        for y in 0..<h {
            for x in 0..<w {
                let i = (c * m.height + 2 * y) * m.width + 2 * x
                out.values[(c * h + y) * w + x] = (m.values[i] + m.values[i + 1] + m.values[i + m.width] + m.values[i + m.width + 1]) / 4
            }
        }
    }
    return out
}

/// PyTorch's `F.interpolate(mode='bilinear', align_corners=False)`.
func resizeBilinear(_ m: CalibrationMap, height: Int, width: Int) -> CalibrationMap {
    func taps(_ out: Int, _ size: Int) -> [(Int, Int, Float)] {
        let scale = Float(size) / Float(out)
        return (0..<out).map { o in
            let src = max((Float(o) + 0.5) * scale - 0.5, 0)
            let i0 = min(Int(src), size - 1)
            let i1 = min(i0 + 1, size - 1)
            return (i0, i1, src - Float(i0))
        }
    }
    let ys = taps(height, m.height), xs = taps(width, m.width)
    var out = CalibrationMap(channels: m.channels, height: height, width: width, values: [Float](repeating: 0, count: m.channels * height * width))
    for c in 0..<m.channels {
        let plane = c * m.height * m.width
        for (y, (y0, y1, fy)) in ys.enumerated() {
            for (x, (x0, x1, fx)) in xs.enumerated() {
                let top = m.values[plane + y0 * m.width + x0] * (1 - fx) + m.values[plane + y0 * m.width + x1] * fx
                let bottom = m.values[plane + y1 * m.width + x0] * (1 - fx) + m.values[plane + y1 * m.width + x1] * fx
                out.values[(c * height + y) * width + x] = top * (1 - fy) + bottom * fy
            }
        }
    }
    return out
}

/// `F.normalize` over the channels at each position.
func l2Normalized(_ m: CalibrationMap) -> CalibrationMap {
    var out = m
    let plane = m.height * m.width
    for p in 0..<plane {
        var s: Float = 0
        for c in 0..<m.channels { s += m.values[c * plane + p] * m.values[c * plane + p] }
        let scale = 1 / max(s.squareRoot(), 1e-12)
        for c in 0..<m.channels { out.values[c * plane + p] *= scale }
    }
    return out
}

/// How far a run's outputs are from the fp32 network's: the mean over every output map
/// (desc and meta of each variant) of the mean over its positions of 1 - cos between the
/// position's vectors — the error the keypoint cosines of `aislfd-verify` sample.
func outputError(_ run: ModelOutputs, _ reference: ModelOutputs) -> Double {
    var total = 0.0, maps = 0
    for (a, b) in zip(Array(run.desc) + Array(run.meta), Array(reference.desc) + Array(reference.meta)) {
        total += meanPositionCosineDistance(a, b)
        maps += 1
    }
    return maps > 0 ? total / Double(maps) : 0
}

func meanPositionCosineDistance(_ a: FeatureMap, _ b: FeatureMap) -> Double {
    let plane = b.planeSize
    guard plane > 0, a.values.count == b.values.count else { return 1 }
    var sum = 0.0
    for p in 0..<plane {
        var dot = 0.0, aa = 0.0, bb = 0.0
        for c in 0..<b.channels {
            let x = Double(a.values[c * plane + p]), y = Double(b.values[c * plane + p])
            dot += x * y; aa += x * x; bb += y * y
        }
        if aa == 0 && bb == 0 { continue }
        sum += aa == 0 || bb == 0 ? 1 : 1 - dot / (aa.squareRoot() * bb.squareRoot())
    }
    return sum / Double(plane)
}
