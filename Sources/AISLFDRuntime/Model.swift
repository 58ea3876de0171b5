import AISLFDCore
import Foundation

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
    /// Sampling at keypoints runs with the model's settings.
    let kernels: CPUKernels
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
///
/// ```swift
/// import AISLFDRuntime
///
/// let model = try Model(contentsOf: URL(fileURLWithPath: "lisrd.aisw"))
/// let image0 = try Image(rgb: pixels0, height: 480, width: 640)   // 8-bit RGB, row-major
/// let image1 = try Image(rgb: pixels1, height: 480, width: 640)
/// let d0 = try model.forward(image: image0).describe(keypoints0)   // [Keypoint] in pixels
/// let d1 = try model.forward(image: image1).describe(keypoints1)
/// let matches = try Matching.mutualNearestNeighbours(d0, d1)         // Eq. 1
/// ```
///
/// A model is immutable once built and safe to share between threads: concurrent
/// `forward` calls each get their own buffers (a layer reuses its previous output's
/// memory only when no other pass holds it). Each pass uses `configuration.threads`
/// threads of its own.
public final class Model: @unchecked Sendable {
    /// NetVLAD needs a 3x3 grid of at least one cell each at 1/8 scale.
    public static let minimumImageSide = 24

    public let architecture: Architecture
    /// How the weights were stored (fp16 and int8 are widened to fp32 at load).
    public let precision: Precision
    public let configuration: RuntimeConfiguration
    /// Tensors of the weights that no layer used (e.g. `num_batches_tracked`
    /// is counted as used; a stray tensor from another model is not).
    public let unusedTensors: [String]

    private let kernels: CPUKernels
    private let backbone: BackboneModule
    private let heads: HeadsModule
    private let metaModule: MetaModule

    /// Loads a converted `.aisw` file (any precision), verifying every checksum.
    public convenience init(contentsOf url: URL, configuration: RuntimeConfiguration = RuntimeConfiguration()) throws {
        let weights = try ModelWeights(contentsOf: url)
        do { try self.init(weights: weights, configuration: configuration) } catch let e as FileError { throw e } catch {
            throw FileError(path: url.path, problem: error, status: .invalid)
        }
    }

    public convenience init(weights: ModelWeights, configuration: RuntimeConfiguration = RuntimeConfiguration()) throws {
        var kernels = CPUKernels(configuration)
        kernels.winogradTile = CPUKernels.winogradTile(for: weights.architecture)
        try self.init(weights: weights, configuration: configuration, kernels: kernels)
    }

    init(weights: ModelWeights, configuration: RuntimeConfiguration, kernels: CPUKernels) throws {
        architecture = weights.architecture
        precision = weights.precision
        self.configuration = configuration
        self.kernels = kernels
        let loader = WeightLoader(weights)
        switch architecture.backbone {
        case .vgg:
            backbone = try VGGBackbone(loader, kernels: kernels)
            heads = try LISRDHeads(loader, kernels: kernels, inChannels: VGGBackbone.outputChannels)
        case .msfe:
            backbone = try MSFEBackbone(loader, kernels: kernels)
            heads = try MSFEHeads(loader, kernels: kernels, inChannels: MSFEBackbone.outputChannels)
        }
        switch architecture.meta {
        case .netVLAD: metaModule = try NetVLADMeta(loader, kernels: kernels)
        case .psa: metaModule = try PSAMeta(loader, kernels: kernels)
        }
        unusedTensors = loader.unusedTensors
        if let name = loader.unusedInt8Layers.first {
            throw RuntimeError.invalidMetadata("\(name) is to compute in int8, but it is not the weight of a convolution of \(architecture.rawValue)")
        }
    }

    /// Bytes a forward pass over a `height x width` image needs at most (see `MemoryBudget`).
    public func memoryNeeded(height: Int, width: Int, recordActivations: Bool = false) -> Int {
        MemoryBudget.passBytes(architecture, height: height, width: width, threads: configuration.threads,
                               recordActivations: recordActivations)
    }

    /// Throws `RuntimeError.memoryBudgetExceeded` when a pass over an image this
    /// size would need more than `configuration.maximumMemory`: callers that
    /// know an image's size before decoding it can refuse it before any work.
    public func checkMemory(height: Int, width: Int, recordActivations: Bool = false) throws {
        let needed = memoryNeeded(height: height, width: width, recordActivations: recordActivations)
        guard needed <= configuration.maximumMemory else {
            throw RuntimeError.memoryBudgetExceeded(height: height, width: width, needed: needed, allowed: configuration.maximumMemory)
        }
    }

    /// The descriptor and meta maps of `image`; with `recordActivations`, every
    /// intermediate layer's output too (for layer-by-layer comparison).
    public func forward(image: Image, recordActivations: Bool = false) throws -> ModelOutputs {
        try forwardPass(image: image, recordActivations: recordActivations)
    }

    /// The outputs and the input of every convolution, in the order they ran, by the weight
    /// keys of the layers that read it (what calibration measures: the runtime's own maps).
    public func forward(image: Image, recordLayerInputs: Bool) throws -> (outputs: ModelOutputs, layerInputs: [LayerInput]) {
        let recorder = LayerInputRecorder()
        let outputs = try LayerInputRecorder.$current.withValue(recordLayerInputs ? recorder : nil) { try forwardPass(image: image, recordActivations: false) }
        return (outputs, recorder.inputs)
    }

    private func forwardPass(image: Image, recordActivations: Bool) throws -> ModelOutputs {
        guard image.channels == 3 else { throw RuntimeError.imageNotRGB(channels: image.channels) }
        guard image.height >= Model.minimumImageSide, image.width >= Model.minimumImageSide else {
            throw RuntimeError.imageTooSmall(height: image.height, width: image.width, minimum: Model.minimumImageSide)
        }
        guard image.height <= configuration.maximumPixels / image.width else {
            throw RuntimeError.imageTooLarge(height: image.height, width: image.width, maximumPixels: configuration.maximumPixels)
        }
        try checkMemory(height: image.height, width: image.width, recordActivations: recordActivations)
        let recorder = ActivationRecorder(enabled: recordActivations)
        let features = backbone.forward(image, recorder)
        let desc = heads.forward(features, recorder)
        let meta = Variant.allCases.map { metaModule.forward(desc[$0.index], variant: $0, recorder) }
        return ModelOutputs(architecture: architecture, imageHeight: image.height, imageWidth: image.width,
                            desc: PerVariant(desc), meta: PerVariant(meta), activations: recorder.activations, kernels: kernels)
    }
}
