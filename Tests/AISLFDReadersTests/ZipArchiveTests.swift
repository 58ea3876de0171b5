import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import XCTest

final class ZipArchiveTests: XCTestCase {
    private func archive(_ name: String) throws -> ZipArchive {
        try ZipArchive(bytes: fileBytes(Fixtures.path(name)))
    }

    /// The zip problem a hostile archive causes, from opening it or reading every entry.
    private func zipProblem(_ name: String) -> ZipError? {
        do {
            let a = try archive(name)
            for e in a.entries { _ = try a.read(e) }
            XCTFail("\(name) was read without error")
            return nil
        } catch let e as ZipError {
            return e
        } catch {
            XCTFail("\(name): \(type(of: error)) \(error)")
            return nil
        }
    }

    func testStoredDeflatedAndEmptyEntries() throws {
        let a = try archive("zip/plain.zip")
        XCTAssertEqual(a.entries.map(\.name), ["stored.txt", "deflated.txt", "empty.txt"])
        XCTAssertEqual(a.entries.map(\.method), [0, 8, 0])
        let expected = try String(contentsOfFile: Fixtures.path("zip/plain.txt.sha256"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for name in ["stored.txt", "deflated.txt"] {
            let entry = try XCTUnwrap(a.entry(named: name))
            XCTAssertEqual(SHA256.hex(try a.read(entry)), expected, name)
            XCTAssertEqual(String(decoding: try a.readPrefix(entry, count: 11), as: UTF8.self), "zip archive")
        }
        XCTAssertEqual(try a.read(XCTUnwrap(a.entry(named: "empty.txt"))), [])
        XCTAssertNil(a.entry(named: "missing.txt"))
    }

    func testZip64EndRecordAndExtraFields() throws {
        let a = try archive("npz/zip64.npz")
        XCTAssertEqual(a.entries.map(\.name), ["f4.npy", "i8.npy", "be_f8.npy", "scalar_f4.npy"])
        // Python wrote these through zip64 extra fields (sizes and offsets saturated in the 32-bit fields).
        XCTAssertEqual(a.entries.map(\.uncompressedSize), [224, 224, 160, 132])
        for e in a.entries { XCTAssertEqual(try a.read(e).count, e.uncompressedSize) }
    }

    func testCallerLimitRefusesBeforeReading() throws {
        let a = try archive("zip/plain.zip")
        let entry = try XCTUnwrap(a.entry(named: "deflated.txt"))
        XCTAssertThrowsError(try a.read(entry, limit: 999)) { error in
            XCTAssertEqual(error as? ZipError, .entryTooLarge(entry: "deflated.txt", declared: 1000, limit: 999))
        }
        XCTAssertEqual(try a.read(entry, limit: 1000).count, 1000)
    }

    func testClaimedTerabytesFailFast() throws {
        let start = Date()
        var stored: ZipError?, deflated: ZipError?
        let growth = peakMemoryGrowth {
            stored = zipProblem("zip/claims_terabytes_stored.zip")
            deflated = zipProblem("zip/claims_terabytes_deflate.zip")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), Fixtures.hangLimit)
        XCTAssertLessThan(growth ?? 0, 16 << 20)
        guard case .outOfBounds(let what)? = stored else { return XCTFail("\(String(describing: stored))") }
        XCTAssertTrue(what.contains("2199023255552 bytes"), what)
        guard case .impossibleRatio("w.npy", 2 << 40, _)? = deflated else { return XCTFail("\(String(describing: deflated))") }
    }

    func testLyingDirectoryStructures() {
        let many = zipProblem("zip/claims_many_entries.zip")
        guard case .outOfBounds(let what)? = many else { return XCTFail("\(String(describing: many))") }
        XCTAssertTrue(what.contains("65534 entries"), what)
        let offset = zipProblem("zip/bad_directory_offset.zip")
        guard case .outOfBounds? = offset else { return XCTFail("\(String(describing: offset))") }
        let local = zipProblem("zip/bad_local_offset.zip")
        XCTAssertEqual(local, .badSignature(what: "local header of entry 'a.npy'", offset: 5))
        let size = zipProblem("zip/bad_entry_size.zip")
        guard case .outOfBounds(let data)? = size else { return XCTFail("\(String(describing: size))") }
        XCTAssertTrue(data.hasPrefix("data of entry 'a.npy'"), data)
    }

    func testBadEntryContents() {
        guard case .corruptDeflate(let entry, _)? = zipProblem("zip/bad_deflate_data.zip") else { return XCTFail() }
        XCTAssertEqual(entry, "a.npy")
        XCTAssertEqual(zipProblem("zip/bad_method.zip"), .unsupportedMethod(entry: "a.npy", method: 12))
        guard case .crcMismatch(let crcEntry, _, _)? = zipProblem("npz/bad_crc.npz") else { return XCTFail() }
        XCTAssertEqual(crcEntry, "f2.npy")
        XCTAssertEqual(zipProblem("npz/bad_deflate_bomb_lying.npz"), .inflatesBeyondDeclaredSize(entry: "w.npy", declared: 144))
    }

    func testNotZipAndTruncated() throws {
        XCTAssertEqual(zipProblem("npz/bad_random.npz"), .notAZip(byteCount: 4096))
        XCTAssertEqual(zipProblem("npz/bad_random_after_signature.npz"), .notAZip(byteCount: 4100))
        let whole = try fileBytes(Fixtures.path("npz/dtypes.npz"))
        XCTAssertNoThrow(try ZipArchive(bytes: whole))
        for cut in [0, 1, 4, 21, 22, 100, whole.count / 2, whole.count - 23, whole.count - 22, whole.count - 1] {
            XCTAssertThrowsError(try ZipArchive(bytes: Array(whole[..<cut])), "cut at \(cut)") { error in
                XCTAssertTrue(error is ZipError, "cut at \(cut): \(error)")
            }
        }
    }

    /// A damaged central directory record (its signature) is caught, not skipped.
    func testDamagedCentralRecord() throws {
        var bytes = try fileBytes(Fixtures.path("zip/plain.zip"))
        let signature: [UInt8] = [0x50, 0x4B, 0x01, 0x02]
        let at = try XCTUnwrap((0..<(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == signature })
        bytes[at + 3] = 0x09
        XCTAssertThrowsError(try ZipArchive(bytes: bytes)) { error in
            XCTAssertEqual(error as? ZipError, .badSignature(what: "central directory record 0", offset: at))
        }
    }

    func testSignatureSniffing() throws {
        XCTAssertTrue(ZipArchive.hasZipSignature(Array(try fileBytes(Fixtures.path("zip/plain.zip")).prefix(8))))
        XCTAssertTrue(ZipArchive.hasZipSignature([0x50, 0x4B, 0x05, 0x06]))
        XCTAssertFalse(ZipArchive.hasZipSignature(Array(try fileBytes(Fixtures.path("npz/v1.npy")).prefix(8))))
        XCTAssertFalse(ZipArchive.hasZipSignature([0x50, 0x4B]))
    }
}
