import AISLFDCore
import AISLFDEval
import AISLFDInputs
import AISLFDReaders
import AISLFDRuntime
import AISLFDTestSupport
import Foundation
import XCTest

/// The whole evaluation against the Python reference's (tools/eval_reference.py with PyTorch
/// descriptors and the reference detector): the same keypoints selected on every pair, the
/// same matches on nearly every pair (descriptors differ by float32 rounding only), and the
/// same means up to an H-estimation or two (a different RANSAC).
final class EvaluatorTests: XCTestCase {
    struct ExpectedPair: Decodable {
        let name: String, num_keypoints0: Int, num_keypoints1: Int, num_matches: Int
        let h_estimation: Double, precision: Double, recall: Double, mma: [Double]
    }
    struct ExpectedMeans: Decodable { let h_estimation: Double, precision: Double, recall: Double, mma: [Double] }
    struct Expected: Decodable { let mean: ExpectedMeans, pairs: [ExpectedPair] }

    func expected(_ name: String, weights: String = "random-lisrd") throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("eval/expected/\(weights)/\(name).json"))))
    }

    static let model = try! ModelFile.load(path: Fixtures.repoPath("Weights/lisrd.h5")).makeModel()
    static let trained = try! ModelFile.load(path: Fixtures.repoPath("Weights/trained/lisrd.pth")).makeModel()

    func compare(_ result: EvaluationResult, _ reference: Expected, _ label: String) {
        XCTAssertEqual(result.pairs.map(\.pair.name), reference.pairs.map(\.name), label)
        var sameMatches = 0
        for (ours, theirs) in zip(result.pairs, reference.pairs) {
            XCTAssertEqual(ours.metrics.keypoints0, theirs.num_keypoints0, ours.pair.name)
            XCTAssertEqual(ours.metrics.keypoints1, theirs.num_keypoints1, ours.pair.name)
            if ours.metrics.matches == theirs.num_matches && ours.metrics.precision == theirs.precision && ours.metrics.recall == theirs.recall {
                sameMatches += 1
            }
        }
        XCTAssertGreaterThanOrEqual(Double(sameMatches) / Double(reference.pairs.count), 0.9, "\(label): \(sameMatches) pairs alike")
        let mean = result.mean!
        XCTAssertEqual(mean.precision, reference.mean.precision, accuracy: 0.01, label)
        XCTAssertEqual(mean.recall, reference.mean.recall, accuracy: 0.01, label)
        XCTAssertEqual(mean.hEstimation, reference.mean.h_estimation, accuracy: 2.5 / Double(reference.pairs.count), label)
    }

    func testHPatchesLayoutMatchesTheReference() throws {
        let evaluator = try Evaluator(dataset: Fixtures.path("eval/hpatches-like"), settings: EvaluationSettings())
        XCTAssertEqual(evaluator.layout, .hpatches)
        let result = try evaluator.evaluate(Self.model)
        compare(result, try expected("hpatches-like"), "hpatches-like")
        XCTAssertEqual(result.illumination?.pairs, 20)
        XCTAssertEqual(result.viewpoint?.pairs, 20)
    }

    /// The trained sample's descriptors match (Weights/trained): its numbers are the reference's too.
    func testTheTrainedSampleMatchesTheReferenceAndBeatsTheRandomOne() throws {
        let result = try Evaluator(dataset: Fixtures.path("eval/hpatches-like"), settings: EvaluationSettings()).evaluate(Self.trained)
        let reference = try expected("hpatches-like", weights: "trained-lisrd")
        compare(result, reference, "trained hpatches-like")
        XCTAssertGreaterThan(result.mean!.precision, try expected("hpatches-like").mean.precision + 0.2)
    }

    func testRDNIMLayoutWithBothReferences() throws {
        for reference in ["day", "night"] {
            var settings = EvaluationSettings()
            settings.reference = reference
            let evaluator = try Evaluator(dataset: Fixtures.path("eval/rdnim-like"), settings: settings)
            XCTAssertEqual(evaluator.layout, .rdnim)
            let result = try evaluator.evaluate(Self.model)
            compare(result, try expected("rdnim-like-\(reference)"), "rdnim-like \(reference)")
            XCTAssertNil(result.illumination)
        }
        // The comparison can fail: the day run is not the night reference's.
        let day = try Evaluator(dataset: Fixtures.path("eval/rdnim-like"), settings: EvaluationSettings()).evaluate(Self.model)
        XCTAssertNotEqual(day.mean!.precision, try expected("rdnim-like-night").mean.precision)
    }

    func testEveryHostileDatasetIsNamedBeforeAnyNetworkRuns() throws {
        let cases: [(String, String, String)] = [
            ("missing-homography", "i_scene/H_1_4", "homography file missing"),
            ("matrix-2x3", "v_scene/H_1_3", "homography must be 3x3, got 2x3"),
            ("singular-homography", "v_scene/H_1_5", "homography is singular"),
            ("non-numeric", "i_scene/H_1_2", "homography entry 'abc' is not a number"),
            ("truncated-ppm", "v_scene/5.ppm", "corrupt PPM image (truncated"),
            ("rdnim-missing-homography", "images/seq/00000001.txt", "homography file missing"),
        ]
        for (folder, file, problem) in cases {
            let root = Fixtures.path("eval/bad/" + folder)
            do {
                _ = try Evaluator(dataset: root, settings: EvaluationSettings())
                XCTFail("\(folder): accepted")
            } catch let error as FileError {
                XCTAssertEqual(error.path, root + "/" + file, folder)
                XCTAssertEqual(error.status, .unreadable, folder)
                XCTAssertTrue(error.description.contains(problem), "\(folder): \(error)")
                XCTAssertFalse(error.description.contains("\n"), folder)
            }
        }
    }

    func testDumpsHoldWhatTheMetricsNeed() throws {
        var settings = EvaluationSettings()
        settings.reference = "night"
        let result = try Evaluator(dataset: Fixtures.path("eval/rdnim-like"), settings: settings).evaluate(Self.model)
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let r = result.pairs[0]
        try EvaluationDump.write(r, to: folder.path)
        let back = try EvaluationMetricsTests.read(folder.path + "/\(r.pair.name).npz")
        XCTAssertEqual(back.kp0.count, r.keypoints0.count)
        XCTAssertEqual(back.matches.count, r.matches.count)
        let again = PairMetrics.compute(keypoints0: back.kp0, keypoints1: back.kp1, matches: back.matches, truth: back.truth, shape0: back.shape0)
        XCTAssertEqual(again, r.metrics)
        XCTAssertEqual(back.precision, r.metrics.precision)
    }
}
