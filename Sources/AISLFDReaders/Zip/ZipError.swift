import AISLFDCore

/// What can be wrong with a zip archive (NPZ files and torch.save files are zips).
public enum ZipError: Error, Equatable, CustomStringConvertible, Sendable {
    /// No end-of-central-directory record: not a zip, or cut off at the end.
    case notAZip(byteCount: Int)
    /// A structure (named by `what`) lies outside the archive's bytes.
    case outOfBounds(what: String)
    case badSignature(what: String, offset: Int)
    case multiDisk
    /// A size or offset field is too large to be real.
    case badSize(what: String, SizeError)
    case duplicateEntry(String)
    case entryNotFound(String)
    case encrypted(entry: String)
    case unsupportedMethod(entry: String, method: Int)
    case localHeaderMismatch(entry: String)
    /// A stored entry whose compressed and uncompressed sizes differ.
    case storedSizeMismatch(entry: String, compressed: Int, uncompressed: Int)
    /// The entry declares more bytes than the caller accepts for it.
    case entryTooLarge(entry: String, declared: Int, limit: Int)
    /// The entry declares more bytes than deflate can produce from its compressed size.
    case impossibleRatio(entry: String, declared: Int, compressed: Int)
    case corruptDeflate(entry: String, detail: String)
    case inflatedSizeMismatch(entry: String, declared: Int, actual: Int)
    /// The deflate stream goes on past the entry's declared size.
    case inflatesBeyondDeclaredSize(entry: String, declared: Int)
    case crcMismatch(entry: String, expected: UInt32, actual: UInt32)
    case outOfMemory(entry: String)

    public var description: String {
        switch self {
        case .notAZip(let n):
            return "not a zip archive (\(n) bytes, no end-of-central-directory record; truncated or not a zip)"
        case .outOfBounds(let what): return "\(echoed(what, limit: 300)) lies outside the file (truncated or corrupt zip)"
        case .badSignature(let what, let offset): return "bad signature for \(echoed(what, limit: 300)) at byte \(offset) (corrupt zip)"
        case .multiDisk: return "multi-disk zip archives are not supported"
        case .badSize(let what, let e): return "\(echoed(what, limit: 300)): \(e)"
        case .duplicateEntry(let name): return "entry '\(echoed(name))' appears twice in the zip"
        case .entryNotFound(let name): return "zip has no entry '\(echoed(name))'"
        case .encrypted(let name): return "entry '\(echoed(name))' is encrypted"
        case .unsupportedMethod(let name, let m):
            return "entry '\(echoed(name))' uses compression method \(m); only stored (0) and deflate (8) are supported"
        case .localHeaderMismatch(let name): return "entry '\(echoed(name))': local header does not match the central directory"
        case .storedSizeMismatch(let name, let c, let u):
            return "entry '\(echoed(name))' is stored but declares \(c) compressed and \(u) uncompressed bytes"
        case .entryTooLarge(let name, let declared, let limit):
            return "entry '\(echoed(name))' declares \(declared) bytes, more than the \(limit) expected"
        case .impossibleRatio(let name, let declared, let compressed):
            return "entry '\(echoed(name))' declares \(declared) bytes from \(compressed) compressed bytes, more than deflate can produce"
        case .corruptDeflate(let name, let detail): return "entry '\(echoed(name))': corrupt deflate data (\(echoed(detail)))"
        case .inflatedSizeMismatch(let name, let declared, let actual):
            return "entry '\(echoed(name))' inflates to \(actual) bytes but declares \(declared)"
        case .inflatesBeyondDeclaredSize(let name, let declared):
            return "entry '\(echoed(name))' inflates to more than its declared \(declared) bytes"
        case .crcMismatch(let name, let expected, let actual):
            return "entry '\(echoed(name))': CRC-32 is \(hex(actual)), the zip says \(hex(expected)) (corrupt data)"
        case .outOfMemory(let name): return "entry '\(echoed(name))': out of memory while inflating"
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
}
