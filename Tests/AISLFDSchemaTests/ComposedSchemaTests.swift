import AISLFDCore
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

final class ComposedSchemaTests: XCTestCase {
    func testSizesMatchTheSpecTable() throws {
        for id in SchemaLibrary.ids {
            let schema = try SchemaLibrary.load(id: id)
            let expected = try XCTUnwrap(SpecKeys.sizeTable[id])
            XCTAssertEqual(schema.tensors.count, expected.entries, id)
            XCTAssertEqual(schema.valueCount, expected.values, id)
        }
    }

    func testKeysAndShapesAreTheSpecs() throws {
        for id in SchemaLibrary.ids {
            let schema = try SchemaLibrary.load(id: id)
            let fromSchema = Dictionary(uniqueKeysWithValues: schema.tensors.map { ($0.key, $0.shape) })
            let fromSpec = SpecKeys.keys(id)
            XCTAssertEqual(Set(fromSchema.keys).subtracting(fromSpec.keys).sorted(), [], "\(id): keys the spec does not have")
            XCTAssertEqual(Set(fromSpec.keys).subtracting(fromSchema.keys).sorted(), [], "\(id): spec keys the schema lacks")
            for (key, shape) in fromSpec { XCTAssertEqual(fromSchema[key], shape, "\(id): \(key)") }
        }
    }

    func testRolesAndDTypeClasses() throws {
        let roleBySuffix: [String: [TensorRole]] = [
            "weight": [.convWeight, .bnWeight, .linearWeight], "bias": [.convBias, .bnBias, .linearBias],
            "running_mean": [.bnRunningMean], "running_var": [.bnRunningVar],
            "num_batches_tracked": [.bnNumBatchesTracked], "centroids": [.vladCentroids],
        ]
        for schema in try SchemaLibrary.all {
            for t in schema.tensors {
                XCTAssertTrue(roleBySuffix[t.name]?.contains(t.role) ?? false, "\(t.key): \(t.role)")
                XCTAssertEqual(t.dtypeClass == .integer, t.role == .bnNumBatchesTracked, t.key)
                XCTAssertEqual(t.optional, t.role == .bnNumBatchesTracked, t.key)
                XCTAssertEqual(schema.layer(t.layer)?.tensorKeys.contains(t.key), true, t.key)
                XCTAssertEqual(t.key, t.layer + "." + t.name)
            }
            let bn = schema.tensors.filter { $0.name == "running_var" }
            XCTAssertEqual(bn.count, schema.id.hasPrefix("lisrd") || schema.id == "aislfd-a" ? 12 : 13)
            for layer in schema.layers where layer.op == .batchnorm2d { XCTAssertEqual(layer.eps, 1e-5, layer.name) }
            // Linear weights are [out, in] for the PSA projections; conv weights [out, in, kh, kw].
            for t in schema.tensors where t.role == .convWeight {
                let layer = try XCTUnwrap(schema.layer(t.layer))
                XCTAssertEqual(t.shape, [layer.outChannels, layer.inChannels, layer.kernel ?? 0, layer.kernel ?? 0])
            }
            for t in schema.tensors where t.role == .linearWeight { XCTAssertEqual(t.shape, [128, 128]) }
        }
    }

    func testVGGAndLISRDHeadWiring() throws {
        let s = try SchemaLibrary.load(id: "lisrd")
        let conv11 = try XCTUnwrap(s.layer("_backbone._conv1_1"))
        XCTAssertEqual(conv11.inputs, [LayerInput(layer: nil)])
        XCTAssertEqual([conv11.kernel, conv11.stride, conv11.padding], [3, 1, 1])
        XCTAssertTrue(conv11.bias)

        // conv -> ReLU -> BN in LISRD's backbone.
        let bn11 = try XCTUnwrap(s.layer("_backbone._bn1_1")?.input)
        XCTAssertEqual(bn11.layer, "_backbone._conv1_1")
        XCTAssertTrue(bn11.reluBetween)
        XCTAssertFalse(bn11.poolBetween)

        let conv12 = try XCTUnwrap(s.layer("_backbone._conv1_2"))
        XCTAssertEqual(conv12.input, LayerInput(layer: "_backbone._bn1_1"))
        XCTAssertEqual(conv12.padding, 1)
        for (conv, bn) in [("_conv2_1", "_bn1_2"), ("_conv3_1", "_bn2_2"), ("_conv4_1", "_bn3_2")] {
            XCTAssertEqual(s.layer("_backbone." + conv)?.input, LayerInput(layer: "_backbone." + bn, between: [.avgPool2x2]))
        }
        XCTAssertEqual(s.layers.flatMap(\.inputs).filter(\.poolBetween).count, 3)

        let conv1 = try XCTUnwrap(s.layer("conv_illum_var_rot_invar_1"))
        XCTAssertEqual(conv1.input, LayerInput(layer: "_backbone._bn4_2"))
        XCTAssertEqual(s.layer("bn_illum_var_rot_invar_1")?.input, LayerInput(layer: "conv_illum_var_rot_invar_1", between: [.relu]))
        let conv2 = try XCTUnwrap(s.layer("conv_illum_var_rot_invar_2"))
        XCTAssertEqual(conv2.input, LayerInput(layer: "bn_illum_var_rot_invar_1"))
        XCTAssertEqual([conv2.kernel, conv2.padding, conv2.inChannels, conv2.outChannels], [1, 0, 256, 128])
        XCTAssertEqual(conv2.variant, "rot_invar_illum_var")
        XCTAssertEqual(conv2.part, "heads")

        XCTAssertEqual(s.consumers(of: "_backbone._bn4_2").map(\.name),
                       ["conv_illum_var_rot_var_1", "conv_illum_var_rot_invar_1", "conv_illum_invar_rot_var_1", "conv_illum_invar_rot_invar_1"])
        XCTAssertEqual(s.consumers(of: "bn_illum_invar_rot_var_1").map(\.name), ["conv_illum_invar_rot_var_2"])
        XCTAssertEqual(s.part("heads")?.output(variant: "rot_var_illum_invar"), LayerInput(layer: "conv_illum_invar_rot_var_2"))
        XCTAssertEqual(s.part("backbone")?.output(variant: "rot_var_illum_invar"), LayerInput(layer: "_backbone._bn4_2"))
        XCTAssertEqual(s.part("meta")?.block, "netvlad")

        // NetVLAD reads the raw map, normalised; the centroids layer also reads the soft assignment.
        let vconv = try XCTUnwrap(s.layer("vlad_rot_var_illum_invar.conv"))
        XCTAssertEqual(vconv.input, LayerInput(layer: "conv_illum_invar_rot_var_2", between: [.resizeBilinear, .l2Normalize]))
        XCTAssertEqual(s.layer("vlad_rot_var_illum_invar")?.inputs.last, LayerInput(layer: "vlad_rot_var_illum_invar.conv", between: [.softmax]))
        XCTAssertEqual(s.layer("vlad_rot_var_illum_invar")?.grid, 3)
        XCTAssertEqual(s.tensors(of: "vlad_rot_var_illum_invar").map(\.role), [.vladCentroids])
    }

    func testMSFEWiring() throws {
        let s = try SchemaLibrary.load(id: "aislfd-c")
        let stem = try XCTUnwrap(s.layer("msfe.stem.conv"))
        XCTAssertEqual(stem.input, LayerInput(layer: nil))
        XCTAssertEqual([stem.kernel, stem.stride, stem.padding], [3, 2, 1])
        XCTAssertFalse(stem.bias)
        XCTAssertEqual(s.tensors(of: "msfe.stem.conv").map(\.role), [.convWeight])

        // conv -> BN -> ReLU: nothing between conv and BN.
        XCTAssertEqual(s.layer("msfe.stem.bn")?.input, LayerInput(layer: "msfe.stem.conv"))
        XCTAssertEqual(s.layer("msfe.layer1.conv")?.input, LayerInput(layer: "msfe.stem.bn", between: [.relu]))
        XCTAssertEqual(s.layer("msfe.layer3.0.conv")?.stride, 2)
        XCTAssertEqual(s.layer("msfe.layer3.1.conv")?.stride, 1)
        XCTAssertEqual(s.layer("msfe.lateral2")?.input, LayerInput(layer: "msfe.layer2.1.bn", between: [.relu]))
        XCTAssertEqual(s.layer("msfe.smooth.conv")?.inputs, [
            LayerInput(layer: "msfe.lateral3"),
            LayerInput(layer: "msfe.lateral4", between: [.resizeBilinear]),
            LayerInput(layer: "msfe.lateral2", between: [.resizeBilinear]),
        ])
        XCTAssertNil(s.layer("msfe.smooth.conv")?.input)

        XCTAssertEqual(s.layer("msfe.heads.rot_invar_illum_invar.conv1")?.input, LayerInput(layer: "msfe.smooth.bn", between: [.relu]))
        XCTAssertEqual(s.layer("msfe.heads.rot_invar_illum_invar.bn1")?.input, LayerInput(layer: "msfe.heads.rot_invar_illum_invar.conv1"))
        XCTAssertEqual(s.layer("msfe.heads.rot_invar_illum_invar.conv2")?.input,
                       LayerInput(layer: "msfe.heads.rot_invar_illum_invar.bn1", between: [.relu]))
        XCTAssertEqual(s.consumers(of: "msfe.smooth.bn").count, 4)

        for p in ["query", "key", "value"] {
            let l = try XCTUnwrap(s.layer("psa.rot_var_illum_var.\(p)"))
            XCTAssertEqual(l.op, .linear)
            XCTAssertEqual(l.input, LayerInput(layer: "msfe.heads.rot_var_illum_var.conv2", between: [.l2Normalize]))
        }
        XCTAssertEqual(s.part("meta")?.block, "psa")
    }

    func testTensorOrderFollowsPartsVariantsAndLayers() throws {
        let s = try SchemaLibrary.load(id: "aislfd-a")
        XCTAssertEqual(Array(s.keys.prefix(3)), ["_backbone._conv1_1.weight", "_backbone._conv1_1.bias", "_backbone._bn1_1.weight"])
        XCTAssertEqual(s.keys.last, "psa.rot_invar_illum_invar.value.bias")
        let firstHead = try XCTUnwrap(s.keys.firstIndex(of: "conv_illum_var_rot_var_1.weight"))
        let secondHead = try XCTUnwrap(s.keys.firstIndex(of: "conv_illum_var_rot_invar_1.weight"))
        XCTAssertEqual(secondHead - firstHead, 9)
        XCTAssertEqual(s.variants, SpecKeys.variants)
    }

    func testHashIsDeterministicAndCoversTheContent() throws {
        let all = try SchemaLibrary.all
        XCTAssertEqual(Set(all.map(\.sha256)).count, 4)
        for s in all {
            XCTAssertEqual(s.sha256.count, 64)
            XCTAssertEqual(s.sha256, SHA256.hex(Array(s.canonicalText.utf8)))
        }

        let files = SchemaLibrary.embeddedFiles
        func compose(_ blockEdit: @escaping (String) -> String) throws -> ArchitectureSchema {
            let composer = SchemaComposer(metaSchema: try SchemaLibrary.metaSchema()) { id in
                files["blocks/\(id).json"].map(blockEdit)
            }
            return try composer.compose(architectureText: try XCTUnwrap(files["lisrd.json"]), file: "lisrd.json")
        }
        let lisrd = try SchemaLibrary.load(id: "lisrd")
        // A fresh composition of the same files gives the same hash; layout and
        // descriptions do not count, a changed number does.
        XCTAssertEqual(try compose { $0 }.sha256, lisrd.sha256)
        XCTAssertEqual(try compose { $0.replacingOccurrences(of: "\n", with: "\n  ") }.sha256, lisrd.sha256)
        XCTAssertEqual(try compose { $0.replacingOccurrences(of: "\"description\": \"", with: "\"description\": \"edited ") }.sha256,
                       lisrd.sha256)
        XCTAssertNotEqual(try compose { $0.replacingOccurrences(of: "\"eps\": 1e-5", with: "\"eps\": 1e-3") }.sha256, lisrd.sha256)
    }

    func testUnknownArchitecture() {
        XCTAssertThrowsError(try SchemaLibrary.load(id: "lisrd2")) { error in
            XCTAssertEqual(String(describing: error), "unknown architecture \"lisrd2\"; known: lisrd, aislfd-a, aislfd-b, aislfd-c")
        }
    }
}

/// What composition refuses beyond the JSON Schema.
final class CompositionTests: XCTestCase {
    private let tinyArchitecture = """
        {"kind": "architecture", "id": "tiny", "version": 1, "variants": ["rot_var_illum_var", "rot_invar_illum_var"],
         "parts": [{"name": "backbone", "block": "tiny", "prefix": "net.", "input": "$image"}]}
        """

    private func compose(block: String, architecture: String? = nil) throws -> ArchitectureSchema {
        let composer = SchemaComposer(metaSchema: try SchemaLibrary.metaSchema()) { $0 == "tiny" ? block : nil }
        return try composer.compose(architectureText: architecture ?? tinyArchitecture, file: "tiny.json")
    }

    private func fixture(_ name: String) throws -> String {
        try String(contentsOfFile: Fixtures.path("schema/\(name)"), encoding: .utf8)
    }

    private func assertRefused(_ block: String, architecture: String? = nil, _ expected: String, line: UInt = #line) {
        XCTAssertThrowsError(try compose(block: block, architecture: architecture), line: line) { error in
            XCTAssertTrue(String(describing: error).contains(expected), "\(error)", line: line)
        }
    }

    func testGoodBlockComposes() throws {
        let s = try compose(block: try fixture("good-block.json"))
        XCTAssertEqual(s.keys, ["net.conv.weight", "net.conv.bias"])
        XCTAssertEqual(s.valueCount, 8 * 3 * 3 * 3 + 8)
        XCTAssertEqual(s.part("backbone")?.output(variant: "rot_invar_illum_var"), LayerInput(layer: "net.conv"))
    }

    func testRefusesShapeThatDoesNotFollowFromTheLayer() throws {
        assertRefused(try fixture("bad-inconsistent-shape.json"),
                      "blocks/tiny.json: layer net.conv: tensor bias has shape [3], [8] follows from the layer's sizes")
    }

    func testRefusesBlocksThatBreakTheJSONSchema() throws {
        assertRefused(try fixture("bad-missing-role.json"), "blocks/tiny.json: does not obey schema.schema.json")
    }

    func testRefusesMissingOrExtraRoles() throws {
        let good = try fixture("good-block.json")
        assertRefused(good.replacingOccurrences(of: "\"bias\": true", with: "\"bias\": false"),
                      "role conv_bias does not belong to this conv2d layer")
        assertRefused(good.replacingOccurrences(of: "\"role\": \"conv_bias\"", with: "\"role\": \"conv_weight\""),
                      "role conv_weight does not belong to this conv2d layer, or repeats")
        assertRefused(good.replacingOccurrences(of: "\"role\": \"conv_bias\"", with: "\"role\": \"linear_bias\""),
                      "role linear_bias does not belong")
        assertRefused(good.replacingOccurrences(of: "\"role\": \"conv_bias\"", with: "\"role\": \"conv_bias\", \"optional\": true"),
                      "tensor bias is needed for inference and cannot be optional")
        assertRefused(good.replacingOccurrences(of: "\"dtype\": \"float\", \"role\": \"conv_bias\"", with: "\"dtype\": \"integer\", \"role\": \"conv_bias\""),
                      "dtype integer does not fit role conv_bias")
    }

    func testRefusesDanglingNamesAndPlaceholders() throws {
        let good = try fixture("good-block.json")
        assertRefused(good.replacingOccurrences(of: "\"$input\"", with: "\"conv0\""), "\"conv0\" names no layer of this block")
        assertRefused(good.replacingOccurrences(of: "\"name\": \"conv\"", with: "\"name\": \"conv_{variant}\""),
                      "has a placeholder that a shared part cannot fill")
        assertRefused(good, architecture: tinyArchitecture.replacingOccurrences(of: "\"block\": \"tiny\"", with: "\"block\": \"huge\""),
                      "block \"huge\" not found")
        assertRefused(good, architecture: tinyArchitecture.replacingOccurrences(of: "\"$image\"", with: "\"stem\""),
                      "part backbone reads part stem, which does not come before it")
    }

    func testPerVariantPartsExpandPlaceholders() throws {
        let good = try fixture("good-block.json")
        let block = good.replacingOccurrences(of: "\"name\": \"conv\"", with: "\"name\": \"conv_{illum}_{rot}\"")
            .replacingOccurrences(of: "\"from\": \"conv\"", with: "\"from\": \"conv_{illum}_{rot}\"")
        let arch = tinyArchitecture.replacingOccurrences(of: "\"prefix\": \"net.\",", with: "\"prefix\": \"net.\", \"perVariant\": true,")
        let s = try compose(block: block, architecture: arch)
        XCTAssertEqual(s.layers.map(\.name), ["net.conv_var_var", "net.conv_var_invar"])
        XCTAssertEqual(s.layers.map(\.variant), ["rot_var_illum_var", "rot_invar_illum_var"])
        XCTAssertEqual(s.part("backbone")?.output(variant: "rot_invar_illum_var"), LayerInput(layer: "net.conv_var_invar"))
        // The same block used twice in one architecture gives duplicate names.
        let twice = tinyArchitecture.replacingOccurrences(
            of: "\"input\": \"$image\"}]", with: "\"input\": \"$image\"}, {\"name\": \"again\", \"block\": \"tiny\", \"prefix\": \"net.\", \"input\": \"$image\"}]")
        assertRefused(good, architecture: twice, "layer net.conv appears twice")
    }
}
