import AISLFDCore

public enum TorchError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The pre-1.6 format: pickle streams behind a magic number, not a zip.
    case legacyFormat
    /// Some other pickle file (`pickle.dump`), not a torch.save archive.
    case barePickle
    case notATorchArchive
    case pickle(entry: String, PickleError)
    case notAStateDict(String)
    case noTensors(topLevelKeys: [String])
    case nonStringKey(String)
    case missingStorage(tensor: String, entry: String)
    case storageSizeMismatch(tensor: String, entry: String, expected: Int, actual: Int)
    case badTensor(tensor: String, String)
    /// Views that repeat storage elements (stride 0, overlaps) would expand to
    /// far more bytes than the archive's storages hold.
    case expandsTooFar(tensor: String, budget: Int)
    case unsupportedByteOrder(String)

    /// The file was read completely but holds no state_dict: exit status 1, not 2.
    public var isReadableButNotWeights: Bool {
        switch self {
        case .notAStateDict, .noTensors: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .legacyFormat:
            return "legacy torch.save format; re-save with torch >= 1.6 (torch.save(torch.load(f), f))"
        case .barePickle:
            return "a bare pickle stream, not a torch.save archive; save the state_dict with torch.save (torch >= 1.6)"
        case .notATorchArchive: return "zip archive has no data.pkl: not a torch.save file"
        case .pickle(let entry, let e): return "\(entry): \(e)"
        case .notAStateDict(let what): return "not a state_dict: \(what)"
        case .noTensors(let keys):
            return "no tensors in the state_dict (top-level keys: \(keys.isEmpty ? "none" : keys.joined(separator: ", ")))"
        case .nonStringKey(let what): return "state_dict has a tensor under a non-string key (\(what))"
        case .missingStorage(let tensor, let entry): return "tensor '\(tensor)': storage '\(entry)' is missing from the archive"
        case .storageSizeMismatch(let tensor, let entry, let expected, let actual):
            return "tensor '\(tensor)': storage '\(entry)' holds \(actual) bytes, the pickle says \(expected)"
        case .badTensor(let tensor, let why): return "tensor '\(tensor)': \(why)"
        case .expandsTooFar(let tensor, let budget):
            return "tensor '\(tensor)': the tensors so far would take more than \(budget) bytes, over twice what their storages hold (views that repeat elements)"
        case .unsupportedByteOrder(let text): return "unsupported byteorder record '\(text)'"
        }
    }
}

/// Reads the state_dict of a zip-based `torch.save` file (torch >= 1.6):
/// `<folder>/data.pkl` (the pickle), `<folder>/data/<key>` (raw storages),
/// `<folder>/byteorder`. The pickle is interpreted, never executed.
///
/// Dispatch between NPZ and torch for a zip: open the `ZipArchive` and use
/// `looksLikeTorch` (a data.pkl entry); everything else is an NPZ.
public enum TorchReader {
    /// The 10-byte magic number a legacy torch.save stream starts with, after `\x80\x02\x8a\x0a`.
    private static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    public static func read(path: String) throws -> WeightsContents {
        do {
            let bytes = try FileSystem.readAll(path: path)
            guard ZipArchive.hasZipSignature(bytes) else {
                if bytes.starts(with: legacyMagic) { throw TorchError.legacyFormat }
                if bytes.first == 0x80 { throw TorchError.barePickle }
                throw ZipError.notAZip(byteCount: bytes.count)
            }
            return try read(archive: ZipArchive(bytes: bytes))
        } catch let e as FileError {
            throw e
        } catch let e as TorchError where e.isReadableButNotWeights {
            throw FileError(path: path, problem: e, status: .invalid)
        } catch {
            throw FileError(path: path, problem: error)
        }
    }

    /// Claims legacy torch files (to refuse them clearly) and zips whose first
    /// entry is a `data.pkl`, which torch.save always writes first.
    public static func matches(prefix: [UInt8]) -> Bool {
        if prefix.starts(with: legacyMagic) { return true }
        guard let name = ZipArchive.firstLocalName(prefix) else { return false }
        return isPickleEntryName(name)
    }

    /// The reliable test once the central directory is read.
    public static func looksLikeTorch(_ archive: ZipArchive) -> Bool {
        archive.entries.contains { isPickleEntryName($0.name) }
    }

    /// `data.pkl` at the top or one folder down (the folder name varies).
    static func isPickleEntryName(_ name: String) -> Bool {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        return parts.last == "data.pkl" && parts.count <= 2
    }

    /// Reads an archive already in memory. Errors are not wrapped in `FileError`.
    public static func read(archive: ZipArchive) throws -> WeightsContents {
        guard let pickleEntry = archive.entries.first(where: { isPickleEntryName($0.name) }) else {
            throw TorchError.notATorchArchive
        }
        let folder = String(pickleEntry.name.dropLast("data.pkl".count))
        var metadata: [String: String] = ["torch.archive": folder.isEmpty ? "" : String(folder.dropLast())]

        var bigEndian = false
        if let entry = archive.entry(named: folder + "byteorder") {
            let text = String(decoding: try archive.read(entry, limit: 64), as: UTF8.self)
            switch text {
            case "little": bigEndian = false
            case "big": bigEndian = true
            default: throw TorchError.unsupportedByteOrder(text)
            }
            metadata["torch.byteorder"] = text
        }
        if let entry = archive.entry(named: folder + "version") {
            let text = String(decoding: try archive.read(entry, limit: 64), as: UTF8.self)
            metadata["torch.version"] = text.split(whereSeparator: { $0 == "\n" || $0 == " " }).first.map(String.init) ?? ""
        }

        var unpickler = StateDictUnpickler(bytes: try archive.read(pickleEntry, limit: StateDictUnpickler.maxPickleBytes))
        let root: PickleValue
        do { root = try unpickler.run() } catch let e as PickleError {
            throw TorchError.pickle(entry: pickleEntry.name, e)
        }

        var notes: [String] = []
        let (stateDict, wrapper) = try findStateDict(root, unpickler)
        if let wrapper {
            notes.append("read the state_dict from the checkpoint's '\(wrapper)' entry")
            metadata["torch.checkpoint_key"] = wrapper
            if case .dict(let top) = root {
                let d = unpickler.dicts[top]
                for (k, v) in zip(d.keys, d.values) {
                    guard case .string(let name) = k, let text = scalarText(v) else { continue }
                    metadata["checkpoint.\(name)"] = text
                }
            }
        }

        var materializer = StorageReader(archive: archive, folder: folder, bigEndian: bigEndian, unpickler: unpickler)
        var tensors: [NamedTensor] = []
        var ignored = 0
        let d = unpickler.dicts[stateDict]
        for (k, v) in zip(d.keys, d.values) {
            guard case .tensor(let t) = v else { ignored += 1; continue }
            guard case .string(let key) = k else { throw TorchError.nonStringKey(kind(k)) }
            tensors.append(try materializer.tensor(key: key, unpickler.tensors[t]))
        }
        if tensors.isEmpty {
            throw TorchError.noTensors(topLevelKeys: stringKeys(root, unpickler))
        }
        if ignored > 0 { notes.append("ignored \(ignored) non-tensor entries of the state_dict") }

        let prefix = "module."
        if tensors.allSatisfy({ $0.key.hasPrefix(prefix) && $0.key.count > prefix.count }) {
            for i in tensors.indices { tensors[i].key = String(tensors[i].key.dropFirst(prefix.count)) }
            notes.append("stripped the 'module.' prefix (left by DataParallel) from \(tensors.count) tensor names")
        }
        return WeightsContents(format: "pytorch", tensors: tensors, metadata: metadata, notes: notes)
    }

    /// The state_dict itself, or the one under `model_state_dict` / `state_dict`
    /// of a training checkpoint (whose other entries are parsed and ignored).
    private static func findStateDict(_ root: PickleValue, _ u: StateDictUnpickler) throws -> (Int, wrapper: String?) {
        guard case .dict(let top) = root else {
            throw TorchError.notAStateDict("the file holds \(kind(root)), not a dict")
        }
        for wrapper in ["model_state_dict", "state_dict"] {
            if case .dict(let inner)? = u.dicts[top].value(forString: wrapper) { return (inner, wrapper) }
        }
        return (top, nil)
    }

    private static func stringKeys(_ root: PickleValue, _ u: StateDictUnpickler) -> [String] {
        guard case .dict(let top) = root else { return [] }
        return u.dicts[top].keys.prefix(20).map { k in
            if case .string(let s) = k { return s }
            return kind(k)
        }
    }

    private static func scalarText(_ v: PickleValue) -> String? {
        switch v {
        case .int(let i): return String(i)
        case .float(let d): return String(d)
        case .bool(let b): return b ? "True" : "False"
        case .string(let s) where s.utf8.count <= 256: return s
        default: return nil
        }
    }

    private static func kind(_ v: PickleValue) -> String {
        switch v {
        case .none: return "None"
        case .bool: return "a bool"
        case .int: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .global: return "a class"
        case .storage: return "a storage"
        case .tensor: return "a single tensor"
        }
    }
}

/// Loads each storage once (tensors share them) and cuts tensors out of them.
private struct StorageReader {
    let archive: ZipArchive
    let folder: String
    let bigEndian: Bool
    let unpickler: StateDictUnpickler
    var cache: [String: ArraySlice<UInt8>] = [:]
    /// A stride-0 view of one element can claim any size, so the tensors'
    /// bytes are capped by the storages read: twice them (tied weights share a
    /// storage) plus room for small expanded tensors.
    var storageBytes = 0
    var outputBytes = 0
    static let expansionAllowance = 64 << 20

    init(archive: ZipArchive, folder: String, bigEndian: Bool, unpickler: StateDictUnpickler) {
        self.archive = archive
        self.folder = folder
        self.bigEndian = bigEndian
        self.unpickler = unpickler
    }

    mutating func tensor(key: String, _ t: PickledTensor) throws -> NamedTensor {
        let storage = unpickler.storages[t.storage]
        let name = folder + "data/" + storage.key
        guard let entry = archive.entry(named: name) else { throw TorchError.missingStorage(tensor: key, entry: name) }
        let itemSize = storage.dtype.byteSize
        let expected: Int
        do { expected = try Checked.mul(storage.elementCount, itemSize) } catch {
            throw TorchError.badTensor(tensor: key, "storage of \(storage.elementCount) elements overflows 64-bit sizes")
        }
        guard entry.uncompressedSize == expected else {
            throw TorchError.storageSizeMismatch(tensor: key, entry: name, expected: expected, actual: entry.uncompressedSize)
        }
        if cache[name] == nil {
            let loaded = try archive.contents(entry, limit: expected)
            cache[name] = loaded
            storageBytes += loaded.count
        }
        let bytes = cache[name] ?? []
        // A shape that does not give a byte count is reported by the copy below.
        if let size = try? Checked.byteCount(t.shape, storage.dtype) {
            let budget = storageBytes * 2 + Self.expansionAllowance
            guard size <= budget - outputBytes else { throw TorchError.expandsTooFar(tensor: key, budget: budget) }
            outputBytes += size
        }

        var data: [UInt8]
        do {
            data = try bytes.withUnsafeBytes { raw in
                try StridedCopy.gather(raw, itemSize: itemSize, shape: t.shape, strides: t.strides, offset: t.offset)
            }
        } catch let failure as StridedCopy.Failure {
            throw TorchError.badTensor(tensor: key, Self.explain(failure, t, storage))
        }
        if bigEndian { StridedCopy.swapByteOrder(&data, itemSize: itemSize) }
        return NamedTensor(key: key, dtype: storage.dtype, shape: t.shape, data: data)
    }

    private static func explain(_ f: StridedCopy.Failure, _ t: PickledTensor, _ s: PickledStorage) -> String {
        let view = "size \(t.shape), stride \(t.strides), offset \(t.offset)"
        switch f {
        case .negativeStride: return "negative stride in view (\(view))"
        case .negativeDimension: return "negative dimension in view (\(view))"
        case .rankMismatch: return "size and stride have different lengths (\(view))"
        case .outOfBounds(let needed, let available):
            return "view (\(view)) reaches element \(needed - 1) of a storage of \(available) elements"
        case .size(let e): return "view (\(view)): \(e)"
        }
    }
}
