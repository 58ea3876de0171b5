import AISLFDCore
import AISLFDEval
import XCTest

/// The estimator on correspondences made from a known homography (exact by construction),
/// with outliers, and on degenerate sets that have no homography. The comparison with
/// OpenCV's findHomography on the same matches is in OpenCVHomographyTests.
final class HomographyEstimationTests: XCTestCase {
    let truth = Homography([0.9, 0.12, 14, -0.08, 1.05, -7, 2e-4, -1e-4, 1])

    func correspondences(count: Int, outliers: Int, seed: UInt64) -> [Correspondence] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let x = random.uniform() * 320, y = random.uniform() * 240
            let p = truth.apply(x, y)!
            if i < outliers { return Correspondence(source: (x, y), target: (random.uniform() * 320, random.uniform() * 240)) }
            return Correspondence(source: (x, y), target: p)
        }
    }

    func maxDifference(_ a: Homography, _ b: Homography) -> Double {
        zip(a.normalized.values, b.normalized.values).map { abs($0 - $1) }.max()!
    }

    func testRecoversAKnownHomographyThroughOutliers() throws {
        let pairs = correspondences(count: 200, outliers: 80, seed: 3)
        let result = try XCTUnwrap(HomographyEstimator().estimate(pairs))
        XCTAssertLessThan(maxDifference(result.homography, truth), 1e-8)
        XCTAssertEqual(result.inliers.enumerated().filter { $0.element }.count, 120)
        XCTAssertTrue(result.inliers[80...].allSatisfy { $0 })
        // The check can fail: another homography is far from this one.
        XCTAssertGreaterThan(maxDifference(Homography.identity, truth), 1)
        // Seeded: the same input gives the same answer.
        XCTAssertEqual(HomographyEstimator().estimate(pairs), result)
    }

    func testExactlyFourPointsGiveTheirHomography() throws {
        let pairs = correspondences(count: 4, outliers: 0, seed: 5)
        let result = try XCTUnwrap(HomographyEstimator().estimate(pairs))
        XCTAssertLessThan(maxDifference(result.homography, truth), 1e-9)
    }

    func testDegenerateSetsHaveNoHomography() {
        XCTAssertNil(HomographyEstimator().estimate(Array(correspondences(count: 3, outliers: 0, seed: 1))))
        XCTAssertNil(HomographyEstimator().estimate([]))
        let line = (0..<20).map { i in Correspondence(source: (Double(i), 2 * Double(i) + 1), target: (Double(i) + 3, 2 * Double(i) - 1)) }
        XCTAssertNil(HomographyEstimator().estimate(line))
        var nan = correspondences(count: 10, outliers: 0, seed: 2)
        nan[3].target.x = .nan
        XCTAssertNil(HomographyEstimator().estimate(nan))
    }

    func testInverseAndComposition() throws {
        let inverse = try XCTUnwrap(truth.inverse)
        XCTAssertLessThan(maxDifference(inverse.composed(after: truth), .identity), 1e-12)
        XCTAssertNil(Homography([1, 2, 3, 2, 4, 6, 0, 0, 1]).inverse)
    }
}
