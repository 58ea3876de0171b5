import AISLFDCore
import XCTest

/// `echoed`: input text in a message is one bounded line whatever the file holds.
final class InputTextTests: XCTestCase {
    func testControlCharactersAreEscaped() {
        XCTAssertEqual(echoed("conv.weight"), "conv.weight")
        XCTAssertEqual(echoed("a\nb\rc\td"), "a\\nb\\rc\\td")
        XCTAssertEqual(echoed("bell\u{07} del\u{7F} nel\u{85}"), "bell\\x07 del\\x7f nel\\x85")
        XCTAssertEqual(echoed("ls\u{2028}ps\u{2029}zw\u{200B}"), "ls\\u{2028}ps\\u{2029}zw\\u{200b}")
        // A backslash is doubled, so "\n" in the input cannot pass for an escaped newline.
        XCTAssertEqual(echoed("a\\nb"), "a\\\\nb")
        XCTAssertEqual(echoed("ü.gewicht €"), "ü.gewicht €")
    }

    func testLongTextIsCut() {
        let long = String(repeating: "x", count: 5000)
        XCTAssertEqual(echoed(long), String(repeating: "x", count: 120) + "…")
        XCTAssertEqual(echoed(long, limit: 10), "xxxxxxxxxx…")
        XCTAssertEqual(echoed(String(repeating: "y", count: 120)), String(repeating: "y", count: 120))
        // An escape counts as one character, so escapes cannot stretch the line past the bound much.
        XCTAssertEqual(echoed(String(repeating: "\n", count: 300), limit: 3), "\\n\\n\\n…")
    }

    func testBytesAreDecodedThenEscaped() {
        XCTAssertEqual(echoed(bytes: [0x6C, 0x69, 0x74, 0x0A, 0xFF]), "lit\\n\u{FFFD}")
        let many = [UInt8](repeating: 0x41, count: 100_000)
        XCTAssertEqual(echoed(bytes: many, limit: 5), "AAAAA…")
        XCTAssertEqual(echoed(bytes: [UInt8](repeating: 0x0A, count: 100_000), limit: 2), "\\n\\n…")
    }

    /// The checks above can fail: a message built without `echoed` spans lines.
    func testUnescapedTextWouldSpanLines() {
        let key = "conv\nweight"
        XCTAssertTrue("tensor '\(key)': bad".contains("\n"))
        XCTAssertFalse("tensor '\(echoed(key))': bad".contains("\n"))
    }
}
