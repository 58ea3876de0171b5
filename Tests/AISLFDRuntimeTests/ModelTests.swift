import AISLFDRuntime
import Foundation
import XCTest

/// Whole models on random weights built from the spec's names and shapes.
final class ModelTests: XCTestCase {
    static let archs = ["lisrd", "aislfd-a", "aislfd-b", "aislfd-c"]

    /// The test's own weights agree with architectures.md's size table.
    func testSpecWeightsMatchTheSpecTable() {
        let table: [String: (entries: Int, values: Int)] = [
            "lisrd": (104, 3_727_596), "aislfd-a": (116, 3_917_516), "aislfd-b": (104, 5_588_461), "aislfd-c": (116, 5_778_381),
        ]
        for arch in ModelTests.archs {
            let t = SpecWeights.make(arch)
            XCTAssertEqual(t.count, table[arch]?.entries, arch)
            XCTAssertEqual(t.values.reduce(0) { $0 + $1.values.count }, table[arch]?.values, arch)
        }
    }

    func testOutputShapesAt61x83() throws {
        let image = try SpecWeights.image(height: 61, width: 83)
        // VGG: floor thrice (61 -> 7, 83 -> 10); MSFE: ceil thrice (61 -> 8, 83 -> 11).
        let sizes = ["lisrd": (7, 10), "aislfd-a": (7, 10), "aislfd-b": (8, 11), "aislfd-c": (8, 11)]
        for arch in ModelTests.archs {
            let model = try Model(weights: ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: SpecWeights.make(arch)))
            let out = try model.forward(image: image)
            let (h, w) = sizes[arch]!
            XCTAssertEqual(out.desc.count, 4)
            for v in Variant.allCases {
                XCTAssertEqual(out.desc[v].shape, [128, h, w], "\(arch) desc \(v.rawValue)")
                let metaShape = arch == "lisrd" || arch == "aislfd-b" ? [1024, 3, 3] : [128, h, w]
                XCTAssertEqual(out.meta[v].shape, metaShape, "\(arch) meta \(v.rawValue)")
                XCTAssertTrue(out.desc[v].values.allSatisfy(\.isFinite) && out.meta[v].values.allSatisfy(\.isFinite), arch)
            }
            XCTAssertTrue(out.activations.isEmpty)
            XCTAssertEqual(model.unusedTensors, [], arch)
        }
    }

    func testActivationNamesAndShapes() throws {
        let image = try SpecWeights.image(height: 61, width: 83)
        let lisrd = try Model(weights: ModelWeights(architecture: .lisrd, tensors: SpecWeights.make("lisrd"))).forward(image: image, recordActivations: true)
        let vggSizes = [(61, 83), (61, 83), (30, 41), (30, 41), (15, 20), (15, 20), (7, 10), (7, 10)]
        var expected: [(String, [Int])] = zip(["1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2"], zip([64, 64, 64, 64, 128, 128, 256, 256], vggSizes))
            .map { ("_backbone._bn\($0.0)", [1, $0.1.0, $0.1.1.0, $0.1.1.1]) }
        expected += ["illum_var_rot_var", "illum_var_rot_invar", "illum_invar_rot_var", "illum_invar_rot_invar"].map { ("bn_\($0)_1", [1, 256, 7, 10]) }
        XCTAssertEqual(lisrd.activations.map(\.name), expected.map(\.0))
        XCTAssertEqual(lisrd.activations.map(\.shape), expected.map(\.1))

        let c = try Model(weights: ModelWeights(architecture: .aislfdC, tensors: SpecWeights.make("aislfd-c"))).forward(image: image, recordActivations: true)
        expected = [("msfe.stem.bn", [1, 64, 31, 42]), ("msfe.layer1.bn", [1, 64, 31, 42]),
                    ("msfe.layer2.0.bn", [1, 128, 16, 21]), ("msfe.layer2.1.bn", [1, 128, 16, 21]),
                    ("msfe.layer3.0.bn", [1, 256, 8, 11]), ("msfe.layer3.1.bn", [1, 256, 8, 11]),
                    ("msfe.layer4.0.bn", [1, 256, 4, 6]), ("msfe.layer4.1.bn", [1, 256, 4, 6]),
                    ("msfe.lateral2", [1, 256, 16, 21]), ("msfe.lateral3", [1, 256, 8, 11]), ("msfe.lateral4", [1, 256, 4, 6]),
                    ("msfe.smooth.bn", [1, 256, 8, 11])]
        expected += SpecWeights.variants.map { ("msfe.heads.\($0).bn1", [1, 256, 8, 11]) }
        for v in SpecWeights.variants { expected += ["query", "key", "value"].map { ("psa.\(v).\($0)", [1, 88, 128]) } }
        XCTAssertEqual(c.activations.map(\.name), expected.map(\.0))
        XCTAssertEqual(c.activations.map(\.shape), expected.map(\.1))
        for a in c.activations { XCTAssertEqual(a.values.count, a.shape.reduce(1, *), a.name) }
    }

    /// The three BatchNorm forms give the same network.
    func testFoldedFormsAgree() throws {
        let image = try SpecWeights.image(height: 61, width: 83)
        for arch in ModelTests.archs {
            let tensors = SpecWeights.make(arch)
            let reference = try Model(weights: ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: tensors)).forward(image: image)
            for (form, weights) in [("scale/shift", ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: SpecWeights.asScaleShift(tensors))),
                                    ("folded", SpecWeights.folded(arch, tensors))] {
                let model = try Model(weights: weights)
                XCTAssertEqual(model.unusedTensors, [], "\(arch) \(form)")
                let out = try model.forward(image: image, recordActivations: true)
                for v in Variant.allCases {
                    assertClose(out.desc[v].values, reference.desc[v].values, "\(arch) \(form) desc \(v.rawValue)")
                    assertClose(out.meta[v].values, reference.meta[v].values, "\(arch) \(form) meta \(v.rawValue)")
                }
                if form == "folded" && arch.hasPrefix("lisrd") || form == "folded" && arch == "aislfd-a" {
                    XCTAssertFalse(out.activations.contains { $0.name.hasPrefix("bn_") }, "folded-forward BN has no activation")
                }
            }
        }
    }

    /// The comparison above would notice a wrong fold (the shift dropped).
    func testWrongFoldIsDetected() throws {
        let image = try SpecWeights.image(height: 61, width: 83)
        let tensors = SpecWeights.make("aislfd-b")
        let reference = try Model(weights: ModelWeights(architecture: .aislfdB, tensors: tensors)).forward(image: image)
        var wrong = SpecWeights.asScaleShift(tensors)
        wrong["msfe.layer1.bn.shift"]!.values = wrong["msfe.layer1.bn.shift"]!.values.map { $0 + 0.01 }
        let out = try Model(weights: ModelWeights(architecture: .aislfdB, tensors: wrong)).forward(image: image)
        XCTAssertGreaterThan(relativeError(out.desc[0].values, reference.desc[0].values), 1e-5)
    }

    func testLoadErrorsNameTheTensor() throws {
        func loadError(_ arch: String, folded: Set<String> = [], _ edit: (inout [String: WeightTensor]) -> Void) -> String {
            var t = SpecWeights.make(arch)
            edit(&t)
            do {
                _ = try Model(weights: ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: t, foldedLayers: folded))
                return "no error"
            } catch {
                return String(describing: error)
            }
        }
        XCTAssertEqual(loadError("lisrd") { $0["_backbone._conv2_1.weight"] = nil }, "tensor _backbone._conv2_1.weight: missing")
        XCTAssertEqual(loadError("lisrd") { $0["_backbone._conv2_1.bias"] = nil }, "tensor _backbone._conv2_1.bias: missing")
        XCTAssertEqual(loadError("aislfd-c") { $0["psa.rot_var_illum_invar.key.weight"]!.shape = [128, 64, 2] },
                       "tensor psa.rot_var_illum_invar.key.weight: shape [128, 64, 2], expected [128, 128]")
        XCTAssertEqual(loadError("aislfd-c") { $0["psa.rot_var_illum_invar.key.bias"]!.values.removeLast() },
                       "tensor psa.rot_var_illum_invar.key.bias: 127 values do not fill shape [128]")
        // A BatchNorm with no tensors must be listed as folded.
        let dropBN = { (t: inout [String: WeightTensor]) in SpecWeights.removeBatchNorm(&t, "msfe.layer3.1.bn") }
        XCTAssertEqual(loadError("aislfd-b", dropBN), "tensor msfe.layer3.1.bn.weight: missing")
        XCTAssertEqual(loadError("aislfd-b", folded: ["msfe.layer3.1.bn"], dropBN), "no error")
        XCTAssertEqual(loadError("aislfd-b") { $0["msfe.layer1.bn.running_var"]!.values[0] = .nan },
                       "tensor msfe.layer1.bn.running_var: running_var + eps is nan at channel 0, must be > 0")
        XCTAssertEqual(loadError("aislfd-b", folded: ["msfe.layer3.1.bn"]) { _ in },
                       "tensor msfe.layer3.1.bn.weight: layer msfe.layer3.1.bn is listed as folded but still has tensors")
        XCTAssertEqual(loadError("aislfd-b") { $0["msfe.layer1.bn.scale"] = WeightTensor(shape: [64], values: [Float](repeating: 1, count: 64)) },
                       "layer msfe.layer1.bn: has both BatchNorm statistics (weight, bias, running_mean, running_var) and scale/shift")
        XCTAssertEqual(loadError("aislfd-b") { $0["msfe.layer1.bn.running_mean"] = nil }, "tensor msfe.layer1.bn.running_mean: missing")
        XCTAssertEqual(loadError("aislfd-b") { $0["msfe.layer1.bn.running_var"]!.values[3] = -1 },
                       "tensor msfe.layer1.bn.running_var: running_var + eps is -0.99999 at channel 3, must be > 0")
        XCTAssertEqual(loadError("lisrd") { $0["vlad_rot_var_illum_var.centroids"]!.shape = [128, 8] },
                       "tensor vlad_rot_var_illum_var.centroids: shape [128, 8], expected [8, 128]")
        // Weights of another architecture.
        XCTAssertThrowsError(try Model(weights: ModelWeights(architecture: .aislfdA, tensors: SpecWeights.make("lisrd")))) {
            XCTAssertEqual($0 as? RuntimeError, .missingTensor("psa.rot_var_illum_var.query.weight"))
        }
    }

    func testUnusedTensorsAreReported() throws {
        var t = SpecWeights.make("lisrd")
        t["extra.weight"] = WeightTensor(shape: [1], values: [0])
        XCTAssertEqual(try Model(weights: ModelWeights(architecture: .lisrd, tensors: t)).unusedTensors, ["extra.weight"])
    }

    func testImageSizeLimits() throws {
        for arch in ModelTests.archs {
            let model = try Model(weights: ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: SpecWeights.make(arch)))
            let out = try model.forward(image: try SpecWeights.image(height: 24, width: 24))
            XCTAssertEqual(out.desc[0].shape, [128, 3, 3], arch)
            XCTAssertThrowsError(try model.forward(image: try SpecWeights.image(height: 23, width: 40))) {
                XCTAssertEqual(String(describing: $0), "image is 23x40; height and width must be at least 24")
            }
            XCTAssertThrowsError(try model.forward(image: try SpecWeights.image(height: 40, width: 20)))
            let gray = try FeatureMap(channels: 1, height: 30, width: 30, values: [Float](repeating: 0, count: 900))
            XCTAssertThrowsError(try model.forward(image: gray)) { XCTAssertEqual($0 as? RuntimeError, .imageNotRGB(channels: 1)) }
        }
        let small = try Model(weights: ModelWeights(architecture: .lisrd, tensors: SpecWeights.make("lisrd")),
                              configuration: RuntimeConfiguration(maximumPixels: 1000))
        XCTAssertThrowsError(try small.forward(image: try SpecWeights.image(height: 40, width: 30))) {
            XCTAssertEqual($0 as? RuntimeError, .imageTooLarge(height: 40, width: 30, maximumPixels: 1000))
        }
    }

    /// Keypoint descriptors have the interface's shapes and unit norm, and an
    /// image matched with itself pairs every keypoint with itself.
    func testKeypointsAndSelfMatching() throws {
        let image = try SpecWeights.image(height: 61, width: 83)
        let keypoints: [Keypoint] = (0..<12).map { (i: Int) -> Keypoint in Keypoint(x: Float(3 + 7 * i), y: Float(2 + 5 * i)) }
        for arch in ModelTests.archs {
            let out = try Model(weights: ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: SpecWeights.make(arch))).forward(image: image)
            let d = try out.describe(keypoints)
            let metaD = arch == "lisrd" || arch == "aislfd-b" ? 1024 : 128
            XCTAssertEqual(d.count, 12)
            XCTAssertEqual(d.local.count, 12 * 4 * 128)
            XCTAssertEqual(d.meta.count, 12 * 4 * metaD)
            for i in 0..<(12 * 4) {
                var sum: Float = 0
                for j in 0..<128 { sum += d.local[i * 128 + j] * d.local[i * 128 + j] }
                XCTAssertEqual(sum.squareRoot(), 1, accuracy: 1e-5)
            }
            for kind in DistanceKind.allCases {
                let matches: [Match] = try Matching.mutualNearestNeighbours(d, d, kind: kind)
                XCTAssertEqual(matches.map { $0.index0 }, Array(0..<12), "\(arch) \(kind)")
                XCTAssertEqual(matches.map { $0.index1 }, Array(0..<12), "\(arch) \(kind)")
            }
            XCTAssertThrowsError(try out.describe([Keypoint(x: 1, y: .infinity)])) {
                XCTAssertEqual($0 as? RuntimeError, .nonFiniteKeypoint(index: 0))
            }
        }
    }

    /// Splitting the work over one or two threads changes nothing.
    func testThreadCountDoesNotChangeResults() throws {
        let image = try SpecWeights.image(height: 61, width: 83)
        for arch in ["lisrd", "aislfd-c"] {
            let weights = ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: SpecWeights.make(arch))
            let one = try Model(weights: weights, configuration: RuntimeConfiguration(threads: 1)).forward(image: image)
            let two = try Model(weights: weights, configuration: RuntimeConfiguration(threads: 2)).forward(image: image)
            for v in Variant.allCases {
                assertClose(two.desc[v].values, one.desc[v].values, tolerance: 1e-6, "\(arch) 1 vs 2 threads desc \(v.rawValue)")
                assertClose(two.meta[v].values, one.meta[v].values, tolerance: 1e-6, "\(arch) 1 vs 2 threads meta \(v.rawValue)")
            }
        }
    }

    func testNamedArraysFollowTheInterface() throws {
        let model = try Model(weights: ModelWeights(architecture: .aislfdB, tensors: SpecWeights.make("aislfd-b")))
        let out = try model.forward(image: try SpecWeights.image(height: 61, width: 83), recordActivations: true)
        let named = out.namedArrays
        XCTAssertEqual(named.prefix(8).map(\.name), SpecWeights.variants.map { "desc.\($0)" } + SpecWeights.variants.map { "meta.\($0)" })
        XCTAssertEqual(named[0].shape, [1, 128, 8, 11])
        XCTAssertEqual(named[4].shape, [1, 1024, 3, 3])
        XCTAssertEqual(named[8].name, "act.msfe.stem.bn")
        let kp = try out.describe([Keypoint(x: 10, y: 20), Keypoint(x: 30.5, y: 7)]).namedArrays
        XCTAssertEqual(kp.map(\.name), ["kp_desc", "kp_meta"])
        XCTAssertEqual(kp.map(\.shape), [[2, 4, 128], [2, 4, 1024]])
    }

    /// Mutual nearest neighbours streamed over blocks and threads agree with
    /// the same rule applied to the whole distance matrix.
    func testStreamedMatchingAgreesWithTheFullMatrix() throws {
        var rng = SeededRandom(seed: 3)
        func descriptors(_ n: Int) throws -> KeypointDescriptors {
            // Coarse values make exact ties frequent, which exercises the tie rule across blocks.
            let local = normalizedRows((0..<(n * 4 * 128)).map { _ in Float(Int(rng.uniform(0, 3))) }, width: 128)
            let meta = normalizedRows((0..<(n * 4 * 8)).map { _ in rng.uniform(-1, 1) }, width: 8)
            return try KeypointDescriptors(count: n, metaDimension: 8, local: local, meta: meta)
        }
        let a = try descriptors(301), b = try descriptors(1500)
        for kind in DistanceKind.allCases {
            let d = try Matching.distances(a, b, kind: kind)
            var expected: [Match] = []
            for i in 0..<a.count {
                var j = 0
                for k in 1..<b.count where d[i * b.count + k] < d[i * b.count + j] { j = k }
                var back = 0
                for r in 1..<a.count where d[r * b.count + j] < d[back * b.count + j] { back = r }
                if back == i { expected.append(Match(index0: i, index1: j, distance: d[i * b.count + j])) }
            }
            XCTAssertFalse(expected.isEmpty)
            XCTAssertEqual(try Matching.mutualNearestNeighbours(a, b, kind: kind), expected, kind.rawValue)
        }
    }

    private func normalizedRows(_ x: [Float], width: Int) -> [Float] {
        var out = x
        for start in stride(from: 0, to: x.count, by: width) {
            let norm = max(x[start..<(start + width)].reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            for i in start..<(start + width) { out[i] = x[i] / norm }
        }
        return out
    }
}
