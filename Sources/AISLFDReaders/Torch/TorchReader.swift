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
        case .pickle(let entry, let e): return "\(echoed(entry)): \(e)"
        case .notAStateDict(let what): return "not a state_dict: \(what)"
        case .noTensors(let keys):
            return "no tensors in the file (top-level keys: \(keys.isEmpty ? "none" : keys.map { echoed($0, limit: 40) }.joined(separator: ", ")))"
        case .missingStorage(let tensor, let entry): return "tensor '\(echoed(tensor))': storage '\(echoed(entry))' is missing from the archive"
        case .storageSizeMismatch(let tensor, let entry, let expected, let actual):
            return "tensor '\(echoed(tensor))': storage '\(echoed(entry))' holds \(actual) bytes, the pickle says \(expected)"
        case .badTensor(let tensor, let why): return "tensor '\(echoed(tensor))': \(why)"
        case .expandsTooFar(let tensor, let budget):
            return "tensor '\(echoed(tensor))': the tensors so far would take more than \(budget) bytes, over twice what their storages hold (views that repeat elements)"
        case .unsupportedByteOrder(let text): return "unsupported byteorder record '\(echoed(text))'"
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

        guard case .dict(let top) = root else {
            throw TorchError.notAStateDict("the file holds \(kind(root)), not a dict")
        }
        // Scalars at the top of a training checkpoint (iteration, epoch, loss) are kept as metadata.
        let d = unpickler.dicts[top]
        for (k, v) in zip(d.keys, d.values) {
            guard case .string(let name) = k, let text = scalarText(v) else { continue }
            metadata["checkpoint.\(name)"] = text
        }

        var walk = Walk(materializer: StorageReader(archive: archive, folder: folder, bigEndian: bigEndian, unpickler: unpickler))
        try walk.visit(top, prefix: "", unpickler)
        if walk.tensors.isEmpty {
            throw TorchError.noTensors(topLevelKeys: stringKeys(root, unpickler))
        }
        var notes = walk.notes
        if walk.nonStringKeyTensors > 0 {
            notes.append("ignored \(walk.nonStringKeyTensors) tensors under keys that are not strings")
        }
        return WeightsContents(format: "pytorch", tensors: walk.tensors, metadata: metadata, notes: notes, containers: walk.containers)
    }

    /// Every tensor of the pickle's dicts, each under the path of string keys that leads to it
    /// joined by '.' (`model_state_dict.conv.weight`), as HDF5 groups are; the dicts on the way
    /// that hold tensors are the file's containers. Lists, tuples and dicts reached through other keys (an
    /// optimizer's per-parameter state) are not entered: state_dicts are not kept there.
    private struct Walk {
        var materializer: StorageReader
        var tensors: [NamedTensor] = []
        var containers: [String] = []
        var notes: [String] = []
        var nonStringKeyTensors = 0
        var visited = Set<Int>()

        mutating func visit(_ dict: Int, prefix: String, _ u: StateDictUnpickler) throws {
            // A dict reached twice (shared through the memo, or a cycle) is read once.
            guard visited.insert(dict).inserted else { return }
            let d = u.dicts[dict]
            for (k, v) in zip(d.keys, d.values) {
                guard case .string(let name) = k else {
                    if case .tensor = v { nonStringKeyTensors += 1 }
                    continue
                }
                let key = prefix + name
                switch v {
                case .tensor(let t):
                    if let tensor = try materializer.tensor(key: key, u.tensors[t]) { tensors.append(tensor) } else {
                        notes.append("skipped '\(echoed(key))': \(materializer.unreadableKind(u.tensors[t])) tensors are not read")
                    }
                case .unsupportedTensor(let what):
                    notes.append("skipped '\(echoed(key))': \(what) is not read")
                case .dict(let inner):
                    guard !visited.contains(inner) else { continue }
                    let before = tensors.count
                    containers.append(key)
                    try visit(inner, prefix: key + ".", u)
                    // Only dicts with tensors under them are places a state_dict may be.
                    if tensors.count == before { containers.removeLast() }
                default:
                    continue
                }
            }
        }
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
        case .set: return "a set"
        case .unsupportedTensor(let what), .opaque(let what): return what
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

    /// The element type a tensor is read as, nil when this reader does not read it.
    func dtype(of t: PickledTensor) -> DType? {
        t.dtypeName == nil ? unpickler.storages[t.storage].dtype : t.dtype
    }

    /// The name of the element type `dtype(of:)` does not read.
    func unreadableKind(_ t: PickledTensor) -> String {
        t.dtypeName.map { "torch." + $0 } ?? unpickler.storages[t.storage].typeName
    }

    /// The tensor, or nil when its element type is one this reader does not read (complex, quantized).
    mutating func tensor(key: String, _ t: PickledTensor) throws -> NamedTensor? {
        let storage = unpickler.storages[t.storage]
        guard let storageType = storage.dtype, let dtype = dtype(of: t) else { return nil }
        let name = folder + "data/" + storage.key
        guard let entry = archive.entry(named: name) else { throw TorchError.missingStorage(tensor: key, entry: name) }
        let itemSize = dtype.byteSize
        let expected: Int
        do { expected = try Checked.mul(storage.elementCount, storageType.byteSize) } catch {
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
        if let size = try? Checked.byteCount(t.shape, dtype) {
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
        return NamedTensor(key: key, dtype: dtype, shape: t.shape, data: data)
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
