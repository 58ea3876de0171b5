import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// fp16 and int8 storage, and float32 conversion of other dtypes, against NumPy / PyTorch
/// (tools/make_fold_fixtures.py).
final class QuantizationTests: XCTestCase {
    private func convertWeight(_ values: [Float], _ options: ConversionOptions) throws -> Conversion {
        let shape = [values.count, 1, 1, 1]
        let schema = try ConvertFixtures.singleConvSchema(shape)
        let contents = WeightsContents(format: "fixture", tensors: [NamedTensor(key: "conv.weight", shape: shape, floats: values)])
        return try Converter.convert(contents, schema: schema, source: ConvertFixtures.source, options: options)
    }

    private func fp16Bits(_ conversion: Conversion) throws -> [UInt16] {
        let t = try XCTUnwrap(conversion.stored("conv.weight"))
        XCTAssertEqual(t.storage, .fp16)
        return t.data.withUnsafeBytes { raw in (0..<(t.data.count / 2)).map { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) } }
    }

    func testFP16RoundingMatchesNumPy() throws {
        let f = try ConvertFixtures.json("fp16.json")
        let values = try ConvertFixtures.floats(f["values"])
        let expected = try ConvertFixtures.uint16s(f["fp16"])
        let overflow = try XCTUnwrap(f["overflow"] as? [Bool])
        let flushed = try XCTUnwrap(f["flushed_to_zero"] as? [Bool])

        // Values that fit: converted without clamping, bit for bit NumPy's.
        let inRange = values.indices.filter { !overflow[$0] }
        let conversion = try convertWeight(inRange.map { values[$0] }, ConversionOptions(precision: .fp16))
        XCTAssertEqual(try fp16Bits(conversion), inRange.map { expected[$0] })
        let row = try XCTUnwrap(conversion.report.tensors.first)
        XCTAssertEqual(row.fp16FlushedToZero, try XCTUnwrap(f["flushed_count_in_range"] as? Int))
        XCTAssertEqual(row.fp16FlushedToZero, inRange.filter { flushed[$0] }.count)
        XCTAssertEqual(row.fp16Overflow, 0)
        XCTAssertEqual(conversion.metadata.passes.first { $0.name == "QuantizeFP16" }?.details["flushed_to_zero"], .int(row.fp16FlushedToZero))

        // The fixture tells rounding modes apart: it holds fp16 subnormals (a converter that
        // flushes them fails) and ties that go to even, where truncation or rounding half
        // away from zero would give another value.
        XCTAssertTrue(expected.contains { $0 & 0x7C00 == 0 && $0 & 0x03FF != 0 })
        for (x, even) in [(Float(1) + 0x1p-11, UInt16(0x3C00)), (1 + 3 * 0x1p-11, 0x3C02), (2049, 0x6800), (2051, 0x6802)] {
            let i = try XCTUnwrap(values.firstIndex(of: x), "\(x)")
            XCTAssertEqual(expected[i], even, "\(x)")
        }
    }

    func testFP16OverflowIsRefusedUnlessClamped() throws {
        let f = try ConvertFixtures.json("fp16.json")
        let values = try ConvertFixtures.floats(f["values"])
        let count = try XCTUnwrap(f["overflow_count"] as? Int)
        let largest = try XCTUnwrap(f["largest_overflow"] as? Double)
        XCTAssertGreaterThan(count, 0)

        XCTAssertThrowsError(try convertWeight(values, ConversionOptions(precision: .fp16))) { error in
            XCTAssertEqual(error as? ConversionError, .fp16Overflow(key: "conv.weight", count: count, largest: Float(largest)))
            XCTAssertTrue(String(describing: error).hasPrefix("tensor conv.weight: \(count) values overflow fp16"))
        }
        let clamped = try convertWeight(values, ConversionOptions(precision: .fp16, clamp: true))
        XCTAssertEqual(try fp16Bits(clamped), try ConvertFixtures.uint16s(f["fp16_clamped"]))
        XCTAssertEqual(clamped.report.totals.fp16Overflow, count)
        XCTAssertEqual(clamped.report.totals.fp16FlushedToZero, try XCTUnwrap(f["flushed_count"] as? Int))
        XCTAssertEqual(clamped.metadata.options.other["clamp"], .bool(true))
        XCTAssertEqual(clamped.metadata.passes.first { $0.name == "QuantizeFP16" }?.details["overflow_clamped"], .int(count))

        // Kept at fp32 by a pattern, the same tensor converts exactly, clamping or not.
        let kept = try convertWeight(values, ConversionOptions(precision: .fp16, keep: ["conv.*"]))
        XCTAssertEqual(kept.stored("conv.weight")?.storage, .fp32)
        XCTAssertEqual(try kept.values("conv.weight"), values)
    }

    func testInt8MatchesNumPy() throws {
        let f = try ConvertFixtures.json("int8.json")
        let conv = try XCTUnwrap(f["conv"] as? [String: Any]), linear = try XCTUnwrap(f["linear"] as? [String: Any])
        let convShape = try XCTUnwrap(conv["shape"] as? [Int]), linearShape = try XCTUnwrap(linear["shape"] as? [Int])
        let block = #"""
        {"kind": "block", "id": "conv-linear", "layers": [
         {"name": "conv", "op": "conv2d", "inChannels": \#(convShape[1]), "outChannels": \#(convShape[0]), "kernel": 3, "stride": 1,
          "padding": 1, "bias": false, "inputs": [{"from": "$input"}],
          "tensors": [{"name": "weight", "shape": \#(convShape), "dtype": "float", "role": "conv_weight"}]},
         {"name": "linear", "op": "linear", "inFeatures": \#(linearShape[1]), "outFeatures": \#(linearShape[0]), "bias": false,
          "inputs": [{"from": "$input"}],
          "tensors": [{"name": "weight", "shape": \#(linearShape), "dtype": "float", "role": "linear_weight"}]}]}
        """#
        let schema = try ConvertFixtures.composeSchema(blocks: ["conv-linear": block], parts: [("net", "conv-linear")])
        let contents = WeightsContents(format: "fixture", tensors: [
            NamedTensor(key: "conv.weight", shape: convShape, floats: try ConvertFixtures.floats(conv["values"])),
            NamedTensor(key: "linear.weight", shape: linearShape, floats: try ConvertFixtures.floats(linear["values"])),
        ])
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source, options: ConversionOptions(precision: .int8))

        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("int8.aisw").path
        try conversion.write(to: path)
        let file = try AISWFile.open(path: path)

        for (key, expected) in [("conv.weight", conv), ("linear.weight", linear)] {
            let t = try XCTUnwrap(conversion.stored(key))
            XCTAssertEqual(t.storage, .int8)
            XCTAssertEqual(t.data.map { Int8(bitPattern: $0) }, try XCTUnwrap(expected["q"] as? [Int]).map { Int8($0) }, key)
            XCTAssertEqual(t.scales?.map(\.bitPattern), try ConvertFixtures.uint32s(expected["scales"]), key)
            // The reader accepts the zero scale of the all-zero channel and dequantizes as NumPy.
            XCTAssertEqual(try file.floats(key).map(\.bitPattern), try ConvertFixtures.uint32s(expected["dequantized"]), key)
            let row = try XCTUnwrap(conversion.report.tensors.first { $0.key == key })
            XCTAssertEqual(row.sqnr.value, try XCTUnwrap(expected["sqnr_db"] as? Double), accuracy: 1e-9, key)
            XCTAssertEqual(row.maxAbsError, try XCTUnwrap(expected["max_abs_error"] as? Double), accuracy: 1e-12, key)
        }
        XCTAssertTrue(file.entry("conv.weight")?.scales?.first == 0)
        XCTAssertEqual(conversion.metadata.passes.first { $0.name == "QuantizeInt8" }?.details["zero_channels"], .int(2))
    }

    /// Ties of int8 rounding go to even: a wrong rounding mode fails the fixture comparison.
    func testInt8TiesGoToEven() throws {
        let f = try ConvertFixtures.json("int8.json")
        let conv = try XCTUnwrap(f["conv"] as? [String: Any])
        let values = try ConvertFixtures.floats(conv["values"])
        let shape = try XCTUnwrap(conv["shape"] as? [Int])
        let contents = WeightsContents(format: "fixture", tensors: [NamedTensor(key: "conv.weight", shape: shape, floats: values)])
        let conversion = try Converter.convert(contents, schema: try ConvertFixtures.singleConvSchema(shape), source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8, calibration: nil))
        let q = try XCTUnwrap(conversion.stored("conv.weight")).data.map { Int(Int8(bitPattern: $0)) }
        // Channel 1 has max 127, so its scale is 1 and x.5 values are exact ties.
        let channel = 18..<36
        XCTAssertEqual(Array(q[channel]), channel.map { Int(values[$0].rounded(.toNearestOrEven)) })
        XCTAssertNotEqual(Array(q[channel]), channel.map { Int(values[$0].rounded(.toNearestOrAwayFromZero)) })
    }

    func testOtherDTypesBecomeFloat32AsNumPyAndPyTorchDo() throws {
        let f = try ConvertFixtures.json("dtypes.json")
        func check(_ dtype: DType, _ data: [UInt8], count: Int, expected: [UInt32], file: StaticString = #filePath, line: UInt = #line) throws {
            let shape = [count, 1, 1, 1]
            let schema = try ConvertFixtures.singleConvSchema(shape)
            let contents = WeightsContents(format: "fixture", tensors: [NamedTensor(key: "conv.weight", dtype: dtype, shape: shape, data: data)])
            let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source, options: ConversionOptions())
            XCTAssertEqual(try conversion.values("conv.weight").map(\.bitPattern), expected, "\(dtype)", file: file, line: line)
            XCTAssertEqual(conversion.metadata.tensorHistory["conv.weight"]?.first?.hasPrefix("\(dtype.rawValue) -> float32"), true, file: file, line: line)
        }
        func bytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } } }

        let f16 = try ConvertFixtures.uint16s(f["float16"])
        try check(.float16, bytes(f16), count: f16.count, expected: try ConvertFixtures.uint32s(f["float16_as_float32"]))
        let bf16 = try ConvertFixtures.uint16s(f["bfloat16"])
        try check(.bfloat16, bytes(bf16), count: bf16.count, expected: try ConvertFixtures.uint32s(f["bfloat16_as_float32"]))
        let f64 = try XCTUnwrap(f["float64"] as? [String]).map { UInt64($0, radix: 16) ?? 0 }
        try check(.float64, bytes(f64), count: f64.count, expected: try ConvertFixtures.uint32s(f["float64_as_float32"]))

        // A float64 beyond float32's range is refused, naming the tensor.
        let huge = try XCTUnwrap(UInt64(try XCTUnwrap(f["float64_too_large"] as? String), radix: 16))
        let schema = try ConvertFixtures.singleConvSchema([2, 1, 1, 1])
        let contents = WeightsContents(format: "fixture", tensors: [NamedTensor(key: "conv.weight", dtype: .float64, shape: [2, 1, 1, 1],
                                                                                data: bytes([Double(1).bitPattern, huge]))])
        XCTAssertThrowsError(try Converter.convert(contents, schema: schema, source: ConvertFixtures.source)) { error in
            XCTAssertEqual(error as? ConversionError, .nonFinite(key: "conv.weight", count: 1, firstIndex: 1))
        }
    }

    func testKeepPatterns() throws {
        XCTAssertTrue(KeyPattern.matches("*", "a.b.c"))
        XCTAssertTrue(KeyPattern.matches("msfe.heads.*.conv2.weight", "msfe.heads.rot_var_illum_var.conv2.weight"))
        XCTAssertFalse(KeyPattern.matches("msfe.heads.*.conv2.weight", "msfe.heads.rot_var_illum_var.conv1.weight"))
        XCTAssertTrue(KeyPattern.matches("*.conv?.weight", "msfe.heads.x.conv1.weight"))
        XCTAssertFalse(KeyPattern.matches("*.conv?.weight", "msfe.stem.conv.weight"))
        XCTAssertTrue(KeyPattern.matches("*a*b*", "xxaxxbxx"))
        XCTAssertFalse(KeyPattern.matches("*a*b", "xxaxxbxx"))
        XCTAssertTrue(KeyPattern.matches("psa.rot_var_illum_var.query.weight", "psa.rot_var_illum_var.query.weight"))
        XCTAssertFalse(KeyPattern.matches("psa.rot_var_illum_var.query.weight", "psa.rot_var_illum_var.query.weight2"))
        XCTAssertFalse(KeyPattern.matches("", "a"))

        let schema = try SchemaLibrary.load(id: "aislfd-c")
        let keep = ["msfe.heads.*.conv2.weight", "msfe.stem.*"]
        let conversion = try Converter.convert(SyntheticWeights.contents(schema), schema: schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8, keep: keep, calibration: nil))
        for t in conversion.writer.tensors {
            let keptByPattern = keep.contains { KeyPattern.matches($0, t.key) }
            let quantized = t.role == "conv_weight" || t.role == "linear_weight"
            XCTAssertEqual(t.storage, quantized && !keptByPattern ? .int8 : .fp32, t.key)
            let row = try XCTUnwrap(conversion.report.tensors.first { $0.key == t.key })
            XCTAssertEqual(row.keptBy != nil, quantized && keptByPattern, t.key)
        }
        XCTAssertEqual(conversion.report.tensors.filter { $0.keptBy != nil }.count, 5)  // 4 heads + the stem's conv
        XCTAssertEqual(conversion.report.notes, [])
    }
}
