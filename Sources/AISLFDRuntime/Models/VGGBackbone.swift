/// LISRD's VGG backbone: eight 3x3 convolutions, each conv -> ReLU -> BN,
/// with 2x2 average pooling after blocks 1, 2 and 3.
final class VGGBackbone: BackboneModule {
    static let layers: [(name: String, inChannels: Int, outChannels: Int, poolAfter: Bool)] = [
        ("1_1", 3, 64, false), ("1_2", 64, 64, true),
        ("2_1", 64, 64, false), ("2_2", 64, 64, true),
        ("3_1", 64, 128, false), ("3_2", 128, 128, true),
        ("4_1", 128, 256, false), ("4_2", 256, 256, false),
    ]
    static let outputChannels = 256

    private struct Layer {
        let conv: Convolution
        /// Nil when the BN was folded forward and its output never exists.
        let activationName: String?
        let poolAfter: Bool
    }

    private let layers: [Layer]
    private let kernels: Kernels

    init(_ loader: WeightLoader, kernels: Kernels) throws {
        self.kernels = kernels
        layers = try VGGBackbone.layers.map { spec in
            let geometry = ConvGeometry(inChannels: spec.inChannels, outChannels: spec.outChannels, kernel: 3, padding: 1)
            let conv = try loader.convolution("_backbone._conv\(spec.name)", geometry, biasRequired: true)
            let bnName = "_backbone._bn\(spec.name)"
            let bn = try loader.batchNorm(bnName, channels: spec.outChannels)
            let epilogue = Epilogue(bias: conv.bias, relu: true, post: bn)
            return Layer(conv: kernels.makeConvolution(geometry, weight: conv.weight, epilogue: epilogue,
                                                       form: try loader.layer("_backbone._conv\(spec.name)", geometry)),
                         activationName: bn == nil ? nil : bnName, poolAfter: spec.poolAfter)
        }
    }

    func forward(_ image: FeatureMap, _ recorder: ActivationRecorder) -> FeatureMap {
        var x = image
        var layers = self.layers[...]
        // The first block (two convolutions, then pooling) band by band: its
        // full-resolution maps exist only when they are recorded (activations, or
        // each convolution's whole input for calibration).
        if !recorder.enabled, LayerInputRecorder.current == nil, layers.count >= 2, !layers[0].poolAfter, layers[1].poolAfter {
            x = BandedConvolutions.thenPool2x2(x, layers[0].conv, layers[1].conv, workers: layers[0].conv.workers)
            layers = layers.dropFirst(2)
        }
        while !layers.isEmpty {
            // A run of layers that only the next one reads (`chain` hands int8 outputs on as bytes):
            // it ends at pooling or at a recorded activation.
            var run: [Layer] = []
            while let layer = layers.first {
                layers = layers.dropFirst()
                run.append(layer)
                if layer.poolAfter || (recorder.enabled && layer.activationName != nil) { break }
            }
            // The pre-pool activation exists only when it is recorded.
            let last = run.last!, recorded = recorder.enabled && last.activationName != nil
            x = chain(run.map(\.conv), x, pooled: last.poolAfter && !recorded)
            if recorded, let name = last.activationName { recorder.record(name, x) }
            if last.poolAfter && recorded { x = kernels.averagePool2x2(x) }
        }
        return x
    }

    /// floor(floor(floor(n/2)/2)/2).
    static func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        (height / 2 / 2 / 2, width / 2 / 2 / 2)
    }
}
