/// AISLFD's multi-scale feature extractor: conv -> BN -> ReLU blocks down to
/// 1/16, laterals from 1/4, 1/8 and 1/16 fused at 1/8 by bilinear resizing,
/// and a smoothing block.
final class MSFEBackbone: BackboneModule {
    static let blocks: [(name: String, inChannels: Int, outChannels: Int, stride: Int)] = [
        ("stem", 3, 64, 2), ("layer1", 64, 64, 1),
        ("layer2.0", 64, 128, 2), ("layer2.1", 128, 128, 1),
        ("layer3.0", 128, 256, 2), ("layer3.1", 256, 256, 1),
        ("layer4.0", 256, 256, 2), ("layer4.1", 256, 256, 1),
    ]
    static let fusedChannels = 256
    static let outputChannels = 256

    private let blocks: [(name: String, conv: Convolution)]
    private let lateral2, lateral3, lateral4, smooth: Convolution
    private let kernels: Kernels

    init(_ loader: WeightLoader, kernels: Kernels) throws {
        self.kernels = kernels
        func block(_ name: String, _ inChannels: Int, _ outChannels: Int, stride: Int) throws -> Convolution {
            let geometry = ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernel: 3, stride: stride, padding: 1)
            let conv = try loader.convolution("msfe.\(name).conv", geometry, biasRequired: false)
            let bn = try loader.batchNorm("msfe.\(name).bn", channels: outChannels)
            let prepared = convBatchNormReLU(conv, bn, channels: outChannels)
            return kernels.makeConvolution(geometry, weight: prepared.weight, epilogue: prepared.epilogue,
                                           form: try loader.layer("msfe.\(name).conv", geometry))
        }
        func lateral(_ name: String, _ inChannels: Int) throws -> Convolution {
            let geometry = ConvGeometry(inChannels: inChannels, outChannels: MSFEBackbone.fusedChannels, kernel: 1)
            let conv = try loader.convolution("msfe.\(name)", geometry, biasRequired: true)
            return kernels.makeConvolution(geometry, weight: conv.weight, epilogue: Epilogue(bias: conv.bias),
                                           form: try loader.layer("msfe.\(name)", geometry))
        }
        blocks = try MSFEBackbone.blocks.map { ($0.name, try block($0.name, $0.inChannels, $0.outChannels, stride: $0.stride)) }
        lateral2 = try lateral("lateral2", 128)
        lateral3 = try lateral("lateral3", 256)
        lateral4 = try lateral("lateral4", 256)
        smooth = try block("smooth", MSFEBackbone.fusedChannels, MSFEBackbone.outputChannels, stride: 1)
    }

    func forward(_ image: FeatureMap, _ recorder: ActivationRecorder) -> FeatureMap {
        var x = image
        var c2 = x, c3 = x
        // Runs of blocks that only the next one reads (`chain`): C2 and C3 also feed the laterals,
        // and a recorded block is seen too.
        var start = 0
        for (i, block) in blocks.enumerated() {
            let isC2 = block.name == "layer2.1", isC3 = block.name == "layer3.1"
            guard isC2 || isC3 || recorder.enabled || i == blocks.count - 1 else { continue }
            x = chain(blocks[start...i].map(\.conv), x)
            start = i + 1
            recorder.record("msfe.\(block.name).bn", x)
            if isC2 { c2 = x }
            if isC3 { c3 = x }
        }
        let l2 = lateral2.apply(c2), l3 = lateral3.apply(c3), l4 = lateral4.apply(x)
        recorder.record("msfe.lateral2", l2)
        recorder.record("msfe.lateral3", l3)
        recorder.record("msfe.lateral4", l4)
        // P = lateral3(C3) + resize(lateral4(C4)) + resize(lateral2(C2)), summed in that order.
        var p = l3
        kernels.add(&p, kernels.resizeBilinear(l4, height: l3.height, width: l3.width))
        kernels.add(&p, kernels.resizeBilinear(l2, height: l3.height, width: l3.width))
        let features = smooth.apply(p)
        recorder.record("msfe.smooth.bn", features)
        return features
    }

    /// A stride-2 convolution maps n to ceil(n/2); features are at 1/8.
    static func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        func eighth(_ n: Int) -> Int { var n = n; for _ in 0..<3 { n = (n + 1) / 2 }; return n }
        return (eighth(height), eighth(width))
    }
}
