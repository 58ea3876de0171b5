import AISLFDCore

/// One way an instance fails a JSON Schema: where (a JSON Pointer into the
/// instance, "" for the whole document) and what.
public struct JSONSchemaViolation: Equatable, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path.isEmpty ? "/" : path): \(message)" }
}

public enum JSONSchemaError: Error, CustomStringConvertible, Equatable {
    case unsupportedKeyword(path: String, keyword: String)
    case invalidKeyword(path: String, keyword: String, reason: String)

    public var description: String {
        switch self {
        case .unsupportedKeyword(let path, let keyword):
            return "schema \(path.isEmpty ? "/" : path): keyword \"\(keyword)\" is not in the implemented subset"
        case .invalidKeyword(let path, let keyword, let reason):
            return "schema \(path.isEmpty ? "/" : path): \"\(keyword)\" \(reason)"
        }
    }
}

/// A validator for the subset of JSON Schema (draft 2020-12) the schema files
/// use: type, required, properties, additionalProperties, items, enum, const,
/// pattern, minimum, minItems, $ref (local "#/..." pointers), $defs, oneOf.
/// Any other keyword makes the schema itself refused, so nothing in a schema
/// can look enforced without being enforced.
public struct JSONSchema {
    public let root: JSONValue
    private let patterns: [String: Regex<AnyRegexOutput>]

    private static let annotations: Set<String> = ["$schema", "$id", "$comment", "title", "description"]
    private static let keywords: Set<String> = [
        "type", "required", "properties", "additionalProperties", "items", "enum", "const",
        "pattern", "minimum", "minItems", "$ref", "$defs", "oneOf",
    ]
    private static let typeNames: Set<String> = ["object", "array", "string", "integer", "number", "boolean", "null"]
    // $ref cycles in a schema would otherwise recurse without end.
    private static let maxDepth = 128

    public init(text: String) throws {
        try self.init(JSONValue.parse(text))
    }

    public init(_ root: JSONValue) throws {
        self.root = root
        var patterns: [String: Regex<AnyRegexOutput>] = [:]
        try JSONSchema.check(schema: root, path: "", root: root, patterns: &patterns)
        self.patterns = patterns
    }

    /// Every violation, in a deterministic order (object members by key).
    public func validate(_ instance: JSONValue) -> [JSONSchemaViolation] {
        var out: [JSONSchemaViolation] = []
        validate(instance, schema: root, path: "", depth: 0, memo: PatternMemo(), into: &out)
        return out
    }

    /// oneOf tries every alternative, so the same name meets the same pattern
    /// several times; Swift's Regex is slow enough for that to dominate loading.
    private final class PatternMemo {
        var results: [String: [String: Bool]] = [:]
    }

    public func validate(text: String) -> [JSONSchemaViolation] {
        do {
            return validate(try JSONValue.parse(text))
        } catch {
            return [JSONSchemaViolation(path: "", message: "not JSON: \(error)")]
        }
    }

    // MARK: - checking the schema itself

    private static func check(schema: JSONValue, path: String, root: JSONValue, patterns: inout [String: Regex<AnyRegexOutput>]) throws {
        if case .bool = schema { return }
        guard case .object(let members) = schema else {
            throw JSONSchemaError.invalidKeyword(path: path, keyword: "", reason: "a schema must be an object or a boolean")
        }
        for key in members.keys.sorted() where !annotations.contains(key) && !keywords.contains(key) {
            throw JSONSchemaError.unsupportedKeyword(path: path, keyword: key)
        }
        func bad(_ keyword: String, _ reason: String) -> JSONSchemaError {
            .invalidKeyword(path: path, keyword: keyword, reason: reason)
        }
        func sub(_ s: JSONValue, _ p: String) throws { try check(schema: s, path: p, root: root, patterns: &patterns) }

        if let type = members["type"] {
            let names = type.array?.compactMap(\.string) ?? type.string.map { [$0] } ?? []
            if names.isEmpty || names.contains(where: { !typeNames.contains($0) }) { throw bad("type", "must name JSON types") }
        }
        if let required = members["required"], required.array?.allSatisfy({ $0.string != nil }) != true {
            throw bad("required", "must be an array of strings")
        }
        if let properties = members["properties"] {
            guard case .object(let props) = properties else { throw bad("properties", "must be an object") }
            for key in props.keys.sorted() { try sub(props[key] ?? .bool(true), path + "/properties/" + pointerEscape(key)) }
        }
        if let defs = members["$defs"] {
            guard case .object(let d) = defs else { throw bad("$defs", "must be an object") }
            for key in d.keys.sorted() { try sub(d[key] ?? .bool(true), path + "/$defs/" + pointerEscape(key)) }
        }
        if let additional = members["additionalProperties"] { try sub(additional, path + "/additionalProperties") }
        if let items = members["items"] { try sub(items, path + "/items") }
        if let oneOf = members["oneOf"] {
            guard let alternatives = oneOf.array, !alternatives.isEmpty else { throw bad("oneOf", "must be a non-empty array") }
            for (i, alternative) in alternatives.enumerated() { try sub(alternative, path + "/oneOf/\(i)") }
        }
        if let e = members["enum"], e.array?.isEmpty != false { throw bad("enum", "must be a non-empty array") }
        if let minimum = members["minimum"], minimum.double == nil { throw bad("minimum", "must be a number") }
        if let minItems = members["minItems"], (minItems.int ?? -1) < 0 { throw bad("minItems", "must be a non-negative integer") }
        if let pattern = members["pattern"] {
            guard let p = pattern.string else { throw bad("pattern", "must be a string") }
            do { patterns[p] = try Regex(p) } catch { throw bad("pattern", "is not a valid regular expression: \(error)") }
        }
        if let ref = members["$ref"] {
            guard let r = ref.string, resolve(r, in: root) != nil else { throw bad("$ref", "must point into this schema (\"#/...\")") }
        }
    }

    private static func pointerEscape(_ s: String) -> String {
        s.replacing("~", with: "~0").replacing("/", with: "~1")
    }

    private static func resolve(_ ref: String, in root: JSONValue) -> JSONValue? {
        guard ref == "#" || ref.hasPrefix("#/") else { return nil }
        var node = root
        for token in ref.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) where ref != "#" {
            let key = String(token).replacing("~1", with: "/").replacing("~0", with: "~")
            switch node {
            case .object(let members): guard let next = members[key] else { return nil }; node = next
            case .array(let items): guard let i = Int(key), items.indices.contains(i) else { return nil }; node = items[i]
            default: return nil
            }
        }
        return node
    }

    // MARK: - validating an instance

    private func validate(_ value: JSONValue, schema: JSONValue, path: String, depth: Int, memo: PatternMemo,
                          into out: inout [JSONSchemaViolation]) {
        func fail(_ message: String) { out.append(JSONSchemaViolation(path: path, message: message)) }
        if depth > JSONSchema.maxDepth { fail("schema nesting deeper than \(JSONSchema.maxDepth) levels"); return }
        switch schema {
        case .bool(true): return
        case .bool(false): fail("no value is allowed here"); return
        case .object: break
        default: return  // refused at init
        }

        if let ref = schema["$ref"]?.string, let target = JSONSchema.resolve(ref, in: root) {
            validate(value, schema: target, path: path, depth: depth + 1, memo: memo, into: &out)
        }
        if let type = schema["type"] {
            let names = type.array?.compactMap(\.string) ?? type.string.map { [$0] } ?? []
            if !names.contains(where: { JSONSchema.has(type: $0, value) }) {
                fail("\(JSONSchema.describe(value)) found, \(names.joined(separator: " or ")) expected")
                return  // the other keywords would only repeat the same mistake
            }
        }
        if let e = schema["enum"]?.array, !e.contains(value) {
            fail("\(value.canonicalText) is not one of \(e.map(\.canonicalText).joined(separator: ", "))")
        }
        if let c = schema["const"], c != value {
            fail("\(value.canonicalText) found, \(c.canonicalText) expected")
        }
        if let p = schema["pattern"]?.string, let s = value.string, let regex = patterns[p] {
            let matches = memo.results[p]?[s] ?? (s.firstMatch(of: regex) != nil)
            memo.results[p, default: [:]][s] = matches
            if !matches { fail("\"\(s)\" does not match the pattern \(p)") }
        }
        if let minimum = schema["minimum"]?.double, let n = value.double, n < minimum {
            fail("\(value.canonicalText) is below the minimum \(schema["minimum"]?.canonicalText ?? "")")
        }
        if case .array(let items) = value {
            if let minItems = schema["minItems"]?.int, items.count < minItems {
                fail("\(items.count) items, at least \(minItems) expected")
            }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() {
                    validate(item, schema: itemSchema, path: path + "/\(i)", depth: depth + 1, memo: memo, into: &out)
                }
            }
        }
        if case .object(let members) = value {
            for name in schema["required"]?.array?.compactMap(\.string) ?? [] where members[name] == nil {
                fail("required property \"\(name)\" is missing")
            }
            let properties: JSONObject
            if case .object(let p)? = schema["properties"] { properties = p } else { properties = [:] }
            for key in members.keys.sorted() {
                guard let member = members[key] else { continue }
                let memberPath = path + "/" + JSONSchema.pointerEscape(key)
                if let propertySchema = properties[key] {
                    validate(member, schema: propertySchema, path: memberPath, depth: depth + 1, memo: memo, into: &out)
                } else if let additional = schema["additionalProperties"] {
                    if additional == .bool(false) {
                        fail("property \"\(key)\" is not allowed")
                    } else {
                        validate(member, schema: additional, path: memberPath, depth: depth + 1, memo: memo, into: &out)
                    }
                }
            }
        }
        if let alternatives = schema["oneOf"]?.array {
            let results = alternatives.map { alternative -> [JSONSchemaViolation] in
                var v: [JSONSchemaViolation] = []
                validate(value, schema: alternative, path: path, depth: depth + 1, memo: memo, into: &v)
                return v
            }
            let matching = results.filter(\.isEmpty).count
            if matching > 1 {
                fail("matches \(matching) alternatives of oneOf, exactly one expected")
            } else if matching == 0, let closest = results.min(by: { $0.count < $1.count }) {
                // Reporting every alternative's complaints buries the real one; the
                // alternative with the fewest is the one the author meant.
                out.append(contentsOf: closest)
            }
        }
    }

    private static func has(type: String, _ value: JSONValue) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null): return true
        case ("number", .number): return true
        case ("integer", .number(let n)): return n.int != nil
        default: return false
        }
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number \(value.canonicalText)"
        case .string(let s): return "string \"\(s)\""
        case .array: return "array"
        case .object: return "object"
        }
    }
}
