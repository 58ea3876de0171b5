import Foundation
import XCTest
import AISLFDCore

final class JSONParserTests: XCTestCase {
    private func parse(_ s: String, maxDepth: Int = 64, keepDuplicateKeys: Bool = false) throws -> JSONValue {
        try JSONValue.parse(Array(s.utf8), maxDepth: maxDepth, keepDuplicateKeys: keepDuplicateKeys)
    }

    /// The parse error, or nil when `s` parses (or fails some other way, which the parser never should).
    private func error(_ s: String, maxDepth: Int = 64, maxBytes: Int = 1 << 20) -> JSONParseError? {
        let result = Result { try JSONValue.parse(Array(s.utf8), maxDepth: maxDepth, maxBytes: maxBytes) }
        guard case .failure(let failure) = result else { return nil }
        return failure as? JSONParseError
    }

    func testParsesEveryKindOfValue() throws {
        let v = try parse(#" { "a" : [ 1 , -2.5e1, true, null, "x\n" ], "b": {"c": false}, "d": {} } "#)
        XCTAssertEqual(v, .object(["a": .array([.int(1), .double(-25), .bool(true), .null, .string("x\n")]),
                                   "b": .object(["c": .bool(false)]), "d": .object([:])]))
        XCTAssertNotEqual(v, .object(["a": .array([.int(1), .double(-25), .bool(true), .null, .string("x")]),
                                      "b": .object(["c": .bool(false)]), "d": .object([:])]))
        XCTAssertEqual(v["b"]?["c"]?.bool, false)
        XCTAssertEqual(v["a"]?.array?.count, 5)
        XCTAssertNil(v["zz"])
        XCTAssertEqual(v.kindName, "object")
    }

    // 2^53 + 1 and 2^63 - 1 have no Double; offsets that large must still come back exact.
    func testIntegersStayExactBeyond2To53() throws {
        let v = try parse("[9007199254740993, 9223372036854775807, -9223372036854775808, 18446744073709551616, 2.0, 1e3, 2.5, -0]")
        let items = try XCTUnwrap(v.array)
        XCTAssertEqual(items[0].int, 9_007_199_254_740_993)
        XCTAssertNotEqual(items[0].double.map { Int($0) }, 9_007_199_254_740_993, "a Double would have lost the last bit")
        XCTAssertEqual(items[1].int, Int.max)
        XCTAssertEqual(items[2].int, Int.min)
        XCTAssertNil(items[3].int, "2^64 does not fit in Int")
        guard case .number(let big) = items[3] else { return XCTFail() }
        XCTAssertEqual(big.text, "18446744073709551616")
        XCTAssertEqual(items[4].int, 2)
        XCTAssertEqual(items[5].int, 1000)
        XCTAssertNil(items[6].int)
        XCTAssertEqual(items[6].double, 2.5)
        XCTAssertEqual(items[7].int, 0)
    }

    func testKeepsMembersInFileOrderWithDuplicatesWhenAsked() throws {
        let text = #"{"b": 1, "a": 2, "b": 3}"#
        let v = try parse(text, keepDuplicateKeys: true)
        XCTAssertEqual(v.object?.keys, ["b", "a", "b"])
        XCTAssertEqual(v.object?.members.map(\.value), [.int(1), .int(2), .int(3)])
        XCTAssertEqual(v["b"], .int(1), "lookup takes the first")
        let e = try XCTUnwrap(error(text))
        XCTAssertEqual(e.message, #"duplicate key "b""#)
        XCTAssertEqual(e.offset, 17)
        XCTAssertNoThrow(try parse(#"{"b": 1, "a": 2, "c": 3}"#))
        XCTAssertNoThrow(try parse(#"{"b": {"b": 1}, "a": [{"b": 2}]}"#), "the same key in different objects is no duplicate")
    }

    func testErrorsNameByteOffsetLineAndColumn() throws {
        let e = try XCTUnwrap(error("{\n  \"a\": 1,\n  \"a\": 2\n}"))
        XCTAssertEqual([e.offset, e.line, e.column], [14, 3, 3])
        XCTAssertEqual(e.description, #"line 3, column 3: duplicate key "a""#)
        // Columns count characters, offsets count bytes: "é" is two bytes.
        let u = try XCTUnwrap(error(#"["éé",x]"#))
        XCTAssertEqual([u.offset, u.line, u.column], [8, 1, 7])
        XCTAssertEqual(error("{\"kind\": \"block\",}")?.description, "line 1, column 18: expected a quoted key")
    }

    // Each broken text next to the nearest text that parses, so every refusal is shown to depend on the flaw.
    func testRefusesWhatIsNotStrictJSON() throws {
        let pairs: [(bad: String, good: String)] = [
            ("", "0"), ("{", "{}"), ("[1,]", "[1]"), ("[1 2]", "[1,2]"), (#"{"a" 1}"#, #"{"a":1}"#), (#"{"a":}"#, #"{"a":0}"#),
            ("{'a':1}", #"{"a":1}"#), ("{1:1}", #"{"1":1}"#), ("[1] x", "[1] "), ("tru", "true"), ("nul", "null"), ("True", "true"),
            ("01", "1"), ("-", "-1"), ("+1", "1"), ("1.", "1.0"), (".5", "0.5"), ("1e", "1e1"), ("1e+", "1e+1"), ("0x10", "16"),
            ("1e999", "1e99"), ("-1e999", "-1e99"), ("NaN", "0"),
            (#""abc"#, #""abc""#), (#""\x""#, #""\n""#), ("\"\u{1}\"", #""\u0001""#), ("\"a\tb\"", #""a\tb""#),
            (#""\u12""#, #""\u1234""#), (#""\u12g4""#, #""\u12f4""#),
            (#""\ud800""#, #""\ud800\udc00""#), (#""\ud800\u0041""#, #""\ud83d\ude00""#), (#""\udc00""#, #""\u00dc""#),
        ]
        for (bad, good) in pairs {
            XCTAssertNotNil(error(bad), bad)
            XCTAssertNoThrow(try parse(good), good)
        }
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xFF, 0x22]), "invalid UTF-8")
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xC3, 0x22]), "truncated UTF-8")
        XCTAssertNoThrow(try JSONValue.parse([0x22, 0xC3, 0xA9, 0x22]))
    }

    func testUnicodeEscapesAndSurrogatePairs() throws {
        XCTAssertEqual(try parse(#""\u00e9\ud83d\ude00\uD83D\uDE00\/\"\\\b\f\n\r\t""#), .string("é😀😀/\"\\\u{08}\u{0C}\n\r\t"))
        XCTAssertEqual(try parse(#""\u0000""#).string?.unicodeScalars.map(\.value), [0])
        XCTAssertEqual(try parse("\"é😀 raw\"").string, "é😀 raw")
        XCTAssertNotEqual(try parse(#""\u00e8""#).string, "é")
        XCTAssertEqual(error(#""\ud83d\u0041""#)?.message, #"unpaired surrogate in a \u escape"#)
    }

    func testDepthIsCapped() throws {
        func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }
        XCTAssertNoThrow(try parse(nested(64)))
        XCTAssertEqual(error(nested(65))?.message, "nested deeper than 64 levels")
        XCTAssertNoThrow(try parse(#"{"a":{"b":[1]}}"#, maxDepth: 3))
        XCTAssertEqual(error(#"{"a":{"b":[[1]]}}"#, maxDepth: 3)?.offset, 11)
        // A hostile header: a million brackets end in an error, not a stack overflow.
        XCTAssertNotNil(error(String(repeating: "[", count: 1_000_000), maxBytes: 2_000_000))
        XCTAssertNotNil(error(String(repeating: #"{"a":"#, count: 100_000), maxBytes: 2_000_000))
    }

    func testLengthIsCapped() throws {
        XCTAssertNoThrow(try JSONValue.parse(Array("[1, 2]".utf8), maxBytes: 6))
        XCTAssertEqual(error("[1, 2]", maxBytes: 5)?.message, "longer than 5 bytes")
    }
}

final class JSONWriterTests: XCTestCase {
    private func text(_ v: JSONValue) throws -> String { String(decoding: try v.canonicalBytes(), as: UTF8.self) }

    // The expected text is what Python writes with json.dumps(v, sort_keys=True, separators=(",", ":"),
    // ensure_ascii=False) for the same values, integral floats below 2^53 aside (written as integers).
    func testCanonicalForm() throws {
        let v = JSONValue.object([
            "b": .array([.int(1), .double(-2.5), .double(1e-5), .double(1e20), .double(0.1), .double(3), .null, .bool(true)]),
            "a": .string("line\nquote\"back\\slash\u{1}\u{7F}é\t\r/"),
            "B": .object([:]),
            "é": .double(9_007_199_254_740_992),
            "z": .array([]),
        ])
        XCTAssertEqual(try text(v), #"{"B":{},"a":"line\nquote\"back\\slash\u0001"# + "\u{7F}" +
                       #"é\t\r/","b":[1,-2.5,1e-05,1e+20,0.1,3,null,true],"z":[],"é":9007199254740992.0}"#)
        XCTAssertNotEqual(try text(.double(1e20)), "100000000000000000000")
        XCTAssertEqual(v.canonicalText, try text(v))
    }

    func testParsedNumbersAreWrittenByValue() throws {
        let v = try JSONValue.parse(#"[2.50, -0, 1E2, 1e-5, 9007199254740993, 0.30000000000000004, 123456789012345678901234]"#)
        XCTAssertEqual(try text(v), "[2.5,0,100,1e-05,9007199254740992.0,0.30000000000000004,1.2345678901234569e+23]")
    }

    func testKeysSortByUTF8Bytes() throws {
        // UTF-16 order would put U+FF61 after U+1F600 (a surrogate pair, 0xD83D); UTF-8 puts it before.
        let v = JSONValue.object(["\u{1F600}": .int(1), "\u{FF61}": .int(2), "z": .int(3), "Z": .int(4)])
        XCTAssertEqual(try text(v), "{\"Z\":4,\"z\":3,\"\u{FF61}\":2,\"\u{1F600}\":1}")
    }

    func testWriterOutputReadsBackToTheSameBytes() throws {
        let canonical = #"{"a":[1,-2.5,1e-05,"é\n",{"x":null,"y":false}],"b":{"":0}}"#
        let v = try JSONValue.parse(canonical)
        XCTAssertEqual(try text(v), canonical)
        XCTAssertEqual(try JSONValue.parse(try v.canonicalBytes()), v)
        let spaced = try JSONValue.parse(#" { "b" : { "" : 0 } , "a" : [ 1 , -2.5 , 1e-5 , "\u00e9\n" , { "y" : false , "x" : null } ] } "#)
        XCTAssertEqual(try text(spaced), canonical)
    }

    func testRefusesNonFiniteNumbers() throws {
        for bad in [Double.nan, .infinity, -.infinity] {
            XCTAssertThrowsError(try JSONValue.array([.double(bad)]).canonicalBytes()) { error in
                XCTAssertTrue(error is JSONWriteError, "\(error)")
            }
        }
        XCTAssertNoThrow(try JSONValue.array([.double(.greatestFiniteMagnitude)]).canonicalBytes())
    }
}

final class JSONValueTests: XCTestCase {
    func testNumbersCompareByValueAndObjectsInAnyOrder() {
        XCTAssertEqual(JSONValue.int(3), .double(3))
        XCTAssertNotEqual(JSONValue.int(3), .double(3.5))
        XCTAssertEqual(JSONValue.object(["a": .int(1), "b": .int(2)]), .object(["b": .int(2), "a": .int(1)]))
        XCTAssertNotEqual(JSONValue.object(["a": .int(1), "b": .int(2)]), .object(["b": .int(1), "a": .int(2)]))
        XCTAssertNotEqual(JSONValue.object(["a": .int(1)]), .object(["a": .int(1), "b": .null]))
        XCTAssertNotEqual(JSONValue.string("1"), .int(1))
    }

    func testObjectSubscriptSetsReplacesAndRemoves() {
        var o: JSONObject = ["a": .int(1)]
        o["b"] = .int(2)
        o["a"] = .int(3)
        XCTAssertEqual(o.keys, ["a", "b"])
        XCTAssertEqual(o["a"], .int(3))
        o["a"] = nil
        XCTAssertEqual(o.keys, ["b"])
        XCTAssertEqual(JSONObject(["z": .null, "a": .null]).keys, ["a", "z"])
    }

    func testCodableKeepsIntegersExact() throws {
        let v = JSONValue.object(["n": .int(9_007_199_254_740_993), "d": .double(0.1), "s": .array([.string("x"), .null, .bool(true)])])
        let back = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(v))
        XCTAssertEqual(back, v)
        XCTAssertEqual(back["n"]?.int, 9_007_199_254_740_993)
    }
}

final class GroupedTests: XCTestCase {
    func testGroupsThousands() {
        XCTAssertEqual(grouped(3_727_596), "3,727,596")
        XCTAssertEqual(grouped(-1000), "-1,000")
        XCTAssertEqual(grouped(999), "999")
        XCTAssertEqual(grouped(0), "0")
        XCTAssertEqual(grouped(Int.min), "-9,223,372,036,854,775,808")
        XCTAssertNotEqual(grouped(1000), "1000")
    }
}
