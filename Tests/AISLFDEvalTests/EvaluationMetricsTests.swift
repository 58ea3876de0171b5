import AISLFDCore
import AISLFDEval
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

/// The metrics against the Python reference (tools/eval_reference.py, docs/evaluation.md) on
/// the reference's own dumps: same keypoints, matches, ground truth and shapes give the same
/// precision, recall and MMA exactly, and the same H-estimation on nearly every pair (the
/// RANSAC differs from OpenCV's).
final class EvaluationMetricsTests: XCTestCase {
    struct Dump {
        var kp0: [Point], kp1: [Point], matches: [(Int, Int)], truth: Homography, shape0: (height: Int, width: Int)
        var hEstimation: Double, precision: Double, recall: Double, mma: [Double]
    }

    static func read(_ path: String) throws -> Dump {
        let c = try NPZReader.read(path: path)
        func t(_ k: String) throws -> NamedTensor { try XCTUnwrap(c[k] ?? c[k + ".npy"], "\(path): no \(k)") }
        func doubles(_ k: String) throws -> [Double] {
            let a = try t(k)
            return a.data.withUnsafeBytes { raw in
                (0..<a.elementCount).map { i -> Double in
                    switch a.dtype {
                    case .float64: return Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                    case .int64: return Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                    default: return Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))))
                    }
                }
            }
        }
        let k0 = try doubles("keypoints0"), k1 = try doubles("keypoints1"), m = try doubles("matches"), s = try doubles("image_shape0")
        return Dump(kp0: stride(from: 0, to: k0.count, by: 2).map { (k0[$0], k0[$0 + 1]) },
                    kp1: stride(from: 0, to: k1.count, by: 2).map { (k1[$0], k1[$0 + 1]) },
                    matches: stride(from: 0, to: m.count, by: 2).map { (Int(m[$0]), Int(m[$0 + 1])) },
                    truth: Homography(try doubles("homography")), shape0: (Int(s[0]), Int(s[1])),
                    hEstimation: try doubles("h_estimation")[0], precision: try doubles("precision")[0],
                    recall: try doubles("recall")[0], mma: try doubles("mma"))
    }

    static func dumps(_ folder: String) throws -> [String] {
        let path = Fixtures.path("eval/expected/" + folder)
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".npz") }.sorted().map { path + "/" + $0 }
    }

    func testMetricsOfTheReferenceDumps() throws {
        var pairs = 0, sameH = 0
        for folder in ["random-lisrd/hpatches-like", "random-lisrd/rdnim-like-day", "random-lisrd/rdnim-like-night"] {
            for path in try Self.dumps(folder) {
                let d = try Self.read(path)
                let m = PairMetrics.compute(keypoints0: d.kp0, keypoints1: d.kp1, matches: d.matches, truth: d.truth, shape0: d.shape0)
                XCTAssertEqual(m.precision, d.precision, path)
                XCTAssertEqual(m.recall, d.recall, path)
                XCTAssertEqual(m.mma, d.mma, path)
                pairs += 1
                if m.hEstimation == d.hEstimation { sameH += 1 } else { print("H-estimation differs from OpenCV's on \(path): corner error \(String(describing: m.cornerError))") }
            }
        }
        XCTAssertEqual(pairs, 64)
        XCTAssertGreaterThanOrEqual(Double(sameH) / Double(pairs), 0.95, "\(sameH) of \(pairs) pairs agree with OpenCV")
    }

    /// The comparison can fail: a match moved to another keypoint changes precision.
    func testAWrongMatchChangesTheMetrics() throws {
        let d = try Self.read(try Self.dumps("random-lisrd/hpatches-like")[0])
        var matches = d.matches
        matches[0].1 = (matches[0].1 + 7) % d.kp1.count
        let m = PairMetrics.compute(keypoints0: d.kp0, keypoints1: d.kp1, matches: matches, truth: d.truth, shape0: d.shape0)
        XCTAssertNotEqual(m.mma, d.mma)
    }
}
