import AISLFDCore

public enum NPYError: Error, Equatable, CustomStringConvertible, Sendable {
    case badMagic
    case unsupportedVersion(major: Int, minor: Int)
    case truncatedHeader(needed: Int, available: Int)
    case headerTooLarge(Int, limit: Int)
    case malformedHeader(String)
    case unsupportedDType(String)
    case badShape(String)
    /// The data after the header is not the size its shape and dtype need.
    case dataSizeMismatch(descr: String, shape: [Int], expected: Int, actual: Int)
    case stridedCopy(String)

    public var description: String {
        switch self {
        case .badMagic: return "not an .npy array (bad magic string)"
        case .unsupportedVersion(let major, let minor): return "unsupported .npy format version \(major).\(minor)"
        case .truncatedHeader(let needed, let available):
            return "truncated .npy header: needs \(needed) bytes, has \(available)"
        case .headerTooLarge(let n, let limit): return ".npy header of \(n) bytes exceeds the limit of \(limit)"
        case .malformedHeader(let why): return "malformed .npy header: \(echoed(why, limit: 300))"
        case .unsupportedDType(let descr): return "unsupported .npy dtype '\(echoed(descr, limit: 40))'"
        case .badShape(let why): return "bad .npy shape: \(echoed(why, limit: 300))"
        case .dataSizeMismatch(let descr, let shape, let expected, let actual):
            let relation = actual < expected ? "shorter" : "longer"
            return "data is \(actual) bytes but shape \(shape) of '\(echoed(descr, limit: 40))' needs \(expected) (\(relation) than the header says)"
        case .stridedCopy(let why): return "cannot reorder Fortran-ordered data: \(why)"
        }
    }
}

/// A parsed .npy header: what the data after it must be.
struct NPYHeader: Equatable {
    var descr: String
    var dtype: DType
    var bigEndian: Bool
    var fortranOrder: Bool
    var shape: [Int]
    /// Bytes before the data: magic, version, length field, header text.
    var headerSize: Int
    var dataSize: Int
}

/// The .npy format (NumPy's NEP 1): magic, version, little-endian header
/// length, then a Python dict literal — parsed here by a small strict
/// parser that accepts only what `numpy.save` writes, never evaluated.
enum NPYFormat {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
    /// numpy itself refuses headers over 10000 bytes unless told otherwise.
    static let maxHeaderLength = 1 << 20
    /// Bytes that always suffice to learn the header's size.
    static let fixedPrefixSize = 12
    static let maxRank = 64

    /// The total header size (magic through padding) from the file's first bytes.
    static func headerSize(_ prefix: [UInt8]) throws -> Int {
        guard prefix.count >= 8 else {
            if !prefix.elementsEqual(magic.prefix(prefix.count)) { throw NPYError.badMagic }
            throw NPYError.truncatedHeader(needed: 10, available: prefix.count)
        }
        guard prefix[0..<6].elementsEqual(magic) else { throw NPYError.badMagic }
        let major = Int(prefix[6]), minor = Int(prefix[7])
        let lengthBytes: Int
        switch (major, minor) {
        case (1, 0): lengthBytes = 2
        case (2, 0), (3, 0): lengthBytes = 4
        default: throw NPYError.unsupportedVersion(major: major, minor: minor)
        }
        guard prefix.count >= 8 + lengthBytes else {
            throw NPYError.truncatedHeader(needed: 8 + lengthBytes, available: prefix.count)
        }
        var length = 0
        for i in 0..<lengthBytes { length |= Int(prefix[8 + i]) << (8 * i) }
        guard length <= maxHeaderLength else { throw NPYError.headerTooLarge(length, limit: maxHeaderLength) }
        return 8 + lengthBytes + length
    }

    /// Parses the header at the start of `bytes` (which may hold more than the header).
    static func parseHeader(_ bytes: [UInt8]) throws -> NPYHeader {
        let size = try headerSize(bytes)
        guard bytes.count >= size else { throw NPYError.truncatedHeader(needed: size, available: bytes.count) }
        let textStart = bytes[6] == 1 ? 10 : 12
        var parser = HeaderParser(bytes: Array(bytes[textStart..<size]))
        let fields = try parser.parseDict()

        guard case .string(let descr)? = fields["descr"] else { throw NPYError.malformedHeader("'descr' must be a string") }
        guard case .bool(let fortran)? = fields["fortran_order"] else {
            throw NPYError.malformedHeader("'fortran_order' must be True or False")
        }
        guard case .tuple(let shape)? = fields["shape"] else { throw NPYError.malformedHeader("'shape' must be a tuple") }
        guard shape.count <= maxRank else { throw NPYError.badShape("\(shape.count) dimensions, more than \(maxRank)") }
        if let d = shape.first(where: { $0 < 0 }) { throw NPYError.badShape("negative dimension \(d)") }

        let (dtype, bigEndian) = try parseDescr(descr)
        let dataSize: Int
        do { dataSize = try Checked.byteCount(shape, dtype) } catch {
            throw NPYError.badShape("\(shape) of '\(descr)' overflows 64-bit sizes")
        }
        return NPYHeader(descr: descr, dtype: dtype, bigEndian: bigEndian, fortranOrder: fortran,
                         shape: shape, headerSize: size, dataSize: dataSize)
    }

    /// A 0-d unicode string array (`<U<n>`, UTF-32LE), as `np.savez(..., arch='lisrd')`
    /// stores text; nil for anything else. Reference files label themselves this way.
    static func textScalar(_ bytes: [UInt8]) -> String? {
        guard let size = try? headerSize(bytes), bytes.count >= size else { return nil }
        var parser = HeaderParser(bytes: Array(bytes[(bytes[6] == 1 ? 10 : 12)..<size]))
        guard let fields = try? parser.parseDict(), case .string(let descr)? = fields["descr"],
              case .tuple(let shape)? = fields["shape"], shape.isEmpty,
              descr.hasPrefix("<U"), let count = Int(descr.dropFirst(2)), count <= 4096,
              bytes.count == size + count * 4 else { return nil }
        var scalars = String.UnicodeScalarView()
        for i in 0..<count {
            let o = size + 4 * i
            let code = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
            if code == 0 { break }
            guard let scalar = Unicode.Scalar(code) else { return nil }
            scalars.append(scalar)
        }
        return String(scalars)
    }

    static func parseDescr(_ descr: String) throws -> (DType, bigEndian: Bool) {
        let chars = Array(descr.utf8)
        guard chars.count == 3 else { throw NPYError.unsupportedDType(descr) }
        let dtype: DType
        switch String(decoding: chars[1...], as: UTF8.self) {
        case "f2": dtype = .float16
        case "f4": dtype = .float32
        case "f8": dtype = .float64
        case "i1": dtype = .int8
        case "i2": dtype = .int16
        case "i4": dtype = .int32
        case "i8": dtype = .int64
        case "u1": dtype = .uint8
        case "u2": dtype = .uint16
        case "u4": dtype = .uint32
        case "u8": dtype = .uint64
        case "b1": dtype = .bool
        default: throw NPYError.unsupportedDType(descr)
        }
        switch chars[0] {
        case UInt8(ascii: "<"): return (dtype, false)
        case UInt8(ascii: ">"): return (dtype, true)
        case UInt8(ascii: "|") where dtype.byteSize == 1: return (dtype, false)
        default: throw NPYError.unsupportedDType(descr)
        }
    }

    /// The array's bytes as little-endian C order. `data` must be exactly the
    /// data that follows the header.
    static func decode(_ header: NPYHeader, data: ArraySlice<UInt8>) throws -> [UInt8] {
        guard data.count == header.dataSize else {
            throw NPYError.dataSizeMismatch(descr: header.descr, shape: header.shape, expected: header.dataSize, actual: data.count)
        }
        var out: [UInt8]
        if header.fortranOrder && header.shape.count > 1 {
            do {
                out = try data.withUnsafeBytes { raw in
                    try StridedCopy.gather(raw, itemSize: header.dtype.byteSize, shape: header.shape,
                                           strides: StridedCopy.fortranStrides(header.shape), offset: 0)
                }
            } catch {
                throw NPYError.stridedCopy("\(error)")
            }
        } else {
            out = Array(data)
        }
        if header.bigEndian { StridedCopy.swapByteOrder(&out, itemSize: header.dtype.byteSize) }
        return out
    }
}

/// The subset of Python literal syntax numpy writes in a header:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
private struct HeaderParser {
    enum Value: Equatable { case string(String), bool(Bool), tuple([Int]) }

    let bytes: [UInt8]
    var p = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDict() throws -> [String: Value] {
        skipSpace()
        try expect("{")
        var fields: [String: Value] = [:]
        while true {
            skipSpace()
            if try peek() == UInt8(ascii: "}") { p += 1; break }
            let key = try parseString()
            guard ["descr", "fortran_order", "shape"].contains(key) else { throw fail("unexpected key '\(key)'") }
            guard fields[key] == nil else { throw fail("key '\(key)' appears twice") }
            skipSpace()
            try expect(":")
            skipSpace()
            fields[key] = try parseValue()
            skipSpace()
            let c = try peek()
            if c == UInt8(ascii: ",") { p += 1; continue }
            if c == UInt8(ascii: "}") { p += 1; break }
            throw fail("expected ',' or '}' at offset \(p)")
        }
        skipSpace()
        guard p == bytes.count else { throw fail("unexpected text after the dict at offset \(p)") }
        for key in ["descr", "fortran_order", "shape"] where fields[key] == nil {
            throw fail("missing key '\(key)'")
        }
        return fields
    }

    private mutating func parseValue() throws -> Value {
        let c = try peek()
        if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") { return .string(try parseString()) }
        if c == UInt8(ascii: "(") { return .tuple(try parseTuple()) }
        if matchWord("True") { return .bool(true) }
        if matchWord("False") { return .bool(false) }
        throw fail("unexpected value at offset \(p)")
    }

    private mutating func parseString() throws -> String {
        let quote = try peek()
        guard quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else { throw fail("expected a string at offset \(p)") }
        p += 1
        let start = p
        while p < bytes.count, bytes[p] != quote {
            // numpy's descr and key strings never hold escapes or control characters.
            guard bytes[p] != UInt8(ascii: "\\"), bytes[p] >= 0x20 else { throw fail("unsupported character in a string") }
            p += 1
        }
        guard p < bytes.count else { throw fail("unterminated string") }
        let s = String(decoding: bytes[start..<p], as: UTF8.self)
        p += 1
        return s
    }

    /// `()`, `(3,)`, `(3, 4)`, `(3, 4,)`; Python 2 files may write `3L`.
    private mutating func parseTuple() throws -> [Int] {
        try expect("(")
        skipSpace()
        if try peek() == UInt8(ascii: ")") { p += 1; return [] }
        var items: [Int] = []
        while true {
            items.append(try parseInt())
            guard items.count <= NPYFormat.maxRank else { throw NPYError.badShape("more than \(NPYFormat.maxRank) dimensions") }
            skipSpace()
            if try peek() == UInt8(ascii: ")") {
                // `(3)` is an int in Python, not a tuple.
                guard items.count > 1 else { throw fail("a one-dimensional shape must be written (n,)") }
                p += 1
                return items
            }
            try expect(",")
            skipSpace()
            if try peek() == UInt8(ascii: ")") { p += 1; return items }
        }
    }

    private mutating func parseInt() throws -> Int {
        var negative = false
        if try peek() == UInt8(ascii: "-") { negative = true; p += 1 }
        let start = p
        while p < bytes.count, bytes[p] >= UInt8(ascii: "0"), bytes[p] <= UInt8(ascii: "9") { p += 1 }
        guard p > start else { throw fail("expected an integer at offset \(p)") }
        guard p - start <= 19, let magnitude = Int(String(decoding: bytes[start..<p], as: UTF8.self)) else {
            throw NPYError.badShape("dimension \(String(decoding: bytes[start..<p], as: UTF8.self)) is too large")
        }
        if p < bytes.count, bytes[p] == UInt8(ascii: "L") { p += 1 }
        return negative ? -magnitude : magnitude
    }

    private mutating func matchWord(_ word: String) -> Bool {
        let w = Array(word.utf8)
        guard bytes.count - p >= w.count, bytes[p..<(p + w.count)].elementsEqual(w) else { return false }
        let after = p + w.count
        if after < bytes.count, isIdentifier(bytes[after]) { return false }
        p = after
        return true
    }

    private func isIdentifier(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "_")
    }

    private mutating func skipSpace() {
        while p < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[p]) { p += 1 }
    }

    private func peek() throws -> UInt8 {
        guard p < bytes.count else { throw fail("header ends early") }
        return bytes[p]
    }

    private mutating func expect(_ c: Character) throws {
        guard let ascii = c.asciiValue, try peek() == ascii else { throw fail("expected '\(c)' at offset \(p)") }
        p += 1
    }

    private func fail(_ why: String) -> NPYError { .malformedHeader(why) }
}
