/// AISLFD's four heads: conv1 (3x3) -> bn1 -> ReLU -> conv2 (1x1) per variant,
/// under `msfe.heads.<variant>.`. The four conv1 share their input, so they
/// run as one 256 -> 1024 convolution.
final class MSFEHeads: HeadsModule {
    static let hiddenChannels = 256

    private let firstConvs: Convolution
    private let secondConvs: [Convolution]

    init(_ loader: WeightLoader, kernels: Kernels, inChannels: Int) throws {
        let hidden = MSFEHeads.hiddenChannels
        let first = ConvGeometry(inChannels: inChannels, outChannels: hidden, kernel: 3, padding: 1)
        let second = ConvGeometry(inChannels: hidden, outChannels: descriptorChannels, kernel: 1)
        var weight: [Float] = [], scale: [Float] = [], bias: [Float] = []
        var seconds: [Convolution] = [], forms: [LayerForm] = []
        for v in Variant.allCases {
            let prefix = "msfe.heads.\(v.rawValue)"
            let conv1 = try loader.convolution("\(prefix).conv1", first, biasRequired: false)
            let bn = try loader.batchNorm("\(prefix).bn1", channels: hidden)
            let conv2 = try loader.convolution("\(prefix).conv2", second, biasRequired: true)
            let prepared = convBatchNormReLU(conv1, bn, channels: hidden)
            weight += prepared.weight
            forms.append(try loader.layer("\(prefix).conv1", first))
            scale += prepared.epilogue.scale ?? [Float](repeating: 1, count: hidden)
            bias += prepared.epilogue.bias ?? [Float](repeating: 0, count: hidden)
            seconds.append(kernels.makeConvolution(second, weight: conv2.weight, epilogue: Epilogue(bias: conv2.bias),
                                                   form: try loader.layer("\(prefix).conv2", second)))
        }
        var combined = first
        combined.outChannels = hidden * Variant.allCases.count
        firstConvs = kernels.makeConvolution(combined, weight: weight, epilogue: Epilogue(scale: scale, bias: bias, relu: true),
                                             form: LayerForm.stacked(forms))
        secondConvs = seconds
    }

    func forward(_ features: FeatureMap, _ recorder: ActivationRecorder) -> [FeatureMap] {
        let hidden = firstConvs.apply(features)
        let width = MSFEHeads.hiddenChannels
        return Variant.allCases.map { v in
            let channels = (v.index * width)..<((v.index + 1) * width)
            recorder.record("msfe.heads.\(v.rawValue).bn1", hidden.channelSlice(channels))
            return secondConvs[v.index].apply(hidden, channels: channels)
        }
    }
}
