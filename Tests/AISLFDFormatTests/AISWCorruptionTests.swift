import Foundation
import XCTest
import AISLFDCore
import AISLFDFormat
import AISLFDTestSupport

/// Every kind of damage and every hostile field must be refused with the right error.
final class AISWCorruptionTests: XCTestCase {
    private let good = try! AISWSamples.mixedWriter().encode()

    func testSampleOpensAndVerifies() throws {
        let file = try AISWFile.open(path: AISWTest.write(good))
        try file.verify()
    }

    // MARK: Flipped bytes

    func testEveryFlippedHeaderByteIsDetected() {
        for o in 0..<64 {
            var b = good
            b[o] ^= 0x10
            XCTAssertNotNil(AISWTest.openError(b), "header byte \(o)")
        }
        // Bytes no other check looks at are caught by the checksum.
        for o in [36, 50, 59, 60, 63] {
            var b = good
            b[o] ^= 0x01
            guard case .headerChecksumMismatch = AISWTest.openError(b) else { return XCTFail("byte \(o)") }
        }
    }

    func testFlippedMetadataAndTableBytesAreDetected() {
        let layout = AISWBytes(bytes: good)
        let probes = [64, 64 + layout.metadataLength / 2, 64 + layout.metadataLength - 1,
                      layout.tableOffset, layout.tableOffset + layout.tableLength / 2, layout.tableOffset + layout.tableLength - 1,
                      layout.dataOffset - 1]
        for o in probes {
            var b = good
            b[o] ^= 0x04
            guard case .headerChecksumMismatch = AISWTest.openError(b) else { return XCTFail("byte \(o)") }
        }
    }

    func testFlippedDataByteNamesTheTensor() throws {
        let layout = AISWBytes(bytes: good)
        for e in layout.entries {
            let key = layout.key(e)
            let length = Int(layout.u64(e + 16))
            if length == 0 { continue }
            var b = good
            b[Int(layout.u64(e + 8)) + length - 1] ^= 0x80
            guard case .checksumMismatch(key, "data", _, _) = AISWTest.openError(b) else { return XCTFail(key) }
            // Without verification at open the file opens, and verify() finds it.
            let file = try AISWFile.open(path: AISWTest.write(b), verifyData: false)
            XCTAssertThrowsError(try file.verify()) { error in
                XCTAssertTrue("\(error)".contains("tensor \(key): data checksum mismatch"), "\(error)")
                XCTAssertTrue("\(error)".hasPrefix("/"), "message starts with the path: \(error)")
            }
        }
    }

    func testFlippedScaleByteNamesTheTensor() {
        let layout = AISWBytes(bytes: good)
        for e in layout.entries where good[e + 4] == 3 {
            var b = good
            b[Int(layout.u64(e + 24))] ^= 0x01  // lowest mantissa bit: still a valid scale
            guard case .checksumMismatch(layout.key(e), "scales", _, _) = AISWTest.openError(b) else { return XCTFail(layout.key(e)) }
        }
    }

    func testNonZeroPaddingInTheDataSectionIsDetected() {
        let layout = AISWBytes(bytes: good)
        let first = layout.entries[0]
        let gap = Int(layout.u64(first + 8)) + Int(layout.u64(first + 16))  // 4*27*4 = 432, next at 448
        XCTAssertEqual(good[gap], 0)
        var b = good
        b[gap] = 1
        XCTAssertEqual(AISWTest.openError(b), .nonZeroPadding(offset: gap))
    }

    // MARK: Truncation and length

    func testTruncatedFilesAreRefused() {
        let layout = AISWBytes(bytes: good)
        for cut in [0, 3, 8, 20, 63, 64, 64 + layout.metadataLength / 2, layout.tableOffset + 5, layout.dataOffset,
                    layout.dataOffset + 100, good.count / 2, good.count - 1] {
            guard case .truncated = AISWTest.openError(Array(good[0..<cut])) else { return XCTFail("cut at \(cut)") }
        }
    }

    func testTrailingBytesAreRefused() {
        XCTAssertEqual(AISWTest.openError(good + [0]), .trailingBytes(expected: good.count, actual: good.count + 1))
    }

    func testWrongMagicAndVersion() {
        XCTAssertEqual(AISWTest.openError(Array("PK\u{3}\u{4} not an aisw file at all, but long enough to hold a header......".utf8)), .badMagic)
        XCTAssertEqual(AISWTest.openError(Array("{}".utf8)), .badMagic)
        var b = AISWBytes(bytes: good)
        b.set32(8, 3)
        XCTAssertEqual(AISWTest.openError(b.bytes), .unsupportedVersion(3))
    }

    func testNotARegularFileIsRefusedWithoutHanging() throws {
        let folder = try Fixtures.temporaryDirectory()
        XCTAssertEqual(AISWTest.error { _ = try AISWFile.open(path: folder.path) }, .file(.notARegularFile))
        let fifo = folder.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertEqual(AISWTest.error { _ = try AISWFile.open(path: fifo) }, .file(.notARegularFile))
        guard case .file(.cannotOpen) = AISWTest.error({ _ = try AISWFile.open(path: folder.appendingPathComponent("missing").path) }) else {
            return XCTFail()
        }
    }

    // MARK: Hostile fields (checksum recomputed so the deeper checks are reached)

    private func patched(_ change: (inout AISWBytes, [Int]) -> Void) -> [UInt8] {
        var b = AISWBytes(bytes: good)
        change(&b, b.entries)
        b.fixChecksum()
        return b.bytes
    }

    func testOffsetPastTheEnd() {
        let b = patched { b, e in b.set64(e[1] + 8, UInt64(b.bytes.count + 64) / 64 * 64) }
        guard case .outOfBounds(key: "msfe.stem.conv.bias", region: "data", _, _, _) = AISWTest.openError(b) else { return XCTFail() }
    }

    func testLengthThatOverflows() {
        let b = patched { b, e in b.set64(e[0] + 16, UInt64.max - 10) }
        guard case .outOfBounds(key: "msfe.stem.conv.weight", region: "data", _, _, _) = AISWTest.openError(b) else { return XCTFail() }
        let c = patched { b, e in b.set64(e[0] + 16, UInt64(Int.max)) }
        guard case .outOfBounds(key: "msfe.stem.conv.weight", region: "data", _, _, _) = AISWTest.openError(c) else { return XCTFail() }
    }

    func testOffsetIntoTheTable() {
        let b = patched { b, e in b.set64(e[0] + 8, 64) }
        guard case .outOfBounds(key: "msfe.stem.conv.weight", region: "data", offset: 64, _, _) = AISWTest.openError(b) else { return XCTFail() }
    }

    func testMisalignedData() {
        let b = patched { b, e in b.set64(e[1] + 8, b.u64(e[1] + 8) + 4) }
        guard case .misaligned(key: "msfe.stem.conv.bias", region: "data", _) = AISWTest.openError(b) else { return XCTFail() }
    }

    func testOverlappingTensors() {
        let b = patched { b, e in b.set64(e[1] + 8, b.u64(e[0] + 8)) }
        guard case .overlapping(key: "msfe.stem.conv.bias", region: "data", _, _) = AISWTest.openError(b) else { return XCTFail() }
    }

    func testLengthThatDisagreesWithTheShape() {
        let b = patched { b, e in b.set64(b.dims(e[0]), 5) }
        guard case .invalidTensor(key: "msfe.stem.conv.weight", _) = AISWTest.openError(b) else { return XCTFail() }
    }

    func testRankAboveTheLimit() {
        let b = patched { b, e in b.bytes[e[0] + 5] = 9 }
        XCTAssertEqual(AISWTest.openError(b), .limitExceeded(what: "rank of tensor msfe.stem.conv.weight", value: 9, limit: 8))
    }

    func testHugeDimension() {
        let b = patched { b, e in b.set64(b.dims(e[0]), UInt64.max) }
        guard case .limitExceeded(what: "dimension 0 of tensor msfe.stem.conv.weight", _, _) = AISWTest.openError(b) else { return XCTFail() }
        // Dimensions within the limit whose product overflows.
        let c = patched { b, e in for d in 0..<4 { b.set64(b.dims(e[0]) + 8 * d, UInt64(Int32.max)) } }
        guard case .invalidTensor(key: "msfe.stem.conv.weight", _) = AISWTest.openError(c) else { return XCTFail() }
    }

    func testKeyLongerThanTheLimit() {
        let b = patched { b, e in b.set16(e[0], 513) }
        XCTAssertEqual(AISWTest.openError(b), .limitExceeded(what: "key length of table entry 0", value: 513, limit: 512))
        let c = patched { b, e in b.set16(e[0] + 2, 129) }
        XCTAssertEqual(AISWTest.openError(c), .limitExceeded(what: "role length of table entry 0", value: 129, limit: 128))
    }

    func testKeyRunningPastTheTable() {
        let b = patched { b, e in b.set16(e.last!, 500) }
        guard case .invalidTable = AISWTest.openError(b) else { return XCTFail() }
    }

    func testTensorCountThatWouldNeedTerabytesOfTable() {
        let b = patched { b, _ in b.set32(32, UInt32.max) }
        XCTAssertEqual(AISWTest.openError(b), .limitExceeded(what: "tensor count", value: Int(UInt32.max), limit: 65_536))
        let c = patched { b, _ in b.set32(32, 60_000) }
        guard case .invalidTable = AISWTest.openError(c) else { return XCTFail() }
        let d = patched { b, _ in b.set32(32, 8) }
        guard case .invalidTable = AISWTest.openError(d) else { return XCTFail("an entry left over") }
    }

    func testSectionLengthsAboveTheLimits() {
        let b = patched { b, _ in b.set32(24, UInt32(16 << 20) + 1) }
        XCTAssertEqual(AISWTest.openError(b), .limitExceeded(what: "metadata length", value: (16 << 20) + 1, limit: 16 << 20))
        let c = patched { b, _ in b.set32(28, UInt32(64 << 20) + 8) }
        XCTAssertEqual(AISWTest.openError(c), .limitExceeded(what: "table length", value: (64 << 20) + 8, limit: 64 << 20))
        // Within the limits but longer than the file.
        let d = patched { b, _ in b.set32(28, 1 << 20) }
        guard case .truncated = AISWTest.openError(d) else { return XCTFail() }
    }

    func testFileLengthFieldsThatLie() {
        let b = patched { b, _ in b.set64(16, UInt64.max) }
        guard case .invalidHeader = AISWTest.openError(b) else { return XCTFail() }
        let c = patched { b, _ in b.set32(12, 128) }
        guard case .invalidHeader = AISWTest.openError(c) else { return XCTFail() }
        let d = patched { b, _ in b.bytes[40] = 1 }
        guard case .invalidHeader = AISWTest.openError(d) else { return XCTFail("reserved byte") }
    }

    func testUnknownStorageAndStraySpareFields() {
        let b = patched { b, e in b.bytes[e[0] + 4] = 7 }
        XCTAssertEqual(AISWTest.openError(b), .invalidTensor(key: "msfe.stem.conv.weight", problem: "unknown storage code 7"))
        let c = patched { b, e in b.set64(e[0] + 32, 4) }
        guard case .invalidTensor(key: "msfe.stem.conv.weight", _) = AISWTest.openError(c) else { return XCTFail() }
        let d = patched { b, e in b.bytes[e[0] + 6] = 1 }
        guard case .invalidTensor(key: "msfe.stem.conv.weight", _) = AISWTest.openError(d) else { return XCTFail() }
    }

    func testDuplicateKey() {
        let writer = AISWWriter(metadata: AISWSamples.metadata(), tensors: [
            .fp32(key: "aaaa", shape: [1], values: [1], role: ""),
            .fp32(key: "bbbb", shape: [1], values: [2], role: ""),
        ])
        var c = AISWBytes(bytes: try! writer.encode())
        let e = c.entries
        c.bytes.replaceSubrange((e[1] + 48)..<(e[1] + 52), with: Array("aaaa".utf8))
        c.fixChecksum()
        XCTAssertEqual(AISWTest.openError(c.bytes), .duplicateKey("aaaa"))
    }

    func testInvalidUTF8Key() {
        let b = patched { b, e in b.bytes[e[0] + 48] = 0xFF }
        XCTAssertEqual(AISWTest.openError(b), .invalidEntry(index: 0, problem: "key is not valid UTF-8"))
    }

    func testBadScales() {
        let layout = AISWBytes(bytes: good)
        let e = layout.entries.first { good[$0 + 4] == 3 }!
        for (bits, name) in [(Float(-1).bitPattern, "negative"), (Float.nan.bitPattern, "nan"), (Float.infinity.bitPattern, "inf")] {
            var b = AISWBytes(bytes: good)
            b.set32(Int(layout.u64(e + 24)) + 4, bits)
            guard case .invalidScale(key: "layer.conv.weight", channel: 1, _) = AISWTest.openError(b.bytes, verifyData: false) else {
                return XCTFail(name)
            }
        }
        let c = patched { b, e in
            let i = e.first { b.bytes[$0 + 4] == 3 }!
            b.set64(i + 32, 20)
        }
        guard case .invalidTensor(key: "layer.conv.weight", _) = AISWTest.openError(c) else { return XCTFail() }
    }

    // MARK: Metadata

    /// The sample file with its metadata replaced by `text` (re-laid out, checksum fixed).
    private func withMetadata(_ text: [UInt8]) -> [UInt8] {
        let old = AISWBytes(bytes: good)
        var b = AISWBytes(bytes: Array(good[0..<64]) + text)
        b.bytes += [UInt8](repeating: 0, count: (text.count + 7) / 8 * 8 - text.count)
        b.set32(24, UInt32(text.count))
        let table = Array(good[old.tableOffset..<(old.tableOffset + old.tableLength)])
        b.bytes += table
        let shift = b.dataOffset - old.dataOffset
        b.bytes += [UInt8](repeating: 0, count: b.dataOffset - b.bytes.count)
        b.bytes += good[old.dataOffset...]
        for e in b.entries {
            b.set64(e + 8, UInt64(Int(b.u64(e + 8)) + shift))
            if b.bytes[e + 4] == 3 { b.set64(e + 24, UInt64(Int(b.u64(e + 24)) + shift)) }
        }
        b.set64(16, UInt64(b.bytes.count))
        precondition(shift % 64 == 0)
        b.fixChecksum()
        return b.bytes
    }

    func testMetadataRelayoutHelperKeepsAValidFile() throws {
        let layout = AISWBytes(bytes: good)
        let padded = Array(good[64..<(64 + layout.metadataLength)]) + Array(String(repeating: " ", count: 200).utf8)
        let file = try AISWFile.open(path: AISWTest.write(withMetadata(padded)))
        XCTAssertEqual(file.metadata, AISWSamples.mixedWriter().metadata)
        XCTAssertEqual(try file.floats("layer.conv.bias"), AISWSamples.values([6]))
    }

    func testInvalidMetadataIsRefused() throws {
        let meta = String(decoding: try AISWSamples.mixedWriter().metadata.canonicalJSON(), as: UTF8.self)
        let cases: [(String, String)] = [
            ("not json", "not JSON"),
            ("[1,2]", "not an object"),
            (meta.replacingOccurrences(of: "{\"architecture\":\"aislfd-c\",", with: "{\"architecture\":\"aislfd-c\",\"architecture\":\"lisrd\","), "duplicate key"),
            (meta.replacingOccurrences(of: "\"architecture\":\"aislfd-c\",", with: ""), "missing field"),
            (meta.replacingOccurrences(of: "\"fold\":true", with: "\"fold\":\"yes\""), "wrong type"),
            (meta.replacingOccurrences(of: "\"extra\":{}", with: "\"extra\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100)), "too deep"),
            (meta + "x", "trailing bytes"),
            (meta.replacingOccurrences(of: "\"layer.conv.weight\":[", with: "\"nope\":["), "history of an unknown tensor"),
        ]
        for (text, name) in cases {
            guard case .invalidMetadata = AISWTest.openError(withMetadata(Array(text.utf8))) else { return XCTFail(name) }
        }
        XCTAssertEqual(AISWTest.openError(withMetadata(Array(#"{"a":1,"a":2}"#.utf8))), .invalidMetadata(#"JSON at byte 7: duplicate key "a""#))
        var bytes = Array(meta.utf8)
        bytes[bytes.firstIndex(of: 0xC3)!] = 0xFF  // first byte of "é"
        guard case .invalidMetadata = AISWTest.openError(withMetadata(bytes)) else { return XCTFail("invalid UTF-8") }
        // Unknown keys are kept, not refused: newer writers may add some.
        let extended = meta.replacingOccurrences(of: "{\"architecture\":", with: "{\"added_later\":[1,2],\"architecture\":")
        let file = try AISWFile.open(path: AISWTest.write(withMetadata(Array(extended.utf8))))
        XCTAssertEqual(file.metadataJSON["added_later"], .array([.int(1), .int(2)]))
    }
}
