import AISLFDCore

/// One row of the tensor table, checked against the file at open.
public struct AISWTensorEntry: Sendable, Equatable {
    public let key: String
    public let storage: AISWStorage
    public let shape: [Int]
    public let role: String
    /// Absolute file offset of the data, a multiple of 64.
    public let dataOffset: Int
    /// Stored bytes (elements x storage size).
    public let byteCount: Int
    public let dataCRC32: UInt32
    /// int8 only: absolute offset of the float32 scales, a multiple of 64; 0 otherwise.
    public let scalesOffset: Int
    public let scalesByteCount: Int
    public let scalesCRC32: UInt32
    /// int8 only: one scale per index of axis 0, or with `scaleGroup` > 0 per block of values of a row.
    public let scales: [Float]?
    /// int8: values per scale along each row (version 2); 0 is one scale per row.
    public let scaleGroup: Int

    public var elementCount: Int { byteCount / storage.byteSize }
}

/// An `.aisw` file, memory-mapped. Tensor bytes are read from the mapping (`rawData` is a view into it); views stay
/// valid while this object lives. Opening checks the header, metadata and table completely,
/// and by default every tensor checksum too (`verifyData`).
///
/// The mapping is of the file as it is on disk: if another process truncates the file while
/// it is open, touching the lost pages raises SIGBUS. Write .aisw files atomically (as
/// `AISWWriter` does) and this cannot happen.
public final class AISWFile: @unchecked Sendable {
    public let path: String
    public let metadata: AISWMetadata
    /// The metadata exactly as stored (all keys, including ones this version does not model).
    public let metadataJSON: JSONValue
    public let tensors: [AISWTensorEntry]
    public let fileLength: Int
    /// The format version the file is written in (1 or 2).
    public let version: UInt32
    /// Start of the data section.
    public let dataOffset: Int
    private let mapping: FileSystem.Mapping
    private let index: [String: Int]

    public static func open(path: String, verifyData: Bool = true) throws -> AISWFile {
        do {
            let file = try AISWFile(path: path)
            if verifyData { try file.verifyRegions() }
            return file
        } catch let e as FileError {
            throw e
        } catch {
            throw FileError(path: path, problem: error)
        }
    }

    public func entry(_ key: String) -> AISWTensorEntry? {
        index[key].map { tensors[$0] }
    }

    /// The stored bytes of a tensor, in place; valid while this object lives.
    public func rawData(_ key: String) throws -> UnsafeRawBufferPointer {
        let e = try entryOrThrow(key)
        return UnsafeRawBufferPointer(rebasing: mapping.bytes[e.dataOffset..<(e.dataOffset + e.byteCount)])
    }

    /// Any tensor's values as float32: fp32 copied, fp16 widened exactly, int8 as
    /// `Float(q) * scale` of its row or block (`AISWDequantize`).
    public func floats(_ key: String) throws -> [Float] {
        let e = try entryOrThrow(key)
        let raw = try rawData(key)
        switch e.storage {
        case .fp32: return AISWDequantize.fp32(raw)
        case .fp16: return AISWDequantize.fp16(raw)
        case .int8: return AISWDequantize.int8(raw, scales: e.scales ?? [], rows: e.shape.first ?? 0, group: e.scaleGroup)
        }
    }

    /// An int8 tensor's stored values, one byte each.
    public func int8Values(_ key: String) throws -> [Int8] {
        let e = try entryOrThrow(key)
        guard e.storage == .int8 else { throw fail(.invalidTensor(key: key, problem: "is \(e.storage.rawValue), not int8")) }
        return try rawData(key).map { Int8(bitPattern: $0) }
    }

    /// Checks every tensor's data and scales against their CRC-32 and that every byte of
    /// the data section outside them is zero. The header checksum was checked at open.
    public func verify() throws {
        do { try verifyRegions() } catch { throw FileError(path: path, problem: error) }
    }

    // MARK: - Opening

    private func entryOrThrow(_ key: String) throws -> AISWTensorEntry {
        guard let e = entry(key) else { throw fail(.noSuchTensor(key)) }
        return e
    }

    private func fail(_ e: AISWError) -> FileError { FileError(path: path, problem: e) }

    private init(path: String) throws {
        let mapping: FileSystem.Mapping
        do { mapping = try FileSystem.Mapping(path: path) } catch let e as FileSystemError { throw AISWError.file(e) }
        let bytes = mapping.bytes
        let size = bytes.count

        // Wrong files say so before short ones do.
        let prefix = min(size, 8)
        guard Array(bytes[0..<prefix]) == Array(AISWFormat.magic[0..<prefix]) else { throw AISWError.badMagic }
        guard size >= AISWFormat.headerLength else { throw AISWError.truncated(needed: AISWFormat.headerLength, actual: size) }
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }

        let version = u32(AISWFormat.Header.version)
        guard AISWFormat.versions.contains(version) else { throw AISWError.unsupportedVersion(version) }
        let headerLength = Int(u32(AISWFormat.Header.headerLength))
        guard headerLength == AISWFormat.headerLength else { throw AISWError.invalidHeader("header length \(headerLength), must be 64") }
        guard let fileLength = Int(exactly: u64(AISWFormat.Header.fileLength)) else { throw AISWError.invalidHeader("file length does not fit 63 bits") }
        guard size >= fileLength else { throw AISWError.truncated(needed: fileLength, actual: size) }
        guard size == fileLength else { throw AISWError.trailingBytes(expected: fileLength, actual: size) }
        let metadataLength = Int(u32(AISWFormat.Header.metadataLength))
        let tableLength = Int(u32(AISWFormat.Header.tableLength))
        let tensorCount = Int(u32(AISWFormat.Header.tensorCount))
        guard metadataLength <= AISWFormat.maxMetadataLength else {
            throw AISWError.limitExceeded(what: "metadata length", value: metadataLength, limit: AISWFormat.maxMetadataLength)
        }
        guard tableLength <= AISWFormat.maxTableLength else {
            throw AISWError.limitExceeded(what: "table length", value: tableLength, limit: AISWFormat.maxTableLength)
        }
        guard tensorCount <= AISWFormat.maxTensorCount else {
            throw AISWError.limitExceeded(what: "tensor count", value: tensorCount, limit: AISWFormat.maxTensorCount)
        }
        let tableOffset = try AISWFormat.tableOffset(metadataLength: metadataLength)
        let dataOffset = try AISWFormat.dataOffset(metadataLength: metadataLength, tableLength: tableLength)
        guard dataOffset <= fileLength else { throw AISWError.truncated(needed: dataOffset, actual: fileLength) }

        let stored = u32(AISWFormat.Header.checksum)
        let computed = crc32(UnsafeRawBufferPointer(rebasing: bytes[AISWFormat.headerLength..<dataOffset]),
                             seed: crc32(UnsafeRawBufferPointer(rebasing: bytes[0..<AISWFormat.Header.checksum])))
        guard stored == computed else { throw AISWError.headerChecksumMismatch(stored: stored, computed: computed) }
        for o in stride(from: AISWFormat.Header.reserved, to: AISWFormat.Header.checksum, by: 1) where bytes[o] != 0 {
            throw AISWError.invalidHeader("reserved byte \(o) is not zero")
        }

        // Metadata: strict JSON first (duplicates, depth), then the typed fields.
        let metaBytes = Array(bytes[AISWFormat.headerLength..<(AISWFormat.headerLength + metadataLength)])
        let json = try AISWMetadata.parseJSON(metaBytes)
        guard case .object = json else { throw AISWError.invalidMetadata("not a JSON object") }
        let metadata = try AISWMetadata.decode(metaBytes)

        // Table: the smallest entry bounds how many entries the table can hold, before any
        // array is sized from the count.
        guard tensorCount <= tableLength / AISWFormat.minEntryLength else {
            throw AISWError.invalidTable("\(tableLength) bytes cannot hold \(tensorCount) entries")
        }
        let tableEnd = tableOffset + tableLength
        var entries: [AISWTensorEntry] = []
        entries.reserveCapacity(tensorCount)
        var index: [String: Int] = [:]
        var cursor = tableOffset
        var previousEnd = dataOffset
        for i in 0..<tensorCount {
            guard cursor + AISWFormat.entryFixedLength <= tableEnd else { throw AISWError.invalidTable("entry \(i) runs past the end of the table") }
            let keyLength = Int(u16(cursor)), roleLength = Int(u16(cursor + 2))
            let storageCode = bytes[cursor + 4], rank = Int(bytes[cursor + 5])
            guard keyLength >= 1 else { throw AISWError.invalidEntry(index: i, problem: "empty key") }
            guard keyLength <= AISWFormat.maxKeyLength else {
                throw AISWError.limitExceeded(what: "key length of table entry \(i)", value: keyLength, limit: AISWFormat.maxKeyLength)
            }
            guard roleLength <= AISWFormat.maxRoleLength else {
                throw AISWError.limitExceeded(what: "role length of table entry \(i)", value: roleLength, limit: AISWFormat.maxRoleLength)
            }
            let strings = cursor + AISWFormat.entryFixedLength
            guard strings + keyLength + roleLength <= tableEnd else { throw AISWError.invalidTable("entry \(i) runs past the end of the table") }
            guard let key = String(validating: bytes[strings..<(strings + keyLength)], as: UTF8.self) else {
                throw AISWError.invalidEntry(index: i, problem: "key is not valid UTF-8")
            }
            func bad(_ problem: String) -> AISWError { .invalidTensor(key: key, problem: problem) }
            guard let role = String(validating: bytes[(strings + keyLength)..<(strings + keyLength + roleLength)], as: UTF8.self) else {
                throw bad("role is not valid UTF-8")
            }
            guard let storage = AISWStorage(code: storageCode) else { throw bad("unknown storage code \(storageCode)") }
            guard rank <= AISWFormat.maxRank else {
                throw AISWError.limitExceeded(what: "rank of tensor \(key)", value: rank, limit: AISWFormat.maxRank)
            }
            let scaleGroup = Int(u16(cursor + 6))
            guard scaleGroup == 0 || (version >= 2 && storage == .int8) else {
                throw bad(version == 1 ? "reserved table field is not zero" : "scale group set for \(storage.rawValue) storage")
            }
            let entryLength = try AISWFormat.entryLength(keyLength: keyLength, roleLength: roleLength, rank: rank)
            guard cursor + entryLength <= tableEnd else { throw AISWError.invalidTable("entry of \(key) runs past the end of the table") }
            for o in (strings + keyLength + roleLength)..<(cursor + entryLength - 8 * rank) where bytes[o] != 0 {
                throw bad("table padding is not zero")
            }
            var shape: [Int] = []
            for d in 0..<rank {
                let v = u64(cursor + entryLength - 8 * rank + 8 * d)
                guard v <= UInt64(AISWFormat.maxDimension) else {
                    throw AISWError.limitExceeded(what: "dimension \(d) of tensor \(key)", value: Int(clamping: v), limit: AISWFormat.maxDimension)
                }
                shape.append(Int(v))
            }
            guard index.updateValue(i, forKey: key) == nil else { throw AISWError.duplicateKey(key) }

            guard let expected = try? Checked.mul(Checked.elementCount(shape), storage.byteSize) else {
                throw bad("shape \(shape) has more bytes than 64-bit sizes hold")
            }
            let (dataStart, dataLength) = try Self.region(key: key, name: "data", offset: u64(cursor + 8), length: u64(cursor + 16),
                                                          dataOffset: dataOffset, previousEnd: previousEnd, fileLength: fileLength)
            guard dataLength == expected else { throw bad("\(dataLength) data bytes, shape \(shape) of \(storage.rawValue) needs \(expected)") }
            previousEnd = dataStart + dataLength

            var scales: [Float]? = nil
            var scalesStart = 0, scalesLength = 0
            let scalesCRC = u32(cursor + 44)
            if storage == .int8 {
                guard let channels = shape.first else { throw bad("int8 storage needs rank >= 1") }
                (scalesStart, scalesLength) = try Self.region(key: key, name: "scales", offset: u64(cursor + 24), length: u64(cursor + 32),
                                                              dataOffset: dataOffset, previousEnd: previousEnd, fileLength: fileLength)
                let perRow = AISWDequantize.scalesPerRow(rowLength: channels == 0 ? 0 : dataLength / channels, group: scaleGroup)
                guard scalesLength == channels * perRow * 4 else {
                    throw bad("\(scalesLength) scale bytes for \(channels) channels" + (scaleGroup == 0 ? "" : " of \(perRow) blocks of \(scaleGroup)"))
                }
                previousEnd = scalesStart + scalesLength
                let s = (0..<(channels * perRow)).map {
                    Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: scalesStart + 4 * $0, as: UInt32.self)))
                }
                if let c = s.firstIndex(where: { !($0.isFinite && $0 >= 0) }) { throw AISWError.invalidScale(key: key, channel: c, value: s[c]) }
                scales = s
            } else {
                guard u64(cursor + 24) == 0, u64(cursor + 32) == 0, scalesCRC == 0 else { throw bad("scale fields set for \(storage.rawValue) storage") }
            }
            entries.append(AISWTensorEntry(key: key, storage: storage, shape: shape, role: role, dataOffset: dataStart,
                                           byteCount: dataLength, dataCRC32: u32(cursor + 40), scalesOffset: scalesStart,
                                           scalesByteCount: scalesLength, scalesCRC32: scalesCRC, scales: scales, scaleGroup: scaleGroup))
            cursor += entryLength
        }
        guard cursor == tableEnd else { throw AISWError.invalidTable("\(tableEnd - cursor) bytes left after the last entry") }
        for key in metadata.tensorHistory.keys where index[key] == nil {
            throw AISWError.invalidMetadata("tensor_history names \(key), which is not in the table")
        }
        if let compute = metadata.int8Compute {
            guard version >= 2 else { throw AISWError.invalidMetadata("int8_compute needs version 2, the file is version 1") }
            for (key, c) in compute.sorted(by: { $0.key < $1.key }) {
                guard let i = index[key], entries[i].storage == .int8, entries[i].scaleGroup == 0 else {
                    throw AISWError.invalidMetadata("int8_compute names \(key), which is not an int8 tensor with one scale per output channel")
                }
                guard c.inputScale.isFinite, c.inputScale > 0, (0...255).contains(c.inputZeroPoint) else {
                    throw AISWError.invalidMetadata("int8_compute of \(key): input scale must be finite and > 0, zero point 0 ... 255")
                }
            }
        }

        self.path = path
        self.metadata = metadata
        self.metadataJSON = json
        self.tensors = entries
        self.fileLength = fileLength
        self.version = version
        self.dataOffset = dataOffset
        self.mapping = mapping
        self.index = index
    }

    /// Checks one region of a tensor: aligned, after the previous region, inside the file.
    private static func region(key: String, name: String, offset: UInt64, length: UInt64,
                               dataOffset: Int, previousEnd: Int, fileLength: Int) throws -> (Int, Int) {
        let outside = AISWError.outOfBounds(key: key, region: name, offset: Int(clamping: offset), length: Int(clamping: length), fileLength: fileLength)
        guard let start = Int(exactly: offset), let count = Int(exactly: length) else { throw outside }
        guard start % AISWFormat.alignment == 0 else { throw AISWError.misaligned(key: key, region: name, offset: start) }
        let (end, overflow) = start.addingReportingOverflow(count)
        guard !overflow, start >= dataOffset, end <= fileLength else { throw outside }
        guard start >= previousEnd else { throw AISWError.overlapping(key: key, region: name, offset: start, previousEnd: previousEnd) }
        return (start, count)
    }

    private func verifyRegions() throws {
        let bytes = mapping.bytes
        var gapStart = dataOffset
        func checkGap(upTo end: Int) throws {
            for o in gapStart..<end where bytes[o] != 0 { throw AISWError.nonZeroPadding(offset: o) }
        }
        for e in tensors {
            try checkGap(upTo: e.dataOffset)
            let crc = crc32(UnsafeRawBufferPointer(rebasing: bytes[e.dataOffset..<(e.dataOffset + e.byteCount)]))
            guard crc == e.dataCRC32 else { throw AISWError.checksumMismatch(key: e.key, region: "data", stored: e.dataCRC32, computed: crc) }
            gapStart = e.dataOffset + e.byteCount
            if e.storage == .int8 {
                try checkGap(upTo: e.scalesOffset)
                let crc = crc32(UnsafeRawBufferPointer(rebasing: bytes[e.scalesOffset..<(e.scalesOffset + e.scalesByteCount)]))
                guard crc == e.scalesCRC32 else { throw AISWError.checksumMismatch(key: e.key, region: "scales", stored: e.scalesCRC32, computed: crc) }
                gapStart = e.scalesOffset + e.scalesByteCount
            }
        }
        try checkGap(upTo: fileLength)
    }
}
