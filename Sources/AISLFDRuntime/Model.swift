/// The outputs of one forward pass.
public struct ModelOutputs: Sendable {
    public let architecture: Architecture
    public let imageHeight: Int
    public let imageWidth: Int
    /// Raw local-descriptor maps, 128 x h x w, in variant order.
    public let desc: PerVariant<FeatureMap>
    /// Meta maps: NetVLAD 1024 x 3 x 3, PSA 128 x h x w.
    public let meta: PerVariant<FeatureMap>
    /// Intermediate activations in the order they were produced (empty
    /// unless asked for).
    public let activations: [Activation]
}

extension ModelOutputs {
    /// The outputs under interfaces.md's names and shapes: `desc.<v>`
    /// [1, 128, h, w], `meta.<v>` [1, D, mh, mw] in variant order, then the
    /// activations as `act.<layer>`.
    public var namedArrays: [NamedArray] {
        var out: [NamedArray] = []
        for v in Variant.allCases { out.append(NamedArray(name: "desc.\(v.rawValue)", shape: [1] + desc[v].shape, values: desc[v].values)) }
        for v in Variant.allCases { out.append(NamedArray(name: "meta.\(v.rawValue)", shape: [1] + meta[v].shape, values: meta[v].values)) }
        for a in activations { out.append(NamedArray(name: "act.\(a.name)", shape: a.shape, values: a.values)) }
        return out
    }
}

/// A network ready to run: weights checked and prepared once, at init.
public final class Model {
    /// NetVLAD needs a 3x3 grid of at least one cell each at 1/8 scale.
    public static let minimumImageSide = 24
    /// Larger images are refused rather than allocated (the first VGG
    /// layers alone need 2 x 64 floats per pixel).
    public static let defaultMaximumPixels = 4096 * 4096

    public let architecture: Architecture
    public let maximumPixels: Int
    /// Tensors of the weights that no layer used (e.g. `num_batches_tracked`
    /// is counted as used; a stray tensor from another model is not).
    public let unusedTensors: [String]

    private let backbone: BackboneModule
    private let heads: HeadsModule
    private let metaModule: MetaModule

    public convenience init(weights: ModelWeights) throws {
        try self.init(weights: weights, maximumPixels: Model.defaultMaximumPixels)
    }

    public convenience init(weights: ModelWeights, maximumPixels: Int) throws {
        try self.init(weights: weights, maximumPixels: maximumPixels, kernels: CPUKernels())
    }

    init(weights: ModelWeights, maximumPixels: Int, kernels: Kernels) throws {
        guard let arch = Architecture(rawValue: weights.arch) else { throw RuntimeError.unknownArchitecture(weights.arch) }
        architecture = arch
        self.maximumPixels = maximumPixels
        let loader = WeightLoader(weights)
        switch arch.backbone {
        case .vgg:
            backbone = try VGGBackbone(loader, kernels: kernels)
            heads = try LISRDHeads(loader, kernels: kernels, inChannels: VGGBackbone.outputChannels)
        case .msfe:
            backbone = try MSFEBackbone(loader, kernels: kernels)
            heads = try MSFEHeads(loader, kernels: kernels, inChannels: MSFEBackbone.outputChannels)
        }
        switch arch.meta {
        case .netVLAD: metaModule = try NetVLADMeta(loader, kernels: kernels)
        case .psa: metaModule = try PSAMeta(loader, kernels: kernels)
        }
        unusedTensors = loader.unusedTensors
    }

    /// Size (h, w) of the descriptor maps for an input of `height x width`.
    public func descriptorSize(height: Int, width: Int) -> (height: Int, width: Int) {
        architecture.backbone == .vgg ? VGGBackbone.outputSize(height: height, width: width)
                                      : MSFEBackbone.outputSize(height: height, width: width)
    }

    public func forward(image: Image, recordActivations: Bool = false) throws -> ModelOutputs {
        guard image.channels == 3 else { throw RuntimeError.imageNotRGB(channels: image.channels) }
        guard image.height >= Model.minimumImageSide, image.width >= Model.minimumImageSide else {
            throw RuntimeError.imageTooSmall(height: image.height, width: image.width, minimum: Model.minimumImageSide)
        }
        guard image.height <= maximumPixels / image.width else {
            throw RuntimeError.imageTooLarge(height: image.height, width: image.width, maximumPixels: maximumPixels)
        }
        guard image.values.count == 3 * image.height * image.width else {
            throw RuntimeError.valueCountMismatch(name: "image", shape: image.shape, count: image.values.count)
        }
        let recorder = ActivationRecorder(enabled: recordActivations)
        let features = backbone.forward(image, recorder)
        let desc = heads.forward(features, recorder)
        let meta = Variant.allCases.map { metaModule.forward(desc[$0.index], variant: $0, recorder) }
        return ModelOutputs(architecture: architecture, imageHeight: image.height, imageWidth: image.width,
                            desc: PerVariant(desc), meta: PerVariant(meta), activations: recorder.activations)
    }
}
