import AISLFDCore
import AISLFDSchema
import Foundation
import XCTest

/// A full-size, well-formed file for `schema`: zeros, running variances of
/// one, int64 step counters. Tests break one thing at a time.
func syntheticContents(_ schema: ArchitectureSchema) -> WeightsContents {
    let tensors = schema.tensors.map { spec -> NamedTensor in
        switch spec.role {
        case .bnNumBatchesTracked:
            return NamedTensor(key: spec.key, dtype: .int64, shape: spec.shape, data: [UInt8](repeating: 0, count: 8))
        case .bnRunningVar:
            return NamedTensor(key: spec.key, shape: spec.shape, floats: [Float](repeating: 1, count: spec.elementCount))
        default:
            return NamedTensor(key: spec.key, dtype: .float32, shape: spec.shape, data: [UInt8](repeating: 0, count: spec.elementCount * 4))
        }
    }
    return WeightsContents(format: "synthetic", tensors: tensors)
}

final class ValidatorTests: XCTestCase {
    private var lisrd: ArchitectureSchema!
    private var clean: WeightsContents!

    override func setUpWithError() throws {
        lisrd = try SchemaLibrary.load(id: "lisrd")
        clean = syntheticContents(lisrd)
    }

    private func replacing(_ key: String, in contents: WeightsContents, with tensor: NamedTensor) -> WeightsContents {
        var c = contents
        c.tensors = c.tensors.map { $0.key == key ? tensor : $0 }
        return c
    }

    func testCleanFilePassesForEveryArchitecture() throws {
        for schema in try SchemaLibrary.all {
            let report = Validator.validate(syntheticContents(schema), against: schema, file: "w.h5")
            XCTAssertTrue(report.valid, schema.id)
            XCTAssertEqual(report.problems, [], schema.id)
        }
        let report = Validator.validate(clean, against: lisrd)
        XCTAssertEqual(report.humanReadable, "OK: lisrd, 104 tensors, 3,727,596 values")
        let c = try SchemaLibrary.load(id: "aislfd-c")
        XCTAssertEqual(Validator.validate(syntheticContents(c), against: c).humanReadable, "OK: aislfd-c, 116 tensors, 5,778,381 values")
    }

    func testMissingKey() {
        var c = clean!
        c.tensors.removeAll { $0.key == "conv_illum_invar_rot_var_2.bias" }
        let report = Validator.validate(c, against: lisrd)
        XCTAssertFalse(report.valid)
        XCTAssertEqual(report.problems, [Problem(kind: .missing, key: "conv_illum_invar_rot_var_2.bias",
                                                 message: "conv_illum_invar_rot_var_2.bias: missing (conv_bias, shape [128])",
                                                 expected: .shape([128]))])
        XCTAssertEqual(report.humanReadable.split(separator: "\n").last, "lisrd: 103 tensors, 1 problem")
    }

    func testAbsentStepCountersAreOnlyANote() {
        var c = clean!
        c.tensors.removeAll { $0.key.hasSuffix(".num_batches_tracked") }
        let report = Validator.validate(c, against: lisrd)
        XCTAssertTrue(report.valid)
        XCTAssertEqual(report.notes, ["12 optional tensors absent (bn_num_batches_tracked): not needed for inference"])
    }

    func testUnexpectedKey() {
        var c = clean!
        c.tensors.append(NamedTensor(key: "extra.weight", shape: [2], floats: [1, 2]))
        c.tensors.append(NamedTensor(key: "_backbone._conv1_1.weight", shape: [1], floats: [0]))
        let report = Validator.validate(c, against: lisrd)
        XCTAssertEqual(report.problems.map(\.kind), [.unexpected, .unexpected])
        XCTAssertEqual(report.problems.map(\.message), ["extra.weight: not a tensor of lisrd (float32 [2])",
                                                        "_backbone._conv1_1.weight: appears more than once"])
    }

    func testShapeMismatch() {
        let c = replacing("_backbone._conv1_1.weight", in: clean,
                          with: NamedTensor(key: "_backbone._conv1_1.weight", dtype: .float32, shape: [64, 3, 5, 5],
                                            data: [UInt8](repeating: 0, count: 64 * 3 * 25 * 4)))
        let report = Validator.validate(c, against: lisrd)
        XCTAssertEqual(report.problems, [Problem(kind: .shape, key: "_backbone._conv1_1.weight",
                                                 message: "_backbone._conv1_1.weight: shape [64, 3, 3, 3] expected, found [64, 3, 5, 5]",
                                                 expected: .shape([64, 3, 3, 3]), found: .shape([64, 3, 5, 5]))])
        // A scalar where a vector belongs.
        let scalar = replacing("vlad_rot_var_illum_var.conv.bias", in: clean,
                               with: NamedTensor(key: "vlad_rot_var_illum_var.conv.bias", shape: [], floats: [0]))
        XCTAssertEqual(Validator.validate(scalar, against: lisrd).problems.map(\.message),
                       ["vlad_rot_var_illum_var.conv.bias: shape [8] expected, found []"])
    }

    func testDTypes() {
        let key = "_backbone._bn2_1.weight"
        let asBool = replacing(key, in: clean, with: NamedTensor(key: key, dtype: .bool, shape: [64], data: [UInt8](repeating: 1, count: 64)))
        XCTAssertEqual(Validator.validate(asBool, against: lisrd).problems,
                       [Problem(kind: .dtype, key: key, message: "\(key): dtype bool cannot become float32 (bn_weight must be floating-point)",
                                expected: "float", found: "bool")])
        let asInt = replacing(key, in: clean, with: NamedTensor(key: key, dtype: .int32, shape: [64], data: [UInt8](repeating: 0, count: 256)))
        XCTAssertEqual(Validator.validate(asInt, against: lisrd).problems.map(\.kind), [.dtype])

        // Every floating-point type converts.
        for dtype in [DType.float16, .bfloat16, .float64] {
            let c = replacing(key, in: clean, with: NamedTensor(key: key, dtype: dtype, shape: [64],
                                                               data: [UInt8](repeating: 0, count: 64 * dtype.byteSize)))
            XCTAssertTrue(Validator.validate(c, against: lisrd).valid, dtype.rawValue)
        }

        let counter = "_backbone._bn2_1.num_batches_tracked"
        let floatCounter = replacing(counter, in: clean, with: NamedTensor(key: counter, shape: [], floats: [7]))
        XCTAssertEqual(Validator.validate(floatCounter, against: lisrd).problems.map(\.message),
                       ["\(counter): dtype float32 found, an integer type expected (bn_num_batches_tracked)"])
        let int32Counter = replacing(counter, in: clean, with: NamedTensor(key: counter, dtype: .int32, shape: [], data: [7, 0, 0, 0]))
        XCTAssertTrue(Validator.validate(int32Counter, against: lisrd).valid)
    }

    func testNonFiniteValues() {
        let key = "conv_illum_var_rot_var_1.weight"
        var values = [Float](repeating: 0.5, count: 256 * 256 * 9)
        values[0] = .nan
        values[10] = .infinity
        values[20] = -.infinity
        values[30] = .nan
        let report = Validator.validate(replacing(key, in: clean, with: NamedTensor(key: key, shape: [256, 256, 3, 3], floats: values)),
                                        against: lisrd)
        XCTAssertEqual(report.problems, [Problem(kind: .nonfinite, key: key, message: "\(key): 2 NaN and 2 infinite of 589,824 values", count: 4)])

        // float64 NaN is found too, not lost in the conversion.
        let bias = "conv_illum_var_rot_var_1.bias"
        var doubles = [UInt8](repeating: 0, count: 256 * 8)
        withUnsafeBytes(of: Double.nan.bitPattern.littleEndian) { doubles.replaceSubrange(0..<8, with: $0) }
        let f64 = Validator.validate(replacing(bias, in: clean, with: NamedTensor(key: bias, dtype: .float64, shape: [256], data: doubles)),
                                     against: lisrd)
        XCTAssertEqual(f64.problems.map(\.message), ["\(bias): 1 NaN of 256 values"])
    }

    func testNegativeRunningVariance() {
        let key = "_backbone._bn3_2.running_var"
        var values = [Float](repeating: 1, count: 128)
        values[3] = -0.5
        values[4] = -1e-9
        values[100] = -2
        values[101] = 0  // zero is a valid variance (eps keeps the division finite)
        let report = Validator.validate(replacing(key, in: clean, with: NamedTensor(key: key, shape: [128], floats: values)), against: lisrd)
        XCTAssertEqual(report.problems, [Problem(kind: .negativeVariance, key: key,
                                                 message: "\(key): 3 of 128 running variances are negative", count: 3)])
        // The same values in a running mean are fine.
        let mean = "_backbone._bn3_2.running_mean"
        XCTAssertTrue(Validator.validate(replacing(mean, in: clean, with: NamedTensor(key: mean, shape: [128], floats: values)), against: lisrd).valid)
    }

    func testPrefixedNamesGetAHint() throws {
        var c = clean!
        c.tensors = c.tensors.map { NamedTensor(key: "model." + $0.key, dtype: $0.dtype, shape: $0.shape, data: $0.data) }
        let report = Validator.validate(c, against: lisrd)
        XCTAssertFalse(report.valid)
        let prefix = try XCTUnwrap(report.problems.first)
        XCTAssertEqual(prefix.kind, .prefix)
        XCTAssertEqual(prefix.key, "model.")
        XCTAssertEqual(prefix.count, 104)
        XCTAssertEqual(prefix.message, "names differ from lisrd only by a prefix: remove the prefix \"model.\" from 104 keys "
                       + "(model._backbone._conv1_1.weight -> _backbone._conv1_1.weight) (--strip-prefix model.)")
        XCTAssertEqual(report.problems.filter { $0.kind == .missing }.count, 104 - 12)
        XCTAssertEqual(report.problems.filter { $0.kind == .unexpected }.count, 104)
        XCTAssertEqual(report.problems.count, 1 + 92 + 104)

        // A backbone saved on its own lacks "_backbone.": add it.
        var backbone = clean!
        backbone.tensors = backbone.tensors.filter { $0.key.hasPrefix("_backbone.") }.map {
            NamedTensor(key: String($0.key.dropFirst("_backbone.".count)), dtype: $0.dtype, shape: $0.shape, data: $0.data)
        }
        let add = try XCTUnwrap(Validator.validate(backbone, against: lisrd).problems.first)
        XCTAssertEqual(add.kind, .prefix)
        XCTAssertEqual(add.message, "names differ from lisrd only by a prefix: add the prefix \"_backbone.\" to 56 keys "
                       + "(_bn1_1.bias -> _backbone._bn1_1.bias)")

        // One stray key with a prefix is no reason for a hint when most keys are right.
        var one = clean!
        one.tensors[0] = NamedTensor(key: "model." + one.tensors[0].key, dtype: one.tensors[0].dtype, shape: one.tensors[0].shape, data: one.tensors[0].data)
        one.tensors.removeLast(5)
        XCTAssertFalse(Validator.validate(one, against: lisrd).problems.contains { $0.kind == .prefix })
    }

    func testReportsEveryProblemInOnePass() {
        var c = clean!
        c.tensors.removeAll { $0.key == "vlad_rot_invar_illum_invar.centroids" }
        c.tensors.append(NamedTensor(key: "optimizer.step", shape: [1], floats: [1]))
        c = replacing("_backbone._bn1_1.running_var", in: c,
                      with: NamedTensor(key: "_backbone._bn1_1.running_var", shape: [64], floats: [Float](repeating: -1, count: 64)))
        c = replacing("_backbone._conv4_2.bias", in: c,
                      with: NamedTensor(key: "_backbone._conv4_2.bias", dtype: .uint8, shape: [255], data: [UInt8](repeating: 0, count: 255)))
        let report = Validator.validate(c, against: lisrd, file: "ckpt.pth")
        XCTAssertEqual(report.problems.map(\.kind), [.missing, .unexpected, .negativeVariance, .shape, .dtype])
        XCTAssertEqual(report.humanReadable.split(separator: "\n").map(String.init), [
            "ckpt.pth: vlad_rot_invar_illum_invar.centroids: missing (vlad_centroids, shape [8, 128])",
            "ckpt.pth: optimizer.step: not a tensor of lisrd (float32 [1])",
            "ckpt.pth: _backbone._bn1_1.running_var: 64 of 64 running variances are negative",
            "ckpt.pth: _backbone._conv4_2.bias: shape [256] expected, found [255]",
            "ckpt.pth: _backbone._conv4_2.bias: dtype uint8 cannot become float32 (conv_bias must be floating-point)",
            "lisrd: 104 tensors, 5 problems",
        ])
    }

    func testJSONFieldNames() throws {
        var c = clean!
        c.tensors.removeFirst()
        let report = Validator.validate(c, against: lisrd, detected: true)
        let json = try JSONSerialization.jsonObject(with: Data(try report.jsonText().utf8)) as? [String: Any]
        let object = try XCTUnwrap(json)
        XCTAssertEqual(Set(object.keys), ["file", "format", "architecture", "schemaSha256", "detected", "valid", "tensorCount",
                                          "valueCount", "problems", "notes"])
        XCTAssertTrue(object["file"] is NSNull)
        XCTAssertEqual(object["architecture"] as? String, "lisrd")
        XCTAssertEqual(object["detected"] as? Bool, true)
        XCTAssertEqual(object["valid"] as? Bool, false)
        XCTAssertEqual(object["tensorCount"] as? Int, 103)
        let problem = try XCTUnwrap((object["problems"] as? [[String: Any]])?.first)
        XCTAssertEqual(Set(problem.keys), ["kind", "key", "message", "expected"])
        XCTAssertEqual(problem["kind"] as? String, "missing")
        XCTAssertEqual(problem["key"] as? String, "_backbone._conv1_1.weight")

        let decoded = try JSONDecoder().decode(ValidationReport.self, from: Data(try report.jsonText().utf8))
        XCTAssertEqual(decoded, report)
        XCTAssertEqual(ProblemKind.negativeVariance.rawValue, "negative_variance")
    }

    func testCheckDetectsOrUsesTheGivenArchitecture() throws {
        let b = try SchemaLibrary.load(id: "aislfd-b")
        let report = try Validator.check(syntheticContents(b), file: "b.npz")
        XCTAssertEqual(report.architecture, "aislfd-b")
        XCTAssertTrue(report.detected)
        XCTAssertTrue(report.valid)

        let forced = try Validator.check(syntheticContents(b), architecture: "aislfd-c")
        XCTAssertFalse(forced.detected)
        XCTAssertFalse(forced.valid)
        XCTAssertEqual(forced.problems.filter { $0.kind == .missing }.count, 24)  // PSA's
        XCTAssertEqual(forced.problems.filter { $0.kind == .unexpected }.count, 12)  // NetVLAD's

        XCTAssertThrowsError(try Validator.check(syntheticContents(b), architecture: "vgg"))
        let junk = WeightsContents(format: "npz", tensors: [NamedTensor(key: "fc.weight", shape: [1], floats: [0])])
        XCTAssertThrowsError(try Validator.check(junk)) { error in
            XCTAssertEqual(String(describing: error), "no architecture matches: none of the 1 tensor names is a key of the 4 architectures")
        }
    }
}
