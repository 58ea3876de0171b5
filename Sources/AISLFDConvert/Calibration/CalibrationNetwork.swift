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

    private static func makeModel(_ schema: ArchitectureSchema, _ tensors: [String: WeightTensor], _ foldedLayers: Set<String>,
                                  _ int8Layers: [String: Int8Layer] = [:]) throws -> Model {
        guard let architecture = Architecture(rawValue: schema.id) else { throw RuntimeError.unknownArchitecture(schema.id) }
        var weights = ModelWeights(architecture: architecture, tensors: tensors, foldedLayers: foldedLayers,
                                   batchNormEpsilon: schema.batchNormEpsilons.first ?? ModelWeights.pytorchBatchNormEpsilon)
        weights.int8Layers = int8Layers
        return try Model(weights: weights)
    }

    /// The runtime's model with `replaced` tensors' values swapped in, and `int8Layers` computing in int8.
    func model(replacing replaced: [String: [Float]], int8Layers: [String: Int8Layer] = [:]) throws -> Model {
        var weights = tensors
        for (key, values) in replaced { weights[key]?.values = values }
        return try Self.makeModel(schema, weights, foldedLayers, int8Layers)
    }

    static func image(_ values: [Float], height: Int, width: Int) throws -> Image {
        try Image(channels: 3, height: height, width: width, values: values)
    }
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

/// The cosine between the two maps' vectors at each position (1 where both are zero, 0 where
/// one is): the per-keypoint cosine of `aislfd-verify`, at every position.
func positionCosines(_ a: FeatureMap, _ b: FeatureMap) -> [Double] {
    let plane = b.planeSize
    guard a.values.count == b.values.count else { return [0] }
    return (0..<plane).map { p in
        var dot = 0.0, aa = 0.0, bb = 0.0
        for c in 0..<b.channels {
            let x = Double(a.values[c * plane + p]), y = Double(b.values[c * plane + p])
            dot += x * y; aa += x * x; bb += y * y
        }
        if aa == 0 && bb == 0 { return 1 }
        return aa == 0 || bb == 0 ? 0 : dot / (aa.squareRoot() * bb.squareRoot())
    }
}

/// The `quantile` (0 ... 1) of `values`, by rank (0: the least).
func lowQuantile(_ values: [Double], _ quantile: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 1 }
    return sorted[min(sorted.count - 1, Int(quantile * Double(sorted.count)))]
}
