import AISLFDCore

/// Constants and layout rules of the `.aisw` format, versions 1 and 2 (docs/aisw-format.md).
/// Everything is little-endian; every tensor's bytes start on a 64-byte boundary.
public enum AISWFormat {
    /// `\x89 A I S W \r \n \x1a`: the high byte and the line endings catch text-mode
    /// transfers, as PNG's signature does.
    public static let magic: [UInt8] = [0x89, 0x41, 0x49, 0x53, 0x57, 0x0D, 0x0A, 0x1A]
    /// The newest version; a writer writes the oldest version that holds its file (1 unless a
    /// tensor has scales per block or a layer computes in int8), so older readers still read it.
    public static let version: UInt32 = 2
    public static let versions: ClosedRange<UInt32> = 1...2
    public static let headerLength = 64
    public static let alignment = 64

    public static let maxMetadataLength = 16 << 20
    public static let maxTensorCount = 65_536
    public static let maxTableLength = 64 << 20
    public static let maxRank = 8
    public static let maxKeyLength = 512
    public static let maxRoleLength = 128
    public static let maxDimension = Int(Int32.max)
    /// Nesting depth of the metadata JSON (objects and arrays).
    public static let maxMetadataDepth = 64

    /// Fixed part of a table entry; the key, the role, padding to 8 and the dimensions follow.
    public static let entryFixedLength = 48
    /// The shortest possible entry: a one-byte key, no role, rank 0.
    public static let minEntryLength = 56

    /// Byte offsets of the header fields.
    public enum Header {
        public static let version = 8
        public static let headerLength = 12
        public static let fileLength = 16
        public static let metadataLength = 24
        public static let tableLength = 28
        public static let tensorCount = 32
        public static let reserved = 36          // 24 bytes, zero
        public static let checksum = 60
    }

    static func align(_ n: Int, to a: Int) throws -> Int {
        try Checked.add(n, a - 1) / a * a
    }

    /// Length of one table entry, a multiple of 8.
    public static func entryLength(keyLength: Int, roleLength: Int, rank: Int) throws -> Int {
        let strings = try align(Checked.add(entryFixedLength, Checked.add(keyLength, roleLength)), to: 8)
        return try Checked.add(strings, Checked.mul(8, rank))
    }

    /// The table starts after the metadata, padded to 8.
    public static func tableOffset(metadataLength: Int) throws -> Int {
        try Checked.add(headerLength, align(metadataLength, to: 8))
    }

    /// The data section starts after the table, padded to 64.
    public static func dataOffset(metadataLength: Int, tableLength: Int) throws -> Int {
        try align(Checked.add(tableOffset(metadataLength: metadataLength), tableLength), to: alignment)
    }
}

/// How a tensor's values are stored. The raw value is the name used in metadata and reports;
/// `code` is the byte in the table.
public enum AISWStorage: String, CaseIterable, Codable, Sendable {
    case fp32, fp16, int8

    public var code: UInt8 {
        switch self {
        case .fp32: return 1
        case .fp16: return 2
        case .int8: return 3
        }
    }

    public init?(code: UInt8) {
        guard let s = AISWStorage.allCases.first(where: { $0.code == code }) else { return nil }
        self = s
    }

    public var byteSize: Int {
        switch self {
        case .fp32: return 4
        case .fp16: return 2
        case .int8: return 1
        }
    }
}

/// Everything that can be wrong with an `.aisw` file, or with a request to write one.
/// Thrown wrapped in `FileError`, so the message starts with the file's path.
public enum AISWError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Opening, mapping or writing the file failed.
    case file(FileSystemError)
    case badMagic
    case unsupportedVersion(UInt32)
    case truncated(needed: Int, actual: Int)
    case trailingBytes(expected: Int, actual: Int)
    case invalidHeader(String)
    case headerChecksumMismatch(stored: UInt32, computed: UInt32)
    case limitExceeded(what: String, value: Int, limit: Int)
    case invalidMetadata(String)
    case invalidTable(String)
    /// A table entry whose key is not known yet (or not readable).
    case invalidEntry(index: Int, problem: String)
    case invalidTensor(key: String, problem: String)
    case duplicateKey(String)
    case outOfBounds(key: String, region: String, offset: Int, length: Int, fileLength: Int)
    case misaligned(key: String, region: String, offset: Int)
    case overlapping(key: String, region: String, offset: Int, previousEnd: Int)
    case checksumMismatch(key: String, region: String, stored: UInt32, computed: UInt32)
    case nonZeroPadding(offset: Int)
    case invalidScale(key: String, channel: Int, value: Float)
    case noSuchTensor(String)
    case sameFileAsInput(input: String)

    public var description: String {
        switch self {
        case .file(let problem): return problem.description
        case .badMagic: return "not an .aisw file (bad magic bytes)"
        case .unsupportedVersion(let v): return "unsupported .aisw version \(v) (this reader knows versions 1 and 2)"
        case .truncated(let needed, let actual): return "truncated: needs \(needed) bytes, file has \(actual)"
        case .trailingBytes(let expected, let actual): return "file has \(actual) bytes, the header says \(expected): trailing bytes"
        case .invalidHeader(let s): return "invalid header: \(echoed(s, limit: 300))"
        case .headerChecksumMismatch(let stored, let computed):
            return "header checksum mismatch (stored \(hex(stored)), computed \(hex(computed))): header, metadata or tensor table is corrupt"
        case .limitExceeded(let what, let value, let limit): return "\(what) \(value) exceeds the limit \(limit)"
        case .invalidMetadata(let s): return "invalid metadata: \(echoed(s, limit: 300))"
        case .invalidTable(let s): return "invalid tensor table: \(echoed(s, limit: 300))"
        case .invalidEntry(let index, let problem): return "tensor table entry \(index): \(echoed(problem, limit: 300))"
        case .invalidTensor(let key, let problem): return "tensor \(echoed(key)): \(echoed(problem, limit: 300))"
        case .duplicateKey(let key): return "tensor \(echoed(key)): key appears more than once"
        case .outOfBounds(let key, let region, let offset, let length, let fileLength):
            return "tensor \(echoed(key)): \(region) at offset \(offset) with length \(length) lies outside the data section (file length \(fileLength))"
        case .misaligned(let key, let region, let offset):
            return "tensor \(echoed(key)): \(region) offset \(offset) is not a multiple of \(AISWFormat.alignment)"
        case .overlapping(let key, let region, let offset, let previousEnd):
            return "tensor \(echoed(key)): \(region) at offset \(offset) starts before the end of the previous region (\(previousEnd))"
        case .checksumMismatch(let key, let region, let stored, let computed):
            return "tensor \(echoed(key)): \(region) checksum mismatch (stored \(hex(stored)), computed \(hex(computed))): data is corrupt"
        case .nonZeroPadding(let offset): return "padding byte at offset \(offset) is not zero"
        case .invalidScale(let key, let channel, let value): return "tensor \(echoed(key)): scale of channel \(channel) is \(value), must be finite and >= 0"
        case .noSuchTensor(let key): return "no tensor \(echoed(key))"
        case .sameFileAsInput(let input): return "output is the same file as the input \(input); refusing to overwrite it"
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}

/// The format's one dequantization: `value = Float(q) * scale` in binary32, with the scale of
/// the value's block: row c (index of axis 0) has `ceil(rowLength / group)` scales, one per
/// `group` consecutive values of the row; `group` 0 means one scale per row.
public enum AISWDequantize {
    /// Scales a row of `rowLength` values has with `group`.
    public static func scalesPerRow(rowLength: Int, group: Int) -> Int {
        group == 0 ? 1 : (rowLength + group - 1) / group
    }

    public static func int8(_ q: UnsafeRawBufferPointer, scales: [Float], rows: Int, group: Int) -> [Float] {
        let n = q.count
        guard rows > 0, n > 0 else { return [] }
        let rowLength = n / rows, perRow = scalesPerRow(rowLength: rowLength, group: group)
        guard scales.count == rows * perRow else { return [Float](repeating: 0, count: n) }
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { o in
            for c in 0..<rows {
                for j in 0..<rowLength {
                    let s = scales[c * perRow + (group == 0 ? 0 : j / group)]
                    o[c * rowLength + j] = Float(Int8(bitPattern: q[c * rowLength + j])) * s
                }
            }
        }
        return out
    }

    public static func int8(_ q: [Int8], scales: [Float], rows: Int, group: Int) -> [Float] {
        q.withUnsafeBytes { int8($0, scales: scales, rows: rows, group: group) }
    }

    /// Little-endian binary32 values.
    public static func fp32(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }

    /// Little-endian binary16 values, widened exactly.
    public static func fp16(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        (0..<(bytes.count / 2)).map { Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))) }
    }
}
