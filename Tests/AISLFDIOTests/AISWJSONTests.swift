import XCTest
import AISLFDIO

final class AISWJSONTests: XCTestCase {
    private func text(_ v: AISWJSON) throws -> String { String(decoding: try v.canonicalBytes(), as: UTF8.self) }

    func testCanonicalForm() throws {
        let v = AISWJSON.object([
            "b": .array([.number(1), .number(-2.5), .number(1e-5), .number(1e20), .number(0.1), .null, .bool(true)]),
            "a": .string("line\nquote\"back\\slash\u{1}é"),
            "B": .object([:]),
            "é": .number(9_007_199_254_740_992),
        ])
        XCTAssertEqual(try text(v), #"{"B":{},"a":"line\nquote\"back\\slash\u0001é","b":[1,-2.5,1e-05,1e+20,0.1,null,true],"é":9007199254740992.0}"#)
        XCTAssertEqual(try AISWJSON.parse(try v.canonicalBytes()), v)
        XCTAssertThrowsError(try AISWJSON.number(.infinity).canonicalBytes())
    }

    func testParsesStandardJSON() throws {
        let v = try AISWJSON.parse(Array(#" { "a" : [ 1 , 2.5e1, -0, "\u00e9\ud83d\ude00\/" ], "b": {"c": false} } "#.utf8))
        XCTAssertEqual(v, .object(["a": .array([.number(1), .number(25), .number(0), .string("é😀/")]), "b": .object(["c": .bool(false)])]))
    }

    func testRefusesWhatIsNotStrictJSON() {
        let bad = [#"{"a":1,"a":2}"#, "[1,]", "{\"a\":1}x", "01", "1.", "nul", "\"\\x\"", "\"\u{1}\"", "\"\\ud800\"",
                   String(repeating: "[", count: 65) + String(repeating: "]", count: 65), "1e999", "", "{'a':1}"]
        for s in bad {
            XCTAssertThrowsError(try AISWJSON.parse(Array(s.utf8)), s)
        }
        XCTAssertNoThrow(try AISWJSON.parse(Array((String(repeating: "[", count: 64) + String(repeating: "]", count: 64)).utf8)))
        XCTAssertThrowsError(try AISWJSON.parse([0x22, 0xFF, 0x22]), "invalid UTF-8")
    }
}
