/// A named float32 array, C-order, as written to and read from NPZ files.
public struct NamedArray: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// An intermediate result kept for per-layer comparison. `name` is the
/// state_dict prefix of the layer that produced it (reference files store
/// it as `act.<name>`); `shape` has the leading batch dimension 1.
public typealias Activation = NamedArray

/// Collects activations when asked to, and costs nothing otherwise.
final class ActivationRecorder {
    let enabled: Bool
    private(set) var activations: [Activation] = []

    init(enabled: Bool) { self.enabled = enabled }

    func record(_ name: String, _ map: @autoclosure () -> FeatureMap) {
        guard enabled else { return }
        let m = map()
        activations.append(Activation(name: name, shape: [1] + m.shape, values: m.values))
    }

    func record(_ name: String, shape: [Int], values: @autoclosure () -> [Float]) {
        guard enabled else { return }
        activations.append(Activation(name: name, shape: shape, values: values()))
    }
}

/// Image -> features.
protocol BackboneModule: AnyObject {
    func forward(_ image: FeatureMap, _ recorder: ActivationRecorder) -> FeatureMap
}

/// Features -> the four raw descriptor maps, in variant order.
protocol HeadsModule: AnyObject {
    func forward(_ features: FeatureMap, _ recorder: ActivationRecorder) -> [FeatureMap]
}

/// One raw descriptor map -> its meta map.
protocol MetaModule: AnyObject {
    func forward(_ raw: FeatureMap, variant: Variant, _ recorder: ActivationRecorder) -> FeatureMap
}

/// conv -> BN -> ReLU with the BN either applied on the accumulator, or
/// already folded into the convolution's weight and bias.
func convBatchNormReLU(_ conv: (weight: [Float], bias: [Float]?), _ bn: ChannelAffine?, channels: Int) -> (weight: [Float], epilogue: Epilogue) {
    guard let bn else { return (conv.weight, Epilogue(bias: conv.bias, relu: true)) }
    var shift = bn.shift
    if let bias = conv.bias {
        for c in 0..<channels { shift[c] = bias[c] * bn.scale[c] + bn.shift[c] }
    }
    return (conv.weight, Epilogue(scale: bn.scale, bias: shift, relu: true))
}
