import AISLFDCore

public enum NPZError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A problem with one array; `entry` is its name in the zip.
    case badArray(entry: String, NPYError)
    case duplicateKey(String)

    public var description: String {
        switch self {
        case .badArray(let entry, let problem):
            let key = entry.hasSuffix(".npy") ? String(entry.dropLast(4)) : entry
            return "tensor '\(echoed(key))' (entry '\(echoed(entry))'): \(problem)"
        case .duplicateKey(let key): return "two entries give the tensor name '\(echoed(key))'"
        }
    }
}

/// NumPy's `.npz`: a zip of `.npy` files (stored by `np.savez`, deflated by
/// `np.savez_compressed`). Keys are the entry names without `.npy`, in archive order;
/// 0-d text entries become metadata.
public enum NPZReader {
    public static func read(path: String) throws -> WeightsContents {
        do {
            let archive = try ZipArchive(bytes: FileSystem.readAll(path: path))
            return try read(archive: archive)
        } catch let e as FileError {
            throw e
        } catch {
            throw FileError(path: path, problem: error)
        }
    }

    /// Reads an archive already in memory. Errors are not wrapped in `FileError`.
    public static func read(archive: ZipArchive) throws -> WeightsContents {
        var tensors: [NamedTensor] = []
        var keys = Set<String>()
        var skipped: [String] = []
        var metadata: [String: String] = [:]
        for entry in archive.entries {
            guard entry.name.hasSuffix(".npy") else {
                if !entry.name.hasSuffix("/") { skipped.append(entry.name) }
                continue
            }
            let key = String(entry.name.dropLast(4))
            guard keys.insert(key).inserted else { throw NPZError.duplicateKey(key) }
            if entry.uncompressedSize <= 1 << 16, let text = NPYFormat.textScalar(try archive.read(entry, limit: 1 << 16)) {
                metadata[key] = text
                continue
            }
            tensors.append(try readArray(entry, key: key, archive: archive))
        }
        var notes: [String] = []
        if !skipped.isEmpty { notes.append("ignored entries that are not .npy arrays: \(skipped.prefix(20).map { echoed($0, limit: 60) }.joined(separator: ", ") + (skipped.count > 20 ? ", …" : ""))") }
        return WeightsContents(format: "npz", tensors: tensors, metadata: metadata, notes: notes)
    }

    /// NPZ files start with the local header of an `.npy` entry (or are an
    /// empty archive). A zip whose first entry is a torch `data.pkl` is not
    /// claimed; for a prefix too short to show the name, any zip is.
    public static func matches(prefix: [UInt8]) -> Bool {
        guard ZipArchive.hasZipSignature(prefix) else { return false }
        guard let name = ZipArchive.firstLocalName(prefix) else { return true }
        return !TorchReader.isPickleEntryName(name)
    }

    /// The header is read first, from a prefix of the entry, so an entry whose
    /// size disagrees with its header is refused before it is inflated.
    private static func readArray(_ entry: ZipEntry, key: String, archive: ZipArchive) throws -> NamedTensor {
        func bad(_ e: NPYError) -> NPZError { .badArray(entry: entry.name, e) }
        do {
            let first = try archive.readPrefix(entry, count: NPYFormat.fixedPrefixSize)
            let headerSize = try NPYFormat.headerSize(first)
            let header = try NPYFormat.parseHeader(archive.readPrefix(entry, count: headerSize))
            let declaredData = entry.uncompressedSize - header.headerSize
            guard declaredData == header.dataSize else {
                throw NPYError.dataSizeMismatch(descr: header.descr, shape: header.shape, expected: header.dataSize,
                                                actual: max(declaredData, 0))
            }
            let bytes = try archive.read(entry, limit: header.headerSize + header.dataSize)
            let data = try NPYFormat.decode(header, data: bytes[header.headerSize...])
            return NamedTensor(key: key, dtype: header.dtype, shape: header.shape, data: data)
        } catch let e as NPYError {
            throw bad(e)
        }
    }
}

/// A single `.npy` array (images, keypoint files).
public enum NPYReader {
    /// The tensor's key is the file name without its folder and `.npy`.
    public static func read(path: String) throws -> NamedTensor {
        do {
            let bytes = try FileSystem.readAll(path: path)
            let header = try NPYFormat.parseHeader(bytes)
            let data = try NPYFormat.decode(header, data: bytes[header.headerSize...])
            return NamedTensor(key: keyName(path), dtype: header.dtype, shape: header.shape, data: data)
        } catch {
            throw FileError(path: path, problem: error)
        }
    }

    public static func matches(prefix: [UInt8]) -> Bool {
        prefix.starts(with: NPYFormat.magic)
    }

    private static func keyName(_ path: String) -> String {
        let file = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
        return file.hasSuffix(".npy") ? String(file.dropLast(4)) : file
    }
}
