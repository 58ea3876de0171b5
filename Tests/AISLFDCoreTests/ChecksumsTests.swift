import XCTest
import AISLFDCore

final class ChecksumsTests: XCTestCase {
    // Digests of the FIPS 180-4 example messages.
    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertNotEqual(SHA256.hex(Array("abd".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testSHA256StreamingMatchesOneShot() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var s = SHA256()
        s.update(Array(bytes[0..<3])); s.update(Array(bytes[3..<130])); s.update(Array(bytes[130...]))
        XCTAssertEqual(s.finalize(), { var t = SHA256(); t.update(bytes); return t.finalize() }())
    }

    func testCRC32KnownVector() {
        XCTAssertEqual(crc32(Array("123456789".utf8)), 0xCBF4_3926)
    }

    func testCheckedArithmeticRefusesOverflow() {
        XCTAssertThrowsError(try Checked.elementCount([1 << 40, 1 << 40]))
        XCTAssertThrowsError(try Checked.elementCount([-1, 3]))
        XCTAssertEqual(try Checked.byteCount([2, 3], .float32), 24)
        XCTAssertThrowsError(try Checked.int(UInt64.max))
    }
}
