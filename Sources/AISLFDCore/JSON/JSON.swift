/// A JSON document as the package reads and writes it: schema files, `.aisw` metadata,
/// safetensors headers. Numbers keep their text, so integers stay exact however large
/// (safetensors offsets) and stay told apart from fractions (JSON Schema's `integer`);
/// objects keep their members in order, duplicates included, so a reader can refuse them.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func int(_ i: Int) -> JSONValue { .number(JSONNumber(text: String(i))) }
    /// A non-finite value can be held but not written: `canonicalBytes()` refuses it.
    public static func double(_ d: Double) -> JSONValue { .number(JSONNumber(text: d.description)) }

    public subscript(key: String) -> JSONValue? { object?[key] }

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var int: Int? { if case .number(let n) = self { return n.int } else { return nil } }
    public var double: Double? { if case .number(let n) = self { return n.double } else { return nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var object: JSONObject? { if case .object(let o) = self { return o } else { return nil } }

    /// "object", "array", ... for messages.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON number as written. Two numbers are equal when their values are.
public struct JSONNumber: Equatable, Sendable, CustomStringConvertible {
    /// The literal from the file, or Swift's text of the value it was made from.
    public let text: String

    public init(text: String) { self.text = text }

    public var description: String { text }

    /// The nearest Double (what every other JSON reader would see).
    public var double: Double { Double(text) ?? .nan }

    /// The exact integer, if the number is one that fits in Int: an integer literal of any
    /// size up to Int.max, or a form like `2.0` or `1e3` whose value a Double holds exactly.
    public var int: Int? {
        if let i = Int(text) { return i }
        let d = double
        guard d == d.rounded(), abs(d) < 9_007_199_254_740_992 else { return nil }
        return Int(d)
    }

    public static func == (a: JSONNumber, b: JSONNumber) -> Bool {
        if let x = a.int, let y = b.int { return x == y }
        return a.double == b.double
    }
}

/// A JSON object's members in the order they came. Lookup takes the first member with
/// the key; two objects are equal when they hold the same members in any order.
public struct JSONObject: Equatable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Member = (key: String, value: JSONValue)
    public var members: [Member]

    public init(_ members: [Member] = []) { self.members = members }

    /// Members sorted by key, so the same dictionary always gives the same object.
    public init(_ dictionary: [String: JSONValue]) {
        members = dictionary.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        members = elements.map { (key: $0.0, value: $0.1) }
    }

    public var keys: [String] { members.map(\.key) }
    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }

    /// Setting replaces the first member with the key, or appends one; setting nil removes them all.
    public subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            guard let newValue else { members.removeAll { $0.key == key }; return }
            if let i = members.firstIndex(where: { $0.key == key }) { members[i].value = newValue } else { members.append((key, newValue)) }
        }
    }

    public func makeIterator() -> IndexingIterator<[Member]> { members.makeIterator() }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.count == b.count else { return false }
        let x = a.members.sorted { $0.key < $1.key }, y = b.members.sorted { $0.key < $1.key }
        return zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

/// Codable so typed structures (the `.aisw` metadata) can hold free-form JSON fields.
extension JSONValue: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(JSONObject(try c.decode([String: JSONValue].self))) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): if let i = Int(n.text) { try c.encode(i) } else { try c.encode(n.double) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(Dictionary(o.members, uniquingKeysWith: { first, _ in first }))
        }
    }
}
