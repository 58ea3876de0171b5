import AISLFDCore

/// What can be wrong with an image file. Wrapped in `FileError`, so the message
/// starts with the file's path.
public enum ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    case cannotRead(reason: String)
    /// No PNG, JPEG or PPM signature; `signature` is the first bytes in hex.
    case unknownFormat(signature: String)
    /// Past the reader's caps, or more pixels than the compressed data can plausibly hold.
    case tooLarge(width: Int, height: Int, reason: String)
    /// libpng or libjpeg refused the data (bad CRC, bad compressed data, ...).
    case corrupt(format: String, reason: String)
    /// The pixel data ends before the image does; `reason` says how many rows were decoded.
    case truncated(format: String, reason: String)
    /// A valid image of a kind the reader does not convert (CMYK or YCCK JPEG).
    case unsupported(format: String, reason: String)
    /// The pixel buffer given to the writer does not hold height * width * 3 bytes.
    case badPixelBuffer(count: Int, height: Int, width: Int)
    case cannotWrite(reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let reason):
            return "cannot read the image (\(echoed(reason, limit: 300)))"
        case .unknownFormat(let signature):
            return "not a PNG, JPEG or PPM image (starts with \(signature.isEmpty ? "nothing" : signature))"
        case .tooLarge(let width, let height, let reason):
            return "image of \(width) x \(height) pixels is too large: \(reason)"
        case .corrupt(let format, let reason):
            return "corrupt \(format) image (\(reason))"
        case .truncated(let format, let reason):
            return "\(format) image \(reason), the pixel data ends early"
        case .unsupported(let format, let reason):
            return "unsupported \(format) image: \(reason)"
        case .badPixelBuffer(let count, let height, let width):
            return "pixel buffer of \(count) bytes does not hold \(height) x \(width) RGB pixels"
        case .cannotWrite(let reason):
            return "cannot write the image (\(reason))"
        }
    }
}
