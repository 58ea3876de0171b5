import AISLFDCore

/// What a tensor is for. The converter folds and quantizes by role, never by
/// reading meaning into a tensor's name.
public enum TensorRole: String, CaseIterable, Codable, Sendable {
    case convWeight = "conv_weight"
    case convBias = "conv_bias"
    case bnWeight = "bn_weight"
    case bnBias = "bn_bias"
    case bnRunningMean = "bn_running_mean"
    case bnRunningVar = "bn_running_var"
    case bnNumBatchesTracked = "bn_num_batches_tracked"
    case linearWeight = "linear_weight"
    case linearBias = "linear_bias"
    case vladCentroids = "vlad_centroids"

    /// BatchNorm's step counter only matters for training.
    public var isNeededForInference: Bool { self != .bnNumBatchesTracked }
}

/// The element type a schema asks for, as a class rather than one dtype:
/// a float tensor may arrive as float16/bfloat16/float32/float64 and always
/// becomes float32.
public enum DTypeClass: String, Codable, Sendable {
    case float
    case integer

    public func accepts(_ dtype: DType) -> Bool {
        switch self {
        case .float: return dtype.isFloatingPoint
        case .integer: return dtype.isInteger
        }
    }
}

public enum LayerOp: String, Codable, Sendable {
    case conv2d
    case batchnorm2d
    case linear
    /// NetVLAD aggregation: holds the centroids; its soft assignment is a separate conv2d layer.
    case netvlad
}

/// Something applied to a layer's output on its way to the next layer.
public enum Step: String, Codable, Sendable {
    case relu
    /// 2x2 average pool, stride 2, floor mode.
    case avgPool2x2 = "avg_pool_2x2"
    /// Bilinear resize (align_corners=False) to the size the consuming layer works at.
    case resizeBilinear = "resize_bilinear"
    /// Per-position L2 normalisation over the channels.
    case l2Normalize = "l2_normalize"
    /// Softmax over the channels (NetVLAD's soft assignment).
    case softmax
}

/// Where a layer's input comes from: `layer` (nil for the input image) and
/// what happens in between. A BatchNorm folds exactly into a neighbour only
/// when nothing sits between them, and forward into a conv only when that
/// conv has no zero padding.
public struct LayerInput: Equatable, Sendable {
    public let layer: String?
    public let between: [Step]

    public init(layer: String?, between: [Step] = []) {
        self.layer = layer
        self.between = between
    }

    public var isImage: Bool { layer == nil }
    public var reluBetween: Bool { between.contains(.relu) }
    public var poolBetween: Bool { between.contains(.avgPool2x2) }
    /// Nothing at all between: the producer's output is this layer's input as is.
    public var isDirect: Bool { between.isEmpty }
}

public struct TensorSpec: Equatable, Sendable {
    /// The full state_dict key.
    public let key: String
    /// The key's last component (`weight`, `running_var`, `centroids`, ...).
    public let name: String
    public let shape: [Int]
    public let dtypeClass: DTypeClass
    public let role: TensorRole
    /// The layer that owns it: the key without its last component.
    public let layer: String
    /// A file may lack it and still be valid (BatchNorm's num_batches_tracked).
    public let optional: Bool

    public var elementCount: Int { shape.reduce(1, *) }
}

public struct LayerSpec: Equatable, Sendable {
    /// The state_dict prefix of the layer's tensors, e.g. `_backbone._conv1_1`.
    public let name: String
    public let op: LayerOp
    /// The architecture part it belongs to (`backbone`, `heads`, `meta`) and,
    /// for per-variant parts, the variant.
    public let part: String
    public let variant: String?
    /// Channels in and out; for batchnorm2d both are its channel count, for
    /// linear the feature counts, for netvlad the descriptor size in and the
    /// cluster count out.
    public let inChannels: Int
    public let outChannels: Int
    /// conv2d only.
    public let kernel: Int?
    public let stride: Int?
    public let padding: Int?
    /// Whether the layer has a bias tensor (always for batchnorm2d, never for netvlad).
    public let bias: Bool
    /// batchnorm2d only.
    public let eps: Double?
    /// netvlad only: the meta map is grid x grid tiles.
    public let grid: Int?
    /// Several inputs of a conv2d are summed (MSFE's fusion); a netvlad layer
    /// takes the features first, then its soft-assignment logits.
    public let inputs: [LayerInput]
    /// Keys of this layer's tensors, in schema order.
    public let tensorKeys: [String]

    /// The input when there is exactly one.
    public var input: LayerInput? { inputs.count == 1 ? inputs[0] : nil }
}

/// One use of a block in an architecture.
public struct PartSpec: Equatable, Sendable {
    public let name: String
    public let block: String
    public let prefix: String
    public let perVariant: Bool
    /// The part feeding this one; nil for the input image.
    public let input: String?
    /// What the part hands on, per variant (the same for every variant when
    /// the part is shared). Meta parts hand nothing on.
    public let outputs: [String: LayerInput]

    public func output(variant: String) -> LayerInput? { outputs[variant] }
}

/// One architecture, composed from its blocks. Layers and tensors are in a
/// fixed order: parts in the architecture's order, variants in the
/// architecture's order, layers and tensors in block order.
public struct ArchitectureSchema: Equatable, Sendable {
    public let id: String
    public let version: Int
    public let description: String
    public let variants: [String]
    public let parts: [PartSpec]
    public let layers: [LayerSpec]
    public let tensors: [TensorSpec]
    /// The composed schema as canonical JSON (sorted keys, no whitespace,
    /// descriptions left out); `sha256` is its digest, so equal hashes mean
    /// the same keys, shapes, roles and wiring.
    public let canonicalText: String
    public let sha256: String

    private let tensorIndex: [String: Int]
    private let layerIndex: [String: Int]

    init(id: String, version: Int, description: String, variants: [String], parts: [PartSpec],
         layers: [LayerSpec], tensors: [TensorSpec], canonicalText: String) {
        self.id = id
        self.version = version
        self.description = description
        self.variants = variants
        self.parts = parts
        self.layers = layers
        self.tensors = tensors
        self.canonicalText = canonicalText
        self.sha256 = SHA256.hex(Array(canonicalText.utf8))
        self.tensorIndex = Dictionary(tensors.enumerated().map { ($0.element.key, $0.offset) }, uniquingKeysWith: { a, _ in a })
        self.layerIndex = Dictionary(layers.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    public var keys: [String] { tensors.map(\.key) }
    public var requiredKeys: [String] { tensors.filter { !$0.optional }.map(\.key) }
    /// Values in all tensors, the spec's "values (all entries)".
    public var valueCount: Int { tensors.reduce(0) { $0 + $1.elementCount } }
    /// The distinct eps values of the BatchNorm layers.
    public var batchNormEpsilons: Set<Double> { Set(layers.compactMap(\.eps)) }

    public func tensor(_ key: String) -> TensorSpec? { tensorIndex[key].map { tensors[$0] } }
    public func layer(_ name: String) -> LayerSpec? { layerIndex[name].map { layers[$0] } }
    public func part(_ name: String) -> PartSpec? { parts.first { $0.name == name } }
    public func tensors(of layer: String) -> [TensorSpec] {
        self.layer(layer)?.tensorKeys.compactMap { tensor($0) } ?? []
    }

    /// The layers that read `layer`'s output, in schema order.
    public func consumers(of layer: String) -> [LayerSpec] {
        layers.filter { $0.inputs.contains { $0.layer == layer } }
    }
}
