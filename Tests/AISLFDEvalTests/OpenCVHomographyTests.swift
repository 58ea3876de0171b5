import AISLFDCore
import AISLFDEval
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

/// The estimator against OpenCV's findHomography(RANSAC, 3 px) on the same match sets
/// (Tests/Fixtures/eval/homography, tools/make_eval_fixtures.py): the same answer to "is
/// there a homography and is it correct", a corner error close to OpenCV's where both find
/// one, inliers close to OpenCV's; no homography where the set is degenerate.
final class OpenCVHomographyTests: XCTestCase {
    struct Case {
        var name: String, pairs: [Correspondence], found: Bool, cornerError: Double?, hEstimation: Double, inliers: [Bool], truth: Homography
    }

    func cases() throws -> [Case] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("eval/homography/cases.json")))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let all = try XCTUnwrap(json["cases"] as? [String: [String: Any]])
        return try all.keys.sorted().map { name in
            let c = all[name]!
            let npz = try NPZReader.read(path: Fixtures.path("eval/homography/\(name).npz"))
            func doubles(_ k: String) throws -> [Double] {
                let t = try XCTUnwrap(npz[k] ?? npz[k + ".npy"], "\(name): \(k)")
                return t.data.withUnsafeBytes { raw in
                    (0..<t.elementCount).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
                }
            }
            let src = try doubles("src"), dst = try doubles("dst")
            let mask = try XCTUnwrap(npz["inliers"] ?? npz["inliers.npy"]).data.map { $0 != 0 }
            let pairs = stride(from: 0, to: src.count, by: 2).map { Correspondence(source: (src[$0], src[$0 + 1]), target: (dst[$0], dst[$0 + 1])) }
            return Case(name: name, pairs: pairs, found: c["found"] as? Bool ?? false, cornerError: c["corner_error"] as? Double,
                        hEstimation: c["h_estimation"] as? Double ?? -1, inliers: mask, truth: Homography(try doubles("ground_truth")))
        }
    }

    func cornerError(_ h: Homography, _ truth: Homography) -> Double? {
        let corners: [Point] = [(0, 0), (255, 0), (0, 191), (255, 191)]
        var total = 0.0
        for c in corners {
            let b = PairMetrics.warp(PairMetrics.warp(c, h), truth.inverse)
            let dx = b.x - c.x, dy = b.y - c.y
            total += (dx * dx + dy * dy).squareRoot()
        }
        let e = total / 4
        return e.isFinite ? e : nil
    }

    func testAgreesWithOpenCV() throws {
        let all = try cases()
        XCTAssertEqual(all.count, 14)
        for c in all {
            let ours = HomographyEstimator().estimate(c.pairs)
            let error = ours.flatMap { cornerError($0.homography, c.truth) }
            let h = (error.map { $0 <= 3 } ?? false) ? 1.0 : 0.0
            print("homography case \(c.name): OpenCV found \(c.found), corner error \(String(describing: c.cornerError)); ours found \(ours != nil), corner error \(String(describing: error))")
            XCTAssertEqual(h, c.hEstimation, c.name)
            if c.hEstimation == 1, let e = error, let theirs = c.cornerError {
                XCTAssertLessThan(abs(e - theirs), 0.5, "\(c.name): corner error \(e) vs OpenCV's \(theirs)")
                let agree = zip(ours!.inliers, c.inliers).filter { $0 == $1 }.count
                XCTAssertGreaterThanOrEqual(Double(agree) / Double(c.pairs.count), 0.9, "\(c.name): inliers")
            }
        }
        // Degenerate sets: no homography at all (OpenCV returns a meaningless one for the collinear ones).
        for name in ["three", "empty", "coincident", "collinear", "collinear-but-one"] {
            XCTAssertNil(HomographyEstimator().estimate(try XCTUnwrap(all.first { $0.name == name }).pairs), name)
        }
    }
}
