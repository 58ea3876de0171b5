import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import AISLFDInputs
import AISLFDReaders
import AISLFDRuntime
import AISLFDSchema
import AISLFDTestSupport
import AISLFDVerify
import Foundation
import XCTest

/// Every architecture, converted every way, against the PyTorch references in
/// Tests/Fixtures/reference/ (tools/make_fixtures.py), with the tolerances of its precision.
final class ParityTests: XCTestCase {
    static let samples = Fixtures.sampleFiles
    static let archs = ["lisrd", "aislfd-a", "aislfd-b", "aislfd-c"]

    var folder: URL!

    override func setUpWithError() throws { folder = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    static func samplePath(_ arch: String) -> String { Fixtures.repoPath("Weights/\(samples[arch]!)") }
    static func referencePath(_ arch: String) -> String { Fixtures.path("reference/\(arch).npz") }

    func conversion(_ arch: String, _ options: ConversionOptions) throws -> Conversion {
        let contents = Fixtures.sampleStateDict(try WeightsReader.read(path: Self.samplePath(arch)), arch: arch)
        let source = AISWMetadata.Source(fileName: Self.samples[arch]!, sha256: String(repeating: "0", count: 64), format: contents.format, byteCount: 0)
        return try Converter.convert(contents, schema: SchemaLibrary.load(id: arch), source: source, options: options)
    }

    func convert(_ arch: String, _ options: ConversionOptions) throws -> String {
        let path = folder.appendingPathComponent("\(arch)-\(options.precision.rawValue)-\(options.fold).aisw").path
        try conversion(arch, options).write(to: path)
        return path
    }

    /// Verifies and asserts that exactly the outputs in `failing` are out of tolerance (none
    /// unless a known gap is named).
    func verify(_ modelPath: String, _ arch: String, failing: Set<String> = [],
                file: StaticString = #filePath, line: UInt = #line) throws -> VerificationReport {
        let report = try Verifier.verify(ModelFile.load(path: modelPath), referencePath: Self.referencePath(arch), perLayer: true)
        let figures = report.outputs.filter { $0.name.hasPrefix("kp_") }
            .map { "\($0.name) least cosine \($0.minCosine)" + ($0.nearestNeighbourAgreement.map { ", NN \($0)" } ?? "") }
        print("parity \(arch) \(report.precision)\(report.folded ? " folded" : ""): \(report.pass ? "pass" : "FAIL") \(figures.joined(separator: "; "))")
        XCTAssertEqual(Set(report.outputs.filter { !$0.pass }.map(\.name)), failing, report.humanReadable, file: file, line: line)
        XCTAssertEqual(report.pass, failing.isEmpty, file: file, line: line)
        XCTAssertTrue(report.missing.isEmpty, file: file, line: line)
        XCTAssertEqual(report.outputs.count, 10, "4 desc, 4 meta, kp_desc, kp_meta", file: file, line: line)
        return report
    }

    func testSourceWeightsMatchPyTorch() throws {
        for arch in Self.archs {
            let report = try verify(Self.samplePath(arch), arch)
            XCTAssertNil(report.firstLayerOutOfTolerance, "\(arch): every layer within fp32 tolerance")
        }
    }

    func testFoldedAndUnfoldedFP32MatchPyTorch() throws {
        for arch in Self.archs {
            let folded = try verify(convert(arch, ConversionOptions(precision: .fp32, fold: true)), arch)
            XCTAssertTrue(folded.folded)
            XCTAssertNil(folded.firstLayerOutOfTolerance, "\(arch) folded: every layer within fp32 tolerance")
            _ = try verify(convert(arch, ConversionOptions(precision: .fp32, fold: false)), arch)
        }
    }

    func testFP16MatchesPyTorch() throws {
        for arch in Self.archs { _ = try verify(convert(arch, ConversionOptions(precision: .fp16)), arch) }
    }

    /// Outputs of the int8 conversions known to miss their tolerance: aislfd-a's kp_meta
    /// reaches a least cosine of about 0.998 against 0.999 (the attention amplifies the raw
    /// maps' int8 error; README, "Parity"). Everything else of it is asserted to pass, and the
    /// gap to be reported, so a change in either direction shows here.
    static let knownInt8Gaps: [String: Set<String>] = ["aislfd-a": ["kp_meta"]]

    func testInt8MatchesPyTorch() throws {
        for arch in Self.archs {
            _ = try verify(convert(arch, ConversionOptions(precision: .int8)), arch, failing: Self.knownInt8Gaps[arch] ?? [])
        }
    }

    /// aislfd-a's gap closes when the file may be larger: at `--size-budget 0.35` MixedPrecision
    /// stores the backbone, the heads' 1x1 convolutions and PSA's query and key at fp16 (the
    /// heads' first convolutions stay int8), and every int8 tolerance holds, kp_meta included.
    func testInt8OfAISLFDAPassesWithALargerSizeBudget() throws {
        let path = try convert("aislfd-a", ConversionOptions(precision: .int8, sizeBudget: 0.35))
        _ = try verify(path, "aislfd-a")
        let bytes = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let payload = try WeightsReader.read(path: Self.samplePath("aislfd-a")).tensors.reduce(0) { $0 + $1.elementCount } * 4
        XCTAssertLessThanOrEqual(Double(bytes), 0.35 * Double(payload))
        XCTAssertGreaterThan(Double(bytes), 0.27 * Double(payload), "the default budget is what misses kp_meta")
    }

    /// Plain int8 (every weight rounded to nearest, no calibration) is out of the tolerance
    /// the calibrated conversion meets: the int8 check can fail.
    func testPlainInt8FailsVerification() throws {
        let path = try convert("lisrd", ConversionOptions(precision: .int8, calibration: nil))
        let report = try Verifier.verify(ModelFile.load(path: path), referencePath: Self.referencePath("lisrd"))
        XCTAssertFalse(report.pass)
        XCTAssertTrue(report.outputs.contains { $0.name == "kp_desc" && !$0.pass })
    }

    /// A BatchNorm that follows a ReLU folded forward into the zero-padded 3x3 conv after it
    /// is wrong at the image border; verification catches it and names the layer.
    func testAWrongFoldFailsVerification() throws {
        let right = try conversion("lisrd", ConversionOptions(precision: .fp32, fold: true))
        var tensors = right.writer.tensors
        func values(_ key: String) -> [Float] {
            NamedTensor(key: key, dtype: .float32, shape: [tensors.first { $0.key == key }!.data.count / 4],
                        data: tensors.first { $0.key == key }!.data).floats()
        }
        let scale = values("_backbone._bn1_2.scale"), shift = values("_backbone._bn1_2.shift")
        var weight = values("_backbone._conv2_1.weight"), bias = values("_backbone._conv2_1.bias")
        // _bn1_2 -> avg pool -> _conv2_1: pooling is linear, so only the padding makes this wrong.
        for o in 0..<64 {
            for i in 0..<64 {
                for k in 0..<9 {
                    bias[o] += weight[(o * 64 + i) * 9 + k] * shift[i]
                    weight[(o * 64 + i) * 9 + k] *= scale[i]
                }
            }
        }
        tensors.removeAll { $0.key.hasPrefix("_backbone._bn1_2.") }
        for (key, v) in [("_backbone._conv2_1.weight", weight), ("_backbone._conv2_1.bias", bias)] {
            let i = tensors.firstIndex { $0.key == key }!
            tensors[i] = .fp32(key: key, shape: tensors[i].shape, values: v, role: tensors[i].role)
        }
        var metadata = right.writer.metadata
        metadata.tensorHistory = metadata.tensorHistory.filter { !$0.key.hasPrefix("_backbone._bn1_2.") }
        metadata.folds.append(AISWMetadata.Fold(kind: "deliberately-wrong", from: "_backbone._bn1_2", into: "_backbone._conv2_1"))
        let path = folder.appendingPathComponent("wrong-fold.aisw").path
        try AISWWriter(metadata: metadata, tensors: tensors).write(to: path)

        let report = try Verifier.verify(ModelFile.load(path: path), referencePath: Self.referencePath("lisrd"), perLayer: true)
        XCTAssertFalse(report.pass)
        XCTAssertEqual(report.firstLayerOutOfTolerance, "act._backbone._bn2_1")
        XCTAssertTrue(report.outputs.contains { $0.name.hasPrefix("desc.") && !$0.pass })
    }

    /// A reference whose map differs by 0.1% fails the fp32 map criterion.
    func testAPerturbedReferenceFailsVerification() throws {
        var reference = try NPZReader.read(path: Self.referencePath("aislfd-c"))
        let i = reference.tensors.firstIndex { $0.key == "desc.rot_invar_illum_var" }!
        let t = reference.tensors[i]
        reference.tensors[i] = NamedTensor(key: t.key, shape: t.shape, floats: t.floats().map { $0 * 1.001 })
        let path = folder.appendingPathComponent("perturbed.npz").path
        try NPZWriter.write(reference.tensors, to: path)

        let report = try Verifier.verify(ModelFile.load(path: Self.samplePath("aislfd-c")), referencePath: path)
        XCTAssertFalse(report.pass)
        XCTAssertEqual(report.outputs.filter { !$0.pass }.map(\.name), ["desc.rot_invar_illum_var"])
    }

    /// Keypoint cosines decide for quantized models: a reference whose kp_meta is rotated
    /// a little away from the run fails an fp16 model.
    func testAPerturbedKeypointDescriptorFailsAQuantizedModel() throws {
        var reference = try NPZReader.read(path: Self.referencePath("lisrd"))
        let i = reference.tensors.firstIndex { $0.key == "kp_meta" }!
        let t = reference.tensors[i]
        var v = t.floats()
        v[0] += 0.02  // keypoint 0, variant 0: cosine drops to about 0.9998
        reference.tensors[i] = NamedTensor(key: t.key, shape: t.shape, floats: v)
        let path = folder.appendingPathComponent("perturbed-kp.npz").path
        try NPZWriter.write(reference.tensors, to: path)

        let report = try Verifier.verify(ModelFile.load(path: convert("lisrd", ConversionOptions(precision: .fp16))), referencePath: path)
        XCTAssertFalse(report.pass)
        XCTAssertEqual(report.outputs.filter { !$0.pass }.map(\.name), ["kp_meta"])
    }
}

/// The converter chooses int8 compute against aislfd-verify's int8 tolerances; they are one
/// pair of numbers, held equal here.
final class Int8ComputeToleranceTests: XCTestCase {
    func testConverterUsesVerifiersInt8Tolerances() {
        let t = Tolerances.forPrecision(.int8)
        XCTAssertEqual(Converter.int8ComputeCosines.descriptor, t.keypointDescriptorCosine)
        XCTAssertEqual(Converter.int8ComputeCosines.meta, t.keypointMetaCosine)
    }
}
