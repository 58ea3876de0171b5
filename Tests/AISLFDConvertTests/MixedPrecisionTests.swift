import AISLFDConvert
import AISLFDCore
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// How MixedPrecision spends the size budget, and how it respects keep patterns and fp16
/// overflow. Small calibration runs: these check the bookkeeping, not the accuracy
/// (ParityTests does that with the defaults).
final class MixedPrecisionTests: XCTestCase {
    static let quick = CalibrationSettings(images: 1, height: 48, width: 64, sensitivityImages: 1, sensitivityHeight: 48, sensitivityWidth: 64)

    private func record(_ conversion: Conversion) throws -> JSONValue {
        try XCTUnwrap(conversion.metadata.passes.first { $0.name == "MixedPrecision" }?.details)
    }

    /// A missing or non-numeric field fails the test (the record's layout is what is tested).
    private struct NotANumber: Error { let json: JSONValue? }

    private func number(_ json: JSONValue?) throws -> Double {
        guard let n = json?.double else { throw NotANumber(json: json) }
        return n
    }

    func testPromotionsFillTheBudgetGreedily() throws {
        let (schema, contents) = try CalibrationTests.sample("lisrd.h5")
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8, calibration: Self.quick))
        let r = try record(conversion)
        XCTAssertEqual(r["ran"], .bool(true))
        let budget = Int(try number(r["budget_bytes"]))
        XCTAssertEqual(budget, Int((0.27 * Double(schema.valueCount * 4)).rounded(.down)))
        guard case .array(let rows)? = r["candidates"] else { return XCTFail("no candidates") }
        // Every weight is a candidate but those that compute in int8 (the converter's last
        // attempt spends the budget with ChooseInt8Compute's decision made).
        let int8Compute = conversion.metadata.int8Compute ?? [:]
        guard case .array(let others)? = r["not_candidates"] ?? .array([]) else { return XCTFail("not_candidates") }
        XCTAssertEqual(Set(others.compactMap { $0["key"]?.string }), Set(int8Compute.keys))
        XCTAssertEqual(rows.count + int8Compute.count, conversion.report.tensors.filter { $0.role == "conv_weight" || $0.role == "linear_weight" }.count)
        var used = Int(try number(r["bytes_before"]))
        var lastRatio = Double.infinity
        var promoted: [String] = []
        for row in rows {
            guard case .string(let key)? = row["key"] else { return XCTFail("no key") }
            let s = try number(row["sensitivity"]), extra = Int(try number(row["extra_bytes"]))
            XCTAssertLessThanOrEqual(s / Double(extra), lastRatio, "ranked by error per byte: \(key)")
            lastRatio = s / Double(extra)
            if row["promoted_to"] == .string("fp16") {
                used += extra
                promoted.append(key)
                XCTAssertEqual(conversion.stored(key)?.storage, .fp16, key)
                XCTAssertEqual(conversion.metadata.tensorHistory[key]?.last?.hasPrefix("promoted by MixedPrecision to fp16 instead of int8"), true, key)
                XCTAssertNotNil(conversion.report.tensors.first { $0.key == key }?.promotion, key)
            } else {
                XCTAssertEqual(conversion.stored(key)?.storage, .int8, key)
                if s > 0 { XCTAssertGreaterThan(used + extra, budget, "\(key) would have fitted") }
            }
            XCTAssertLessThanOrEqual(used, budget)
        }
        XCTAssertEqual(try number(r["bytes_after"]), Double(used))
        XCTAssertFalse(promoted.isEmpty)
        XCTAssertEqual(promoted.first, "_backbone._conv1_1.weight", "the first conv costs the most per byte")
        XCTAssertLessThanOrEqual(conversion.report.totals.outputBytes, budget)
        XCTAssertEqual(conversion.report.totals.sizeBudget, 0.27)
        XCTAssertEqual(conversion.metadata.options.other["size_budget"], .double(0.27))
        XCTAssertTrue(conversion.report.humanReadable.contains("budget 27.0%"))
    }

    func testABudgetBelowTheFileSizePromotesNothing() throws {
        let (schema, contents) = try CalibrationTests.sample("lisrd.h5")
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8, calibration: Self.quick, sizeBudget: 0.2))
        let r = try record(conversion)
        XCTAssertEqual(r["ran"], .bool(false))
        XCTAssertEqual(r["reason"], .string("the file is already at or over the budget before any promotion"))
        for t in conversion.writer.tensors where t.role == "conv_weight" || t.role == "linear_weight" { XCTAssertEqual(t.storage, .int8, t.key) }
    }

    func testKeptTensorsStayFP32AndAreNoCandidates() throws {
        let (schema, contents) = try CalibrationTests.sample("lisrd.h5")
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8, keep: ["_backbone._conv1_?.weight"], calibration: Self.quick))
        XCTAssertEqual(conversion.stored("_backbone._conv1_1.weight")?.storage, .fp32)
        XCTAssertEqual(conversion.stored("_backbone._conv1_2.weight")?.storage, .fp32)
        guard case .array(let rows)? = try record(conversion)["candidates"] else { return XCTFail("no candidates") }
        XCTAssertFalse(rows.contains { $0["key"] == .string("_backbone._conv1_1.weight") || $0["key"] == .string("_backbone._conv1_2.weight") })
        XCTAssertLessThanOrEqual(conversion.report.totals.ratio, 0.27)
    }

    /// At int8 a weight whose fp16 overflows is not promoted without clamping; with it, it is,
    /// clamped and counted. (Storage only: a weight computing in int8 is no candidate at all.)
    func testFP16OverflowBlocksAPromotionUnlessClamped() throws {
        let (schema, source) = try CalibrationTests.sample("lisrd.h5")
        var contents = source
        let at = try XCTUnwrap(contents.tensors.firstIndex { $0.key == "_backbone._conv1_1.weight" })
        var values = contents.tensors[at].floats()
        values[0] = 70_000
        contents.tensors[at] = NamedTensor(key: contents.tensors[at].key, shape: contents.tensors[at].shape, floats: values)

        let plain = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                          options: ConversionOptions(precision: .int8, calibration: Self.quick, weightsOnly: true))
        XCTAssertEqual(plain.stored("_backbone._conv1_1.weight")?.storage, .int8)
        guard case .array(let refused)? = try record(plain)["not_candidates"] else { return XCTFail("no not_candidates") }
        XCTAssertEqual(refused, [.object(["key": .string("_backbone._conv1_1.weight"), "reason": .string("its fp16 would overflow and clamping is off")])])

        let clamped = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                            options: ConversionOptions(precision: .int8, clamp: true, calibration: Self.quick, weightsOnly: true))
        XCTAssertEqual(clamped.stored("_backbone._conv1_1.weight")?.storage, .fp16)
        XCTAssertEqual(clamped.report.tensors.first { $0.key == "_backbone._conv1_1.weight" }?.fp16Overflow, 1)
        XCTAssertEqual(try clamped.values("_backbone._conv1_1.weight")[0], 65504)
    }

    /// At fp16 the promotions go to fp32, within 52%.
    func testFP16PromotesToFP32() throws {
        let (schema, contents) = try CalibrationTests.sample("aislfd-a.pth")
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .fp16, calibration: Self.quick))
        let promoted = conversion.report.tensors.filter { $0.promotion != nil }
        XCTAssertFalse(promoted.isEmpty)
        for row in promoted {
            XCTAssertEqual(row.storage, "fp32", row.key)
            XCTAssertTrue(row.sqnr.isExact, row.key)
        }
        XCTAssertEqual(promoted.first?.key, "_backbone._conv1_1.weight")
        XCTAssertLessThanOrEqual(conversion.report.totals.ratio, 0.52)
        XCTAssertGreaterThan(conversion.report.totals.ratio, 0.51)
    }

    /// Architectures the runtime does not know get plain rounding and no promotions, and the
    /// records say why.
    func testWithoutARuntimeModelNothingIsCalibrated() throws {
        let shape = [4, 2, 3, 3]
        let schema = try ConvertFixtures.singleConvSchema(shape)
        let contents = WeightsContents(format: "fixture", tensors: [NamedTensor(key: "conv.weight", shape: shape, floats: (0..<72).map { Float($0) / 7 - 5 })])
        let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source, options: ConversionOptions(precision: .int8))
        let collect = try XCTUnwrap(conversion.metadata.passes.first { $0.name == "CollectInputMoments" }?.details)
        XCTAssertEqual(collect["reason"], .string("the runtime has no model of architecture fixture; int8 weights are rounded to nearest"))
        XCTAssertEqual(conversion.report.tensors.first?.rounding, "nearest")
        XCTAssertEqual(conversion.stored("conv.weight")?.storage, .int8)
    }
}
