/// A number JSON cannot hold (NaN or an infinity) met by `canonicalBytes()`.
public struct JSONWriteError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

extension JSONValue {
    /// The canonical UTF-8 text: no whitespace, object keys sorted by their UTF-8 bytes,
    /// integers below 2^53 without a fraction, other numbers in the shortest form that reads
    /// back to the same double, strings escaped only where JSON requires it. Equal values
    /// give equal bytes, so the `.aisw` writer is deterministic and a hash names a value.
    public func canonicalBytes() throws -> [UInt8] {
        var writer = CanonicalWriter()
        writer.write(self)
        if let bad = writer.nonFinite { throw JSONWriteError(message: "number \(bad) cannot be written as JSON") }
        return writer.out
    }

    /// The canonical text, for hashes and messages of values known to be finite
    /// (a non-finite number shows as Swift prints it).
    public var canonicalText: String {
        var writer = CanonicalWriter()
        writer.write(self)
        return String(decoding: writer.out, as: UTF8.self)
    }
}

private struct CanonicalWriter {
    var out: [UInt8] = []
    var nonFinite: String?

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .number(let n):
            let d = n.double
            if !d.isFinite {
                nonFinite = nonFinite ?? n.text
                out += Array(n.text.utf8)
            } else if d == d.rounded(), abs(d) < 9_007_199_254_740_992 {
                out += Array(String(Int64(d)).utf8)
            } else {
                // Swift prints the shortest text that reads back to the same Double, on every platform.
                out += Array(d.description.utf8)
            }
        case .string(let s): write(s)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            let members = object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (i, member) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(member.key)
                out.append(UInt8(ascii: ":"))
                write(member.value)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    mutating func write(_ s: String) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [0x5C, 0x22]
            case UInt8(ascii: "\\"): out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
