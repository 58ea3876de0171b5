import AISLFDReaders
import AISLFDRuntime
import AISLFDTestSupport
import Foundation
import XCTest

/// Whole-model parity against the PyTorch reference files
/// (`Tests/Fixtures/reference/<arch>.npz`, tools/make_fixtures.py) from the
/// sample weights in `Weights/`, at every kernel level this CPU runs: the
/// portable path, AVX2 and AVX-512 must each stay within fp32 tolerance
/// (AISLFDVerifyTests checks the default level with the verifier's rules).
final class SIMDLevelParityTests: XCTestCase {

    static func readArrays(_ path: String) throws -> [String: NamedArray] {
        var arrays: [String: NamedArray] = [:]
        for t in try NPZReader.read(path: path).tensors { arrays[t.key] = NamedArray(name: t.key, shape: t.shape, values: t.floats()) }
        return arrays
    }

    static func readWeights(_ arch: String) throws -> ModelWeights {
        let file = try XCTUnwrap(Fixtures.sampleFiles[arch])
        let contents = Fixtures.sampleStateDict(try WeightsReader.read(path: Fixtures.repoPath("Weights/\(file)")), arch: arch)
        return ModelWeights(architecture: Architecture(rawValue: arch)!, contents: contents)
    }

    func testAgainstPyTorchReferences() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for arch in Architecture.allCases.map(\.rawValue) {
                let reference = try Self.readArrays(Fixtures.path("reference/\(arch).npz"))
                try compare(model: Model(weights: Self.readWeights(arch), configuration: configuration), reference: reference, label: "\(arch) \(level)")
            }
        }
    }

    /// Runs the reference's `image` (and `keypoints`), compares every output
    /// present in both with fp32 tolerance relative to each array's largest
    /// magnitude, and returns what disagrees (empty when all agree).
    func mismatches(model: Model, reference: [String: NamedArray], tolerance: Float = 1e-5, label: String) throws -> [String] {
        guard let image = reference["image"], image.shape.count == 4, image.shape[0] == 1 else {
            return ["\(label): reference has no [1, 3, H, W] image"]
        }
        let input = try Image(channels: image.shape[1], height: image.shape[2], width: image.shape[3], values: image.values)
        let outputs = try model.forward(image: input, recordActivations: true)
        var ours = outputs.namedArrays
        if let kp = reference["keypoints"] {
            let points = stride(from: 0, to: kp.values.count - 1, by: 2).map { Keypoint(x: kp.values[$0], y: kp.values[$0 + 1]) }
            ours += try outputs.describe(points).namedArrays
        }
        var problems: [String] = [], compared = 0
        for array in ours {
            guard let expected = reference[array.name] else { continue }
            compared += 1
            let error = array.shape == expected.shape ? relativeError(array.values, expected.values) : .infinity
            print("parity \(label) \(array.name): relative max error \(error)")
            if !(error <= tolerance) { problems.append("\(label) \(array.name): relative error \(error) > \(tolerance)") }
        }
        if compared < 8 { problems.append("\(label): only \(compared) outputs in common; desc.* and meta.* must all be compared") }
        return problems
    }

    func compare(model: Model, reference: [String: NamedArray], label: String) throws {
        XCTAssertEqual(try mismatches(model: model, reference: reference, label: label), [])
    }

    /// The comparison fails on a reference that differs from the run.
    func testComparisonRejectsAWrongReference() throws {
        let model = try Model(weights: ModelWeights(architecture: .lisrd, tensors: SpecWeights.make("lisrd")))
        let image = try SpecWeights.image(height: 30, width: 40)
        let outputs = try model.forward(image: image)
        var reference: [String: NamedArray] = ["image": NamedArray(name: "image", shape: [1, 3, 30, 40], values: image.values)]
        for a in outputs.namedArrays { reference[a.name] = a }
        XCTAssertEqual(try mismatches(model: model, reference: reference, label: "self"), [])
        let desc = reference["desc.rot_var_illum_var"]!
        reference[desc.name] = NamedArray(name: desc.name, shape: desc.shape, values: desc.values.map { $0 * 1.001 })
        XCTAssertEqual(try mismatches(model: model, reference: reference, label: "perturbed").count, 1)
        reference["meta.rot_var_illum_var"] = nil
        XCTAssertEqual(try mismatches(model: model, reference: reference, label: "missing").count, 2)
    }
}
