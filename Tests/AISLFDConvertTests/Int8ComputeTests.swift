import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import AISLFDRuntime
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// ChooseInt8Compute's bookkeeping on a small calibration run (accuracy is ParityTests'): every
/// layer it tried has its measurement and a decision that follows the rule, the file names
/// exactly the layers chosen, and `--weights-only` computes nothing in int8.
final class Int8ComputeTests: XCTestCase {
    private func record(_ conversion: Conversion) throws -> JSONValue {
        try XCTUnwrap(conversion.metadata.passes.first { $0.name == "ChooseInt8Compute" }?.details)
    }

    func testDecisionsFollowTheRuleAndTheFileSaysSo() throws {
        let (schema, contents) = try CalibrationTests.sample("lisrd.h5")
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8, calibration: MixedPrecisionTests.quick))
        let r = try record(conversion)
        XCTAssertEqual(r["ran"], .bool(true))
        let cosines = Converter.int8ComputeCosines
        var chosen: Set<String> = []
        guard case .array(let layers)? = r["layers"] else { return XCTFail("no layers") }
        for layer in layers {
            // A layer taken with its input equalized is judged by that measurement.
            let prefix = layer["input_equalized_by"] == nil ? "" : "equalized_"
            let desc = try XCTUnwrap(layer[prefix + "desc_cosine_quantile"]?.double), meta = try XCTUnwrap(layer[prefix + "meta_cosine_quantile"]?.double)
            let int8 = layer["compute"] == .string("int8")
            // Each layer's own int8 error, in dB: a few tens, never an empty or absurd figure.
            let sqnr = try XCTUnwrap(layer["output_sqnr_db"]?.double, "\(layer)")
            XCTAssertTrue((10...80).contains(sqnr), "\(sqnr) dB")
            // Greedy: a layer is taken only when the network with it stays within both cosines.
            if int8 { XCTAssertTrue(desc >= cosines.descriptor && meta >= cosines.meta) }
            guard case .array(let keys)? = layer["weights"] else { return XCTFail("no weights") }
            if int8 { chosen.formUnion(keys.compactMap(\.string)) }
        }
        XCTAssertEqual(Set((conversion.metadata.int8Compute ?? [:]).keys), chosen)
        // The report says the same per layer, and in one line.
        let reported = try XCTUnwrap(conversion.report.int8Layers)
        XCTAssertEqual(reported.count, layers.count)
        XCTAssertEqual(Set(reported.filter { $0.compute == "int8" }.flatMap(\.weights)), chosen)
        XCTAssertTrue(conversion.report.summary.contains("int8 arithmetic: \(reported.filter { $0.compute == "int8" }.count) of \(layers.count) layers tried"),
                      conversion.report.summary)
        // What computes in int8 is stored int8 with one scale per output channel, and is no promotion candidate.
        for key in chosen {
            XCTAssertEqual(conversion.writer.tensors.first { $0.key == key }?.storage, .int8, key)
            XCTAssertEqual(conversion.writer.tensors.first { $0.key == key }?.scaleGroup, 0, key)
        }
        XCTAssertEqual(try AISWBytes.version(conversion.writer.encode()), chosen.isEmpty ? 1 : 2)
    }

    func testWeightsOnlyComputesNothingInInt8() throws {
        let (schema, contents) = try CalibrationTests.sample("lisrd.h5")
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8, calibration: MixedPrecisionTests.quick, weightsOnly: true))
        XCTAssertEqual(try record(conversion)["ran"], .bool(false))
        XCTAssertNil(conversion.metadata.int8Compute)
        XCTAssertNil(conversion.report.int8Layers)
        XCTAssertFalse(conversion.report.summary.contains("int8 arithmetic"))
        XCTAssertEqual(try AISWBytes.version(conversion.writer.encode()), 1)
        XCTAssertEqual(conversion.metadata.options.other["weights_only"], .bool(true))
    }
}

private enum AISWBytes {
    static func version(_ bytes: [UInt8]) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[8 + $1]) << (8 * $1) } }
}
