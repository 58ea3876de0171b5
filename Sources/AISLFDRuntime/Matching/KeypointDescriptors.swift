import AISLFDCore

/// A keypoint in input-image pixel coordinates.
public struct Keypoint: Sendable, Equatable {
    public var x: Float
    public var y: Float

    public init(x: Float, y: Float) {
        self.x = x
        self.y = y
    }
}

/// Descriptors sampled at keypoints, each vector L2-normalised.
public struct KeypointDescriptors: Sendable {
    public static let variants = Variant.allCases.count

    public let count: Int
    public let metaDimension: Int
    /// [count, 4, 128], variants in order.
    public let local: [Float]
    /// [count, 4, metaDimension].
    public let meta: [Float]

    public init(count: Int, metaDimension: Int, local: [Float], meta: [Float]) throws {
        let v = KeypointDescriptors.variants
        guard count >= 0, metaDimension > 0,
              let localCount = try? Checked.elementCount([count, v, descriptorChannels]), localCount == local.count
        else { throw RuntimeError.valueCountMismatch(name: "kp_desc", shape: [count, v, descriptorChannels], count: local.count) }
        guard let metaCount = try? Checked.elementCount([count, v, metaDimension]), metaCount == meta.count else {
            throw RuntimeError.valueCountMismatch(name: "kp_meta", shape: [count, v, metaDimension], count: meta.count)
        }
        self.count = count
        self.metaDimension = metaDimension
        self.local = local
        self.meta = meta
    }
}

extension KeypointDescriptors {
    /// `kp_desc` [N, 4, 128] and `kp_meta` [N, 4, D], as interfaces.md names them.
    public var namedArrays: [NamedArray] {
        [NamedArray(name: "kp_desc", shape: [count, KeypointDescriptors.variants, descriptorChannels], values: local),
         NamedArray(name: "kp_meta", shape: [count, KeypointDescriptors.variants, metaDimension], values: meta)]
    }
}

extension ModelOutputs {
    /// Samples every raw and meta map at the keypoints: `grid_sample` at
    /// (2x/W - 1, 2y/H - 1), then `F.normalize` of each vector.
    public func describe(_ keypoints: [Keypoint]) throws -> KeypointDescriptors {
        let n = keypoints.count, v = KeypointDescriptors.variants, d = meta[0].channels
        var local = [Float](repeating: 0, count: n * v * descriptorChannels)
        var metaValues = [Float](repeating: 0, count: n * v * d)
        for s in 0..<v {
            scatter(try sampleNormalized(desc[s], at: keypoints, imageHeight: imageHeight, imageWidth: imageWidth, kernels: kernels),
                    into: &local, slot: s, width: descriptorChannels)
            scatter(try sampleNormalized(meta[s], at: keypoints, imageHeight: imageHeight, imageWidth: imageWidth, kernels: kernels),
                    into: &metaValues, slot: s, width: d)
        }
        return try KeypointDescriptors(count: n, metaDimension: d, local: local, meta: metaValues)
    }
}

/// `grid_sample` of `map` at (2x/W - 1, 2y/H - 1) for each keypoint, then
/// `F.normalize` of each sampled vector: [N, C] row-major.
func sampleNormalized(_ map: FeatureMap, at keypoints: [Keypoint], imageHeight: Int, imageWidth: Int,
                      normalize: Bool = true, kernels: Kernels) throws -> [Float] {
    if let bad = keypoints.firstIndex(where: { !$0.x.isFinite || !$0.y.isFinite }) {
        throw RuntimeError.nonFiniteKeypoint(index: bad)
    }
    let w = Float(imageWidth), h = Float(imageHeight)
    let rows = kernels.gridSample(map, gridX: keypoints.map { 2 * $0.x / w - 1 }, gridY: keypoints.map { 2 * $0.y / h - 1 })
    return normalize ? normalizedRows(rows, width: map.channels) : rows
}

/// `F.normalize` of each `width`-long row.
func normalizedRows(_ rows: [Float], width: Int) -> [Float] {
    var out = rows
    out.withUnsafeMutableBufferPointer { v in
        for start in stride(from: 0, to: v.count, by: width) { normalizeL2(v.baseAddress! + start, count: width) }
    }
    return out
}

/// Puts N rows of `width` into slot `slot` of an [N, 4, width] array.
private func scatter(_ rows: [Float], into out: inout [Float], slot: Int, width: Int) {
    let v = KeypointDescriptors.variants
    for i in 0..<(rows.count / width) {
        for j in 0..<width { out[(i * v + slot) * width + j] = rows[i * width + j] }
    }
}
