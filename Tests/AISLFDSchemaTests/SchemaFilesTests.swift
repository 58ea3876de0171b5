import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// The files under Schemas/: they obey schema.schema.json, the module embeds
/// them verbatim, and the validator refuses broken ones.
final class SchemaFilesTests: XCTestCase {
    static func schemaFilesOnDisk() throws -> [String: String] {
        let root = URL(fileURLWithPath: Fixtures.repoPath("Schemas"))
        var files: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let url = enumerator?.nextObject() as? URL {
            guard url.pathExtension == "json" else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count + 1))
            files[relative] = try String(contentsOf: url, encoding: .utf8)
        }
        return files
    }

    func testEmbeddedTextsEqualTheFilesInSchemas() throws {
        let disk = try Self.schemaFilesOnDisk()
        XCTAssertFalse(disk.isEmpty)
        let embedded = SchemaLibrary.embeddedFiles
        XCTAssertEqual(Set(embedded.keys), Set(disk.keys),
                       "embedded schema files differ from Schemas/: run python3 tools/embed_schemas.py")
        for (path, text) in disk {
            XCTAssertEqual(embedded[path], text, "\(path) differs from its embedded copy: run python3 tools/embed_schemas.py")
        }
    }

    func testArchitectureFilesAreTheFourOfTheSpec() {
        let top = SchemaLibrary.embeddedFiles.keys.filter { !$0.contains("/") && $0 != "schema.schema.json" }
        XCTAssertEqual(Set(top), ["lisrd.json", "aislfd-a.json", "aislfd-b.json", "aislfd-c.json"])
        XCTAssertEqual(SchemaLibrary.ids, ["lisrd", "aislfd-a", "aislfd-b", "aislfd-c"])
    }

    func testEverySchemaFileObeysSchemaSchema() throws {
        let meta = try JSONSchema(text: try String(contentsOfFile: Fixtures.repoPath("Schemas/schema.schema.json"), encoding: .utf8))
        let disk = try Self.schemaFilesOnDisk()
        var checked = 0
        for (path, text) in disk.sorted(by: { $0.key < $1.key }) where path != "schema.schema.json" {
            XCTAssertEqual(meta.validate(text: text), [], path)
            checked += 1
        }
        XCTAssertEqual(checked, 10)  // four architectures, six blocks
    }

    private func violations(_ fixture: String) throws -> [JSONSchemaViolation] {
        let text = try String(contentsOfFile: Fixtures.path("schema/\(fixture)"), encoding: .utf8)
        return try SchemaLibrary.metaSchema().validate(text: text)
    }

    func testGoodFixtureObeys() throws {
        XCTAssertEqual(try violations("good-block.json"), [])
    }

    func testRefusesMissingRole() throws {
        XCTAssertEqual(try violations("bad-missing-role.json").map(\.description),
                       ["/layers/0/tensors/1: required property \"role\" is missing"])
    }

    func testRefusesUnknownRole() throws {
        let v = try violations("bad-unknown-role.json")
        XCTAssertEqual(v.count, 1)
        XCTAssertEqual(v.first?.path, "/layers/0/tensors/1/role")
        XCTAssertTrue(v.first?.message.hasPrefix("\"conv_scale\" is not one of \"conv_weight\"") ?? false, "\(v)")
    }

    func testRefusesNegativeDimension() throws {
        XCTAssertEqual(try violations("bad-negative-dimension.json").map(\.description),
                       ["/layers/0/tensors/0/shape/1: -3 is below the minimum 0"])
    }

    func testRefusesExtraProperty() throws {
        XCTAssertEqual(try violations("bad-extra-property.json").map(\.description),
                       ["/layers/0/tensors/0: property \"layout\" is not allowed"])
    }

    func testRefusesNonJSON() throws {
        let v = try SchemaLibrary.metaSchema().validate(text: "{\"kind\": \"block\",}")
        XCTAssertEqual(v.count, 1)
        XCTAssertTrue(v.first?.message.hasPrefix("not JSON: line 1, column 18") ?? false, "\(v)")
    }
}

/// The JSON Schema subset, keyword by keyword: each passes a good instance and fails a bad one.
final class JSONSchemaTests: XCTestCase {
    private func check(_ schema: String, _ instance: String) throws -> [String] {
        try JSONSchema(text: schema).validate(text: instance).map(\.description)
    }

    func testType() throws {
        XCTAssertEqual(try check(#"{"type": "integer"}"#, "3"), [])
        XCTAssertEqual(try check(#"{"type": "integer"}"#, "3.0"), [])  // 2020-12: a number with no fraction is an integer
        XCTAssertEqual(try check(#"{"type": "integer"}"#, "3.5"), ["/: number 3.5 found, integer expected"])
        XCTAssertEqual(try check(#"{"type": "number"}"#, "3"), [])
        XCTAssertEqual(try check(#"{"type": ["string", "null"]}"#, "null"), [])
        XCTAssertEqual(try check(#"{"type": "boolean"}"#, "1"), ["/: number 1 found, boolean expected"])
        XCTAssertEqual(try check(#"{"type": "object"}"#, "[]"), ["/: array found, object expected"])
    }

    func testRequiredPropertiesAdditionalProperties() throws {
        let s = #"{"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}, "additionalProperties": false}"#
        XCTAssertEqual(try check(s, #"{"a": "x"}"#), [])
        XCTAssertEqual(try check(s, #"{}"#), ["/: required property \"a\" is missing"])
        XCTAssertEqual(try check(s, #"{"a": 1}"#), ["/a: number 1 found, string expected"])
        XCTAssertEqual(try check(s, #"{"a": "x", "b": 1}"#), ["/: property \"b\" is not allowed"])
        let open = #"{"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}}"#
        XCTAssertEqual(try check(open, #"{"a": "x", "b/c": 1}"#), [])
        XCTAssertEqual(try check(open, #"{"a": "x", "b/c": "y"}"#), ["/b~1c: string \"y\" found, integer expected"])
    }

    func testItemsMinItemsMinimum() throws {
        let s = #"{"type": "array", "minItems": 2, "items": {"type": "integer", "minimum": 0}}"#
        XCTAssertEqual(try check(s, "[0, 5]"), [])
        XCTAssertEqual(try check(s, "[1]"), ["/: 1 items, at least 2 expected"])
        XCTAssertEqual(try check(s, "[1, -2, -3]"), ["/1: -2 is below the minimum 0", "/2: -3 is below the minimum 0"])
    }

    func testEnumConstPattern() throws {
        XCTAssertEqual(try check(#"{"enum": ["a", 1]}"#, "1.0"), [])
        XCTAssertEqual(try check(#"{"enum": ["a", 1]}"#, #""b""#), [#"/: "b" is not one of "a", 1"#])
        XCTAssertEqual(try check(#"{"const": "x"}"#, #""x""#), [])
        XCTAssertEqual(try check(#"{"const": "x"}"#, #""y""#), [#"/: "y" found, "x" expected"#])
        XCTAssertEqual(try check(#"{"pattern": "^a[0-9]+$"}"#, #""a12""#), [])
        XCTAssertEqual(try check(#"{"pattern": "^a[0-9]+$"}"#, #""a1b""#), [#"/: "a1b" does not match the pattern ^a[0-9]+$"#])
        XCTAssertEqual(try check(#"{"pattern": "b"}"#, #""abc""#), [])  // unanchored, as JSON Schema says
    }

    func testRefAndOneOf() throws {
        let s = #"""
        {"oneOf": [{"$ref": "#/$defs/small"}, {"$ref": "#/$defs/word"}],
         "$defs": {"small": {"type": "integer", "minimum": 10}, "word": {"type": "string", "pattern": "^[a-z]+$"}}}
        """#
        XCTAssertEqual(try check(s, "12"), [])
        XCTAssertEqual(try check(s, #""abc""#), [])
        // Neither matches: the closest alternative's complaint is the one reported.
        XCTAssertEqual(try check(s, "3"), ["/: 3 is below the minimum 10"])
        let both = #"{"oneOf": [{"type": "integer"}, {"type": "number"}]}"#
        XCTAssertEqual(try check(both, "3"), ["/: matches 2 alternatives of oneOf, exactly one expected"])
    }

    func testRefusesKeywordsOutsideTheSubset() {
        XCTAssertThrowsError(try JSONSchema(text: #"{"maxItems": 3}"#)) { error in
            XCTAssertEqual(error as? JSONSchemaError, .unsupportedKeyword(path: "", keyword: "maxItems"))
        }
        XCTAssertThrowsError(try JSONSchema(text: #"{"properties": {"a": {"format": "uri"}}}"#)) { error in
            XCTAssertEqual(error as? JSONSchemaError, .unsupportedKeyword(path: "/properties/a", keyword: "format"))
        }
        XCTAssertThrowsError(try JSONSchema(text: ##"{"$ref": "#/$defs/nothing"}"##))
        XCTAssertThrowsError(try JSONSchema(text: #"{"pattern": "("}"#))
        XCTAssertThrowsError(try JSONSchema(text: #"{"type": "float"}"#))
    }

    func testRefCycleEndsWithAViolation() throws {
        let v = try check(##"{"$ref": "#"}"##, "1")
        XCTAssertEqual(v.count, 1)
        XCTAssertTrue(v.first?.contains("deeper than") ?? false, "\(v)")
    }
}
