import AISLFDCore

/// A dense map of `channels` planes of `height x width` values, stored
/// channel-major (CHW, as PyTorch's NCHW with batch 1). Images are feature
/// maps with three channels (RGB in [0, 1]).
public struct FeatureMap: Sendable, Equatable {
    public let channels: Int
    public let height: Int
    public let width: Int
    /// Only the runtime changes values in place, so their count always matches the shape.
    public internal(set) var values: [Float]

    public init(channels: Int, height: Int, width: Int, values: [Float]) throws {
        guard channels >= 0, height >= 0, width >= 0,
              let count = try? Checked.elementCount([channels, height, width]), count == values.count
        else { throw RuntimeError.valueCountMismatch(name: "feature map", shape: [channels, height, width], count: values.count) }
        self.channels = channels
        self.height = height
        self.width = width
        self.values = values
    }

    /// Sizes here come from the model, never from a file, so they are trusted.
    init(trustedChannels channels: Int, height: Int, width: Int, values: [Float]) {
        self.channels = channels
        self.height = height
        self.width = width
        self.values = values
    }

    /// A map whose values the caller overwrites completely; skipping the zero
    /// fill matters for the large early layers.
    static func uninitialized(channels: Int, height: Int, width: Int) -> FeatureMap {
        let n = channels * height * width
        let values = LargeBuffers.uninitialized(n)
        return FeatureMap(trustedChannels: channels, height: height, width: width, values: values)
    }

    static func zeros(channels: Int, height: Int, width: Int) -> FeatureMap {
        FeatureMap(trustedChannels: channels, height: height, width: width,
                   values: [Float](repeating: 0, count: channels * height * width))
    }

    public var planeSize: Int { height * width }
    public var shape: [Int] { [channels, height, width] }

    /// Rows `range` of every channel as a map of their own.
    func rowSlice(_ range: Range<Int>) -> FeatureMap {
        var out = FeatureMap.uninitialized(channels: channels, height: range.count, width: width)
        values.withUnsafeBufferPointer { input in
            out.values.withUnsafeMutableBufferPointer { output in
                for c in 0..<channels {
                    (output.baseAddress! + c * range.count * width)
                        .update(from: input.baseAddress! + (c * height + range.lowerBound) * width, count: range.count * width)
                }
            }
        }
        return out
    }

    /// Channels `range` as a map of their own.
    func channelSlice(_ range: Range<Int>) -> FeatureMap {
        let plane = planeSize
        return FeatureMap(trustedChannels: range.count, height: height, width: width,
                          values: Array(values[(range.lowerBound * plane)..<(range.upperBound * plane)]))
    }
}

/// An input image: a three-channel feature map, RGB, values in [0, 1].
public typealias Image = FeatureMap

extension FeatureMap {
    /// An image from 8-bit RGB pixels as an app holds them: row-major, three bytes per
    /// pixel (R, G, B), each value / 255 — what the networks were trained on. `bytesPerRow`
    /// (at least 3 x width) allows padded rows; 4 bytes per pixel with `rgba` drops alpha.
    public init(rgb pixels: [UInt8], height: Int, width: Int, bytesPerRow: Int? = nil, rgba: Bool = false) throws {
        let step = rgba ? 4 : 3
        let row = bytesPerRow ?? width &* step
        let (span, wide) = width.multipliedReportingOverflow(by: step)
        let (rows, tall) = row.multipliedReportingOverflow(by: max(0, height - 1))
        let (needed, long) = rows.addingReportingOverflow(span)
        guard height > 0, width > 0, !wide, !tall, !long, row >= span, pixels.count >= needed else {
            throw RuntimeError.valueCountMismatch(name: "image pixels", shape: [height, width, step], count: pixels.count)
        }
        let plane = height * width
        var values = [Float](repeating: 0, count: 3 * plane)
        pixels.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    for x in 0..<width {
                        let p = y * row + x * step, o = y * width + x
                        for c in 0..<3 { dst[c * plane + o] = Float(src[p + c]) / 255 }
                    }
                }
            }
        }
        self.init(trustedChannels: 3, height: height, width: width, values: values)
    }
}

/// One named tensor of plain float32 values, C-order.
public struct WeightTensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }
}
