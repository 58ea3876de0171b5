import AISLFDCore
import AISLFDFormat
import AISLFDTestSupport
import XCTest

/// Version 2: int8 scales per block of a row and the layers that compute in int8. A writer
/// writes version 1 unless a file needs 2, so every version 1 file keeps its bytes.
final class AISWVersion2Tests: XCTestCase {
    /// 3 rows of 10 values, blocks of 4: 3 scales per row (4 + 4 + 2 values).
    private static let grouped = AISWTensor.int8(key: "layer.conv.weight", shape: [3, 10], values: (0..<30).map(AISWSamples.quantized),
                                                 scales: (0..<9).map(AISWSamples.scale), role: "conv.weight", scaleGroup: 4)

    private func open(_ writer: AISWWriter) throws -> AISWFile {
        try AISWFile.open(path: try AISWTest.write(try writer.encode()))
    }

    func testPerChannelFilesStayVersion1() throws {
        let writer = AISWSamples.mixedWriter()
        XCTAssertEqual(AISWBytes(bytes: try writer.encode()).u32(8), 1)
        XCTAssertEqual(try open(writer).version, 1)
    }

    func testBlockScalesRoundTripAsVersion2() throws {
        let writer = AISWWriter(metadata: AISWSamples.metadata(precision: "int8"), tensors: [Self.grouped])
        let file = try open(writer)
        XCTAssertEqual(file.version, 2)
        XCTAssertEqual(file.entry("layer.conv.weight")?.scaleGroup, 4)
        let values = try file.floats("layer.conv.weight")
        for c in 0..<3 {
            for j in 0..<10 {
                XCTAssertEqual(values[c * 10 + j], Float(AISWSamples.quantized(c * 10 + j)) * AISWSamples.scale(c * 3 + j / 4), "[\(c), \(j)]")
            }
        }
        XCTAssertEqual(try writer.encodedLength(), try writer.encode().count)
    }

    func testInt8ComputeRoundTripsAndIsChecked() throws {
        var metadata = AISWSamples.metadata(precision: "int8")
        metadata.int8Compute = ["layer.conv.weight": .init(inputScale: 0.0123, inputZeroPoint: 17)]
        let file = try open(AISWWriter(metadata: metadata, tensors: AISWSamples.int8Tensors()))
        XCTAssertEqual(file.version, 2)
        XCTAssertEqual(file.metadata.int8Compute?["layer.conv.weight"], .init(inputScale: 0.0123, inputZeroPoint: 17))
        XCTAssertEqual(try file.int8Values("layer.conv.weight"), (0..<108).map(AISWSamples.quantized))

        // Only an int8 tensor with one scale per output channel can compute in int8.
        for (tensors, key) in [(AISWSamples.int8Tensors(), "layer.conv.bias"), ([Self.grouped], "layer.conv.weight")] {
            var bad = AISWSamples.metadata(precision: "int8")
            bad.int8Compute = [key: .init(inputScale: 1, inputZeroPoint: 0)]
            XCTAssertThrowsError(try AISWWriter(metadata: bad, tensors: tensors).encode(), key)
        }
        var zero = metadata
        zero.int8Compute = ["layer.conv.weight": .init(inputScale: 0, inputZeroPoint: 0)]
        XCTAssertThrowsError(try AISWWriter(metadata: zero, tensors: AISWSamples.int8Tensors()).encode())
    }

    /// A version 1 file may not use version 2's fields.
    func testVersion1RefusesVersion2Fields() throws {
        var b = AISWBytes(bytes: try AISWWriter(metadata: AISWSamples.metadata(precision: "int8"), tensors: [Self.grouped]).encode())
        b.set32(8, 1)
        b.fixChecksum()
        XCTAssertEqual(AISWTest.openError(b.bytes), .invalidTensor(key: "layer.conv.weight", problem: "reserved table field is not zero"))

        var metadata = AISWSamples.metadata(precision: "int8")
        metadata.int8Compute = ["layer.conv.weight": .init(inputScale: 0.5, inputZeroPoint: 1)]
        var c = AISWBytes(bytes: try AISWWriter(metadata: metadata, tensors: AISWSamples.int8Tensors()).encode())
        c.set32(8, 1)
        c.fixChecksum()
        XCTAssertEqual(AISWTest.openError(c.bytes), .invalidMetadata("int8_compute needs version 2, the file is version 1"))
    }

    func testBlockScaleCountIsChecked() {
        var t = Self.grouped
        t.scales = Array(t.scales!.prefix(8))
        XCTAssertThrowsError(try AISWWriter(metadata: AISWSamples.metadata(precision: "int8"), tensors: [t]).encode())
    }
}
