import AISLFDCore
import AISLFDImages
import AISLFDTestSupport
import Foundation
import XCTest

/// Expected pixels come from PIL (tools/fixtures/make_image_fixtures.py): for each image
/// `<name>.chw.f32` holds np.asarray(Image.open(name).convert('RGB')) / 255.0 as float32 [3, H, W];
/// for 16-bit gray and EXIF-oriented images, where the reader follows OpenCV, cv2.imread's.
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
        XCTAssertEqual(readable.count, 30)
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
        XCTAssertEqual(hostile.count, 16)
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
                XCTAssertTrue(["corrupt", "truncated"].contains(caseName(error)), "\(name) cut at \(cut): \(message)")
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

    /// Pixel data that stops early is an error naming how far it got, never filled in (libpng
    /// and libjpeg would pad it): cut short, cut short before an end marker, IDAT stopping halfway.
    func testTruncatedPixelDataSaysHowManyRows() throws {
        for (name, shown) in [("truncated.jpg", "JPEG image truncated: 0 of 29 rows"), ("truncated_eoi.jpg", "JPEG image truncated: 0 of 29 rows"),
                              ("truncated_rows.png", "PNG image truncated: 23 of 29 rows")] {
            let path = Fixtures.path("images-io/" + name)
            guard let (error, message) = expectFileError(ImageError.self, path: path, { _ = try ImageReader.read(path: path) }) else { continue }
            XCTAssertEqual(caseName(error), "truncated", message)
            XCTAssertTrue(message.contains(shown), message)
        }
    }

    /// A few hundred bytes claiming millions of pixels are refused before anything is
    /// allocated: well within a second and far from the 300 MB the pixels would need.
    func testLyingFrameHeadersAreRefusedBeforeDecoding() throws {
        for name in ["claims_4000x4000.jpg", "claims_1000x16384.jpg", "claims_4096x1000.jpg"] {
            let path = Fixtures.path("images-io/" + name)
            var message = ""
            let growth = peakMemoryGrowth {
                message = expectFileError(ImageError.self, path: path, { _ = try ImageReader.read(path: path) })?.1 ?? ""
            }
            XCTAssertTrue(message.contains("cannot come from a file of 347 bytes"), message)
            XCTAssertLessThan(growth ?? 0, 16 << 20, name)
        }
        // The same header on a file large enough to hold the blocks is decoded (and then found
        // truncated): the bound is the data's, not a cap on honest sizes.
        // 64,000 blocks need 8,000 bytes: a comment segment of 9,000 bytes makes room.
        var padded = try fileBytes(Fixtures.path("images-io/claims_4096x1000.jpg"))
        padded.insert(contentsOf: [0xFF, 0xFE, UInt8(9002 >> 8), UInt8(9002 & 0xFF)] + [UInt8](repeating: 0x20, count: 9000), at: 2)
        let path = try temporaryFile("padded.jpg", padded)
        if let (error, message) = expectFileError(ImageError.self, path: path, { _ = try ImageReader.read(path: path) }) {
            XCTAssertEqual(caseName(error), "truncated", message)
        }
    }

    /// The EXIF orientation turns the pixels as cv2.imread turns them (every value, PNG eXIf and
    /// JPEG APP1; compared bit for bit above); `.ignore` gives the stored pixels.
    func testExifOrientationAsOpenCVOrIgnored() throws {
        let stored = try ImageReader.readRGB(path: Fixtures.path("images-io/rgb.png"))
        for value in 1...8 {
            let path = Fixtures.path("images-io/orientation_\(value).png")
            let upright = try ImageReader.readRGB(path: path)
            XCTAssertEqual(upright.orientation, value)
            XCTAssertEqual([upright.height, upright.width], value >= 5 ? [37, 29] : [29, 37], "\(value)")
            XCTAssertEqual(upright.rgb == stored.rgb, value == 1, "orientation \(value) changes the pixels")
            let ignored = try ImageReader.readRGB(path: path, orientation: .ignore)
            XCTAssertEqual(ignored.rgb, stored.rgb, "\(value)")
            XCTAssertEqual(ignored.orientation, value)
        }
        XCTAssertEqual(try ImageReader.readRGB(path: Fixtures.path("images-io/q90_420.jpg")).orientation, 1)
    }

    /// 16-bit gray reads like 16-bit colour: the high byte of each sample (cv2.imread's pixels,
    /// compared above); PIL would clip it at 255, which differs.
    func testSixteenBitGrayKeepsTheHighByte() throws {
        let gray = try ImageReader.readRGB(path: Fixtures.path("images-io/gray16.png"))
        XCTAssertEqual(gray.rgb.count, 29 * 37 * 3)
        XCTAssertTrue(gray.rgb.contains { $0 != 255 && $0 != 0 })
        XCTAssertFalse(gray.rgb.allSatisfy { $0 == 255 }, "clipped as PIL does")
    }
}
