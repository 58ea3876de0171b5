import AISLFDCore

/// The kinds of file the commands accept, recognised by content, never by extension.
public enum FileKind: String, Sendable {
    case hdf5, npz, pytorch, safetensors, aisw, npy
}

public enum WeightsReaderError: Error, CustomStringConvertible, Equatable, Sendable {
    case unrecognised
    case notSourceWeights(FileKind)

    public var description: String {
        switch self {
        case .unrecognised:
            return "not a recognised weights file (expected HDF5, NPZ, PyTorch zip, safetensors or .aisw)"
        case .notSourceWeights(.aisw):
            return "a converted .aisw model, not source weights"
        case .notSourceWeights(let kind):
            return "a single \(kind.rawValue) array, not a weights file"
        }
    }
}

/// Recognises a file by its first bytes and reads source weights with the
/// matching reader.
public enum WeightsReader {
    static let prefixLength = max(HDF5Reader.prefixLength, SafetensorsReader.prefixLength, 64)

    public static func kind(ofFileAt path: String) throws -> FileKind {
        guard let kind = try recognisedKind(ofFileAt: path) else {
            throw FileError(path: path, problem: WeightsReaderError.unrecognised)
        }
        return kind
    }

    /// The kind, or nil for a readable file of none of these kinds (an image, say).
    public static func recognisedKind(ofFileAt path: String) throws -> FileKind? {
        let prefix: [UInt8]
        do { prefix = try InputFile.readPrefix(path: path, count: prefixLength) } catch { throw FileError(path: path, problem: error) }
        if prefix.starts(with: AISWFormat.magic) { return .aisw }
        if HDF5Reader.matches(prefix: prefix) { return .hdf5 }
        if NPYReader.matches(prefix: prefix) { return .npy }
        if TorchReader.matches(prefix: prefix) { return .pytorch }
        if NPZReader.matches(prefix: prefix) { return .npz }
        if SafetensorsReader.matches(prefix: prefix) { return .safetensors }
        return nil
    }

    /// Reads a source weights file (HDF5, NPZ, PyTorch, safetensors).
    public static func read(path: String) throws -> WeightsContents {
        switch try kind(ofFileAt: path) {
        case .hdf5: return try HDF5Reader.read(path: path)
        case .npz: return try NPZReader.read(path: path)
        case .pytorch: return try TorchReader.read(path: path)
        case .safetensors: return try SafetensorsReader.read(path: path)
        case let other: throw FileError(path: path, problem: WeightsReaderError.notSourceWeights(other))
        }
    }
}
