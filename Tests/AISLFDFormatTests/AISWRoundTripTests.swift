import Foundation
import XCTest
import AISLFDCore
import AISLFDFormat
import AISLFDTestSupport

final class AISWRoundTripTests: XCTestCase {
    private func writeAndOpen(_ writer: AISWWriter) throws -> AISWFile {
        let path = try Fixtures.temporaryDirectory().appendingPathComponent("out.aisw").path
        try writer.write(to: path)
        return try AISWFile.open(path: path)
    }

    func testFP32RoundTripIsExactAndZeroCopy() throws {
        let tensors = AISWSamples.fp32Tensors()
        let file = try writeAndOpen(AISWWriter(metadata: AISWSamples.metadata(), tensors: tensors))
        XCTAssertEqual(file.metadata, AISWSamples.metadata())
        XCTAssertEqual(file.tensors.map(\.key), tensors.map(\.key))
        XCTAssertEqual(file.tensors.map(\.shape), [[4, 3, 3, 3], [4], [], [0, 5]])
        XCTAssertEqual(file.tensors.map(\.role), ["conv.weight", "conv.bias", "scalar", "empty"])
        XCTAssertEqual(file.tensors.map(\.storage), [.fp32, .fp32, .fp32, .fp32])

        let expected = AISWSamples.values([4, 3, 3, 3])
        XCTAssertEqual(try file.floats("msfe.stem.conv.weight"), expected)
        XCTAssertEqual(try file.floats("scalar"), [AISWSamples.value(7)])
        XCTAssertEqual(try file.floats("empty"), [])

        // The data lies in the mapping at the table's 64-aligned offset, bytes as written.
        let entry = try XCTUnwrap(file.entry("msfe.stem.conv.weight"))
        let raw = try file.rawData("msfe.stem.conv.weight")
        XCTAssertEqual(entry.dataOffset % 64, 0)
        XCTAssertEqual(Int(bitPattern: raw.baseAddress!) % 64, 0)
        XCTAssertEqual(raw.count, expected.count * 4)
    }

    func testFP16RoundTripWidensExactly() throws {
        let file = try writeAndOpen(AISWWriter(metadata: AISWSamples.metadata(precision: "fp16"), tensors: AISWSamples.fp16Tensors()))
        for t in AISWSamples.fp16Tensors() {
            // Expected values decoded here from the binary16 definition, not by the reader.
            let bits = stride(from: 0, to: t.data.count, by: 2).map { UInt16(t.data[$0]) | UInt16(t.data[$0 + 1]) << 8 }
            let expected = bits.map(Self.halfToFloat)
            XCTAssertEqual(try file.floats(t.key), expected, t.key)
            XCTAssertEqual(expected, AISWSamples.values(t.shape), "sample values are exact in fp16")
            XCTAssertEqual(file.entry(t.key)?.storage, .fp16)
            XCTAssertEqual(Array(try file.rawData(t.key)), t.data)
        }
    }

    func testInt8RoundTripDequantizesPerOutputChannel() throws {
        let file = try writeAndOpen(AISWWriter(metadata: AISWSamples.metadata(precision: "int8"), tensors: AISWSamples.int8Tensors()))
        for t in AISWSamples.int8Tensors() where t.storage == .int8 {
            let channels = t.shape[0], perChannel = t.data.count / channels
            let scales = (0..<channels).map(AISWSamples.scale)
            let expected = (0..<t.data.count).map { Float(Int8(bitPattern: t.data[$0])) * scales[$0 / perChannel] }
            XCTAssertEqual(try file.floats(t.key), expected, t.key)
            XCTAssertEqual(file.entry(t.key)?.scales, scales)
            XCTAssertEqual(file.entry(t.key)?.role, t.role)
        }
        XCTAssertEqual(try file.floats("layer.conv.bias"), AISWSamples.values([6]))
        // A reader that ignored the scales would return the raw integers: make sure it does not.
        XCTAssertNotEqual(try file.floats("layer.conv.weight"), (0..<108).map { Float(AISWSamples.quantized($0)) })
    }

    func testEveryRegionIsAlignedTo64() throws {
        let bytes = try AISWSamples.mixedWriter().encode()
        let layout = AISWBytes(bytes: bytes)
        XCTAssertEqual(layout.dataOffset % 64, 0)
        for e in layout.entries {
            XCTAssertEqual(layout.u64(e + 8) % 64, 0, layout.key(e))
            XCTAssertEqual(layout.u64(e + 24) % 64, 0, layout.key(e))
        }
        let file = try AISWFile.open(path: AISWTest.write(bytes))
        XCTAssertEqual(file.tensors.count, 9)
        for e in file.tensors {
            XCTAssertEqual(e.dataOffset % 64, 0)
            XCTAssertEqual(e.scalesOffset % 64, 0)
        }
    }

    func testSameInputGivesSameBytes() throws {
        let a = try AISWSamples.mixedWriter().encode()
        let b = try AISWSamples.mixedWriter().encode()
        XCTAssertEqual(a, b)
        let folder = try Fixtures.temporaryDirectory()
        let p1 = folder.appendingPathComponent("1.aisw").path, p2 = folder.appendingPathComponent("2.aisw").path
        try AISWSamples.mixedWriter().write(to: p1)
        try AISWSamples.mixedWriter().write(to: p2)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: p1)), Data(a))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: p2)), Data(a))
        // A different value changes the bytes (the comparison above can fail).
        var other = AISWSamples.mixedWriter()
        other.metadata.converter.version = "0.1.1"
        XCTAssertNotEqual(try other.encode(), a)
    }

    func testMetadataIsCanonicalJSON() throws {
        let bytes = try AISWSamples.mixedWriter().encode()
        let layout = AISWBytes(bytes: bytes)
        let text = String(decoding: bytes[64..<(64 + layout.metadataLength)], as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{\"architecture\":\"aislfd-c\",\"architecture_config\":{\"descriptor_dim\":128,\"eps\":1e-05,"), text)
        XCTAssertTrue(text.contains("\"note\":\"quote \\\" backslash \\\\ tab \\t é\""), text)
        XCTAssertFalse(text.contains(" \""), "no whitespace between tokens")
        let file = try AISWFile.open(path: AISWTest.write(bytes))
        XCTAssertEqual(file.metadataJSON["options"]?["precision"], .string("int8"))
        XCTAssertEqual(file.metadata.tensorHistory, ["layer.conv.weight": ["int8 per channel"]])
    }

    func testLimitsAreInclusive() throws {
        let longKey = String(repeating: "k", count: AISWFormat.maxKeyLength)
        let longRole = String(repeating: "r", count: AISWFormat.maxRoleLength)
        let shape = [Int](repeating: 1, count: AISWFormat.maxRank)
        let writer = AISWWriter(metadata: AISWSamples.metadata(),
                                tensors: [.fp32(key: longKey, shape: shape, values: [1.5], role: longRole)])
        let file = try AISWFile.open(path: AISWTest.write(writer.encode()))
        XCTAssertEqual(file.tensors.first?.key, longKey)
        XCTAssertEqual(file.tensors.first?.shape, shape)
        XCTAssertEqual(file.tensors.first?.role, longRole)
    }

    func testNoTensorsIsAValidFile() throws {
        let file = try AISWFile.open(path: AISWTest.write(AISWWriter(metadata: AISWSamples.metadata(), tensors: []).encode()))
        XCTAssertEqual(file.tensors.count, 0)
        XCTAssertEqual(file.fileLength, file.dataOffset)
    }

    /// IEEE 754 binary16 to float, from the definition.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign: Float = h & 0x8000 != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F), fraction = Float(h & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * powf(2, -24)
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * powf(2, Float(exponent - 15))
        }
    }
}
