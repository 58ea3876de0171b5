import AISLFDCore

/// One file inside a zip archive, as its central directory describes it.
public struct ZipEntry: Sendable, Equatable {
    public let name: String
    /// 0 stored, 8 deflate; others are listed but cannot be read.
    public let method: Int
    public let flags: Int
    public let crc32: UInt32
    public let compressedSize: Int
    public let uncompressedSize: Int
    public let localHeaderOffset: Int
    let nameBytes: [UInt8]
}

/// A read-only zip archive held in memory. Every offset and size from the
/// file is checked against the real byte count before use, and no entry is
/// inflated past what the caller allows.
public struct ZipArchive: Sendable {
    public let entries: [ZipEntry]
    let bytes: [UInt8]
    private let indexByName: [String: Int]
    /// Where the central directory starts: every entry's data lies before it.
    let centralDirectoryOffset: Int

    /// Deflate's best case is 258 bytes from 2 bits (about 1032:1); a larger
    /// claimed ratio is a lie, refused before inflating anything.
    static let maxDeflateRatio = 1032

    private static let eocdSignature: UInt32 = 0x0605_4b50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    private static let zip64EOCDSignature: UInt32 = 0x0606_4b50
    private static let centralSignature: UInt32 = 0x0201_4b50
    private static let localSignature: UInt32 = 0x0403_4b50

    /// True when `prefix` starts like a zip file (a local header, or the
    /// end record of an empty archive).
    public static func hasZipSignature(_ prefix: [UInt8]) -> Bool {
        guard prefix.count >= 4 else { return false }
        let s = UInt32(prefix[0]) | UInt32(prefix[1]) << 8 | UInt32(prefix[2]) << 16 | UInt32(prefix[3]) << 24
        return s == localSignature || s == eocdSignature
    }

    /// The name of the first entry from a file's first bytes, if the prefix is
    /// long enough to hold it. Sniffing only: the central directory decides.
    static func firstLocalName(_ prefix: [UInt8]) -> String? {
        let r = ZipBytesReader(prefix)
        guard let sig = try? r.u32(0), sig == localSignature, let n = try? Int(r.u16(26)),
              prefix.count >= 30 + n else { return nil }
        return String(decoding: prefix[30..<(30 + n)], as: UTF8.self)
    }

    public init(bytes: [UInt8]) throws {
        self.bytes = bytes
        let r = ZipBytesReader(bytes)
        let eocd = try Self.findEndRecord(bytes)

        var entryCount = Int(try r.u16(eocd + 10))
        var cdSize = Int(try r.u32(eocd + 12))
        var cdOffset = Int(try r.u32(eocd + 16))
        let disk = try r.u16(eocd + 4), cdDisk = try r.u16(eocd + 6)
        var directoryEnd = eocd

        // Like Python's zipfile, a zip64 locator right before the end record
        // is used whenever present, not only when a 32-bit field is saturated.
        let locator = eocd - 20
        let hasLocator = try locator >= 0 && r.u32(locator) == Self.zip64LocatorSignature
        if entryCount == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF || hasLocator {
            guard hasLocator else {
                throw ZipError.badSignature(what: "zip64 end-of-central-directory locator", offset: max(locator, 0))
            }
            let record = try Self.size(r.u64(locator + 8), "zip64 end-of-central-directory offset")
            guard try Self.sum(record, 56, "zip64 end-of-central-directory offset") <= locator else {
                throw ZipError.outOfBounds(what: "zip64 end-of-central-directory record")
            }
            guard try r.u32(record) == Self.zip64EOCDSignature else {
                throw ZipError.badSignature(what: "zip64 end-of-central-directory record", offset: record)
            }
            guard try r.u32(record + 16) == 0, try r.u32(record + 20) == 0 else { throw ZipError.multiDisk }
            entryCount = try Self.size(r.u64(record + 32), "zip64 entry count")
            cdSize = try Self.size(r.u64(record + 40), "zip64 central directory size")
            cdOffset = try Self.size(r.u64(record + 48), "zip64 central directory offset")
            directoryEnd = record
        } else if disk != 0 || cdDisk != 0 {
            throw ZipError.multiDisk
        }

        guard try Self.sum(cdOffset, cdSize, "central directory offset") <= directoryEnd else {
            throw ZipError.outOfBounds(what: "central directory (\(cdSize) bytes at offset \(cdOffset))")
        }
        // Each central record takes at least 46 bytes: a count beyond that is a lie.
        guard entryCount <= cdSize / 46 else {
            throw ZipError.outOfBounds(what: "central directory of \(entryCount) entries")
        }
        centralDirectoryOffset = cdOffset

        var list: [ZipEntry] = []
        list.reserveCapacity(entryCount)
        var byName: [String: Int] = [:]
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for index in 0..<entryCount {
            let what = "central directory record \(index)"
            guard try Self.sum(p, 46, what) <= cdEnd else { throw ZipError.outOfBounds(what: what) }
            guard try r.u32(p) == Self.centralSignature else { throw ZipError.badSignature(what: what, offset: p) }
            let flags = Int(try r.u16(p + 8))
            let method = Int(try r.u16(p + 10))
            let crc = try r.u32(p + 16)
            var compressed = UInt64(try r.u32(p + 20))
            var uncompressed = UInt64(try r.u32(p + 24))
            let nameLength = Int(try r.u16(p + 28))
            let extraLength = Int(try r.u16(p + 30))
            let commentLength = Int(try r.u16(p + 32))
            let startDisk = try r.u16(p + 34)
            var localOffset = UInt64(try r.u32(p + 42))
            let nameStart = p + 46
            let extraStart = nameStart + nameLength
            let next = extraStart + extraLength + commentLength
            guard next <= cdEnd else { throw ZipError.outOfBounds(what: what) }
            let nameBytes = Array(bytes[nameStart..<extraStart])
            let name = String(decoding: nameBytes, as: UTF8.self)

            // The zip64 extra field holds, in this order, only the fields whose
            // 32-bit value is saturated.
            if uncompressed == 0xFFFF_FFFF || compressed == 0xFFFF_FFFF || localOffset == 0xFFFF_FFFF {
                guard let z = try Self.zip64Extra(r, from: extraStart, count: extraLength) else {
                    throw ZipError.outOfBounds(what: "zip64 extra field of entry '\(name)'")
                }
                var q = z.lowerBound
                func take() throws -> UInt64 {
                    guard q + 8 <= z.upperBound else { throw ZipError.outOfBounds(what: "zip64 extra field of entry '\(name)'") }
                    defer { q += 8 }
                    return try r.u64(q)
                }
                if uncompressed == 0xFFFF_FFFF { uncompressed = try take() }
                if compressed == 0xFFFF_FFFF { compressed = try take() }
                if localOffset == 0xFFFF_FFFF { localOffset = try take() }
            } else if startDisk != 0 {
                throw ZipError.multiDisk
            }

            let entry = ZipEntry(
                name: name, method: method, flags: flags, crc32: crc,
                compressedSize: try Self.size(compressed, "compressed size of entry '\(name)'"),
                uncompressedSize: try Self.size(uncompressed, "uncompressed size of entry '\(name)'"),
                localHeaderOffset: try Self.size(localOffset, "local header offset of entry '\(name)'"),
                nameBytes: nameBytes)
            guard try Self.sum(entry.localHeaderOffset, 30, "local header offset of entry '\(name)'") <= cdOffset else {
                throw ZipError.outOfBounds(what: "local header of entry '\(name)'")
            }
            guard byName.updateValue(list.count, forKey: name) == nil else { throw ZipError.duplicateEntry(name) }
            list.append(entry)
            p = next
        }
        entries = list
        indexByName = byName
    }

    public func entry(named name: String) -> ZipEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// The whole entry, refused before any work if it declares more than `limit`
    /// bytes; inflation stops at the declared size and the CRC-32 is checked.
    public func read(_ entry: ZipEntry, limit: Int = Int.max) throws -> [UInt8] {
        Array(try contents(entry, limit: limit))
    }

    /// Like `read`, but a stored entry comes back as a slice of the archive's
    /// bytes, without a copy.
    public func contents(_ entry: ZipEntry, limit: Int = Int.max) throws -> ArraySlice<UInt8> {
        let range = try dataRange(entry)
        if entry.flags & 1 != 0 { throw ZipError.encrypted(entry: entry.name) }
        let declared = entry.uncompressedSize
        guard declared <= limit else {
            throw ZipError.entryTooLarge(entry: entry.name, declared: declared, limit: limit)
        }
        let data: ArraySlice<UInt8>
        switch entry.method {
        case 0:
            guard entry.compressedSize == declared else {
                throw ZipError.storedSizeMismatch(entry: entry.name, compressed: entry.compressedSize, uncompressed: declared)
            }
            data = bytes[range]
        case 8:
            try checkRatio(entry)
            data = try inflate(entry, range, limit: declared, exact: true)[...]
            guard data.count == declared else {
                throw ZipError.inflatedSizeMismatch(entry: entry.name, declared: declared, actual: data.count)
            }
        default:
            throw ZipError.unsupportedMethod(entry: entry.name, method: entry.method)
        }
        let actual = data.withUnsafeBytes { AISLFDCore.crc32($0) }
        guard actual == entry.crc32 else {
            throw ZipError.crcMismatch(entry: entry.name, expected: entry.crc32, actual: actual)
        }
        return data
    }

    /// The first `count` bytes of an entry (fewer if the entry is shorter),
    /// without inflating the rest. No CRC check: that needs the whole entry.
    public func readPrefix(_ entry: ZipEntry, count: Int) throws -> [UInt8] {
        let range = try dataRange(entry)
        if entry.flags & 1 != 0 { throw ZipError.encrypted(entry: entry.name) }
        let n = min(count, entry.uncompressedSize)
        switch entry.method {
        case 0:
            guard entry.compressedSize == entry.uncompressedSize else {
                throw ZipError.storedSizeMismatch(entry: entry.name, compressed: entry.compressedSize, uncompressed: entry.uncompressedSize)
            }
            return Array(bytes[range.lowerBound..<(range.lowerBound + n)])
        case 8:
            try checkRatio(entry)
            return try inflate(entry, range, limit: n, exact: false)
        default:
            throw ZipError.unsupportedMethod(entry: entry.name, method: entry.method)
        }
    }

    /// The compressed bytes of an entry, located through its own local header
    /// (whose name and extra lengths may differ from the central record's).
    private func dataRange(_ entry: ZipEntry) throws -> Range<Int> {
        let r = ZipBytesReader(bytes)
        let p = entry.localHeaderOffset
        guard try r.u32(p) == Self.localSignature else {
            throw ZipError.badSignature(what: "local header of entry '\(entry.name)'", offset: p)
        }
        let nameLength = Int(try r.u16(p + 26))
        let extraLength = Int(try r.u16(p + 28))
        let start = p + 30 + nameLength + extraLength
        let end = try Self.sum(start, entry.compressedSize, "compressed size of entry '\(entry.name)'")
        guard end <= centralDirectoryOffset else {
            throw ZipError.outOfBounds(what: "data of entry '\(entry.name)' (\(entry.compressedSize) bytes at offset \(start))")
        }
        guard nameLength == entry.nameBytes.count, bytes[(p + 30)..<(p + 30 + nameLength)].elementsEqual(entry.nameBytes),
              Int(try r.u16(p + 8)) == entry.method else {
            throw ZipError.localHeaderMismatch(entry: entry.name)
        }
        return start..<end
    }

    private func checkRatio(_ entry: ZipEntry) throws {
        // compressedSize is at most the file size here, so this cannot overflow.
        let bound = entry.compressedSize * Self.maxDeflateRatio + 1024
        guard entry.uncompressedSize <= bound else {
            throw ZipError.impossibleRatio(entry: entry.name, declared: entry.uncompressedSize, compressed: entry.compressedSize)
        }
    }

    private func inflate(_ entry: ZipEntry, _ range: Range<Int>, limit: Int, exact: Bool) throws -> [UInt8] {
        do {
            return try bytes.withUnsafeBytes { raw in
                try RawInflate.inflate(UnsafeRawBufferPointer(rebasing: raw[range]), limit: limit, exact: exact)
            }
        } catch let failure as RawInflate.Failure {
            switch failure {
            case .corrupt(let detail): throw ZipError.corruptDeflate(entry: entry.name, detail: detail)
            case .truncated: throw ZipError.corruptDeflate(entry: entry.name, detail: "stream ends early")
            case .longerThanAllowed: throw ZipError.inflatesBeyondDeclaredSize(entry: entry.name, declared: limit)
            case .outOfMemory: throw ZipError.outOfMemory(entry: entry.name)
            case .initFailed(let status): throw ZipError.corruptDeflate(entry: entry.name, detail: "zlib init status \(status)")
            }
        }
    }

    /// The end record is the last 22 bytes plus a comment of up to 65535 bytes:
    /// scan back at most that far, taking the record whose comment ends the file.
    private static func findEndRecord(_ bytes: [UInt8]) throws -> Int {
        guard bytes.count >= 22 else { throw ZipError.notAZip(byteCount: bytes.count) }
        let r = ZipBytesReader(bytes)
        let last = bytes.count - 22
        let first = max(0, last - 0xFFFF)
        var p = last
        while p >= first {
            if bytes[p] == 0x50, try r.u32(p) == eocdSignature, try Int(r.u16(p + 20)) == bytes.count - p - 22 {
                return p
            }
            p -= 1
        }
        throw ZipError.notAZip(byteCount: bytes.count)
    }

    private static func zip64Extra(_ r: ZipBytesReader, from start: Int, count: Int) throws -> Range<Int>? {
        var p = start
        let end = start + count
        while p + 4 <= end {
            let id = try r.u16(p)
            let size = Int(try r.u16(p + 2))
            guard p + 4 + size <= end else { return nil }
            if id == 0x0001 { return (p + 4)..<(p + 4 + size) }
            p += 4 + size
        }
        return nil
    }

    private static func sum(_ a: Int, _ b: Int, _ what: String) throws -> Int {
        do { return try Checked.add(a, b) } catch let e as SizeError { throw ZipError.badSize(what: what, e) }
    }

    private static func size(_ v: UInt64, _ what: String) throws -> Int {
        do { return try Checked.int(v) } catch let e as SizeError { throw ZipError.badSize(what: what, e) }
    }
}

/// Bounds-checked little-endian loads from a byte array.
struct ZipBytesReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private func check(_ offset: Int, _ n: Int) throws {
        guard offset >= 0, offset <= bytes.count - n else {
            throw ZipError.outOfBounds(what: "\(n)-byte field at offset \(offset)")
        }
    }

    func u16(_ o: Int) throws -> UInt16 {
        try check(o, 2)
        return UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8
    }

    func u32(_ o: Int) throws -> UInt32 {
        try check(o, 4)
        return UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
    }

    func u64(_ o: Int) throws -> UInt64 {
        try check(o, 8)
        return UInt64(try u32(o)) | UInt64(try u32(o + 4)) << 32
    }
}
