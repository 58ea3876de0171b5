/// Why a text is not the JSON asked for, and where: `offset` counts bytes from 0,
/// `line` and `column` count from 1 (columns in characters, for people).
public struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public let offset: Int
    public let line: Int
    public let column: Int
    public let message: String

    public var description: String { "line \(line), column \(column): \(message)" }
}

extension JSONValue {
    /// Parses one RFC 8259 JSON value filling `bytes` (whitespace around it allowed).
    /// Inputs longer than `maxBytes` and arrays or objects nested more than `maxDepth`
    /// deep are refused before they can exhaust memory or the stack. Duplicate keys are
    /// refused unless `keepDuplicateKeys`: readers in other languages disagree on which
    /// one wins, so a format either refuses them here or reports them itself.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64, maxBytes: Int = 16 << 20,
                             keepDuplicateKeys: Bool = false) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth, keepDuplicateKeys: keepDuplicateKeys)
        guard bytes.count <= maxBytes else { throw parser.fail("longer than \(maxBytes) bytes", at: 0) }
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.fail("unexpected text after the JSON value") }
        return value
    }

    public static func parse(_ text: String, maxDepth: Int = 64, maxBytes: Int = 16 << 20) throws -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth, maxBytes: maxBytes)
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    let keepDuplicateKeys: Bool
    var index = 0

    init(bytes: [UInt8], maxDepth: Int, keepDuplicateKeys: Bool) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.keepDuplicateKeys = keepDuplicateKeys
    }

    func fail(_ message: String, at offset: Int? = nil) -> JSONParseError {
        let offset = min(offset ?? index, bytes.count)
        var line = 1, column = 1
        for b in bytes[0..<offset] {
            if b == UInt8(ascii: "\n") { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
        }
        return JSONParseError(offset: offset, line: line, column: column, message: message)
    }

    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        while let b = current, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { index += 1 }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard current == byte else { throw current == nil ? fail("unexpected end of text") : fail("expected \(what)") }
        index += 1
    }

    mutating func literal(_ word: String, _ value: JSONValue) throws -> JSONValue {
        let w = Array(word.utf8)
        guard bytes.count - index >= w.count, bytes[index..<(index + w.count)].elementsEqual(w) else { throw fail("invalid literal") }
        index += w.count
        return value
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard let b = current else { throw fail("unexpected end of text") }
        switch b {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            guard depth < maxDepth else { throw fail("nested deeper than \(maxDepth) levels") }
            return b == UInt8(ascii: "{") ? try object(depth: depth + 1) : try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail(b < 0x80 && b >= 0x20 ? "unexpected character '\(Character(Unicode.Scalar(b)))'" : "unexpected byte \(b)")
        }
    }

    mutating func object(depth: Int) throws -> JSONValue {
        index += 1
        var members: [JSONObject.Member] = []
        var seen: Set<String> = []
        skipWhitespace()
        if current == UInt8(ascii: "}") { index += 1; return .object(JSONObject(members)) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
            let keyStart = index
            let key = try string()
            if !keepDuplicateKeys, !seen.insert(key).inserted { throw fail("duplicate key \"\(key)\"", at: keyStart) }
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':' after a key")
            skipWhitespace()
            members.append((key, try value(depth: depth)))
            skipWhitespace()
            if current == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: "}"), "',' or '}' in an object")
            return .object(JSONObject(members))
        }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { index += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth))
            skipWhitespace()
            if current == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: "]"), "',' or ']' in an array")
            return .array(items)
        }
    }

    mutating func number() throws -> JSONNumber {
        let start = index
        func digits(_ p: inout JSONParser) -> Int {
            let from = p.index
            while let b = p.current, b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") { p.index += 1 }
            return p.index - from
        }
        if current == UInt8(ascii: "-") { index += 1 }
        let intStart = index
        let intDigits = digits(&self)
        guard intDigits > 0 else { throw fail("invalid number") }
        if intDigits > 1, bytes[intStart] == UInt8(ascii: "0") { throw fail("leading zero in a number", at: intStart) }
        if current == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw fail("invalid number: no digits after '.'") }
        }
        if let e = current, e | 0x20 == UInt8(ascii: "e") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw fail("invalid number: no digits in the exponent") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        // Every reader would see this as infinity; the integer literal stays exact whatever its size.
        guard Double(text)?.isFinite == true else { throw fail("number \(text) is out of range", at: start) }
        return JSONNumber(text: text)
    }

    mutating func hex4() throws -> UInt32 {
        guard bytes.count - index >= 4 else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw fail("invalid hex digit in a \\u escape")
            }
            v = v << 4 | UInt32(digit)
            index += 1
        }
        return v
    }

    mutating func string() throws -> String {
        let start = index
        index += 1
        var out: [UInt8] = []
        var run = index  // start of the current stretch of plain bytes
        while true {
            guard let b = current else { throw fail("unterminated string", at: start) }
            if b == UInt8(ascii: "\"") {
                out += bytes[run..<index]
                index += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8", at: start) }
                return s
            }
            if b < 0x20 { throw fail("control character in a string") }
            if b != UInt8(ascii: "\\") { index += 1; continue }
            out += bytes[run..<index]
            index += 1
            guard let e = current else { throw fail("unterminated string", at: start) }
            index += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                        throw fail("unpaired surrogate in a \\u escape")
                    }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in a \\u escape") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                // A lone low surrogate is no scalar either.
                guard let scalar = Unicode.Scalar(code) else { throw fail("unpaired surrogate in a \\u escape") }
                out += Array(String(Character(scalar)).utf8)
            default:
                index -= 1
                throw fail("invalid escape")
            }
            run = index
        }
    }
}
