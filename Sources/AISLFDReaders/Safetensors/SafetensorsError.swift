import AISLFDCore

/// What can be wrong with a safetensors file. Readers wrap it in `FileError`, so
/// the printed message starts with the file's path; cases about one tensor name it.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    case cannotRead(reason: String)
    /// Shorter than the 8-byte header length, or shorter than the data the header describes.
    case fileTooShort(size: Int)
    /// The header length is past `SafetensorsReader.maxHeaderLength` or past the end of the file.
    case headerTooLarge(length: UInt64, limit: Int)
    case headerNotJSON(reason: String)
    /// The header is valid JSON but not an object (`found` says what it is).
    case headerNotObject(found: String)
    case duplicateKey(tensor: String)
    /// A tensor entry without a valid dtype, shape or data_offsets.
    case badEntry(tensor: String, reason: String)
    case unsupportedDType(tensor: String, dtype: String)
    case shapeOverflow(tensor: String, shape: [Int])
    case offsetsOutOfRange(tensor: String, begin: Int, end: Int, dataSize: Int)
    /// data_offsets span a different number of bytes than the shape and dtype need.
    case lengthMismatch(tensor: String, shapeBytes: Int, offsetBytes: Int)
    case overlap(tensor: String, other: String)
    case gap(tensor: String, from: Int, to: Int)
    /// The tensors end before the data section does (the format requires them to cover it).
    case dataNotCovered(covered: Int, dataSize: Int)
    case badMetadata(reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let reason):
            return "cannot read the file (\(echoed(reason, limit: 300)))"
        case .fileTooShort(let size):
            return "file of \(size) bytes is too short for a safetensors file"
        case .headerTooLarge(let length, let limit):
            return "header length \(length) is past the limit of \(limit) bytes (the smaller of the reader's cap and the file's size)"
        case .headerNotJSON(let reason):
            return "header is not valid JSON (\(echoed(reason, limit: 300)))"
        case .headerNotObject(let found):
            return "header is a JSON \(found), not an object"
        case .duplicateKey(let tensor):
            return "tensor '\(echoed(tensor))': listed twice in the header"
        case .badEntry(let tensor, let reason):
            return "tensor '\(echoed(tensor))': \(echoed(reason, limit: 300))"
        case .unsupportedDType(let tensor, let dtype):
            return "tensor '\(echoed(tensor))': unsupported dtype \(echoed(dtype, limit: 40))"
        case .shapeOverflow(let tensor, let shape):
            return "tensor '\(echoed(tensor))': byte count of shape \(shape) overflows 64-bit sizes"
        case .offsetsOutOfRange(let tensor, let begin, let end, let dataSize):
            return "tensor '\(echoed(tensor))': data_offsets [\(begin), \(end)] are outside the data section of \(dataSize) bytes"
        case .lengthMismatch(let tensor, let shapeBytes, let offsetBytes):
            return "tensor '\(echoed(tensor))': shape and dtype need \(shapeBytes) bytes but data_offsets span \(offsetBytes)"
        case .overlap(let tensor, let other):
            return "tensor '\(echoed(tensor))': data overlaps tensor '\(echoed(other))'"
        case .gap(let tensor, let from, let to):
            return "tensor '\(echoed(tensor))': unused bytes \(from)..<\(to) before its data"
        case .dataNotCovered(let covered, let dataSize):
            return "tensors cover \(covered) of the \(dataSize) bytes of the data section"
        case .badMetadata(let reason):
            return "__metadata__: \(echoed(reason, limit: 300))"
        }
    }
}
