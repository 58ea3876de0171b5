import AISLFDCore
import Foundation

/// Reads a safetensors file: an 8-byte little-endian header length, a JSON
/// header, then the data section. Every entry is checked against the data
/// section with overflow-safe arithmetic before anything is read: its bytes must
/// match shape and dtype, and together the tensors must tile the data section
/// without overlap or gap, as the format requires. Tensors come back in order of
/// their data offset (zero-size tensors at the same offset by key);
/// `__metadata__` becomes the metadata.
public enum SafetensorsReader {
    /// Cap on the header length (the file's size caps it too).
    public static let maxHeaderLength = 100_000_000
    /// `matches(prefix:)` needs the first 9 bytes.
    public static let prefixLength = 9

    static let dtypes: [String: DType] = [
        "F16": .float16, "BF16": .bfloat16, "F32": .float32, "F64": .float64,
        "I8": .int8, "I16": .int16, "I32": .int32, "I64": .int64,
        "U8": .uint8, "U16": .uint16, "U32": .uint32, "U64": .uint64, "BOOL": .bool,
    ]

    /// True when the first 8 bytes are a plausible header length (2 ... maxHeaderLength)
    /// and the header starts with `{`.
    public static func matches(prefix: [UInt8]) -> Bool {
        guard prefix.count >= prefixLength else { return false }
        let length = prefix[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return length >= 2 && length <= UInt64(maxHeaderLength) && prefix[8] == UInt8(ascii: "{")
    }

    /// Reads every tensor. Errors are `FileError` wrapping `SafetensorsError`.
    public static func read(path: String) throws -> WeightsContents {
        do {
            return try readContents(path: path)
        } catch let error as SafetensorsError {
            throw FileError(path: path, problem: error)
        }
    }

    private struct Entry {
        var key: String
        var dtype: DType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    private static func readContents(path: String) throws -> WeightsContents {
        let file: FileSystem.ReadHandle
        do { file = try FileSystem.ReadHandle(path: path) } catch { throw SafetensorsError.cannotRead(reason: String(describing: error)) }
        guard file.size >= 8 else { throw SafetensorsError.fileTooShort(size: file.size) }
        let lengthBytes = try file.read(at: 0, count: 8)
        let headerLength = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let limit = min(maxHeaderLength, file.size - 8)
        guard headerLength <= UInt64(limit) else { throw SafetensorsError.headerTooLarge(length: headerLength, limit: limit) }
        let header = try file.read(at: 8, count: Int(headerLength))
        let dataStart = 8 + Int(headerLength)
        let dataSize = file.size - dataStart

        var (entries, metadata) = try parseHeader(header)
        try checkLayout(&entries, dataSize: dataSize)

        var tensors: [NamedTensor] = []
        tensors.reserveCapacity(entries.count)
        for entry in entries {
            let data = try file.read(at: dataStart + entry.begin, count: entry.end - entry.begin)
            tensors.append(NamedTensor(key: entry.key, dtype: entry.dtype, shape: entry.shape, data: data))
        }
        return WeightsContents(format: "safetensors", tensors: tensors, metadata: metadata)
    }

    private static func parseHeader(_ header: [UInt8]) throws -> ([Entry], [String: String]) {
        guard String(validating: header, as: UTF8.self) != nil else {
            throw SafetensorsError.headerNotJSON(reason: "not valid UTF-8")
        }
        let json: JSONValue
        do {
            // Duplicates are kept here and reported below, with the tensor they name.
            json = try JSONValue.parse(header, maxBytes: maxHeaderLength, keepDuplicateKeys: true)
        } catch let error as JSONParseError {
            throw SafetensorsError.headerNotJSON(reason: "\(error.message) at byte \(error.offset)")
        }
        guard case .object(let members) = json else { throw SafetensorsError.headerNotObject(found: json.kindName) }

        var seen: Set<String> = []
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (key, value) in members {
            guard seen.insert(key).inserted else { throw SafetensorsError.duplicateKey(tensor: key) }
            if key == "__metadata__" {
                metadata = try parseMetadata(value)
            } else {
                entries.append(try parseEntry(key, value))
            }
        }
        return (entries, metadata)
    }

    private static func parseMetadata(_ value: JSONValue) throws -> [String: String] {
        guard case .object(let members) = value else { throw SafetensorsError.badMetadata(reason: "not a JSON object") }
        var metadata: [String: String] = [:]
        for (key, item) in members {
            guard case .string(let text) = item else { throw SafetensorsError.badMetadata(reason: "value of '\(key)' is not a string") }
            guard metadata.updateValue(text, forKey: key) == nil else { throw SafetensorsError.badMetadata(reason: "'\(key)' is listed twice") }
        }
        return metadata
    }

    private static func parseEntry(_ key: String, _ value: JSONValue) throws -> Entry {
        func bad(_ reason: String) -> SafetensorsError { .badEntry(tensor: key, reason: reason) }
        guard case .object(let members) = value else { throw bad("entry is not a JSON object") }
        var fields: [String: JSONValue] = [:]
        for (name, item) in members {
            guard fields.updateValue(item, forKey: name) == nil else { throw bad("field '\(name)' is listed twice") }
        }
        guard case .string(let dtypeName)? = fields["dtype"] else { throw bad("missing or non-string 'dtype'") }
        guard let dtype = dtypes[dtypeName] else { throw SafetensorsError.unsupportedDType(tensor: key, dtype: dtypeName) }
        guard case .array(let shapeItems)? = fields["shape"] else { throw bad("missing or non-array 'shape'") }
        let shape = try shapeItems.map { item -> Int in
            guard let n = nonNegativeInt(item) else { throw bad("'shape' holds something other than non-negative integers") }
            return n
        }
        guard case .array(let offsetItems)? = fields["data_offsets"], offsetItems.count == 2,
              let begin = nonNegativeInt(offsetItems[0]), let end = nonNegativeInt(offsetItems[1]) else {
            throw bad("'data_offsets' is not a pair of non-negative integers")
        }
        return Entry(key: key, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// Digits only: `2.0`, `1e3` and `-0` are not sizes, whatever their value.
    private static func nonNegativeInt(_ value: JSONValue) -> Int? {
        guard case .number(let n) = value, n.text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(n.text)
    }

    /// Every entry's bytes inside the data section and matching its shape; together
    /// they tile the data section. Sorts `entries` into data-offset order.
    private static func checkLayout(_ entries: inout [Entry], dataSize: Int) throws {
        for entry in entries {
            guard let shapeBytes = try? Checked.byteCount(entry.shape, entry.dtype) else {
                throw SafetensorsError.shapeOverflow(tensor: entry.key, shape: entry.shape)
            }
            guard entry.begin <= entry.end, entry.end <= dataSize else {
                throw SafetensorsError.offsetsOutOfRange(tensor: entry.key, begin: entry.begin, end: entry.end, dataSize: dataSize)
            }
            guard entry.end - entry.begin == shapeBytes else {
                throw SafetensorsError.lengthMismatch(tensor: entry.key, shapeBytes: shapeBytes, offsetBytes: entry.end - entry.begin)
            }
        }
        entries.sort { ($0.begin, $0.end, $0.key) < ($1.begin, $1.end, $1.key) }
        var covered = 0
        var previous: String?
        for entry in entries {
            if entry.begin < covered, let previous { throw SafetensorsError.overlap(tensor: entry.key, other: previous) }
            if entry.begin > covered { throw SafetensorsError.gap(tensor: entry.key, from: covered, to: entry.begin) }
            covered = entry.end
            previous = entry.key
        }
        if covered != dataSize { throw SafetensorsError.dataNotCovered(covered: covered, dataSize: dataSize) }
    }
}
