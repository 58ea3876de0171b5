import Foundation
import XCTest
import AISLFDCore
import AISLFDFormat
import AISLFDTestSupport

/// The committed files in Tests/Fixtures/aisw/ are what the writer makes today, byte for byte:
/// a change to the format shows up here first. tools/test_aisw_py.py reads the same files with
/// tools/aisw.py. Regenerate them (after a deliberate format change) with
///   tools/fixtures/make_aisw_fixtures.sh
/// which runs `AISW_REGENERATE_FIXTURES=1 swift test --filter AISWFixtureTests`.
final class AISWFixtureTests: XCTestCase {
    static func fixtures() throws -> [(name: String, bytes: [UInt8])] {
        let fp32 = try AISWWriter(metadata: AISWSamples.metadata(), tensors: AISWSamples.fp32Tensors()).encode()
        let fp16 = try AISWWriter(metadata: AISWSamples.metadata(precision: "fp16"), tensors: AISWSamples.fp16Tensors()).encode()
        let int8 = try AISWWriter(metadata: AISWSamples.metadata(precision: "int8", history: ["layer.conv.weight": ["int8 per channel"]]),
                                  tensors: AISWSamples.int8Tensors()).encode()
        var corrupt = AISWBytes(bytes: int8)
        let first = corrupt.entries[0]  // layer.conv.weight
        corrupt.bytes[Int(corrupt.u64(first + 8)) + 5] ^= 0x01
        return [("fp32.aisw", fp32), ("fp16.aisw", fp16), ("int8.aisw", int8),
                ("corrupt-data.aisw", corrupt.bytes), ("truncated.aisw", Array(fp32[0..<(fp32.count / 2)]))]
    }

    func testCommittedFixturesAreWhatTheWriterMakes() throws {
        let regenerate = ProcessInfo.processInfo.environment["AISW_REGENERATE_FIXTURES"] == "1"
        for (name, bytes) in try Self.fixtures() {
            let url = URL(fileURLWithPath: Fixtures.path("aisw/\(name)"))
            if regenerate { try Data(bytes).write(to: url) }
            XCTAssertEqual(try Data(contentsOf: url), Data(bytes), "\(name) differs from the writer's output")
        }
    }

    // Parsing the stored metadata and writing it again gives the stored bytes: numbers
    // re-read from their text come out as the writer first wrote them.
    func testStoredMetadataIsCanonical() throws {
        for name in ["fp32.aisw", "fp16.aisw", "int8.aisw"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("aisw/\(name)"))))
            let meta = Array(bytes[64..<(64 + AISWBytes(bytes: bytes).metadataLength)])
            XCTAssertEqual(try JSONValue.parse(meta).canonicalBytes(), meta, name)
            let spaced = Array(String(decoding: meta, as: UTF8.self).replacingOccurrences(of: ",", with: ", ").utf8)
            XCTAssertNotEqual(spaced, meta)
            XCTAssertEqual(try JSONValue.parse(spaced).canonicalBytes(), meta, name)
        }
    }

    func testCommittedFixturesReadBack() throws {
        let fp32 = try AISWFile.open(path: Fixtures.path("aisw/fp32.aisw"))
        XCTAssertEqual(try fp32.floats("msfe.stem.conv.weight"), AISWSamples.values([4, 3, 3, 3]))
        let int8 = try AISWFile.open(path: Fixtures.path("aisw/int8.aisw"))
        XCTAssertEqual(int8.entry("psa.query.weight")?.scales, [1 / 128, 2 / 128, 3 / 128])
        guard case .checksumMismatch(key: "layer.conv.weight", region: "data", _, _) =
                AISWTest.error({ _ = try AISWFile.open(path: Fixtures.path("aisw/corrupt-data.aisw")) }) else { return XCTFail() }
        guard case .truncated = AISWTest.error({ _ = try AISWFile.open(path: Fixtures.path("aisw/truncated.aisw")) }) else { return XCTFail() }
    }
}
