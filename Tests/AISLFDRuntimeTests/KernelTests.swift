import AISLFDRuntime
import XCTest

/// Each kernel against PyTorch on the committed fixtures.
final class KernelTests: XCTestCase {
    private static let fixtures = Result { try KernelFixtures.load() }
    private func fixture(_ name: String) throws -> KernelFixtures.Case { try KernelTests.fixtures.get().case(name) }

    func testConvolutions() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for name in ["conv3x3_s1", "conv3x3_s2_odd", "conv3x3_s2_even_odd", "conv1x1",
                         "conv3x3_banded", "conv3x3_s2_banded", "conv1x1_banded",
                         "conv3x3_wide", "conv3x3_s2_wide", "conv1x1_wide", "conv1x1_s2_narrow", "conv1x1_s2"] {
                let f = try fixture(name)
                let expected = try f.array("expected")
                for budget in [nil] + f.ints("budgets").map(Optional.some) {
                    let out = try ops.conv2d(try f.map("input"), weight: try f.tensor("weight"), bias: try f.array("bias").values,
                                                   stride: try f.int("stride"), padding: try f.int("padding"), columnBudget: budget)
                    XCTAssertEqual(out.shape, expected.shape, name)
                    assertClose(out.values, expected.values, "\(name) \(level) budget \(budget.map(String.init) ?? "default")")
                }
            }
        }
    }

    func testConvolutionEpilogues() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for name in ["conv_relu_bn", "conv_relu_bn_wide"] {
                let f = try fixture(name)
                let out = try ops.conv2d(try f.map("input"), weight: try f.tensor("weight"), bias: try f.array("bias").values,
                                               padding: 1, relu: true, postScale: try f.array("post_scale").values,
                                               postShift: try f.array("post_shift").values)
                assertClose(out.values, try f.array("expected").values, "\(name) \(level): conv -> ReLU -> BN")
            }
            let f = try fixture("conv_bn_relu")
            let out = try ops.conv2d(try f.map("input"), weight: try f.tensor("weight"), bias: try f.array("pre_shift").values,
                                           padding: 1, preScale: try f.array("pre_scale").values, relu: true)
            assertClose(out.values, try f.array("expected").values, "conv_bn_relu \(level): conv -> BN -> ReLU")
        }
    }

    /// The parity check is sensitive: a weight off by 0.1% of its range, or a
    /// wrong stride, is caught.
    func testConvolutionCheckRejectsWrongResults() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for name in ["conv3x3_s1", "conv3x3_wide"] {
                let f = try fixture(name)
                var weight = try f.tensor("weight")
                weight.values[17] += 1e-3 * (weight.values.map(abs).max() ?? 1)
                let out = try ops.conv2d(try f.map("input"), weight: weight, bias: try f.array("bias").values, padding: 1)
                XCTAssertGreaterThan(relativeError(out.values, try f.array("expected").values), 1e-5, "\(name) \(level)")
                let strided = try ops.conv2d(try f.map("input"), weight: try f.tensor("weight"), bias: try f.array("bias").values,
                                                   stride: 2, padding: 1)
                XCTAssertEqual(relativeError(strided.values, try f.array("expected").values), .infinity, "\(name) \(level)")
            }
        }
    }

    func testConvolutionRejectsBadArguments() throws {
        let x = try FeatureMap(channels: 2, height: 4, width: 4, values: [Float](repeating: 1, count: 32))
        XCTAssertThrowsError(try KernelOps().conv2d(x, weight: WeightTensor(shape: [3, 5, 3, 3], values: [Float](repeating: 0, count: 135))))
        XCTAssertThrowsError(try KernelOps().conv2d(x, weight: WeightTensor(shape: [3, 2, 1, 1], values: [0, 0, 0, 0, 0, 0]), bias: [1]))
        XCTAssertThrowsError(try KernelOps().conv2d(x, weight: WeightTensor(shape: [3, 2, 1, 1], values: [0])))
    }

    func testEmptyInputsAreRefused() throws {
        let empty = try FeatureMap(channels: 0, height: 4, width: 4, values: [])
        XCTAssertThrowsError(try KernelOps().normalizePositions(empty))
        XCTAssertThrowsError(try KernelOps().resizeBilinear(empty, height: 2, width: 2))
        XCTAssertThrowsError(try KernelOps().sample(empty, at: [Keypoint(x: 1, y: 1)], imageHeight: 8, imageWidth: 8))
        let w = WeightTensor(shape: [0, 0], values: [])
        XCTAssertThrowsError(try KernelOps().selfAttention(empty, query: (w, []), key: (w, []), value: (w, [])))
        XCTAssertThrowsError(try KernelOps().netVLAD(empty, centroids: WeightTensor(shape: [8, 0], values: []),
                                                   assignmentWeight: WeightTensor(shape: [8, 0, 1, 1], values: []), assignmentBias: [Float](repeating: 0, count: 8)))
        let one = try FeatureMap(channels: 1, height: 1, width: 1, values: [1])
        XCTAssertThrowsError(try KernelOps().conv2d(one, weight: WeightTensor(shape: [1, 1, 3, 3], values: [Float](repeating: 0, count: 9))))
        XCTAssertThrowsError(try KernelOps().resizeBilinear(one, height: 0, width: 3))
    }

    func testAveragePool() throws {
        for name in ["avgpool_odd", "avgpool_even_odd", "avgpool_small"] {
            let f = try fixture(name)
            let out = KernelOps().averagePool2x2(try f.map("input"))
            XCTAssertEqual(out.shape, try f.array("expected").shape, name)
            assertClose(out.values, try f.array("expected").values, name)
        }
    }

    func testResize() throws {
        for name in ["resize_odd_odd", "resize_up", "resize_down", "resize_same", "resize_quarter_to_eighth", "resize_from_one"] {
            let f = try fixture(name)
            let out = try KernelOps().resizeBilinear(try f.map("input"), height: try f.int("height"), width: try f.int("width"))
            XCTAssertEqual(out.shape, try f.array("expected").shape, name)
            assertClose(out.values, try f.array("expected").values, name)
        }
        // Without PyTorch's clamp of negative source indices the result differs: the check sees it.
        let f = try fixture("resize_up")
        XCTAssertGreaterThan(relativeError(try f.array("unclamped").values, try f.array("expected").values), 1e-3)
    }

    func testNormalizePositions() throws {
        let f = try fixture("normalize")
        let out = try KernelOps().normalizePositions(try f.map("input"))
        assertClose(out.values, try f.array("expected").values, "normalize")
        XCTAssertEqual(out.values[1 * 4 + 2], 0, "an all-zero position stays zero")
    }

    func testGridSample() throws {
        for name in ["grid_sample_dense", "grid_sample_3x3"] {
            let f = try fixture(name)
            let kp = try f.array("keypoints").values
            let keypoints = stride(from: 0, to: kp.count, by: 2).map { Keypoint(x: kp[$0], y: kp[$0 + 1]) }
            let h = try f.int("image_height"), w = try f.int("image_width")
            let raw = try KernelOps().sample(try f.map("map"), at: keypoints, imageHeight: h, imageWidth: w)
            assertClose(raw, try f.array("expected").values, name)
            let unit = try KernelOps().sample(try f.map("map"), at: keypoints, imageHeight: h, imageWidth: w, normalize: true)
            assertClose(unit, try f.array("expected_normalized").values, "\(name) normalized")
            XCTAssertGreaterThan(relativeError(try f.array("align_corners_true").values, try f.array("expected").values), 1e-3)
        }
        let f = try fixture("grid_sample_dense")
        XCTAssertThrowsError(try KernelOps().sample(try f.map("map"), at: [Keypoint(x: .nan, y: 0)], imageHeight: 40, imageWidth: 56))
    }

    func testNetVLAD() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for name in ["netvlad_resized", "netvlad_exact", "netvlad_smallest"] {
                let f = try fixture(name)
                let out = try ops.netVLAD(try f.map("raw"), centroids: try f.tensor("centroids"),
                                                assignmentWeight: try f.tensor("weight"), assignmentBias: try f.array("bias").values)
                XCTAssertEqual(out.shape, [1024, 3, 3])
                assertClose(out.values, try f.array("expected").values, "\(name) \(level)")
            }
        }
    }

    func testSelfAttention() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for name in ["psa_small", "psa_blocked", "psa_large"] {
                let f = try fixture(name)
                for budget in [nil] + f.ints("budgets").map(Optional.some) {
                    let out = try ops.selfAttention(
                        try f.map("raw"), query: (try f.tensor("wq"), try f.array("bq").values),
                        key: (try f.tensor("wk"), try f.array("bk").values), value: (try f.tensor("wv"), try f.array("bv").values),
                        blockBudget: budget)
                    XCTAssertEqual(out.shape, try f.array("expected").shape)
                    assertClose(out.values, try f.array("expected").values, "\(name) \(level) budget \(budget.map(String.init) ?? "default")")
                }
            }
        }
    }

    /// The attention check is sensitive: one value weight off by 0.1% of the largest is caught at every level.
    func testSelfAttentionCheckRejectsWrongResults() throws {
        try forEachSIMDLevel { level, configuration, ops in
            let f = try fixture("psa_large")
            var wv = try f.tensor("wv")
            wv.values[5] += 1e-3 * (wv.values.map(abs).max() ?? 1)
            let out = try ops.selfAttention(
                try f.map("raw"), query: (try f.tensor("wq"), try f.array("bq").values),
                key: (try f.tensor("wk"), try f.array("bk").values), value: (wv, try f.array("bv").values))
            XCTAssertGreaterThan(relativeError(out.values, try f.array("expected").values), 1e-5, "\(level)")
        }
    }

    func testSIMDLevels() {
        XCTAssertEqual(availableSIMDLevels.first, .portable)
        XCTAssertEqual(SIMDLevel(name: "AVX512"), .avx512)
        XCTAssertNil(SIMDLevel(name: "sse"))
        #if arch(x86_64)
        print("SIMD levels tested: \(availableSIMDLevels)")
        #endif
    }

    func testMatching() throws {
        for name in ["matching_random", "matching_ties"] {
            let f = try fixture(name)
            func descriptors(_ i: Int) throws -> KeypointDescriptors {
                let local = try f.array("local\(i)"), meta = try f.array("meta\(i)")
                return try KeypointDescriptors(count: local.shape[0], metaDimension: meta.shape[2], local: local.values, meta: meta.values)
            }
            let a = try descriptors(0), b = try descriptors(1)
            for kind in DistanceKind.allCases {
                let d = try Matching.distances(a, b, kind: kind)
                assertClose(d, try f.array("\(kind.rawValue)_distances").values, "\(name) \(kind.rawValue) distances")
                let matches = try Matching.mutualNearestNeighbours(a, b, kind: kind)
                let expected = try f.array("\(kind.rawValue)_matches").values
                XCTAssertEqual(matches.flatMap { [Float($0.index0), Float($0.index1)] }, expected, "\(name) \(kind.rawValue) matches")
                assertClose(matches.map(\.distance), try f.array("\(kind.rawValue)_match_distances").values,
                            "\(name) \(kind.rawValue) match distances")
            }
        }
    }

    func testMatchingRejectsDifferentMetaSizes() throws {
        let a = try KeypointDescriptors(count: 1, metaDimension: 2, local: [Float](repeating: 0, count: 512), meta: [Float](repeating: 0, count: 8))
        let b = try KeypointDescriptors(count: 1, metaDimension: 3, local: [Float](repeating: 0, count: 512), meta: [Float](repeating: 0, count: 12))
        XCTAssertThrowsError(try Matching.distances(a, b))
        XCTAssertThrowsError(try KeypointDescriptors(count: 2, metaDimension: 3, local: [], meta: []))
    }
}
