import AISLFDConvert
import AISLFDCore
import AISLFDReaders
import AISLFDRuntime
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// Calibrated quantization against NumPy and PyTorch (tools/make_quant_fixtures.py): the
/// dead-leaves images, the second moments of layer inputs rebuilt from the runtime's
/// activations and the schema's wiring, GPTQ, and the sensitivities MixedPrecision measures.
final class CalibrationTests: XCTestCase {
    static let fixture: [String: Any] = {
        (try? ConvertFixtures.json("quant.json")) ?? [:]
    }()

    /// Sample file name -> architecture.
    static let samples = Dictionary(uniqueKeysWithValues: Fixtures.sampleFiles.map { ($0.value, $0.key) })

    /// A committed sample and its schema.
    static func sample(_ file: String) throws -> (ArchitectureSchema, WeightsContents) {
        let arch = try XCTUnwrap(samples[file], file)
        let contents = Fixtures.sampleStateDict(try WeightsReader.read(path: Fixtures.repoPath("Weights/" + file)), arch: arch)
        return (try SchemaLibrary.load(id: arch), contents)
    }

    private func sample(_ file: String) throws -> (ArchitectureSchema, WeightsContents) { try Self.sample(file) }

    func testDeadLeavesMatchNumPy() throws {
        let cases = try XCTUnwrap(Self.fixture["dead_leaves"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            let seed = UInt64(try XCTUnwrap(c["seed"] as? Int)), h = try XCTUnwrap(c["height"] as? Int), w = try XCTUnwrap(c["width"] as? Int)
            let expected = try XCTUnwrap(c["q"] as? [Int]).map { Float($0) / 255 }
            XCTAssertEqual(CalibrationImages.deadLeaves(seed: seed, height: h, width: w), expected, "seed \(seed)")
        }
        // Different seeds give different images (the comparison above can fail).
        XCTAssertNotEqual(CalibrationImages.deadLeaves(seed: 2, height: 24, width: 32), CalibrationImages.deadLeaves(seed: 1, height: 24, width: 32))
    }

    /// Moments of zero-padded 3x3 patches against F.unfold in NumPy float64.
    func testPatchMomentsMatchNumPy() throws {
        let g = try XCTUnwrap(Self.fixture["gptq"] as? [String: Any])
        let shape = try XCTUnwrap(g["map_shape"] as? [Int])
        var moments = InputMoments(size: shape[0] * 9)
        XCTAssertTrue(moments.addConvolutionPatches(try ConvertFixtures.floats(g["map"]), channels: shape[0], height: shape[1], width: shape[2],
                                                    kernel: 3, stride: 1, padding: 1))
        try assertMoments(moments, g, prefix: "moments_", tolerance: 1e-12, "patches")
        // Sizes that do not fit add nothing.
        XCTAssertFalse(moments.addConvolutionPatches([0, 0], channels: shape[0], height: 1, width: 1, kernel: 3, stride: 1, padding: 1))
        XCTAssertFalse(moments.addPositions([1, 2, 3], channels: 3))
    }

    private func assertMoments(_ m: InputMoments, _ expected: [String: Any], prefix: String = "", tolerance: Double, _ what: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let n = m.size
        let h = m.matrix
        XCTAssertEqual(m.count, try XCTUnwrap(expected[prefix + "count"] as? Int), what, file: file, line: line)
        let diagonal = try XCTUnwrap(expected[prefix + "diagonal"] as? [Double])
        let firstRow = try XCTUnwrap(expected[prefix + "first_row"] as? [Double])
        XCTAssertEqual(diagonal.count, n, what, file: file, line: line)
        let scale = diagonal.map(abs).max() ?? 1
        var worst = 0.0
        for i in 0..<n {
            worst = max(worst, abs(h[i * n + i] - diagonal[i]), abs(h[i] - firstRow[i]))
        }
        let trace = (0..<n).reduce(0.0) { $0 + h[$1 * n + $1] }
        XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(what): diagonal / first row", file: file, line: line)
        XCTAssertEqual(trace, try XCTUnwrap(expected[prefix + "trace"] as? Double), accuracy: tolerance * scale * Double(n), what, file: file, line: line)
        XCTAssertEqual(h.reduce(0, +), try XCTUnwrap(expected[prefix + "sum"] as? Double), accuracy: tolerance * scale * Double(n * n), what,
                       file: file, line: line)
    }

    func testGPTQMatchesNumPy() throws {
        let g = try XCTUnwrap(Self.fixture["gptq"] as? [String: Any])
        let shape = try XCTUnwrap(g["shape"] as? [Int]), mapShape = try XCTUnwrap(g["map_shape"] as? [Int])
        let weight = try ConvertFixtures.floats(g["weight"])
        let rows = shape[0], columns = shape[1] * shape[2] * shape[3]
        var moments = InputMoments(size: columns)
        moments.addConvolutionPatches(try ConvertFixtures.floats(g["map"]), channels: mapShape[0], height: mapShape[1], width: mapShape[2],
                                      kernel: 3, stride: 1, padding: 1)
        let h = moments.matrix
        let result = try XCTUnwrap(GPTQ.quantize(weight: weight, rows: rows, columns: columns, moments: h, damping: try XCTUnwrap(g["damping"] as? Double)))
        let expectedQ = try XCTUnwrap(g["q"] as? [Int]).map { Int8($0) }
        XCTAssertEqual(result.values, expectedQ)
        XCTAssertEqual(result.scales.map(\.bitPattern), try ConvertFixtures.uint32s(g["scales"]))
        XCTAssertEqual(result.damping, 0.01)
        XCTAssertTrue(result.values[(5 * columns)..<(6 * columns)].allSatisfy { $0 == 0 }, "the all-zero row stays zero")

        let stored = zip(result.values.indices, result.values).map { i, q in Float(q) * result.scales[i / columns] }
        let gptqNoise = GPTQ.outputNoiseRatio(weight: weight, stored: stored, rows: rows, columns: columns, moments: h)
        XCTAssertEqual(gptqNoise, try XCTUnwrap(g["noise_ratio_gptq"] as? Double), accuracy: 1e-9 * gptqNoise)
        let nearestQ = weight.indices.map { i -> Float in
            let s = result.scales[i / columns]
            return s == 0 ? 0 : Float(Int8(min(max((weight[i] / s).rounded(.toNearestOrEven), -127), 127))) * s
        }
        let nearestNoise = GPTQ.outputNoiseRatio(weight: weight, stored: nearestQ, rows: rows, columns: columns, moments: h)
        XCTAssertEqual(nearestNoise, try XCTUnwrap(g["noise_ratio_nearest"] as? Double), accuracy: 1e-9 * nearestNoise)
        XCTAssertLessThan(gptqNoise, nearestNoise / 5, "GPTQ's whole point: far less output noise on correlated inputs")

        // With uncorrelated inputs (H = I) there is nothing to compensate: GPTQ rounds to
        // nearest, and fails the fixture.
        var identity = [Double](repeating: 0, count: columns * columns)
        for i in 0..<columns { identity[i * columns + i] = 1 }
        let plain = try XCTUnwrap(GPTQ.quantize(weight: weight, rows: rows, columns: columns, moments: identity))
        XCTAssertNotEqual(plain.values, expectedQ)
        XCTAssertEqual(zip(plain.values.indices, plain.values).map { i, q in Float(q) * plain.scales[i / columns] }, nearestQ)
        // Sizes that disagree are refused, not trapped on.
        XCTAssertNil(GPTQ.quantize(weight: weight, rows: rows, columns: columns + 1, moments: h))
    }

    /// The inputs rebuilt from the runtime's recorded activations and the schema's wiring
    /// have the second moments PyTorch's forward pre-hooks measure on the same image.
    func testLayerInputMomentsMatchPyTorch() throws {
        let f = try XCTUnwrap(Self.fixture["moments"] as? [String: Any])
        let image = try XCTUnwrap(f["image"] as? [String: Any])
        let settings = CalibrationSettings(seed: UInt64(try XCTUnwrap(image["seed"] as? Int)), images: 1,
                                           height: try XCTUnwrap(image["height"] as? Int), width: try XCTUnwrap(image["width"] as? Int))
        for file in ["lisrd.h5", "aislfd-c.safetensors"] {
            let (schema, contents) = try sample(file)
            let moments = try Converter.inputMoments(contents, schema: schema, options: ConversionOptions(precision: .int8, calibration: settings))
            let layers = try XCTUnwrap(f[file] as? [String: [String: Any]])
            XCTAssertGreaterThanOrEqual(layers.count, 5)
            for (layer, expected) in layers {
                let m = try XCTUnwrap(moments[layer + ".weight"], "\(file): no moments for \(layer)")
                try assertMoments(m, expected, tolerance: 2e-5, "\(file) \(layer)")
            }
            // Another image gives other moments: the comparison can fail.
            let other = try Converter.inputMoments(contents, schema: schema, options: ConversionOptions(
                precision: .int8, calibration: CalibrationSettings(seed: settings.seed + 7, images: 1, height: settings.height, width: settings.width)))
            let (layer, expected) = try XCTUnwrap(layers.first)
            let diagonal = try XCTUnwrap(expected["diagonal"] as? [Double])
            let h = try XCTUnwrap(other[layer + ".weight"]).matrix
            let worst = diagonal.indices.map { abs(h[$0 * diagonal.count + $0] - diagonal[$0]) }.max() ?? 0
            XCTAssertGreaterThan(worst / (diagonal.map(abs).max() ?? 1), 1e-3, "\(file) \(layer)")
        }
    }

    /// MixedPrecision's sensitivities (runtime, int8 rounded to nearest) are PyTorch's.
    func testSensitivitiesMatchPyTorch() throws {
        let f = try XCTUnwrap(Self.fixture["sensitivity"] as? [String: Any])
        let images = try XCTUnwrap(f["images"] as? [String: Any])
        let seeds = try XCTUnwrap(images["seeds"] as? [Int])
        func settings(seed: UInt64) throws -> CalibrationSettings {
            CalibrationSettings(seed: seed, images: 0, sensitivityImages: seeds.count,
                                sensitivityHeight: try XCTUnwrap(images["height"] as? Int), sensitivityWidth: try XCTUnwrap(images["width"] as? Int))
        }
        XCTAssertEqual(try settings(seed: 1).sensitivityImageSeed(0), UInt64(seeds[0]))
        for file in ["lisrd.h5", "aislfd-c.safetensors"] {
            let (schema, contents) = try sample(file)
            let expected = try XCTUnwrap(f[file] as? [String: Double])
            let conversion = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                                   options: ConversionOptions(precision: .int8, calibration: try settings(seed: 1)))
            for (key, value) in expected {
                let row = try XCTUnwrap(conversion.report.tensors.first { $0.key == key })
                let measured = try XCTUnwrap(row.sensitivity, key)
                XCTAssertEqual(measured, value, accuracy: 0.01 * value, "\(file) \(key)")
            }
            // Without moments every int8 weight is rounded to nearest.
            XCTAssertEqual(conversion.metadata.passes.first { $0.name == "CollectInputMoments" }?.details["ran"], .bool(false))
            // Other images, other sensitivities: the comparison can fail.
            let other = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                              options: ConversionOptions(precision: .int8, calibration: try settings(seed: 5)))
            let differing = expected.filter { key, value in
                let s = other.report.tensors.first { $0.key == key }?.sensitivity ?? 0
                return abs(s - value) > 0.01 * value
            }
            XCTAssertFalse(differing.isEmpty, file)
        }
    }
}
