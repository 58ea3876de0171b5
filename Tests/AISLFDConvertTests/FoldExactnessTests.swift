import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import XCTest

/// The folded layers, evaluated with a direct convolution, against PyTorch's output of the
/// unfolded modules (tools/make_fold_fixtures.py). Tolerance: max abs error within 1e-5 of
/// the output's max abs value.
final class FoldExactnessTests: XCTestCase {
    static let tolerance = 1e-5

    private func convert(_ c: ConvertFixtures.FoldCase, fold: Bool = true) throws -> Conversion {
        try Converter.convert(c.contents, schema: c.schema, source: ConvertFixtures.source, options: ConversionOptions(fold: fold))
    }

    /// conv -> BN (MSFE's blocks): one conv with a bias, no BatchNorm left.
    func testConvBatchNormFoldsIntoTheConv() throws {
        for name in ["conv-bn-s1", "conv-bn-s2", "conv-bias-bn"] {
            let c = try ConvertFixtures.foldCase(name)
            let conversion = try convert(c)
            XCTAssertEqual(conversion.storedKeys, ["conv.weight", "conv.bias"], name)
            XCTAssertEqual(conversion.metadata.folds, [AISWMetadata.Fold(kind: "batchnorm-into-preceding-conv", from: "bn", into: "conv")], name)

            let stride = name == "conv-bn-s2" ? 2 : 1
            let y = Reference.conv(try c.input(), weight: try conversion.values("conv.weight"), bias: try conversion.values("conv.bias"),
                                   outChannels: 6, kernel: 3, stride: stride, padding: 1)
            let error = Reference.relativeError(y, try c.array("output").values)
            XCTAssertLessThan(error, Self.tolerance, name)
            print("fold \(name): max abs error / max abs output = \(error)")
        }
    }

    /// conv -> ReLU -> BN -> conv 1x1 (LISRD head): the BN goes forward into the 1x1 conv.
    func testBatchNormFoldsForwardIntoAnUnpadded1x1Conv() throws {
        let c = try ConvertFixtures.foldCase("conv-relu-bn-conv1x1")
        let conversion = try convert(c)
        XCTAssertEqual(conversion.storedKeys, ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"])
        XCTAssertEqual(conversion.metadata.folds, [AISWMetadata.Fold(kind: "batchnorm-into-next-conv", from: "bn1", into: "conv2")])
        // The first conv is untouched.
        XCTAssertEqual(try conversion.values("conv1.weight"), try c.array("conv1.weight").values)

        let hidden = Reference.relu(Reference.conv(try c.input(), weight: try conversion.values("conv1.weight"),
                                                   bias: try conversion.values("conv1.bias"), outChannels: 6, kernel: 3, stride: 1, padding: 1))
        let y = Reference.conv(hidden, weight: try conversion.values("conv2.weight"), bias: try conversion.values("conv2.bias"),
                               outChannels: 5, kernel: 1, stride: 1, padding: 0)
        let error = Reference.relativeError(y, try c.array("output").values)
        XCTAssertLessThan(error, Self.tolerance)
        print("fold conv-relu-bn-conv1x1: max abs error / max abs output = \(error)")
    }

    /// conv -> ReLU -> BN (VGG block) and conv -> ReLU -> BN -> padded 3x3 conv: the BN stays
    /// as scale/shift applied after the ReLU.
    func testBatchNormAfterReLUStaysAsAnAffine() throws {
        for name in ["conv-relu-bn", "conv-relu-bn-conv3x3"] {
            let c = try ConvertFixtures.foldCase(name)
            let conversion = try convert(c)
            XCTAssertEqual(conversion.metadata.folds, [], name)
            XCTAssertEqual(Array(conversion.storedKeys.prefix(4)), ["conv1.weight", "conv1.bias", "bn1.scale", "bn1.shift"], name)
            XCTAssertEqual(conversion.stored("bn1.scale")?.role, "affine_scale")
            XCTAssertEqual(conversion.stored("bn1.shift")?.role, "affine_shift")

            var y = Reference.affine(
                Reference.relu(Reference.conv(try c.input(), weight: try conversion.values("conv1.weight"), bias: try conversion.values("conv1.bias"),
                                              outChannels: 6, kernel: 3, stride: 1, padding: 1)),
                scale: try conversion.values("bn1.scale"), shift: try conversion.values("bn1.shift"))
            if name == "conv-relu-bn-conv3x3" {
                XCTAssertEqual(try conversion.values("conv2.weight"), try c.array("conv2.weight").values)
                y = Reference.conv(y, weight: try conversion.values("conv2.weight"), bias: try conversion.values("conv2.bias"),
                                   outChannels: 5, kernel: 3, stride: 1, padding: 1)
            }
            let error = Reference.relativeError(y, try c.array("output").values)
            XCTAssertLessThan(error, Self.tolerance, name)
            print("affine \(name): max abs error / max abs output = \(error)")
        }
    }

    /// The comparison catches a wrong fold: the same formula as the converter's without eps.
    func testAFoldForgettingEpsFailsTheComparison() throws {
        let c = try ConvertFixtures.foldCase("conv-bn-s1")
        let w = try c.array("conv.weight").values
        let gamma = try c.array("bn.weight").values, beta = try c.array("bn.bias").values
        let mean = try c.array("bn.running_mean").values, variance = try c.array("bn.running_var").values
        var weight = w, bias = [Float](repeating: 0, count: 6)
        for o in 0..<6 {
            let s = Double(gamma[o]) / Double(variance[o]).squareRoot()   // eps forgotten
            for j in (o * 36)..<((o + 1) * 36) { weight[j] = Float(Double(w[j]) * s) }
            bias[o] = Float(Double(beta[o]) - Double(mean[o]) * s)
        }
        let y = Reference.conv(try c.input(), weight: weight, bias: bias, outChannels: 6, kernel: 3, stride: 1, padding: 1)
        let error = Reference.relativeError(y, try c.array("output").values)
        XCTAssertGreaterThan(error, 1e-3)
        print("fold without eps: max abs error / max abs output = \(error)")
    }

    /// The comparison catches a forward fold into a zero-padded 3x3 conv: exact inside,
    /// wrong at the border, where padding zeros skip the BatchNorm's shift.
    func testAForwardFoldIntoAPaddedConvFailsTheComparison() throws {
        let c = try ConvertFixtures.foldCase("conv-relu-bn-conv3x3")
        let conversion = try convert(c)
        let scale = try conversion.values("bn1.scale"), shift = try conversion.values("bn1.shift")
        let w = try c.array("conv2.weight").values, b = try c.array("conv2.bias").values
        var weight = w, bias = b
        for o in 0..<5 {
            var sum = Double(b[o])
            for i in 0..<6 {
                for k in 0..<9 {
                    let j = (o * 6 + i) * 9 + k
                    weight[j] = Float(Double(w[j]) * Double(scale[i]))
                    sum += Double(w[j]) * Double(shift[i])
                }
            }
            bias[o] = Float(sum)
        }
        let hidden = Reference.relu(Reference.conv(try c.input(), weight: try conversion.values("conv1.weight"),
                                                   bias: try conversion.values("conv1.bias"), outChannels: 6, kernel: 3, stride: 1, padding: 1))
        let y = Reference.conv(hidden, weight: weight, bias: bias, outChannels: 5, kernel: 3, stride: 1, padding: 1)
        let expected = try c.array("output").values
        XCTAssertGreaterThan(Reference.relativeError(y, expected), 1e-2)

        // Away from the border the wrong fold is right: the error is the padding's alone.
        var inner = 0.0, peak = 0.0
        for o in 0..<5 {
            for yy in 1..<(y.height - 1) {
                for xx in 1..<(y.width - 1) {
                    let i = (o * y.height + yy) * y.width + xx
                    inner = max(inner, abs(y.values[i] - Double(expected[i])))
                    peak = max(peak, abs(Double(expected[i])))
                }
            }
        }
        XCTAssertLessThan(inner / peak, Self.tolerance)
        print("forward fold into padded 3x3: border error / max = \(Reference.relativeError(y, expected)), interior \(inner / peak)")
    }

    /// Without folding every source float tensor is stored bit for bit, in source order.
    func testNoFoldKeepsEverySourceTensorBitForBit() throws {
        for c in try ConvertFixtures.foldCases() {
            let conversion = try convert(c, fold: false)
            let floats = c.contents.tensors.filter { $0.dtype.isFloatingPoint }
            XCTAssertEqual(conversion.storedKeys, floats.map(\.key), c.name)
            for t in floats {
                let stored = try XCTUnwrap(conversion.stored(t.key), t.key)
                XCTAssertEqual(stored.shape, t.shape, t.key)
                XCTAssertEqual(stored.storage, .fp32, t.key)
                XCTAssertEqual(stored.data, t.data, t.key)
            }
            XCTAssertEqual(conversion.metadata.folds, [], c.name)
            XCTAssertEqual(conversion.metadata.passes.map(\.name), ["ToFloat32"], c.name)
            XCTAssertEqual(conversion.metadata.tensorHistory, [:], c.name)
        }
    }
}

/// At int8 a BatchNorm after a ReLU stays an fp32 affine instead of going forward into a
/// 1x1 conv that will be int8: the fixture's NumPy computation shows why (its BatchNorm
/// statistics are measured on its input, as training leaves them).
final class Int8ForwardFoldTests: XCTestCase {
    private func int8Output(_ c: ConvertFixtures.FoldCase, _ conversion: Conversion) throws -> Reference.Map {
        var hidden = Reference.relu(Reference.conv(try c.input(), weight: try conversion.values("conv1.weight"),
                                                   bias: try conversion.values("conv1.bias"), outChannels: 6, kernel: 3, stride: 1, padding: 1))
        if conversion.stored("bn1.scale") != nil {
            hidden = Reference.affine(hidden, scale: try conversion.values("bn1.scale"), shift: try conversion.values("bn1.shift"))
        }
        return Reference.conv(hidden, weight: try conversion.values("conv2.weight"), bias: try conversion.values("conv2.bias"),
                              outChannels: 5, kernel: 1, stride: 1, padding: 0)
    }

    private func sqnr(_ y: Reference.Map, _ expected: [Float]) -> Double {
        var signal = 0.0, noise = 0.0
        for (a, e) in zip(y.values, expected) {
            signal += Double(e) * Double(e)
            noise += (a - Double(e)) * (a - Double(e))
        }
        return 10 * log10(signal / noise)
    }

    func testInt8KeepsTheAffineAndThatIsTheBetterForm() throws {
        let c = try ConvertFixtures.foldCase("conv-relu-bn-conv1x1")
        let cases = try XCTUnwrap(try ConvertFixtures.json("folds.json")["cases"] as? [[String: Any]])
        let measured = try XCTUnwrap(cases.first { $0["name"] as? String == c.name }?["int8_output_sqnr_db"] as? [String: Double])
        let kept = try XCTUnwrap(measured["affine_kept"]), folded = try XCTUnwrap(measured["forward_folded"])
        XCTAssertGreaterThan(kept, folded + 10)

        let conversion = try Converter.convert(c.contents, schema: c.schema, source: ConvertFixtures.source,
                                               options: ConversionOptions(precision: .int8))
        XCTAssertEqual(conversion.metadata.folds, [])
        XCTAssertEqual(conversion.stored("bn1.scale")?.storage, .fp32)
        XCTAssertEqual(conversion.stored("conv2.weight")?.storage, .int8)
        let ours = sqnr(try int8Output(c, conversion), try c.array("output").values)
        XCTAssertEqual(ours, kept, accuracy: 0.01)
        print("int8 conv-relu-bn-conv1x1 output SQNR: \(ours) dB (NumPy: affine kept \(kept), forward folded \(folded))")

        // With conv2 kept at fp32 the fold is exact again, and made.
        let keep = try Converter.convert(c.contents, schema: c.schema, source: ConvertFixtures.source,
                                         options: ConversionOptions(precision: .int8, keep: ["conv2.weight"]))
        XCTAssertEqual(keep.metadata.folds, [AISWMetadata.Fold(kind: "batchnorm-into-next-conv", from: "bn1", into: "conv2")])
        XCTAssertEqual(keep.stored("conv2.weight")?.storage, .fp32)
    }
}
