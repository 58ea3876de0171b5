import AISLFDCore
import AISLFDImages
import AISLFDTestSupport
import Foundation
import XCTest

/// Expected pixels come from PIL (tools/fixtures/make_image_fixtures.py): for each image
/// `<name>.chw.f32` holds np.asarray(Image.open(name).convert('RGB')) / 255.0 as float32 [3, H, W].
final class ImageReaderTests: XCTestCase {
    struct Expectation {
        var height: Int, width: Int, sha256: String?, error: String?
    }

    let manifest: [String: Expectation] = {
        let url = URL(fileURLWithPath: Fixtures.path("images-io/manifest.json"))
        guard let data = try? Data(contentsOf: url),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] else { return [:] }
        return json.mapValues { Expectation(height: $0["height"] as? Int ?? 0, width: $0["width"] as? Int ?? 0,
                                            sha256: $0["sha256"] as? String, error: $0["error"] as? String) }
    }()

    func expectedFloats(_ name: String) throws -> [Float] {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("images-io/\(name).chw.f32"))))
        XCTAssertEqual(SHA256.hex(bytes), manifest[name]?.sha256, "\(name).chw.f32 is not the file the script wrote")
        return stride(from: 0, to: bytes.count, by: 4).map { i in
            Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
    }

    func testEveryImageMatchesPILBitForBit() throws {
        let readable = manifest.filter { $0.value.error == nil }.keys.sorted()
        XCTAssertEqual(readable.count, 18)
        for name in readable {
            let image = try ImageReader.read(path: Fixtures.path("images-io/" + name))
            XCTAssertEqual(image.height, manifest[name]?.height, name)
            XCTAssertEqual(image.width, manifest[name]?.width, name)
            let expected = try expectedFloats(name)
            XCTAssertEqual(image.chw.count, expected.count, name)
            let differing = zip(image.chw, expected).filter { $0.bitPattern != $1.bitPattern }.count
            let maxDifference = zip(image.chw, expected).map { abs($0 - $1) }.max() ?? 0
            XCTAssertEqual(differing, 0, "\(name): \(differing) values differ from PIL, by at most \(maxDifference)")
        }
    }

    /// The comparison above can fail: PNG alpha composited onto black (what libpng's
    /// simplified API does) instead of dropped (what PIL does) gives other values.
    func testComparisonDetectsCompositedAlpha() throws {
        let rgba = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("images-io/rgba.png"))))
        XCTAssertFalse(rgba.isEmpty)
        let image = try ImageReader.read(path: Fixtures.path("images-io/rgba.png"))
        let expected = try expectedFloats("rgba.png")
        let rgb = try ImageReader.read(path: Fixtures.path("images-io/rgb.png"))
        XCTAssertEqual(image.chw, rgb.chw, "the RGBA fixture is the RGB one plus alpha")
        XCTAssertEqual(image.chw, expected)
        let composited = image.chw.enumerated().map { $0.element * Float(($0.offset % 7) + 1) / 8 }
        XCTAssertNotEqual(composited, expected)
    }

    func testRGBIsRowMajorHeightWidthChannels() throws {
        let image = try ImageReader.readRGB(path: Fixtures.path("images-io/rgb.png"))
        let chw = try ImageReader.read(path: Fixtures.path("images-io/rgb.png")).chw
        let (h, w) = (image.height, image.width)
        XCTAssertEqual(image.rgb.count, h * w * 3)
        // Pixel (x = 5, y = 3), green channel.
        XCTAssertEqual(Float(image.rgb[(3 * w + 5) * 3 + 1]) / 255, chw[h * w + 3 * w + 5])
        // The fixture's first two pixels are black and white.
        XCTAssertEqual(Array(image.rgb.prefix(6)), [0, 0, 0, 255, 255, 255])
    }

    func testHostileImagesGiveTheirTypedError() throws {
        let hostile = manifest.filter { $0.value.error != nil }.keys.sorted()
        XCTAssertEqual(hostile.count, 10)
        for name in hostile {
            let path = Fixtures.path("images-io/" + name)
            guard let (error, message) = expectFileError(ImageError.self, path: path, { _ = try ImageReader.read(path: path) }) else { continue }
            XCTAssertEqual(caseName(error), manifest[name]?.error, "\(name): \(message)")
        }
    }

    func testTruncatedImagesAreRefused() throws {
        for name in ["rgb.png", "palette.png", "q90_420.jpg", "progressive.jpg", "gray.jpg"] {
            let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("images-io/" + name))))
            for cut in [8, 20, 40, 200, whole.count / 2, whole.count - 13, whole.count - 2, whole.count - 1] {
                let path = try temporaryFile("cut-\(cut)-\(name)", Array(whole.prefix(cut)))
                guard let (error, message) = expectFileError(ImageError.self, path: path, { _ = try ImageReader.read(path: path) }) else { continue }
                XCTAssertEqual(caseName(error), "corrupt", "\(name) cut at \(cut): \(message)")
            }
        }
    }

    func testRandomBytesBehindTheSignaturesAreRefused() throws {
        for seed in 1...20 {
            for (kind, signature) in [("png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] as [UInt8]), ("jpg", [0xFF, 0xD8, 0xFF])] {
                let path = try temporaryFile("random-\(seed).\(kind)", signature + pseudoRandomBytes(count: 3000, seed: UInt64(seed)))
                _ = expectFileError(ImageError.self, path: path) { _ = try ImageReader.read(path: path) }
            }
        }
        let empty = try temporaryFile("empty.png", [])
        let result = expectFileError(ImageError.self, path: empty) { _ = try ImageReader.read(path: empty) }
        XCTAssertEqual(result.map { caseName($0.0) }, "unknownFormat")
        let missing = "/nonexistent/image.png"
        XCTAssertEqual(expectFileError(ImageError.self, path: missing) { _ = try ImageReader.read(path: missing) }.map { caseName($0.0) }, "cannotRead")
    }
}
