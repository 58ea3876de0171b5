import AISLFDCore
import AISLFDImages
import AISLFDReaders
import AISLFDRuntime

public enum InputFileProblem: Error, CustomStringConvertible, Equatable, Sendable {
    case wrongShape(what: String, expected: String, found: [Int])
    case wrongDType(what: String, expected: String, found: DType)
    /// NaN or infinite values: the network would turn them into NaN descriptors.
    case nonFinite(what: String, nan: Int, infinite: Int, total: Int)
    /// An integer keypoint coordinate float32 cannot hold exactly.
    case inexact(what: String, index: Int, value: Int64)

    public var description: String {
        switch self {
        case .wrongShape(let what, let expected, let found):
            return "\(what) must be \(expected), found \(shapeText(found))"
        case .wrongDType(let what, let expected, let found): return "\(what) must be \(expected), found \(found.rawValue)"
        case .nonFinite(let what, let nan, let infinite, let total):
            let parts = [nan > 0 ? "\(grouped(nan)) NaN" : nil, infinite > 0 ? "\(grouped(infinite)) infinite" : nil].compactMap { $0 }
            return "\(what): \(parts.joined(separator: " and ")) of \(grouped(total)) values"
        case .inexact(let what, let index, let value):
            return "\(what): value \(value) at index \(index) is beyond what float32 holds exactly (2^24)"
        }
    }
}

/// An image as the commands take it, with what a person should know about how it was read.
public struct InputImage: Sendable {
    public let image: Image
    /// Warnings (values outside [0, 1]) and notes (the EXIF orientation applied), one line each.
    public let warnings: [String]
    public let notes: [String]
}

/// The images and keypoints the commands take.
public enum InputFiles {
    /// PNG or JPEG (RGB, 8-bit / 255, upright by its EXIF orientation unless `orientation` is
    /// `.ignore`), or `.npy` float32 [3, H, W] or [1, 3, H, W] used as is. NaN or infinite
    /// values are an error (exit 1); values outside [0, 1] a warning.
    public static func image(path: String, orientation: ImageReader.Orientation = .apply) throws -> InputImage {
        if try FileKind.of(path: path) == .source(.npy) {
            let t = try NPYReader.read(path: path)
            guard t.dtype == .float32 else {
                throw FileError(path: path, problem: InputFileProblem.wrongDType(what: "an .npy image", expected: "float32", found: t.dtype))
            }
            let dims = t.shape.count == 4 && t.shape[0] == 1 ? Array(t.shape.dropFirst()) : t.shape
            guard dims.count == 3, dims[0] == 3 else {
                throw FileError(path: path, problem: InputFileProblem.wrongShape(what: "an .npy image", expected: "[3, H, W] or [1, 3, H, W]", found: t.shape))
            }
            let values = t.floats()
            var nan = 0, infinite = 0, outside = 0
            for v in values {
                if v.isNaN { nan += 1 } else if v.isInfinite { infinite += 1 } else if v < 0 || v > 1 { outside += 1 }
            }
            if nan + infinite > 0 {
                throw FileError(path: path, problem: InputFileProblem.nonFinite(what: "the image", nan: nan, infinite: infinite, total: values.count),
                                status: .invalid)
            }
            let warnings = outside == 0 ? [] : [
                "\(echoed(path, limit: 4096)): \(grouped(outside)) of \(grouped(values.count)) values lie outside [0, 1] (used as they are; PNG and JPEG images are read as byte / 255)",
            ]
            let image = try blame(path) { try Image(channels: 3, height: dims[1], width: dims[2], values: values) }
            return InputImage(image: image, warnings: warnings, notes: [])
        }
        let decoded = try ImageReader.read(path: path, orientation: orientation)
        var notes: [String] = []
        if decoded.orientation != 1 {
            notes.append("\(echoed(path, limit: 4096)): EXIF orientation \(decoded.orientation): "
                         + (orientation == .apply ? EXIFOrientation.describe(decoded.orientation) + " as OpenCV's imread does (--ignore-orientation: as stored)"
                                                  : "ignored, read as stored"))
        }
        let image = try blame(path) { try Image(channels: 3, height: decoded.height, width: decoded.width, values: decoded.chw) }
        return InputImage(image: image, warnings: [], notes: notes)
    }

    /// `.npy` [N, 2] of pixel coordinates (x, y): float32 as is, float64 rounded to the nearest
    /// float32 (as NumPy's astype does), integers converted exactly (beyond 2^24 refused).
    /// NaN or infinite coordinates are an error (exit 1).
    public static func keypoints(path: String) throws -> [Keypoint] {
        let t = try NPYReader.read(path: path)
        guard t.dtype.isFloatingPoint || t.dtype.isInteger else {
            throw FileError(path: path, problem: InputFileProblem.wrongDType(what: "keypoints", expected: "float or integer", found: t.dtype))
        }
        guard t.shape.count == 2, t.shape[1] == 2 else {
            throw FileError(path: path, problem: InputFileProblem.wrongShape(what: "keypoints", expected: "[N, 2] (x, y)", found: t.shape))
        }
        let v: [Float]
        if t.dtype.isInteger {
            let exact = 1 << 24
            v = try t.integers().enumerated().map { i, n in
                guard n.magnitude <= UInt64(exact) else { throw FileError(path: path, problem: InputFileProblem.inexact(what: "keypoints", index: i, value: n)) }
                return Float(n)
            }
        } else {
            v = t.floats()
            let nan = v.filter(\.isNaN).count, infinite = v.filter(\.isInfinite).count
            if nan + infinite > 0 {
                throw FileError(path: path, problem: InputFileProblem.nonFinite(what: "keypoint coordinates", nan: nan, infinite: infinite, total: v.count),
                                status: .invalid)
            }
        }
        return (0..<t.shape[0]).map { Keypoint(x: v[2 * $0], y: v[2 * $0 + 1]) }
    }

    /// A warning when keypoints lie outside the image (x in [0, W], y in [0, H]): the
    /// network samples zero padding there, so their descriptors say nothing.
    public static func keypointWarning(_ points: [Keypoint], path: String, image: Image) -> String? {
        let w = Float(image.width), h = Float(image.height)
        let outside = points.filter { !($0.x >= 0 && $0.x <= w && $0.y >= 0 && $0.y <= h) }.count
        guard outside > 0 else { return nil }
        return "\(echoed(path, limit: 4096)): \(grouped(outside)) of \(grouped(points.count)) keypoints lie outside the \(image.height)x\(image.width) image, x in [0, \(image.width)] and y in [0, \(image.height)] (their descriptors sample zero padding)"
    }
}
