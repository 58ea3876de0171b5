/// The one interface between the models and the numeric code. The models
/// call only this; a faster implementation conforms to it and is passed to
/// `Model` instead of `CPUKernels`, without touching any model file.
protocol Kernels {
    /// Prepares a convolution once, at load (packing weights is the
    /// implementation's business). `weight` is PyTorch's `[out, in, k, k]`.
    func makeConvolution(_ geometry: ConvGeometry, weight: [Float], epilogue: Epilogue) -> Convolution
    /// The same convolution computed in int8 (`Int8Convolution`): u8 inputs, s8 weights, int32 sums.
    func makeInt8Convolution(_ geometry: ConvGeometry, layer: Int8Layer, epilogue: Epilogue) -> Convolution

    /// 2x2 average pooling, stride 2, floor mode.
    func averagePool2x2(_ x: FeatureMap) -> FeatureMap
    /// `F.interpolate(mode='bilinear', align_corners=False)` to `height x width`.
    func resizeBilinear(_ x: FeatureMap, height: Int, width: Int) -> FeatureMap
    /// `a += b`, elementwise; both maps have the same shape.
    func add(_ a: inout FeatureMap, _ b: FeatureMap)
    /// `F.normalize(dim=channels)`: each position's vector divided by max(norm, 1e-12).
    func normalizePositions(_ x: inout FeatureMap)
    /// The NetVLAD meta map (1024 x 3 x 3) of an L2-normalised raw map, given
    /// its soft-assignment logits (clusters x h x w) and `centroids` [clusters, C].
    func netVLAD(normalized x: FeatureMap, logits: FeatureMap, centroids: [Float]) -> FeatureMap
    /// `softmax(Q K^T * scale) V` for Q, K, V stored transposed and stacked in
    /// one 3C x N map (channels 0..<C query, C..<2C key, 2C..<3C value; one
    /// position per column); the result is C x N.
    func attention(_ projections: FeatureMap, scale: Float) -> FeatureMap
    /// `grid_sample(bilinear, zeros, align_corners=False)` of `map` at grid
    /// points (gx, gy) in [-1, 1] coordinates: one C-vector per point, row-major [N, C].
    func gridSample(_ map: FeatureMap, gridX: [Float], gridY: [Float]) -> [Float]
}

struct ConvGeometry: Equatable {
    var inChannels: Int
    var outChannels: Int
    var kernel: Int
    var stride: Int = 1
    var padding: Int = 0

    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernel) / stride + 1, (width + 2 * padding - kernel) / stride + 1)
    }
}

/// What happens to each convolution output value before it is stored, per
/// output channel c, in this order:
/// `v = acc * scale[c] + bias[c]`, then `max(v, 0)` if `relu`, then
/// `v * postScale[c] + postShift[c]`.
/// conv -> BN -> ReLU uses `scale`/`bias` (or a BN folded into the weights);
/// conv -> ReLU -> BN uses `bias`, `relu` and the post affine.
struct Epilogue {
    var scale: [Float]? = nil
    var bias: [Float]? = nil
    var relu: Bool = false
    var post: ChannelAffine? = nil
}

/// A convolution prepared at load time.
protocol Convolution: AnyObject {
    var geometry: ConvGeometry { get }
    var workers: Workers { get }
    func apply(_ x: FeatureMap) -> FeatureMap
    /// The convolution of channels `channels` of `x` (`geometry.inChannels`
    /// of them), read in place.
    func apply(_ x: FeatureMap, channels: Range<Int>) -> FeatureMap
    /// 2x2 average pooling (stride 2, floor) of the convolution's output, the
    /// same values as `averagePool2x2(apply(x))`.
    func applyThenPool2x2(_ x: FeatureMap) -> FeatureMap
    /// How the input is quantized when the convolution computes in int8; nil in fp32.
    var int8Input: ActivationQuantization? { get }
    /// The output as the bytes an int8 layer quantizing its input by `next` would make of it
    /// (for a convolution computing in int8; `Int8Convolution`).
    func applyQuantized(_ x: FeatureMap, for next: ActivationQuantization) -> ByteMap
    /// The same from an input already quantized by `int8Input`.
    func applyQuantized(_ x: ByteMap, for next: ActivationQuantization) -> ByteMap
    /// The convolution of an input already quantized by `int8Input`.
    func apply(_ x: ByteMap) -> FeatureMap
    /// `averagePool2x2(apply(x))` of such an input.
    func applyThenPool2x2(_ x: ByteMap) -> FeatureMap
}

extension Convolution {
    func apply(_ x: FeatureMap, channels: Range<Int>) -> FeatureMap { apply(x.channelSlice(channels)) }
    func applyThenPool2x2(_ x: FeatureMap) -> FeatureMap { AveragePool.pool2x2(apply(x), workers: workers) }
    var int8Input: ActivationQuantization? { nil }
    func applyQuantized(_ x: FeatureMap, for next: ActivationQuantization) -> ByteMap {
        preconditionFailure("only a convolution that computes in int8 writes bytes")
    }
    func applyQuantized(_ x: ByteMap, for next: ActivationQuantization) -> ByteMap {
        preconditionFailure("only a convolution that computes in int8 reads bytes")
    }
    func apply(_ x: ByteMap) -> FeatureMap { preconditionFailure("only a convolution that computes in int8 reads bytes") }
    func applyThenPool2x2(_ x: ByteMap) -> FeatureMap { preconditionFailure("only a convolution that computes in int8 reads bytes") }
}

/// `convs` one after another, each reading only the one before's output, the last one pooled
/// with `pooled` (`applyThenPool2x2`); outputs are handed over as bytes between layers that
/// compute in int8 (the same values: `ByteMap`), unless a pass records the layers' inputs.
func chain(_ convs: [Convolution], _ x: FeatureMap, pooled: Bool = false) -> FeatureMap {
    var floats = x, bytes: ByteMap? = nil
    for (i, conv) in convs.enumerated() {
        let last = i + 1 == convs.count
        let next = !last && conv.int8Input != nil && LayerInputRecorder.current == nil ? convs[i + 1].int8Input : nil
        switch (bytes, next) {
        case (let b?, let q?): bytes = conv.applyQuantized(b, for: q)
        case (let b?, nil): floats = last && pooled ? conv.applyThenPool2x2(b) : conv.apply(b); bytes = nil
        case (nil, let q?): bytes = conv.applyQuantized(floats, for: q)
        case (nil, nil): floats = last && pooled ? conv.applyThenPool2x2(floats) : conv.apply(floats)
        }
    }
    return floats
}
