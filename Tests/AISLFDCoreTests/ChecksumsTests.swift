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
        XCTAssertNotEqual(crc32(Array("123456788".utf8)), 0xCBF4_3926)
    }

    /// Long enough for the eight-byte steps, an odd tail, and chained seeds; the value is
    /// `python3 -c "import zlib; print(hex(zlib.crc32(bytes((i*7)&255 for i in range(1000)))))"`.
    func testCRC32MatchesZlibAndChains() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        XCTAssertEqual(crc32(bytes), 0x114A_D5FF)
        let chained = bytes.withUnsafeBytes { raw in
            crc32(UnsafeRawBufferPointer(rebasing: raw[13...]), seed: crc32(UnsafeRawBufferPointer(rebasing: raw[..<13])))
        }
        XCTAssertEqual(chained, 0x114A_D5FF)
        XCTAssertEqual(crc32([UInt8]()), 0)
    }

    func testCheckedArithmeticRefusesOverflow() {
        XCTAssertThrowsError(try Checked.elementCount([1 << 40, 1 << 40]))
        XCTAssertThrowsError(try Checked.elementCount([-1, 3]))
        XCTAssertEqual(try Checked.byteCount([2, 3], .float32), 24)
        XCTAssertThrowsError(try Checked.int(UInt64.max))
    }
}
