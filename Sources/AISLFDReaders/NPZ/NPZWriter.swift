import AISLFDCore

public enum NPZWriteError: Error, Equatable, CustomStringConvertible, Sendable {
    case emptyKey
    case duplicateKey(String)
    case unsupportedDType(key: String, DType)
    /// Sizes past 4 GiB would need zip64, which this writer does not produce.
    case tooLarge(String)
    case tooManyEntries(Int)
    /// NumPy arrays have at most 64 dimensions.
    case tooManyDimensions(key: String, Int)

    public var description: String {
        switch self {
        case .emptyKey: return "a tensor has an empty name"
        case .duplicateKey(let key): return "tensor '\(key)' appears twice"
        case .unsupportedDType(let key, let dtype): return "tensor '\(key)': NumPy has no dtype for \(dtype.rawValue)"
        case .tooLarge(let what): return "\(what) exceeds the 4 GiB a zip without zip64 can hold"
        case .tooManyEntries(let n): return "\(n) tensors exceed the 65535 entries a zip without zip64 can hold"
        case .tooManyDimensions(let key, let n): return "tensor '\(key)' has \(n) dimensions, NumPy allows at most 64"
        }
    }
}

/// Writes `.npz` files `numpy.load` reads: stored entries holding `.npy` v1.0
/// arrays, headers laid out exactly as
/// `numpy.save` does, fixed timestamps so equal tensors give equal bytes.
/// The file appears complete or not at all (temporary file, fsync, rename).
public enum NPZWriter {
    public static func write(_ tensors: [NamedTensor], to path: String) throws {
        do {
            try writeAtomically(tensors, to: path)
        } catch {
            throw FileError(path: path, problem: error)
        }
    }

    /// The `.npy` bytes of one tensor, as `numpy.save` writes them.
    static func npyBytes(_ tensor: NamedTensor) throws -> [UInt8] {
        guard let descr = descr(tensor.dtype) else { throw NPZWriteError.unsupportedDType(key: tensor.key, tensor.dtype) }
        return npyHeader(descr: descr, shape: tensor.shape) + tensor.data
    }

    private static func descr(_ dtype: DType) -> String? {
        switch dtype {
        case .float16: return "<f2"
        case .float32: return "<f4"
        case .float64: return "<f8"
        case .int8: return "|i1"
        case .int16: return "<i2"
        case .int32: return "<i4"
        case .int64: return "<i8"
        case .uint8: return "|u1"
        case .uint16: return "<u2"
        case .uint32: return "<u4"
        case .uint64: return "<u8"
        case .bool: return "|b1"
        case .bfloat16: return nil
        }
    }

    /// numpy's layout: the dict with sorted keys, room for the first axis to
    /// grow to 21 digits, space padding and a newline so the data starts at a
    /// multiple of 64 (a full 64 extra when already aligned, as numpy does).
    /// With at most 64 dimensions the header stays far below 65536 bytes, so
    /// version 1.0 always suffices; 2.0 would only be needed beyond that.
    static func npyHeader(descr: String, shape: [Int]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var text = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        if let first = shape.first { text += String(repeating: " ", count: max(0, 21 - String(first).count)) }
        var body = Array(text.utf8)
        body += [UInt8](repeating: 0x20, count: 64 - (10 + body.count + 1) % 64) + [0x0A]
        return NPYFormat.magic + [1, 0, UInt8(body.count & 0xFF), UInt8(body.count >> 8)] + body
    }

    /// The whole `.npz` in memory, for a command that writes several files all or none.
    public static func encode(_ tensors: [NamedTensor]) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try build(tensors) { bytes += $0 }
        return bytes
    }

    private static func writeAtomically(_ tensors: [NamedTensor], to path: String) throws {
        try FileSystem.writeAtomically(to: path) { file in try build(tensors, file.append) }
    }

    /// Hands the archive's bytes to `append` in order, without holding them all.
    private static func build(_ tensors: [NamedTensor], _ append: ([UInt8]) throws -> Void) throws {
        var keys = Set<String>()
        for t in tensors {
            guard !t.key.isEmpty else { throw NPZWriteError.emptyKey }
            guard keys.insert(t.key).inserted else { throw NPZWriteError.duplicateKey(t.key) }
            if descr(t.dtype) == nil { throw NPZWriteError.unsupportedDType(key: t.key, t.dtype) }
            guard t.shape.count <= NPYFormat.maxRank else { throw NPZWriteError.tooManyDimensions(key: t.key, t.shape.count) }
        }
        guard tensors.count <= 0xFFFF else { throw NPZWriteError.tooManyEntries(tensors.count) }

        do {
            var central: [UInt8] = []
            var offset = 0
            for t in tensors {
                let name = Array((t.key + ".npy").utf8)
                let npy = try npyBytes(t)
                guard npy.count < 0xFFFF_FFFF else { throw NPZWriteError.tooLarge("tensor '\(t.key)'") }
                guard offset < 0xFFFF_FFFF else { throw NPZWriteError.tooLarge("the archive") }
                let crc = npy.withUnsafeBytes { AISLFDCore.crc32($0) }
                let fields = EntryFields(name: name, crc: crc, size: UInt32(npy.count), offset: UInt32(offset))
                let local = fields.localHeader()
                try append(local)
                try append(npy)
                central += fields.centralRecord()
                offset += local.count + npy.count
            }
            guard offset < 0xFFFF_FFFF, central.count < 0xFFFF_FFFF else { throw NPZWriteError.tooLarge("the archive") }
            try append(central)
            try append(endRecord(count: tensors.count, directorySize: central.count, directoryOffset: offset))
        }
    }

    private struct EntryFields {
        let name: [UInt8]
        let crc: UInt32
        let size: UInt32
        let offset: UInt32

        /// Version 2.0, no flags, stored, DOS time 00:00 and date 1980-01-01.
        private var common: [UInt8] {
            le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + littleEndian(crc)
                + littleEndian(size) + littleEndian(size) + le16(name.count)
        }

        func localHeader() -> [UInt8] {
            littleEndian(UInt32(0x0403_4b50)) + common + le16(0) + name
        }

        func centralRecord() -> [UInt8] {
            littleEndian(UInt32(0x0201_4b50)) + le16(20) + common
                + le16(0) + le16(0) + le16(0) + le16(0) + littleEndian(UInt32(0)) + littleEndian(offset) + name
        }
    }

    private static func endRecord(count: Int, directorySize: Int, directoryOffset: Int) -> [UInt8] {
        littleEndian(UInt32(0x0605_4b50)) + le16(0) + le16(0) + le16(count) + le16(count)
            + littleEndian(UInt32(directorySize)) + littleEndian(UInt32(directoryOffset)) + le16(0)
    }
}

private func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }

private func littleEndian(_ v: UInt32) -> [UInt8] {
    [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
}
