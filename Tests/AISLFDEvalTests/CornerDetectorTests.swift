import AISLFDCore
import AISLFDImages
import AISLFDReaders
import AISLFDRuntime
import AISLFDTestSupport
import XCTest

/// The detector against its NumPy definition (tools/detector_reference.py, docs/detector.md):
/// every stage on a 61x83 crop, and the keypoints of four images as the commands read them.
final class CornerDetectorTests: XCTestCase {
    func array(_ name: String) throws -> NamedTensor { try NPYReader.read(path: Fixtures.path("detector/" + name)) }

    func doubles(_ t: NamedTensor) -> [Double] {
        t.data.withUnsafeBytes { raw in (0..<(t.data.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) } }
    }

    func int64s(_ t: NamedTensor) -> [Int] {
        t.data.withUnsafeBytes { raw in (0..<(t.data.count / 8)).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) } }
    }

    /// Largest difference relative to the reference map's largest magnitude.
    func relative(_ a: [Double], _ b: [Double]) -> Double {
        let scale = b.map(abs).max() ?? 0
        return zip(a, b).map { abs($0 - $1) }.max()! / max(scale, .leastNormalMagnitude)
    }

    func testEveryStageMatchesTheReference() throws {
        let image = try array("small.image.npy")
        XCTAssertEqual(image.shape, [61, 83, 3])
        let s = CornerDetector.stages(gray: CornerDetector.gray(rgb: image.data, height: 61, width: 83), height: 61, width: 83)
        for (name, ours) in [("gray", s.gray), ("ix", s.ix), ("iy", s.iy), ("sxx", s.sxx), ("sxy", s.sxy), ("syy", s.syy),
                             ("response", s.response)] {
            let reference = doubles(try array("small.\(name).npy"))
            XCTAssertEqual(ours.count, reference.count, name)
            XCTAssertLessThan(relative(ours, reference), 1e-12, name)
        }
        let maxima = int64s(try array("small.maxima.npy"))
        XCTAssertEqual(s.maxima.flatMap { [$0.x, $0.y] }, maxima)
        try assertKeypoints(s.keypoints, "small")
        // The comparison can fail: a stage of another image differs.
        XCTAssertGreaterThan(relative(s.sxx, s.syy), 1e-3)
    }

    func testKeypointsOfFourImagesMatchTheReference() throws {
        let images = ["coffee": "photos/coffee.png", "camera": "photos/camera.png",
                      "v_chelsea-1": "eval/hpatches-like/v_chelsea/1.ppm",
                      "seq_coffee-night": "eval/rdnim-like/references/seq_coffee/night.jpg"]
        for (name, path) in images.sorted(by: { $0.key < $1.key }) {
            let decoded = try ImageReader.readRGB(path: Fixtures.path(path))
            try assertKeypoints(CornerDetector.detect(rgb: decoded.rgb, height: decoded.height, width: decoded.width), name)
            // The same through the network's float input (bytes / 255).
            let image = try Image(rgb: decoded.rgb, height: decoded.height, width: decoded.width)
            XCTAssertEqual(CornerDetector.detect(image: image), CornerDetector.detect(rgb: decoded.rgb, height: decoded.height, width: decoded.width), name)
        }
    }

    func testSmallAndFlatImagesHaveNoKeypoints() throws {
        XCTAssertEqual(CornerDetector.detect(rgb: [UInt8](repeating: 7, count: 16 * 16 * 3), height: 16, width: 16), [])
        XCTAssertEqual(CornerDetector.detect(rgb: [UInt8](repeating: 7, count: 40 * 40 * 3), height: 40, width: 40), [])
    }

    private func assertKeypoints(_ ours: [DetectedKeypoint], _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let points = doubles(try array("\(name).keypoints.npy")), scores = doubles(try array("\(name).scores.npy"))
        XCTAssertEqual(ours.count, scores.count, "\(name): keypoint count", file: file, line: line)
        guard ours.count == scores.count else { return }
        let scale = scores.map(abs).max() ?? 1
        for (i, k) in ours.enumerated() {
            XCTAssertEqual(k.x, points[2 * i], accuracy: 1e-9, "\(name) keypoint \(i) x", file: file, line: line)
            XCTAssertEqual(k.y, points[2 * i + 1], accuracy: 1e-9, "\(name) keypoint \(i) y", file: file, line: line)
            XCTAssertEqual(k.score, scores[i], accuracy: 1e-12 * scale, "\(name) keypoint \(i) score", file: file, line: line)
        }
    }
}
