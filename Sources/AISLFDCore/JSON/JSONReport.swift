import Foundation

/// The `--json` documents of every command: pretty-printed, keys sorted, slashes as they
/// are, so the same report always prints the same bytes.
public func prettyJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
