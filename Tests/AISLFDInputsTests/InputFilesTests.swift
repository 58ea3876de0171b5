import AISLFDCore
import AISLFDInputs
import AISLFDRuntime
import AISLFDTestSupport
import Foundation
import XCTest

/// Images and keypoints checked like the data they are. The files and the counts come from
/// tools/fixtures/make_input_fixtures.py (NumPy).
final class InputFilesTests: XCTestCase {
    let manifest: [String: [String: Any]] = {
        let data = (try? fileBytes(Fixtures.path("inputs/manifest.json"))) ?? []
        return (try? JSONSerialization.jsonObject(with: Data(data)) as? [String: [String: Any]]) ?? [:]
    }()

    func testNonFinitePixelsAreAnErrorWithTheirCount() throws {
        let path = Fixtures.path("inputs/nan_pixel.npy")
        guard let (problem, message) = expectFileError(InputFileProblem.self, path: path, status: .invalid, {
            _ = try InputFiles.image(path: path)
        }) else { return }
        XCTAssertEqual(problem, .nonFinite(what: "the image", nan: 1, infinite: 2, total: manifest["nan_pixel.npy"]?["values"] as? Int ?? 0))
        XCTAssertTrue(message.hasSuffix("1 NaN and 2 infinite of 9,216 values"), message)
        // The same values without the NaN and infinities read.
        XCTAssertNoThrow(try InputFiles.image(path: Fixtures.path("images/synth_61x83.npy")))
    }

    func testValuesOutsideTheUnitRangeAreAWarning() throws {
        let read = try InputFiles.image(path: Fixtures.path("inputs/out_of_range.npy"))
        XCTAssertEqual(read.warnings.count, 1)
        XCTAssertTrue(read.warnings[0].contains("8 of 9,216 values lie outside [0, 1]"), read.warnings[0])
        XCTAssertEqual(read.image.height, 48)
        XCTAssertEqual(try InputFiles.image(path: Fixtures.path("images/synth_61x83.npy")).warnings, [])
    }

    func testIntegerKeypointsAreReadExactly() throws {
        let points = try InputFiles.keypoints(path: Fixtures.path("inputs/kp_int64.npy"))
        let expected = try XCTUnwrap(manifest["kp_int64.npy"]?["values"] as? [Double]).map(Float.init)
        XCTAssertEqual(points.flatMap { [$0.x, $0.y] }, expected)
        let huge = Fixtures.path("inputs/kp_int64_huge.npy")
        guard let (problem, _) = expectFileError(InputFileProblem.self, path: huge, { _ = try InputFiles.keypoints(path: huge) }) else { return }
        XCTAssertEqual(problem, .inexact(what: "keypoints", index: 14, value: (1 << 24) + 1))
    }

    /// float64 keypoints become the float32 NumPy's astype gives (round to nearest): the
    /// fixture's second value is 3/4 of a step above 7, which cutting would make 7.
    func testFloat64KeypointsRoundAsNumPyDoes() throws {
        let points = try InputFiles.keypoints(path: Fixtures.path("inputs/kp_float64.npy"))
        let bytes = try fileBytes(Fixtures.path("inputs/kp_float64.f32"))
        let expected = stride(from: 0, to: bytes.count, by: 4).map { i in
            Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
        XCTAssertEqual(points.flatMap { [$0.x, $0.y] }.map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertNotEqual(points[0].y, 7)
    }

    func testNonFiniteKeypointsAreAnError() throws {
        let path = Fixtures.path("inputs/kp_nan.npy")
        guard let (problem, _) = expectFileError(InputFileProblem.self, path: path, status: .invalid, { _ = try InputFiles.keypoints(path: path) }) else { return }
        XCTAssertEqual(problem, .nonFinite(what: "keypoint coordinates", nan: 1, infinite: 0, total: 40))
    }

    func testKeypointsOutsideTheImageAreCounted() throws {
        let points = try InputFiles.keypoints(path: Fixtures.path("inputs/kp_outside.npy"))
        let image = try Image(channels: 3, height: 48, width: 64, values: [Float](repeating: 0.5, count: 3 * 48 * 64))
        let warning = try XCTUnwrap(InputFiles.keypointWarning(points, path: "kp.npy", image: image))
        XCTAssertTrue(warning.contains("3 of 20 keypoints lie outside the 48x64 image"), warning)
        // All inside, corners included: no warning.
        let inside = try InputFiles.keypoints(path: Fixtures.path("images/kp_48x64.npy"))
        XCTAssertNil(InputFiles.keypointWarning(inside, path: "kp.npy", image: image))
    }

    func testExifOrientationIsNamedInANote() throws {
        let upright = try InputFiles.image(path: Fixtures.path("images-io/orientation_6.png"))
        XCTAssertEqual([upright.image.height, upright.image.width], [37, 29])
        XCTAssertTrue(upright.notes.first?.contains("EXIF orientation 6: rotated 90 degrees clockwise") ?? false, "\(upright.notes)")
        let stored = try InputFiles.image(path: Fixtures.path("images-io/orientation_6.png"), orientation: .ignore)
        XCTAssertEqual([stored.image.height, stored.image.width], [29, 37])
        XCTAssertTrue(stored.notes.first?.contains("ignored") ?? false)
    }
}
