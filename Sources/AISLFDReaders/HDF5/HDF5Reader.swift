import AISLFDCore
import Foundation

/// Reads a PyTorch state_dict stored in HDF5 (h5py): datasets at the root named by
/// state_dict keys, or nested groups (`_backbone/_conv1_1/weight`) whose path
/// components are joined with dots.
///
/// Order: depth first; inside each group, links in creation order when the group
/// keeps a creation-order index (h5py `track_order=True`), otherwise in name order
/// (byte-wise, as libhdf5 sorts them). Root attributes become metadata.
///
/// Bounds, all checked before anything is allocated: a compact or contiguous
/// dataset cannot be larger than the file; a chunked (possibly compressed)
/// dataset, and each of its chunks, at most `maxExpansion` times the file's size
/// and at most `maxChunkedBytes`.
///
/// By default libhdf5 runs in a child process (HDF5Isolation.swift), which sends the
/// tensors back through a pipe (HDF5ResultStream.swift): a file that crashes or hangs
/// the library gives an error, never a crash of the caller.
public enum HDF5Reader {
    /// Prefix length that `matches(prefix:)` needs to see the signature after a
    /// user block of up to 64 KiB. 8 bytes suffice for files without a user block
    /// (h5py's default).
    public static let prefixLength = 65536 + 8
    /// Deflate expands at most about 1032 to 1; a chunked dataset may not claim more than this multiple of the file's size.
    public static let maxExpansion = 1100
    /// Absolute cap for one chunked dataset, compressed or not.
    public static let maxChunkedBytes = 1 << 32

    /// The most bytes a chunked dataset of a file of `fileSize` bytes may hold.
    static func chunkedLimit(fileSize: Int) -> Int {
        let (product, overflow) = fileSize.multipliedReportingOverflow(by: maxExpansion)
        return overflow ? maxChunkedBytes : min(product, maxChunkedBytes)
    }
    static let maxDepth = 64
    static let maxLinks = 1_000_000
    static let maxNameLength = 1 << 16
    static let maxAttributeElements = 4096
    static let maxAttributeStringBytes = 1 << 20

    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// True when the HDF5 signature is at offset 0, 512, 1024, 2048, ... within `prefix`
    /// (the first bytes of the file; see `prefixLength`).
    public static func matches(prefix: [UInt8]) -> Bool {
        var offset = 0
        while offset + signature.count <= prefix.count {
            if prefix[offset..<(offset + signature.count)].elementsEqual(signature) { return true }
            offset = offset == 0 ? 512 : offset * 2
        }
        return false
    }

    /// Reads every dataset of the file. Errors are `FileError` wrapping `HDF5Error`.
    ///
    /// With `isolation` (Linux), libhdf5 runs in another process that `isolation` starts, so
    /// a file that crashes or hangs the library gives `HDF5Error.libraryCrashed` or
    /// `.timedOut` instead of ending this process; `timeout` overrides
    /// `isolationTimeout(fileSize:)`. Without it (the default), libhdf5 is called here.
    public static func read(path: String, isolation: HDF5Isolation? = nil, timeout: Double? = nil) throws -> WeightsContents {
        do {
            #if os(Linux)
            if let isolation {
                let seconds = try timeout ?? isolationTimeout(fileSize: regularFileSize(path))
                return try readInChild(path: path, isolation: isolation, timeout: seconds)
            }
            #endif
            return try readContents(path: path)
        } catch let error as HDF5Error {
            throw FileError(path: path, problem: error)
        }
    }

    private struct Walk {
        let fileSize: Int
        var keys: Set<String> = []
        var visited: Set<UInt64> = []
        var links = 0
        var notes: [String] = []
        var groups: [String] = []
    }

    /// What follows the tensors: root attributes, notes and the groups' keys (containers).
    struct Rest {
        var metadata: [String: String]
        var notes: [String]
        var groups: [String]
    }

    static func readContents(path: String) throws -> WeightsContents {
        var tensors: [NamedTensor] = []
        let rest = try readContents(path: path) { tensors.append($0) }
        return WeightsContents(format: "hdf5", tensors: tensors, metadata: rest.metadata, notes: rest.notes, containers: rest.groups)
    }

    /// Hands each tensor to `each` as soon as it is read (the isolated reader sends it
    /// on while the next is read), then returns the rest.
    static func readContents(path: String, each: (NamedTensor) throws -> Void) throws -> Rest {
        let fileSize = try regularFileSize(path)
        do {
            try HDF5Calls.prepareThread()
        } catch let failure as HDF5CallFailure {
            throw HDF5Error.cannotOpen(reason: failure.description)
        }
        let file: HDF5ID
        do {
            file = try HDF5Calls.openFile(path)
        } catch let failure as HDF5CallFailure {
            throw HDF5Error.cannotOpen(reason: failure.detail.isEmpty ? failure.description : failure.detail)
        }
        defer { HDF5Calls.closeFile(file) }

        let root = try structure(nil) { try HDF5Calls.openRootGroup(file) }
        defer { HDF5Calls.closeGroup(root) }

        var walk = Walk(fileSize: fileSize)
        walk.visited.insert(try structure(nil) { try HDF5Calls.objectAddress(root) })
        try readGroup(root, path: [], walk: &walk, each: each)
        let metadata = try rootMetadata(root, path: path, notes: &walk.notes)
        return Rest(metadata: metadata, notes: walk.notes, groups: walk.groups)
    }

    static func regularFileSize(_ path: String) throws -> Int {
        do { return try FileSystem.regularFileSize(path: path) } catch let e as FileSystemError {
            if case .cannotOpen(let reason) = e { throw HDF5Error.cannotOpen(reason: reason) }
            throw HDF5Error.cannotOpen(reason: e.description)
        }
    }

    /// Runs library calls on the file's structure; their failures mean corrupt metadata.
    private static func structure<T>(_ tensor: String?, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let failure as HDF5CallFailure {
            throw HDF5Error.corrupt(tensor: tensor, reason: failure.description)
        }
    }

    private static func readGroup(_ group: HDF5ID, path: [String], walk: inout Walk, each: (NamedTensor) throws -> Void) throws {
        let groupKey = path.isEmpty ? nil : path.joined(separator: ".")
        let byCreation = try structure(groupKey) { try HDF5Calls.tracksCreationOrder(group) }
        let count = try structure(groupKey) { try HDF5Calls.linkCount(group) }
        var position: UInt64 = 0
        while position < count {
            defer { position += 1 }
            walk.links += 1
            if walk.links > maxLinks { throw HDF5Error.tooManyLinks(limit: maxLinks) }
            let name = try structure(groupKey) {
                try HDF5Calls.linkName(group, creationOrder: byCreation, position: position, maxLength: maxNameLength)
            }
            let components = path + [name]
            let key = components.joined(separator: ".")
            switch try structure(key, { try HDF5Calls.linkTarget(group, creationOrder: byCreation, position: position) }) {
            case .soft:
                throw HDF5Error.softLink(tensor: key)
            case .external:
                throw HDF5Error.outsideFile(tensor: key, reason: "external link to another file")
            case .other:
                throw HDF5Error.outsideFile(tensor: key, reason: "user-defined link type (may resolve anywhere)")
            case .hard(let address):
                guard walk.visited.insert(address).inserted else { throw HDF5Error.linkLoop(tensor: key) }
                let object = try structure(key) { try HDF5Calls.openObject(group, creationOrder: byCreation, position: position) }
                defer { HDF5Calls.closeObject(object) }
                switch HDF5Calls.kind(object) {
                case .group:
                    guard components.count < maxDepth else { throw HDF5Error.tooDeep(tensor: key, limit: maxDepth) }
                    walk.groups.append(key)
                    try readGroup(object, path: components, walk: &walk, each: each)
                case .dataset:
                    guard walk.keys.insert(key).inserted else { throw HDF5Error.duplicateKey(tensor: key) }
                    try each(try readDataset(object, key: key, fileSize: walk.fileSize))
                case .namedDatatype:
                    walk.notes.append("skipped '\(echoed(key))': a named datatype, not a dataset")
                case .other:
                    walk.notes.append("skipped '\(echoed(key))': neither a group nor a dataset")
                }
            }
        }
    }

    // MARK: Datasets

    private struct ElementType {
        var dtype: DType
        var bigEndian: Bool
    }

    private static func readDataset(_ dataset: HDF5ID, key: String, fileSize: Int) throws -> NamedTensor {
        let type = try structure(key) { try HDF5Calls.datasetType(dataset) }
        defer { HDF5Calls.closeType(type) }
        let element = try structure(key) { try elementType(type, key: key) }

        let space = try structure(key) { try HDF5Calls.datasetSpace(dataset) }
        defer { HDF5Calls.closeSpace(space) }
        let shape: [Int]
        var maxShape: [UInt64] = []
        switch try structure(key, { try HDF5Calls.spaceKind(space) }) {
        case .null: throw HDF5Error.nullDataspace(tensor: key)
        case .scalar: shape = []
        case .simple:
            shape = try sizes(try structure(key) { try HDF5Calls.dimensions(space) }, key: key)
            maxShape = try structure(key) { try HDF5Calls.maxDimensions(space) }
        }
        let byteCount: Int
        do {
            byteCount = try Checked.byteCount(shape, element.dtype)
        } catch {
            throw HDF5Error.tooLarge(tensor: key, reason: "shape \(shape) of \(element.dtype.rawValue) overflows 64-bit sizes")
        }
        try checkStorage(dataset, key: key, byteCount: byteCount, elementSize: element.dtype.byteSize, maxShape: maxShape, fileSize: fileSize)

        var data = [UInt8](repeating: 0, count: byteCount)
        if byteCount > 0 {
            do {
                try data.withUnsafeMutableBytes { try HDF5Calls.readRaw(dataset, type: type, into: $0) }
            } catch let failure as HDF5CallFailure {
                throw HDF5Error.readFailed(tensor: key, reason: failure.detail.isEmpty ? failure.description : failure.detail)
            }
        }
        if element.bigEndian { swapByteOrder(&data, elementSize: element.dtype.byteSize) }
        if element.dtype == .bool, let bad = data.first(where: { $0 > 1 }) {
            throw HDF5Error.badBool(tensor: key, value: bad)
        }
        return NamedTensor(key: key, dtype: element.dtype, shape: shape, data: data)
    }

    private static func sizes(_ dims: [UInt64], key: String) throws -> [Int] {
        try dims.map { d in
            guard let n = Int(exactly: d) else {
                throw HDF5Error.tooLarge(tensor: key, reason: "dimension \(d) does not fit in 64-bit signed sizes")
            }
            return n
        }
    }

    /// Refuses sizes past the file-size bound before any allocation, and data kept in other files.
    private static func checkStorage(_ dataset: HDF5ID, key: String, byteCount: Int, elementSize: Int, maxShape: [UInt64], fileSize: Int) throws {
        let plist = try structure(key) { try HDF5Calls.datasetCreationList(dataset) }
        defer { HDF5Calls.closeList(plist) }
        if try structure(key, { try HDF5Calls.externalFileCount(plist) }) > 0 {
            throw HDF5Error.outsideFile(tensor: key, reason: "raw data stored in an external file")
        }
        let layout = try structure(key) { try HDF5Calls.layout(plist) }
        switch layout {
        case .virtual:
            throw HDF5Error.outsideFile(tensor: key, reason: "virtual dataset (its data may come from other files)")
        case .compact, .contiguous:
            if byteCount > fileSize {
                throw HDF5Error.tooLarge(tensor: key, reason: "claims \(byteCount) bytes of contiguous data in a file of \(fileSize) bytes")
            }
            // libhdf5 1.10 copies a compact dataset's values without checking the
            // stored size against the shape; a contiguous one is either unwritten or exactly its size.
            let stored = HDF5Calls.storageSize(dataset)
            if stored != UInt64(byteCount) && (layout == .compact || stored != 0) {
                throw HDF5Error.corrupt(tensor: key, reason: "\(stored) bytes stored for a shape of \(byteCount) bytes")
            }
        case .chunked, .other:
            let limit = chunkedLimit(fileSize: fileSize)
            if byteCount > limit {
                throw HDF5Error.tooLarge(tensor: key, reason: "claims \(byteCount) bytes of chunked data; the limit for a file of \(fileSize) bytes is \(limit)")
            }
            let chunkDims = try structure(key) { try HDF5Calls.chunkShape(plist) }
            // libhdf5 refuses to create such chunks but not to read them: it then copies a
            // whole claimed chunk out of the smaller stored one, past its buffer.
            guard chunkDims.count == maxShape.count, zip(chunkDims, maxShape).allSatisfy({ $0 <= $1 }) else {
                let maximum = maxShape.map { $0 == UInt64.max ? "unlimited" : String($0) }.joined(separator: ", ")
                throw HDF5Error.corrupt(tensor: key, reason: "chunk shape \(chunkDims) does not fit the dataset's maximum shape [\(maximum)]")
            }
            // libhdf5 would fail later, naming its plugin folder instead of the filter.
            if let filter = try structure(key, { try HDF5Calls.unavailableFilters(plist) }).first {
                throw HDF5Error.unavailableFilter(tensor: key, filter: HDF5Error.filterName(id: filter.id, stored: filter.name))
            }
            let chunk = try sizes(chunkDims, key: key)
            guard let chunkBytes = try? Checked.mul(Checked.elementCount(chunk), elementSize), chunkBytes <= limit else {
                throw HDF5Error.tooLarge(tensor: key, reason: "chunk shape \(chunk) is larger than the limit of \(limit) bytes")
            }
        }
    }

    /// Maps a stored HDF5 type to a DType, refusing padded, non-IEEE and non-numeric types.
    private static func elementType(_ type: HDF5ID, key: String) throws -> ElementType {
        func unsupported(_ what: String) -> HDF5Error { HDF5Error.unsupportedType(tensor: key, type: what) }
        switch try HDF5Calls.typeClass(type) {
        case .integer:
            let size = try HDF5Calls.size(type)
            let signed = try HDF5Calls.isSigned(type)
            let bits = try HDF5Calls.precisionAndOffset(type)
            let dtypes: [Int: DType] = signed ? [1: .int8, 2: .int16, 4: .int32, 8: .int64] : [1: .uint8, 2: .uint16, 4: .uint32, 8: .uint64]
            guard bits.precision == size * 8, bits.offset == 0, let dtype = dtypes[size] else {
                throw unsupported("\(bits.precision)-bit integer in \(size) bytes")
            }
            return ElementType(dtype: dtype, bigEndian: try isBigEndian(type, size: size, unsupported))
        case .float:
            let size = try HDF5Calls.size(type)
            let bits = try HDF5Calls.precisionAndOffset(type)
            let layout = try HDF5Calls.floatLayout(type)
            guard bits.precision == size * 8, bits.offset == 0,
                  let dtype = ieeeLayouts.first(where: { $0.size == size && $0.layout == layout })?.dtype else {
                throw unsupported("non-IEEE \(size)-byte floating-point")
            }
            return ElementType(dtype: dtype, bigEndian: try isBigEndian(type, size: size, unsupported))
        case .enumeration:
            guard try isBoolEnum(type) else { throw unsupported("enum (other than h5py's FALSE/TRUE bool)") }
            return ElementType(dtype: .bool, bigEndian: false)
        case .string: throw unsupported("string")
        case .compound: throw unsupported("compound")
        case .variableLength: throw unsupported("variable-length")
        case .array: throw unsupported("array-typed")
        case .opaque: throw unsupported("opaque")
        case .bitfield: throw unsupported("bitfield")
        case .reference: throw unsupported("reference")
        case .time: throw unsupported("time")
        case .other: throw unsupported("unknown-class")
        }
    }

    private static func isBigEndian(_ type: HDF5ID, size: Int, _ unsupported: (String) -> HDF5Error) throws -> Bool {
        switch try HDF5Calls.byteOrder(type) {
        case .little: return false
        case .big: return size > 1
        case .none where size == 1: return false
        default: throw unsupported("mixed or VAX byte order")
        }
    }

    private static let ieeeLayouts: [(size: Int, layout: HDF5Calls.FloatLayout, dtype: DType)] = [
        (2, .init(signBit: 15, exponentBit: 10, exponentBits: 5, mantissaBit: 0, mantissaBits: 10, exponentBias: 15, normalisation: true), .float16),
        (2, .init(signBit: 15, exponentBit: 7, exponentBits: 8, mantissaBit: 0, mantissaBits: 7, exponentBias: 127, normalisation: true), .bfloat16),
        (4, .init(signBit: 31, exponentBit: 23, exponentBits: 8, mantissaBit: 0, mantissaBits: 23, exponentBias: 127, normalisation: true), .float32),
        (8, .init(signBit: 63, exponentBit: 52, exponentBits: 11, mantissaBit: 0, mantissaBits: 52, exponentBias: 1023, normalisation: true), .float64),
    ]

    /// h5py stores numpy bool as an enum over a one-byte integer with members FALSE = 0 and TRUE = 1.
    private static func isBoolEnum(_ type: HDF5ID) throws -> Bool {
        let base = try HDF5Calls.baseType(type)
        defer { HDF5Calls.closeType(base) }
        // The enum's own size is checked too: libhdf5 copies that many bytes per member value.
        guard try HDF5Calls.typeClass(base) == .integer, try HDF5Calls.size(base) == 1, try HDF5Calls.size(type) == 1,
              try HDF5Calls.memberCount(type) == 2 else { return false }
        var members: [String: Int8] = [:]
        for i in 0..<2 { members[try HDF5Calls.enumMemberName(type, i)] = try HDF5Calls.enumMemberByte(type, i) }
        return members == ["FALSE": 0, "TRUE": 1]
    }

    private static func swapByteOrder(_ data: inout [UInt8], elementSize: Int) {
        data.withUnsafeMutableBytes { raw in
            let n = raw.count / elementSize
            switch elementSize {
            case 2: for i in 0..<n { raw.storeBytes(of: raw.load(fromByteOffset: i * 2, as: UInt16.self).byteSwapped, toByteOffset: i * 2, as: UInt16.self) }
            case 4: for i in 0..<n { raw.storeBytes(of: raw.load(fromByteOffset: i * 4, as: UInt32.self).byteSwapped, toByteOffset: i * 4, as: UInt32.self) }
            case 8: for i in 0..<n { raw.storeBytes(of: raw.load(fromByteOffset: i * 8, as: UInt64.self).byteSwapped, toByteOffset: i * 8, as: UInt64.self) }
            default: break
            }
        }
    }

    // MARK: Root attributes

    /// Root attributes as strings: strings as they are, numbers in Swift's shortest
    /// round-trip form (float32 at float32 precision), bools as True/False,
    /// arrays in brackets. Attributes of other types are skipped with a note.
    private static func rootMetadata(_ root: HDF5ID, path: String, notes: inout [String]) throws -> [String: String] {
        var metadata: [String: String] = [:]
        var mappedFile: Data??
        func variableStringProblem(_ name: String) -> String? {
            if mappedFile == nil { mappedFile = .some(try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)) }
            guard let file = mappedFile ?? nil else { return "cannot map the file" }
            return file.withUnsafeBytes { HDF5GlobalHeapCheck.problem(attribute: name, file: $0) }
        }
        let count = try structure(nil) { try HDF5Calls.attributeCount(root) }
        if count > 0 { try structure(nil) { try HDF5Calls.checkAttributesDecode(root) } }
        var position: UInt64 = 0
        while position < count {
            defer { position += 1 }
            let attribute = try structure(nil) { try HDF5Calls.openAttribute(root, position: position) }
            defer { HDF5Calls.closeAttribute(attribute) }
            let name = try structure(nil) { try HDF5Calls.attributeName(attribute, maxLength: maxNameLength) }
            do {
                if try HDF5Calls.isVariableString(attribute: attribute), let problem = variableStringProblem(name) {
                    notes.append("skipped root attribute '\(echoed(name))': variable-length string that cannot be read safely (\(problem))")
                } else if let value = try attributeString(attribute) {
                    metadata[name] = value
                } else {
                    notes.append("skipped root attribute '\(echoed(name))': unsupported type or size")
                }
            } catch let failure as HDF5CallFailure {
                throw HDF5Error.corrupt(tensor: nil, reason: "root attribute '\(echoed(name))': \(failure.description)")
            }
        }
        return metadata
    }

    private static func attributeString(_ attribute: HDF5ID) throws -> String? {
        let type = try HDF5Calls.attributeType(attribute)
        defer { HDF5Calls.closeType(type) }
        let space = try HDF5Calls.attributeSpace(attribute)
        defer { HDF5Calls.closeSpace(space) }
        let kind = try HDF5Calls.spaceKind(space)
        let count = try HDF5Calls.elementCount(space)
        guard kind != .null, count <= maxAttributeElements else { return nil }
        func render(_ items: [String]) -> String { kind == .scalar ? items[0] : "[" + items.joined(separator: ", ") + "]" }

        switch try HDF5Calls.typeClass(type) {
        case .string:
            guard kind == .scalar else { return nil }
            if try HDF5Calls.isVariableString(type) { return try HDF5Calls.readVariableString(attribute, fileType: type) }
            let size = try HDF5Calls.size(type)
            guard size <= maxAttributeStringBytes else { return nil }
            let bytes = try HDF5Calls.readAttributeRaw(attribute, type: type, byteCount: size)
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        case .integer:
            if try HDF5Calls.isSigned(type) {
                return render(try HDF5Calls.readAttribute(attribute, count: count, as: Int64.self).map { String($0) })
            }
            return render(try HDF5Calls.readAttribute(attribute, count: count, as: UInt64.self).map { String($0) })
        case .float:
            if try HDF5Calls.size(type) <= 4 {
                return render(try HDF5Calls.readAttribute(attribute, count: count, as: Float.self).map { $0.description })
            }
            return render(try HDF5Calls.readAttribute(attribute, count: count, as: Double.self).map { $0.description })
        case .enumeration:
            guard try isBoolEnum(type) else { return nil }
            let bytes = try HDF5Calls.readAttributeRaw(attribute, type: type, byteCount: count)
            return render(bytes.map { $0 == 0 ? "False" : "True" })
        default:
            return nil
        }
    }
}
