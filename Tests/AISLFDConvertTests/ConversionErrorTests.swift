import AISLFDConvert
import AISLFDCore
import AISLFDSchema
import XCTest

/// Input the validator should have refused still gives a typed error naming the tensor,
/// never a crash.
final class ConversionErrorTests: XCTestCase {
    private func convertFixture(_ name: String, options: ConversionOptions = ConversionOptions(),
                                _ change: (inout [NamedTensor]) -> Void) throws -> Conversion {
        let c = try ConvertFixtures.foldCase(name)
        var tensors = c.contents.tensors
        change(&tensors)
        return try Converter.convert(WeightsContents(format: "fixture", tensors: tensors), schema: c.schema,
                                     source: ConvertFixtures.source, options: options)
    }

    private func expect(_ expected: ConversionError, options: ConversionOptions = ConversionOptions(), in name: String = "conv-bn-s1",
                        file: StaticString = #filePath, line: UInt = #line, _ change: (inout [NamedTensor]) -> Void) {
        XCTAssertThrowsError(try convertFixture(name, options: options, change), file: file, line: line) { error in
            XCTAssertEqual(error as? ConversionError, expected, file: file, line: line)
        }
    }

    func testUnchangedInputConverts() throws {
        XCTAssertNoThrow(try convertFixture("conv-bn-s1") { _ in })
    }

    func testSizeBudgetOutsideZeroToOne() {
        for b in [0, -0.1, 1.5, .infinity] {
            expect(.invalidSizeBudget(b), options: ConversionOptions(precision: .int8, sizeBudget: b)) { _ in }
        }
        XCTAssertThrowsError(try convertFixture("conv-bn-s1", options: ConversionOptions(precision: .int8, sizeBudget: .nan)) { _ in }) {
            XCTAssertEqual("\($0)", "size budget nan: must be a fraction above 0 and at most 1")
        }
        XCTAssertNoThrow(try convertFixture("conv-bn-s1", options: ConversionOptions(precision: .int8, sizeBudget: 1)) { _ in })
    }

    func testMissingTensor() {
        for fold in [true, false] {
            expect(.missingTensor(key: "bn.running_var", role: "bn_running_var"), options: ConversionOptions(fold: fold)) { t in
                t.removeAll { $0.key == "bn.running_var" }
            }
        }
        // num_batches_tracked is optional.
        XCTAssertNoThrow(try convertFixture("conv-bn-s1") { t in t.removeAll { $0.key == "bn.num_batches_tracked" } })
    }

    func testUnexpectedAndDuplicateTensors() {
        expect(.unexpectedTensor(key: "bn.extra")) { t in t.append(NamedTensor(key: "bn.extra", shape: [1], floats: [1])) }
        expect(.duplicateTensor(key: "conv.weight")) { t in t.append(t[0]) }
    }

    func testWrongShape() {
        expect(.wrongShape(key: "bn.bias", expected: [6], found: [5])) { t in
            t[2] = NamedTensor(key: "bn.bias", shape: [5], floats: [1, 2, 3, 4, 5])
        }
    }

    func testIntegerWeights() {
        expect(.wrongDType(key: "bn.weight", dtype: .int32, role: "bn_weight")) { t in
            t[1] = NamedTensor(key: "bn.weight", dtype: .int32, shape: [6], data: [UInt8](repeating: 1, count: 24))
        }
    }

    func testNonFiniteSource() {
        expect(.nonFinite(key: "bn.running_mean", count: 2, firstIndex: 3)) { t in
            var v = t[3].floats()
            v[3] = .nan
            v[5] = -.infinity
            t[3] = NamedTensor(key: "bn.running_mean", shape: [6], floats: v)
        }
    }

    func testNonPositiveVariance() {
        expect(.invalidVariance(key: "bn.running_var", channel: 2, value: Double(Float(-1)) + 1e-5)) { t in
            var v = t[4].floats()
            v[2] = -1
            t[4] = NamedTensor(key: "bn.running_var", shape: [6], floats: v)
        }
        // Without folding the statistics are stored as they are.
        XCTAssertNoThrow(try convertFixture("conv-bn-s1", options: ConversionOptions(fold: false)) { t in
            var v = t[4].floats()
            v[2] = -1
            t[4] = NamedTensor(key: "bn.running_var", shape: [6], floats: v)
        })
    }

    func testFoldOverflow() {
        // weight 3e38 times scale 1e3 / sqrt(1e-5 + 0) overflows float32.
        expect(.foldOverflow(key: "conv.weight", index: 0)) { t in
            var w = t[0].floats()
            w[0] = 3e38
            t[0] = NamedTensor(key: "conv.weight", shape: t[0].shape, floats: w)
            var g = t[1].floats()
            g[0] = 1e3
            t[1] = NamedTensor(key: "bn.weight", shape: [6], floats: g)
        }
    }

    func testMessagesNameTheTensor() {
        let errors: [ConversionError] = [
            .missingTensor(key: "a.b", role: "conv_weight"), .unexpectedTensor(key: "a.b"), .duplicateTensor(key: "a.b"),
            .wrongShape(key: "a.b", expected: [1], found: [2]), .wrongDType(key: "a.b", dtype: .int8, role: "conv_weight"),
            .nonFinite(key: "a.b", count: 1, firstIndex: 0), .foldOverflow(key: "a.b", index: 0),
            .invalidVariance(key: "a.b", channel: 0, value: -1), .fp16Overflow(key: "a.b", count: 1, largest: 7e4),
        ]
        for e in errors { XCTAssertTrue(e.description.hasPrefix("tensor a.b: "), e.description) }
        XCTAssertFalse(ConversionError.inconsistentLayer(layer: "x", problem: "p").description.contains("\n"))
    }
}
