/// LISRD's four heads: conv_2(bn_1(relu(conv_1(features)))) per variant,
/// layers named illumination first (`conv_illum_B_rot_A_1`). The four
/// conv_1 share their input, so they run as one 256 -> 1024 convolution.
final class LISRDHeads: HeadsModule {
    static let hiddenChannels = 256

    private let firstConvs: Convolution
    private let secondConvs: [Convolution]
    /// Per variant: the `bn_..._1` activation name, nil when that BN was folded forward into conv_2.
    private let activationNames: [String?]

    init(_ loader: WeightLoader, kernels: Kernels, inChannels: Int) throws {
        let hidden = LISRDHeads.hiddenChannels
        let first = ConvGeometry(inChannels: inChannels, outChannels: hidden, kernel: 3, padding: 1)
        let second = ConvGeometry(inChannels: hidden, outChannels: descriptorChannels, kernel: 1)
        var weight: [Float] = [], bias: [Float] = [], postScale: [Float] = [], postShift: [Float] = []
        var seconds: [Convolution] = [], names: [String?] = [], forms: [LayerForm] = []
        for v in Variant.allCases {
            let base = "illum_\(v.illumination)_rot_\(v.rotation)"
            let conv1 = try loader.convolution("conv_\(base)_1", first, biasRequired: true)
            let bn = try loader.batchNorm("bn_\(base)_1", channels: hidden)
            let conv2 = try loader.convolution("conv_\(base)_2", second, biasRequired: true)
            weight += conv1.weight
            forms.append(try loader.layer("conv_\(base)_1", first))
            bias += conv1.bias ?? []
            postScale += bn?.scale ?? [Float](repeating: 1, count: hidden)
            postShift += bn?.shift ?? [Float](repeating: 0, count: hidden)
            names.append(bn == nil ? nil : "bn_\(base)_1")
            seconds.append(kernels.makeConvolution(second, weight: conv2.weight, epilogue: Epilogue(bias: conv2.bias),
                                                   form: try loader.layer("conv_\(base)_2", second)))
        }
        var combined = first
        combined.outChannels = hidden * Variant.allCases.count
        firstConvs = kernels.makeConvolution(combined, weight: weight, epilogue: Epilogue(
            bias: bias, relu: true, post: ChannelAffine(scale: postScale, shift: postShift)), form: LayerForm.stacked(forms))
        secondConvs = seconds
        activationNames = names
    }

    func forward(_ features: FeatureMap, _ recorder: ActivationRecorder) -> [FeatureMap] {
        let hidden = firstConvs.apply(features)
        let width = LISRDHeads.hiddenChannels
        return Variant.allCases.map { v in
            let channels = (v.index * width)..<((v.index + 1) * width)
            if let name = activationNames[v.index] { recorder.record(name, hidden.channelSlice(channels)) }
            return secondConvs[v.index].apply(hidden, channels: channels)
        }
    }
}
