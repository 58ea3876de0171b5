import AISLFDRuntime
import XCTest

/// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions, forced onto the
/// PyTorch fixtures (odd sizes, widths not a multiple of the tile, epilogues,
/// fused pooling), and the band-wise first block against the whole one, at
/// every SIMD level (the portable level has no Winograd path and runs its own).
final class WinogradTests: XCTestCase {
    private static let fixtures = Result { try KernelFixtures.load() }
    private func fixture(_ name: String) throws -> KernelFixtures.Case { try WinogradTests.fixtures.get().case(name) }

    func testWinogradMatchesPyTorch() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for tile in [2, 4] {
                for name in ["conv3x3_s1", "conv3x3_wide"] {
                    let f = try fixture(name)
                    let out = try ops.conv2d(try f.map("input"), weight: try f.tensor("weight"), bias: try f.array("bias").values,
                                             padding: 1, winogradTile: tile)
                    XCTAssertEqual(out.shape, try f.array("expected").shape, name)
                    assertClose(out.values, try f.array("expected").values, "\(name) \(level) F(\(tile)x\(tile))")
                }
                let f = try fixture("conv_relu_bn_wide")
                let input = try f.map("input"), expected = try f.array("expected")
                func run(pooled: Bool) throws -> FeatureMap {
                    try ops.conv2d(input, weight: try f.tensor("weight"), bias: try f.array("bias").values, padding: 1, relu: true,
                                   postScale: try f.array("post_scale").values, postShift: try f.array("post_shift").values,
                                   winogradTile: tile, pooled: pooled)
                }
                assertClose(try run(pooled: false).values, expected.values, "conv_relu_bn_wide \(level) F(\(tile)x\(tile))")
                let whole = try FeatureMap(channels: expected.shape[0], height: expected.shape[1], width: expected.shape[2], values: expected.values)
                let pooled = try run(pooled: true)
                XCTAssertEqual(pooled.shape, [whole.channels, whole.height / 2, whole.width / 2])
                assertClose(pooled.values, ops.averagePool2x2(whole).values, "conv_relu_bn_wide pooled \(level) F(\(tile)x\(tile))")
            }
        }
    }

    /// A weight off by 0.1% of the range, or an odd-sized input read as if
    /// it were padded to whole tiles, is caught.
    func testWinogradCheckRejectsWrongResults() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for tile in [2, 4] {
                let f = try fixture("conv3x3_wide")
                var weight = try f.tensor("weight")
                weight.values[17] += 1e-3 * (weight.values.map(abs).max() ?? 1)
                let out = try ops.conv2d(try f.map("input"), weight: weight, bias: try f.array("bias").values, padding: 1,
                                         winogradTile: tile)
                XCTAssertGreaterThan(relativeError(out.values, try f.array("expected").values), 1e-5, "\(level) F(\(tile)x\(tile))")
            }
            XCTAssertThrowsError(try ops.conv2d(try fixture("conv3x3_s1").map("input"), weight: try fixture("conv3x3_s1").tensor("weight"),
                                                padding: 1, winogradTile: 3))
        }
    }

    /// A 1x1 convolution over more positions than one product call tiles at
    /// once (16,900 on one thread) goes through in parts, and agrees with plain loops.
    func testLongGridRowsGoThroughInParts() throws {
        let (cin, cout, side) = (3, 5, 130)
        let x = try FeatureMap(channels: cin, height: side, width: side, values: (0..<(cin * side * side)).map { Float($0 % 97) / 97 - 0.5 })
        let w = (0..<(cout * cin)).map { Float($0 % 7) / 7 - 0.4 }
        var expected = [Float](repeating: 0, count: cout * side * side)
        for o in 0..<cout { for i in 0..<cin { for p in 0..<(side * side) { expected[o * side * side + p] += w[o * cin + i] * x.values[i * side * side + p] } } }
        for level in availableSIMDLevels {
            let out = try KernelOps(RuntimeConfiguration(threads: 1, simd: level)).conv2d(x, weight: WeightTensor(shape: [cout, cin, 1, 1], values: w))
            assertClose(out.values, expected, "\(level) 1x1 over \(side * side) positions")
            var wrong = expected
            wrong[16_500] += 1
            XCTAssertGreaterThan(relativeError(out.values, wrong), 1e-5)
        }
    }

    func testBandedFirstBlockMatchesWholeOne() throws {
        let x = try FeatureMap(channels: 3, height: 37, width: 29, values: (0..<(3 * 37 * 29)).map { Float(($0 * 7919) % 1000) / 1000 })
        func weights(_ out: Int, _ inputs: Int, seed: Int) throws -> (WeightTensor, [Float]) {
            let w = (0..<(out * inputs * 9)).map { Float((($0 + seed) * 104729) % 2001) / 1000 - 1 }
            return (WeightTensor(shape: [out, inputs, 3, 3], values: w.map { $0 / Float(3 * inputs) }), (0..<out).map { Float($0 % 5) / 10 - 0.2 })
        }
        let first = try weights(20, 3, seed: 1), second = try weights(18, 20, seed: 2)
        try forEachSIMDLevel { level, configuration, ops in
            let middle = try ops.conv2d(x, weight: first.0, bias: first.1, padding: 1, relu: true)
            let whole = ops.averagePool2x2(try ops.conv2d(middle, weight: second.0, bias: second.1, padding: 1, relu: true))
            // One band, bands of 1, 2 and 5 pooled rows (halo rows at every edge), and more rows than the image has.
            for rows in [1, 2, 5, 100] {
                let banded = try ops.bandedConvolutionsThenPool2x2(x, first: first, second: second, bandFloats: rows * 2 * 20 * 29)
                XCTAssertEqual(banded.shape, whole.shape)
                assertClose(banded.values, whole.values, "\(level) bands of \(rows) pooled rows")
            }
            // Bands of 5 pooled rows without their halo rows (each band's rows alone) differ.
            var noHalo = [[Float]](repeating: [], count: whole.channels)
            for r0 in stride(from: 0, to: 2 * whole.height, by: 10) {
                let band = try rows(x, r0..<min(x.height, r0 + 10))
                let pooled = ops.averagePool2x2(try ops.conv2d(try ops.conv2d(band, weight: first.0, bias: first.1, padding: 1, relu: true),
                                                               weight: second.0, bias: second.1, padding: 1, relu: true))
                for c in 0..<whole.channels { noHalo[c] += pooled.values[(c * pooled.planeSize)..<((c + 1) * pooled.planeSize)] }
            }
            XCTAssertGreaterThan(relativeError(noHalo.flatMap { $0 }, whole.values), 1e-3, "\(level)")
        }
    }

    private func rows(_ m: FeatureMap, _ range: Range<Int>) throws -> FeatureMap {
        var values: [Float] = []
        for c in 0..<m.channels { values += m.values[((c * m.height + range.lowerBound) * m.width)..<((c * m.height + range.upperBound) * m.width)] }
        return try FeatureMap(channels: m.channels, height: range.count, width: m.width, values: values)
    }
}
