import AISLFDCore
import AISLFDImages
import AISLFDReaders
import AISLFDRuntime

public enum InputFileProblem: Error, CustomStringConvertible, Equatable, Sendable {
    case wrongShape(what: String, expected: String, found: [Int])
    case wrongDType(what: String, found: DType)

    public var description: String {
        switch self {
        case .wrongShape(let what, let expected, let found):
            return "\(what) must be \(expected), found \(shapeText(found))"
        case .wrongDType(let what, let found): return "\(what) must be float32, found \(found.rawValue)"
        }
    }
}

/// The images and keypoints the commands take.
public enum InputFiles {
    /// PNG or JPEG (RGB, 8-bit / 255), or `.npy` float32 [3, H, W] or [1, 3, H, W] used as is.
    public static func image(path: String) throws -> Image {
        if try FileKind.of(path: path) == .source(.npy) {
            let t = try NPYReader.read(path: path)
            guard t.dtype == .float32 else { throw FileError(path: path, problem: InputFileProblem.wrongDType(what: "an .npy image", found: t.dtype)) }
            let dims = t.shape.count == 4 && t.shape[0] == 1 ? Array(t.shape.dropFirst()) : t.shape
            guard dims.count == 3, dims[0] == 3 else {
                throw FileError(path: path, problem: InputFileProblem.wrongShape(what: "an .npy image", expected: "[3, H, W] or [1, 3, H, W]", found: t.shape))
            }
            return try blame(path) { try Image(channels: 3, height: dims[1], width: dims[2], values: t.floats()) }
        }
        let decoded = try ImageReader.read(path: path)
        return try blame(path) { try Image(channels: 3, height: decoded.height, width: decoded.width, values: decoded.chw) }
    }

    /// `.npy` float32 [N, 2] of pixel coordinates (x, y).
    public static func keypoints(path: String) throws -> [Keypoint] {
        let t = try NPYReader.read(path: path)
        guard t.dtype == .float32 else { throw FileError(path: path, problem: InputFileProblem.wrongDType(what: "keypoints", found: t.dtype)) }
        guard t.shape.count == 2, t.shape[1] == 2 else {
            throw FileError(path: path, problem: InputFileProblem.wrongShape(what: "keypoints", expected: "[N, 2] (x, y)", found: t.shape))
        }
        let v = t.floats()
        return (0..<t.shape[0]).map { Keypoint(x: v[2 * $0], y: v[2 * $0 + 1]) }
    }
}
