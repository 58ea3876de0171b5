import AISLFDCore

/// The source formats this target reads, recognised by content, never by extension.
public enum SourceFormat: String, Sendable {
    case hdf5, npz, pytorch, safetensors, npy
}

public enum WeightsReaderError: Error, CustomStringConvertible, Equatable, Sendable {
    case unrecognised
    case singleArray

    public var description: String {
        switch self {
        case .unrecognised:
            return "not a recognised weights file (expected HDF5, NPZ, PyTorch zip, safetensors or .aisw)"
        case .singleArray:
            return "a single npy array, not a weights file"
        }
    }
}

/// Recognises a source weights file by its first bytes and reads it with the matching reader.
public enum WeightsReader {
    /// Bytes of a file's start that `format(ofPrefix:)` needs to decide.
    public static let prefixLength = max(HDF5Reader.prefixLength, SafetensorsReader.prefixLength, 64)

    /// The format whose signature `prefix` (a file's first `prefixLength` bytes) starts with, if any.
    public static func format(ofPrefix prefix: [UInt8]) -> SourceFormat? {
        if HDF5Reader.matches(prefix: prefix) { return .hdf5 }
        if NPYReader.matches(prefix: prefix) { return .npy }
        if TorchReader.matches(prefix: prefix) { return .pytorch }
        if NPZReader.matches(prefix: prefix) { return .npz }
        if SafetensorsReader.matches(prefix: prefix) { return .safetensors }
        return nil
    }

    /// Reads a source weights file, recognising its format first.
    public static func read(path: String, hdf5Isolation: HDF5Isolation? = nil) throws -> WeightsContents {
        let prefix: [UInt8]
        do { prefix = try FileSystem.readPrefix(path: path, count: prefixLength) } catch { throw FileError(path: path, problem: error) }
        guard let format = format(ofPrefix: prefix) else { throw FileError(path: path, problem: WeightsReaderError.unrecognised) }
        return try read(path: path, format: format, hdf5Isolation: hdf5Isolation)
    }

    /// Reads a file already recognised as `format`. HDF5 files are read in another process
    /// when `hdf5Isolation` says how to start one (see `HDF5Isolation`).
    public static func read(path: String, format: SourceFormat, hdf5Isolation: HDF5Isolation? = nil) throws -> WeightsContents {
        switch format {
        case .hdf5: return try HDF5Reader.read(path: path, isolation: hdf5Isolation)
        case .npz: return try NPZReader.read(path: path)
        case .pytorch: return try TorchReader.read(path: path)
        case .safetensors: return try SafetensorsReader.read(path: path)
        case .npy: throw FileError(path: path, problem: WeightsReaderError.singleArray)
        }
    }
}
