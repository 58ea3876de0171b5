import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// The passes on the four real schemas with full-size synthetic weights: which BatchNorms
/// fold where (expected from architectures.md's wiring), tensor order, metadata, sizes.
final class ArchitectureConversionTests: XCTestCase {
    static let msfeBlocks = ["stem", "layer1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1", "smooth"]
    static let vggLayers = ["1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2"]

    static func lisrdHead(_ variant: String) -> String {
        // rot_A_illum_B -> illum_B_rot_A
        let f = variant.split(separator: "_")
        return "illum_\(f[3])_rot_\(f[1])"
    }

    /// A small calibration run: these tests check structure and sizes, not accuracy.
    static let quick = MixedPrecisionTests.quick

    private func convert(_ id: String, _ options: ConversionOptions = ConversionOptions(),
                         contents: WeightsContents? = nil) throws -> (ArchitectureSchema, WeightsContents, Conversion) {
        let schema = try SchemaLibrary.load(id: id)
        let weights = contents ?? SyntheticWeights.contents(schema)
        return (schema, weights, try Converter.convert(weights, schema: schema, source: ConvertFixtures.source, options: options))
    }

    func testMSFEBatchNormsAllFoldIntoTheirConvs() throws {
        for id in ["aislfd-b", "aislfd-c"] {
            let (schema, _, conversion) = try convert(id)
            let expected = Self.msfeBlocks.map { AISWMetadata.Fold(kind: "batchnorm-into-preceding-conv", from: "msfe.\($0).bn", into: "msfe.\($0).conv") }
                + schema.variants.map { AISWMetadata.Fold(kind: "batchnorm-into-preceding-conv", from: "msfe.heads.\($0).bn1", into: "msfe.heads.\($0).conv1") }
            XCTAssertEqual(conversion.metadata.folds, expected, id)
            XCTAssertFalse(conversion.storedKeys.contains { $0.hasSuffix(".scale") || $0.hasSuffix(".shift") || $0.contains(".bn") }, id)
            // Every one of those convs had no bias and now has one, right after its weight.
            for fold in expected {
                let w = try XCTUnwrap(conversion.storedKeys.firstIndex(of: fold.into + ".weight"))
                XCTAssertEqual(conversion.storedKeys[w + 1], fold.into + ".bias", id)
                XCTAssertEqual(conversion.stored(fold.into + ".bias")?.role, "conv_bias")
                XCTAssertEqual(conversion.metadata.tensorHistory[fold.into + ".bias"]?.first?.hasPrefix("created by folding \(fold.from)"), true)
            }
            // 116 or 104 source tensors, 13 BatchNorms of 5 tensors gone, 13 biases new.
            XCTAssertEqual(conversion.storedKeys.count, schema.tensors.count - 13 * 5 + 13, id)
        }
    }

    func testVGGBatchNormsStayAsAffinesAndLISRDHeadsFoldForward() throws {
        for id in ["lisrd", "aislfd-a"] {
            let (schema, _, conversion) = try convert(id)
            let expected = schema.variants.map { v in
                AISWMetadata.Fold(kind: "batchnorm-into-next-conv", from: "bn_\(Self.lisrdHead(v))_1", into: "conv_\(Self.lisrdHead(v))_2")
            }
            XCTAssertEqual(conversion.metadata.folds, expected, id)
            let keys = conversion.storedKeys
            for layer in Self.vggLayers {
                let conv = "_backbone._conv\(layer)", bn = "_backbone._bn\(layer)"
                let at = try XCTUnwrap(keys.firstIndex(of: conv + ".weight"), id)
                XCTAssertEqual(Array(keys[at..<(at + 4)]), [conv + ".weight", conv + ".bias", bn + ".scale", bn + ".shift"], id)
                XCTAssertNil(conversion.stored(bn + ".running_mean"))
            }
            for v in schema.variants {
                let h = Self.lisrdHead(v)
                XCTAssertFalse(keys.contains { $0.hasPrefix("bn_\(h)_1.") }, id)
                XCTAssertEqual(conversion.metadata.tensorHistory["conv_\(h)_2.weight"], ["folded bn_\(h)_1 (batchnorm-into-next-conv): W[o, i] * scale[i]"])
            }
            XCTAssertEqual(keys.count, schema.tensors.count - 12 - 8 * 2 - 4 * 4, id)

            // Why each VGG BatchNorm stayed, in the pass's record.
            let pass = try XCTUnwrap(conversion.metadata.passes.first { $0.name == "FoldAffineIntoNextConv" })
            guard case .array(let kept)? = pass.details["kept_as_affine"] else { return XCTFail("no kept_as_affine") }
            XCTAssertEqual(kept.count, 8)
            let reasons = Dictionary(uniqueKeysWithValues: kept.compactMap { k -> (String, String)? in
                guard case .string(let l)? = k["layer"], case .string(let r)? = k["reason"] else { return nil }
                return (l, r)
            })
            XCTAssertEqual(reasons["_backbone._bn1_2"], "avg_pool_2x2 between it and _backbone._conv2_1")
            XCTAssertEqual(reasons["_backbone._bn4_2"], "its output leaves its part")
            XCTAssertEqual(reasons["_backbone._bn1_1"]?.hasPrefix("_backbone._conv1_2 is 3x3, stride 1, padding 1"), true)
        }
    }

    /// At int8 the heads' BatchNorms stay affines unless conv_*_2 is kept at fp32.
    func testLISRDHeadsAtInt8() throws {
        let (schema, _, conversion) = try convert("lisrd", ConversionOptions(precision: .int8, calibration: nil))
        XCTAssertEqual(conversion.metadata.folds, [])
        for v in schema.variants {
            XCTAssertEqual(conversion.stored("bn_\(Self.lisrdHead(v))_1.scale")?.role, "affine_scale")
            XCTAssertEqual(conversion.stored("conv_\(Self.lisrdHead(v))_2.weight")?.storage, .int8)
        }
        let kept = try convert("lisrd", ConversionOptions(precision: .int8, keep: ["conv_*_2.weight"], calibration: nil)).2
        XCTAssertEqual(kept.metadata.folds.map(\.kind), Array(repeating: "batchnorm-into-next-conv", count: 4))
    }

    func testPassOrderAndRecords() throws {
        let options = ConversionOptions(precision: .int8, keep: ["psa.*.value.weight"], calibration: nil)
        let (schema, _, conversion) = try convert("aislfd-c", options)
        let m = conversion.metadata
        XCTAssertEqual(m.passes.map(\.name), ["ToFloat32", "FoldBatchNorm", "FoldConvBatchNorm", "FoldAffineIntoNextConv", "QuantizeInt8"])
        XCTAssertEqual(Converter.passNames(options), m.passes.map(\.name))
        XCTAssertEqual(Converter.passNames(ConversionOptions(precision: .fp16, fold: false, calibration: nil)), ["ToFloat32", "QuantizeFP16"])
        // Calibrated (the default at fp16 and int8): moments before int8, promotions last.
        XCTAssertEqual(Converter.passNames(ConversionOptions(precision: .int8)),
                       ["ToFloat32", "FoldBatchNorm", "FoldConvBatchNorm", "FoldAffineIntoNextConv", "CollectInputMoments", "QuantizeInt8", "MixedPrecision",
                        "ChooseInt8Compute"])
        XCTAssertEqual(Converter.passNames(ConversionOptions(precision: .fp16, fold: false)), ["ToFloat32", "QuantizeFP16", "MixedPrecision"])
        XCTAssertEqual(Converter.passNames(ConversionOptions(precision: .fp32)), ["ToFloat32", "FoldBatchNorm", "FoldConvBatchNorm", "FoldAffineIntoNextConv"])
        XCTAssertEqual(m.passes[0].details["not_stored"].map { if case .array(let a) = $0 { return a.count } else { return -1 } }, 13)
        XCTAssertEqual(m.passes[1].details["batchnorms"], .int(13))
        XCTAssertEqual(m.passes[2].details["folded"], .int(13))
        XCTAssertEqual(m.passes[3].details["folded"], .int(0))
        XCTAssertEqual(m.passes[4].details["kept_fp32_by_pattern"], .array(schema.variants.map { .string("psa.\($0).value.weight") }))
        XCTAssertEqual(m.architecture, "aislfd-c")
        XCTAssertEqual(m.schema, AISWMetadata.Schema(id: "aislfd-c", sha256: schema.sha256))
        XCTAssertEqual(m.options, AISWMetadata.Options(precision: "int8", fold: true, keep: ["psa.*.value.weight"],
                                                       other: ["clamp": .bool(false), "calibration": .null]))
        XCTAssertEqual(m.converter.name, "aislfd-convert")
        XCTAssertEqual(m.architectureConfig["psa"], .object(["dim": .int(128)]))
        // Every history key is stored; every quantized weight has an int8 entry last.
        for (key, _) in m.tensorHistory { XCTAssertNotNil(conversion.stored(key), key) }
        for t in conversion.writer.tensors where t.storage == .int8 {
            XCTAssertEqual(m.tensorHistory[t.key]?.last?.hasPrefix("int8 per output channel"), true, t.key)
        }
    }

    /// The file the writer makes opens with the reader, checksums and all, and holds what the
    /// conversion says.
    func testOutputOpensWithTheReader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for precision in Precision.allCases {
            let (_, _, conversion) = try convert("lisrd", ConversionOptions(precision: precision, calibration: Self.quick))
            let path = dir.appendingPathComponent("lisrd-\(precision.rawValue).aisw").path
            try conversion.write(to: path)
            let file = try AISWFile.open(path: path)
            XCTAssertEqual(file.metadata, conversion.metadata)
            XCTAssertEqual(file.fileLength, conversion.report.totals.outputBytes)
            XCTAssertEqual(file.tensors.map(\.key), conversion.storedKeys)
            for t in conversion.storedTensors() { XCTAssertEqual(try file.floats(t.key), t.floats(), t.key) }
        }
    }

    /// Kept tensors follow the source's order, whatever it is; new ones take their layer's place.
    func testSourceOrderIsKept() throws {
        let schema = try SchemaLibrary.load(id: "lisrd")
        var weights = SyntheticWeights.contents(schema)
        weights.tensors.reverse()
        let (_, _, conversion) = try convert("lisrd", contents: weights)
        let sourceOrder = weights.tensors.map(\.key)
        let kept = conversion.storedKeys.filter { sourceOrder.contains($0) }
        XCTAssertEqual(kept, sourceOrder.filter { kept.contains($0) })
        // Reversed, the heads come first, then _bn4_2 (scale/shift where its tensors were),
        // then _conv4_2's bias and weight.
        let at = try XCTUnwrap(conversion.storedKeys.firstIndex(of: "_backbone._bn4_2.scale"))
        XCTAssertEqual(conversion.storedKeys[at - 1], "conv_illum_var_rot_var_1.weight")
        XCTAssertEqual(Array(conversion.storedKeys[at...(at + 3)]),
                       ["_backbone._bn4_2.scale", "_backbone._bn4_2.shift", "_backbone._conv4_2.bias", "_backbone._conv4_2.weight"])
        // Converting twice gives the same bytes.
        let again = try convert("lisrd", contents: weights).2
        XCTAssertEqual(try again.writer.encode(), try conversion.writer.encode())
    }

    func testNoFoldKeepsEverySourceFloatTensor() throws {
        for id in SchemaLibrary.ids {
            let (_, weights, conversion) = try convert(id, ConversionOptions(fold: false))
            let floats = weights.tensors.filter { $0.dtype.isFloatingPoint }
            XCTAssertEqual(conversion.storedKeys, floats.map(\.key), id)
            for (t, stored) in zip(floats, conversion.writer.tensors) {
                XCTAssertEqual(stored.data, t.data, t.key)
                XCTAssertEqual(stored.shape, t.shape, t.key)
            }
            XCTAssertEqual(conversion.metadata.options.fold, false)
        }
    }

    /// Biases, BatchNorm-derived vectors (or the BatchNorm tensors without folding) and
    /// centroids stay fp32 at every precision; conv and linear weights do not.
    func testWhatStaysFP32() throws {
        for precision in [Precision.fp16, .int8] {
            for fold in [true, false] {
                for id in ["lisrd", "aislfd-c"] {
                    let (_, _, conversion) = try convert(id, ConversionOptions(precision: precision, fold: fold, calibration: nil))
                    for t in conversion.writer.tensors {
                        let weight = t.role == "conv_weight" || t.role == "linear_weight"
                        XCTAssertEqual(t.storage, weight ? (precision == .fp16 ? .fp16 : .int8) : .fp32, "\(id) \(t.key)")
                    }
                }
            }
        }
    }

    /// Size targets (fraction of the source's fp32 payload) on full-size synthetic weights.
    func testSizesPerPrecision() throws {
        var table: [String] = []
        for id in SchemaLibrary.ids {
            var row = id
            for precision in Precision.allCases {
                let (_, _, conversion) = try convert(id, ConversionOptions(precision: precision, calibration: Self.quick))
                let totals = conversion.report.totals
                XCTAssertEqual(totals.outputBytes, try conversion.writer.encode().count)
                XCTAssertEqual(totals.sourcePayloadBytes, try SchemaLibrary.load(id: id).valueCount * 4)
                switch precision {
                case .fp32: XCTAssertLessThanOrEqual(totals.ratio, 1.0, id)
                case .fp16: XCTAssertLessThanOrEqual(totals.ratio, 0.52, id)
                case .int8: XCTAssertLessThanOrEqual(totals.ratio, 0.27, id)
                }
                row += " | \(precision.rawValue) \(totals.outputBytes) (\(String(format: "%.2f", totals.ratio * 100))%, SQNR \(totals.quantizedSQNR) dB)"
            }
            table.append(row)
        }
        print("sizes vs source fp32 payload:\n" + table.joined(separator: "\n"))
    }

    func testReportIsPrintableAndCodable() throws {
        let (_, _, conversion) = try convert("aislfd-a", ConversionOptions(precision: .fp16, keep: ["conv_illum_var_rot_var_2.weight", "nothing.*"],
                                                                           calibration: Self.quick))
        let report = conversion.report
        let decoded = try JSONDecoder().decode(ConversionReport.self, from: Data(try report.jsonText().utf8))
        XCTAssertEqual(decoded, report)
        XCTAssertTrue(try report.jsonText().contains("\"sqnr\" : \"inf\""))
        let text = report.humanReadable
        XCTAssertTrue(text.contains("passes: ToFloat32, FoldBatchNorm, FoldConvBatchNorm, FoldAffineIntoNextConv, QuantizeFP16, MixedPrecision"), text)
        XCTAssertTrue(text.contains("(rank 1 by error per byte)"), text)
        XCTAssertTrue(report.tensors.contains { $0.sensitivity != nil && $0.promotion != nil })
        XCTAssertTrue(text.contains("kept by \"conv_illum_var_rot_var_2.weight\""), text)
        XCTAssertTrue(text.contains("note: keep patterns matching no stored tensor: nothing.*"), text)
        XCTAssertEqual(report.tensors.map(\.key), conversion.storedKeys)
        for row in report.tensors {
            let t = try XCTUnwrap(conversion.stored(row.key))
            XCTAssertEqual(row.bytes, t.data.count + 4 * (t.scales?.count ?? 0))
            XCTAssertEqual(row.sqnr.isExact, t.storage == .fp32, row.key)
        }
    }
}
