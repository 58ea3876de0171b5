import AISLFDCore

/// The runtime's numeric operations one at a time, for tests and tools.
/// Each runs exactly the code the models run (`CPUKernels` and the meta
/// modules' own functions) with the configuration's kernels and threads; the
/// arguments are checked because they come from callers, not from a model.
public struct KernelOps: Sendable {
    /// Outputs larger than this many floats are refused.
    public static let maximumElements = 1 << 30

    let kernels: CPUKernels

    public init(_ configuration: RuntimeConfiguration = RuntimeConfiguration()) {
        kernels = CPUKernels(configuration)
    }

    /// Conv2d (PyTorch's cross-correlation, zero padding) followed by the
    /// epilogue the models use: `v = acc * preScale + bias`, optional ReLU,
    /// then `v * postScale + postShift`. `columnBudget` (floats) bounds the
    /// im2col buffer; small values force many bands. `winogradTile` (0, 2 or
    /// 4) chooses a 3x3 stride-1 convolution's algorithm (nil: as the models
    /// do); with `pooled`, the 2x2 average pooling is fused as the models fuse it.
    public func conv2d(_ input: FeatureMap, weight: WeightTensor, bias: [Float]? = nil, stride: Int = 1,
                              padding: Int = 0, preScale: [Float]? = nil, relu: Bool = false,
                              postScale: [Float]? = nil, postShift: [Float]? = nil,
                              columnBudget: Int? = nil, winogradTile: Int? = nil, pooled: Bool = false) throws -> FeatureMap {
        guard weight.shape.count == 4, weight.shape[1] == input.channels, weight.shape[2] == weight.shape[3],
              weight.shape.allSatisfy({ $0 > 0 }), stride > 0, padding >= 0,
              weight.values.count == (try? Checked.elementCount(weight.shape))
        else { throw RuntimeError.wrongShape(tensor: "weight", expected: [-1, input.channels, -1, -1], found: weight.shape) }
        guard input.height + 2 * padding >= weight.shape[2], input.width + 2 * padding >= weight.shape[3] else {
            throw RuntimeError.wrongShape(tensor: "input", expected: [input.channels, weight.shape[2] - 2 * padding, weight.shape[3] - 2 * padding],
                                          found: input.shape)
        }
        let out = weight.shape[0]
        for (name, v) in [("bias", bias), ("preScale", preScale), ("postScale", postScale), ("postShift", postShift)] {
            if let v, v.count != out { throw RuntimeError.wrongShape(tensor: name, expected: [out], found: [v.count]) }
        }
        if (postScale == nil) != (postShift == nil) { throw RuntimeError.missingTensor(postScale == nil ? "postScale" : "postShift") }
        let geometry = ConvGeometry(inChannels: input.channels, outChannels: out, kernel: weight.shape[2], stride: stride, padding: padding)
        let epilogue = Epilogue(scale: preScale, bias: bias, relu: relu,
                                post: postScale.map { ChannelAffine(scale: $0, shift: postShift ?? []) })
        var kernels = kernels
        if let columnBudget { kernels.columnBudget = max(1, columnBudget) }
        if let winogradTile {
            guard [0, 2, 4].contains(winogradTile) else { throw RuntimeError.wrongShape(tensor: "winograd tile", expected: [4], found: [winogradTile]) }
            kernels.winogradTile = winogradTile
            kernels.winogradMinimumInChannels = 1
        }
        let conv = kernels.makeConvolution(geometry, weight: weight.values, epilogue: epilogue)
        return pooled ? conv.applyThenPool2x2(input) : conv.apply(input)
    }

    public func averagePool2x2(_ x: FeatureMap) -> FeatureMap { kernels.averagePool2x2(x) }

    /// `averagePool2x2(second(first(input)))` for two 3x3 convolutions (stride 1,
    /// padding 1, bias and ReLU) run band by band as VGG's first block runs,
    /// `bandFloats` floats of `first`'s output per band; each computes in int8 where its
    /// `int8` layer is given (the weights then only give the shape).
    public func bandedConvolutionsThenPool2x2(_ input: FeatureMap, first: (WeightTensor, [Float]), second: (WeightTensor, [Float]),
                                              int8: (first: Int8Layer?, second: Int8Layer?) = (nil, nil),
                                              bandFloats: Int) throws -> FeatureMap {
        func make(_ w: WeightTensor, _ b: [Float], _ channels: Int, _ name: String, _ layer: Int8Layer?) throws -> Convolution {
            guard w.shape.count == 4, w.shape[1] == channels, w.shape[2] == 3, w.shape[3] == 3, w.shape[0] > 0,
                  w.values.count == w.shape.reduce(1, *), b.count == w.shape[0],
                  layer.map({ $0.weight.count == w.values.count && $0.scales.count == w.shape[0] }) ?? true else {
                throw RuntimeError.wrongShape(tensor: name, expected: [b.count, channels, 3, 3], found: w.shape)
            }
            let geometry = ConvGeometry(inChannels: channels, outChannels: w.shape[0], kernel: 3, padding: 1)
            if let layer { return kernels.makeInt8Convolution(geometry, layer: layer, epilogue: Epilogue(bias: b, relu: true)) }
            return kernels.makeConvolution(geometry, weight: w.values, epilogue: Epilogue(bias: b, relu: true))
        }
        try requireValues(input, "input")
        let a = try make(first.0, first.1, input.channels, "first.weight", int8.first)
        let b = try make(second.0, second.1, first.0.shape[0], "second.weight", int8.second)
        return BandedConvolutions.thenPool2x2(input, a, b, workers: kernels.workers, bandFloats: max(1, bandFloats))
    }

    /// Every op below needs at least one value to work on.
    private func requireValues(_ x: FeatureMap, _ name: String) throws {
        guard !x.values.isEmpty else { throw RuntimeError.wrongShape(tensor: name, expected: [-1, -1, -1], found: x.shape) }
    }

    public func resizeBilinear(_ x: FeatureMap, height: Int, width: Int) throws -> FeatureMap {
        try requireValues(x, "resize input")
        guard height > 0, width > 0, let n = try? Checked.elementCount([x.channels, height, width]), n <= KernelOps.maximumElements else {
            throw RuntimeError.wrongShape(tensor: "resize output", expected: [x.channels, -1, -1], found: [x.channels, height, width])
        }
        return kernels.resizeBilinear(x, height: height, width: width)
    }

    public func normalizePositions(_ x: FeatureMap) throws -> FeatureMap {
        try requireValues(x, "input")
        var y = x
        kernels.normalizePositions(&y)
        return y
    }

    /// The NetVLAD meta map of a raw map (all of architectures.md's steps).
    public func netVLAD(_ raw: FeatureMap, centroids: WeightTensor, assignmentWeight: WeightTensor,
                               assignmentBias: [Float]) throws -> FeatureMap {
        try requireValues(raw, "raw map")
        let k = centroids.shape.first ?? 0, c = raw.channels
        guard centroids.shape == [k, c], k > 0, centroids.values.count == k * c else {
            throw RuntimeError.wrongShape(tensor: "centroids", expected: [k, c], found: centroids.shape)
        }
        guard assignmentWeight.shape == [k, c, 1, 1], assignmentWeight.values.count == k * c else {
            throw RuntimeError.wrongShape(tensor: "conv.weight", expected: [k, c, 1, 1], found: assignmentWeight.shape)
        }
        guard assignmentBias.count == k else { throw RuntimeError.wrongShape(tensor: "conv.bias", expected: [k], found: [assignmentBias.count]) }
        guard raw.height >= NetVLADMeta.grid, raw.width >= NetVLADMeta.grid else {
            throw RuntimeError.wrongShape(tensor: "raw map", expected: [c, NetVLADMeta.grid, NetVLADMeta.grid], found: raw.shape)
        }
        let conv = kernels.makeConvolution(ConvGeometry(inChannels: c, outChannels: k, kernel: 1),
                                           weight: assignmentWeight.values, epilogue: Epilogue(bias: assignmentBias))
        return NetVLADMeta.metaMap(raw, assignment: conv, centroids: centroids.values, kernels: kernels)
    }

    /// The PSA meta map of a raw map. `weights` are query, key, value
    /// Linear weights [C, C] and biases [C]; `blockBudget` (floats of
    /// scores held at once) sets the query block size.
    public func selfAttention(_ raw: FeatureMap, query: (WeightTensor, [Float]), key: (WeightTensor, [Float]),
                                     value: (WeightTensor, [Float]), blockBudget: Int? = nil) throws -> FeatureMap {
        try requireValues(raw, "raw map")
        let c = raw.channels
        var weight: [Float] = [], bias: [Float] = []
        for (name, (w, b)) in [("query", query), ("key", key), ("value", value)] {
            guard w.shape == [c, c], w.values.count == c * c else { throw RuntimeError.wrongShape(tensor: "\(name).weight", expected: [c, c], found: w.shape) }
            guard b.count == c else { throw RuntimeError.wrongShape(tensor: "\(name).bias", expected: [c], found: [b.count]) }
            weight += w.values
            bias += b
        }
        var kernels = kernels
        if let blockBudget { kernels.attentionBudget = max(1, blockBudget) }
        let conv = kernels.makeConvolution(ConvGeometry(inChannels: c, outChannels: 3 * c, kernel: 1),
                                           weight: weight, epilogue: Epilogue(bias: bias))
        return PSAMeta.metaMap(raw, projection: conv, kernels: kernels, record: { _, _, _ in })
    }

    /// `grid_sample` of `map` at keypoints of an `imageHeight x imageWidth`
    /// image, [N, C] row-major; `normalize` applies `F.normalize` per keypoint.
    public func sample(_ map: FeatureMap, at keypoints: [Keypoint], imageHeight: Int, imageWidth: Int,
                              normalize: Bool = false) throws -> [Float] {
        try requireValues(map, "map")
        return try sampleNormalized(map, at: keypoints, imageHeight: imageHeight, imageWidth: imageWidth, normalize: normalize, kernels: kernels)
    }
}
