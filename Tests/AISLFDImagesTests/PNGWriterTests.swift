import AISLFDCore
import AISLFDImages
import AISLFDTestSupport
import Foundation
import XCTest

final class PNGWriterTests: XCTestCase {
    func testWrittenPNGReadsBackIdentically() throws {
        let source = try ImageReader.readRGB(path: Fixtures.path("images-io/q90_420.jpg"))
        let folder = try Fixtures.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("matches.png").path
        try PNGWriter.write(rgb: source.rgb, height: source.height, width: source.width, to: path)
        let back = try ImageReader.readRGB(path: path)
        XCTAssertEqual(back.height, source.height)
        XCTAssertEqual(back.width, source.width)
        XCTAssertEqual(back.rgb, source.rgb)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["matches.png"], "no temporary file left")

        // Overwriting replaces the file whole.
        let black = [UInt8](repeating: 0, count: 4 * 6 * 3)
        try PNGWriter.write(rgb: black, height: 4, width: 6, to: path)
        let replaced = try ImageReader.readRGB(path: path)
        XCTAssertEqual(replaced.rgb, black)
        XCTAssertEqual(replaced.height, 4)
    }

    func testWrongBufferSizeWritesNothing() throws {
        let folder = try Fixtures.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("out.png").path
        for (count, h, w) in [(10, 2, 2), (12, 0, 4), (0, 0, 0)] {
            let result = expectFileError(ImageError.self, path: path) {
                try PNGWriter.write(rgb: [UInt8](repeating: 1, count: count), height: h, width: w, to: path)
            }
            XCTAssertEqual(result?.0, .badPixelBuffer(count: count, height: h, width: w))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }

    func testMissingFolderIsAnErrorAndLeavesNothing() throws {
        let path = "/nonexistent-folder-aislfd/out.png"
        let result = expectFileError(ImageError.self, path: path) {
            try PNGWriter.write(rgb: [UInt8](repeating: 0, count: 12), height: 2, width: 2, to: path)
        }
        XCTAssertEqual(result.map { caseName($0.0) }, "cannotWrite")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }
}
