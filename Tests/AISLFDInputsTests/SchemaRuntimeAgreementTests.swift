import AISLFDCore
import AISLFDRuntime
import AISLFDSchema
import XCTest

/// The runtime reads exactly the tensors the schemas describe, for every architecture: all of
/// them, none besides, at the schema's shapes. A layer added to one side only fails here.
final class SchemaRuntimeAgreementTests: XCTestCase {
    /// Weights with every schema tensor at its shape (variances 1, so every BatchNorm is valid).
    private func weights(_ schema: ArchitectureSchema, skipping: String? = nil) throws -> ModelWeights {
        var tensors: [String: WeightTensor] = [:]
        for t in schema.tensors where t.key != skipping {
            tensors[t.key] = WeightTensor(shape: t.shape, values: [Float](repeating: t.role == .bnRunningVar ? 1 : 0.01, count: t.elementCount))
        }
        return ModelWeights(architecture: try XCTUnwrap(Architecture(rawValue: schema.id)), tensors: tensors)
    }

    func testTheRuntimeUsesEverySchemaTensorAndNoOther() throws {
        XCTAssertEqual(Set(SchemaLibrary.ids), Set(Architecture.allCases.map(\.rawValue)))
        for arch in Architecture.allCases {
            let schema = try SchemaLibrary.load(id: arch.rawValue)
            let model = try Model(weights: weights(schema))
            XCTAssertEqual(model.unusedTensors, [], arch.rawValue)
            // Every required tensor is needed: without it the model cannot be built.
            for spec in schema.tensors where !spec.optional {
                XCTAssertThrowsError(try Model(weights: weights(schema, skipping: spec.key)), "\(arch.rawValue) without \(spec.key)") {
                    XCTAssertEqual($0 as? RuntimeError, .missingTensor(spec.key))
                }
            }
            // And at the schema's shape: one element more is refused.
            let first = try XCTUnwrap(schema.tensors.first { $0.role == .convWeight })
            var wrong = try weights(schema)
            wrong.tensors[first.key] = WeightTensor(shape: [first.shape[0] + 1] + first.shape.dropFirst(),
                                                    values: [Float](repeating: 0, count: (first.shape[0] + 1) * first.elementCount / first.shape[0]))
            XCTAssertThrowsError(try Model(weights: wrong), arch.rawValue)
        }
    }

    /// The check can fail: a tensor no schema has is reported unused.
    func testAStrayTensorIsReported() throws {
        var w = try weights(SchemaLibrary.load(id: "aislfd-c"))
        w.tensors["msfe.extra.weight"] = WeightTensor(shape: [1], values: [0])
        XCTAssertEqual(try Model(weights: w).unusedTensors, ["msfe.extra.weight"])
    }
}
