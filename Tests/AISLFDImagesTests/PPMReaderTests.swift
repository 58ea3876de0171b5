import AISLFDCore
import AISLFDImages
import AISLFDTestSupport
import Foundation
import XCTest

/// Binary PPM / PGM as PIL reads them (tools/fixtures/make_ppm_fixtures.py), and hostile ones
/// refused with their case and one line.
final class PPMReaderTests: XCTestCase {
    let manifest: [String: [String: Any]] = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: Fixtures.path("images-ppm/manifest.json")))
        return try! JSONSerialization.jsonObject(with: data) as! [String: [String: Any]]
    }()

    func testReadableFilesMatchPILBitForBit() throws {
        let readable = manifest.filter { $0.value["error"] == nil }.keys.sorted()
        XCTAssertEqual(readable, ["comments.ppm", "gray.pgm", "maxval_100.ppm", "rgb.ppm"])
        for name in readable {
            let bytes = try fileBytes(Fixtures.path("images-ppm/\(name).chw.f32"))
            XCTAssertEqual(SHA256.hex(bytes), manifest[name]?["sha256"] as? String, name)
            let expected = stride(from: 0, to: bytes.count, by: 4).map { i in
                Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
            }
            let image = try ImageReader.read(path: Fixtures.path("images-ppm/" + name))
            XCTAssertEqual(image.height, manifest[name]?["height"] as? Int, name)
            XCTAssertEqual(image.width, manifest[name]?["width"] as? Int, name)
            XCTAssertEqual(image.chw.map(\.bitPattern), expected.map(\.bitPattern), name)
        }
        // The comparison can fail: two different images differ.
        XCTAssertNotEqual(try ImageReader.read(path: Fixtures.path("images-ppm/rgb.ppm")).chw,
                          try ImageReader.read(path: Fixtures.path("images-ppm/gray.pgm")).chw)
    }

    func testHostileFilesGiveTheirCase() throws {
        let hostile = manifest.filter { $0.value["error"] != nil }.keys.sorted()
        XCTAssertEqual(hostile.count, 5)
        for name in hostile {
            let path = Fixtures.path("images-ppm/" + name)
            guard let (problem, message) = expectFileError(ImageError.self, path: path, { _ = try ImageReader.read(path: path) }) else { continue }
            XCTAssertEqual(caseName(problem), manifest[name]?["error"] as? String, message)
        }
        let path = Fixtures.path("images-ppm/truncated.ppm")
        XCTAssertEqual(expectFileError(ImageError.self, path: path, { _ = try ImageReader.read(path: path) })?.1,
                       "\(path): corrupt PPM image (truncated: 10 of 29 rows)")
    }
}
