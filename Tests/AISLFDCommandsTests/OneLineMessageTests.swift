import AISLFDCore
import AISLFDFormat
import AISLFDTestSupport
import Foundation
import XCTest

/// Every fixture — hostile or not — through the commands that read that kind of file: no
/// crash, exit 0, 1 or 2, an error is exactly one line on stderr, notes and warnings are one
/// line each, and nothing from a file reaches the terminal as a control character.
final class OneLineMessageTests: XCTestCase {
    static let folders = ["hdf5", "hdf5/training", "safetensors", "npz", "torch", "torch/training", "zip", "aisw", "images-io",
                          "inputs"]
    static let weights: Set<String> = ["h5", "pth", "npz", "safetensors", "aisw", "zip"]
    static let images: Set<String> = ["png", "jpg", "npy", "bin"]

    var folder: URL!
    override func setUpWithError() throws { folder = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func check(_ r: CommandResult, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.crashed, what, file: file, line: line)
        XCTAssertTrue((0...2).contains(r.status), "\(what): status \(r.status)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        if r.status != 0 {
            // One error line; or, for a validation report (status 1), the report on stdout.
            let errors = lines.filter { !$0.hasPrefix("note: ") && !$0.hasPrefix("warning: ") }.count
            XCTAssertTrue(errors == 1 || (errors == 0 && r.status == 1 && !r.stdout.isEmpty), "\(what): \(r.stderr)", file: file, line: line)
        }
        for l in lines where r.status == 0 {
            XCTAssertTrue(l.hasPrefix("note: ") || l.hasPrefix("warning: "), "\(what): \(l)", file: file, line: line)
        }
        let controls = (r.stdout + r.stderr).unicodeScalars.filter { $0.value < 0x20 && $0 != "\n" || (0x7F...0x9F).contains($0.value) }
        XCTAssertTrue(controls.isEmpty, "\(what): control characters \(controls.map(\.value)) in the output", file: file, line: line)
    }

    func testNoMessageOfAnyCommandSpansTwoLines() throws {
        let out = folder.appendingPathComponent("out.npz").path
        var runs = 0
        for name in Self.folders {
            for file in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path(name)).sorted() {
                let ext = file.split(separator: ".").last.map(String.init) ?? ""
                guard Self.weights.contains(ext) || Self.images.contains(ext) else { continue }
                let path = "Tests/Fixtures/\(name)/\(file)"
                check(try Commands.run("aislfd-inspect", [path]), "inspect \(path)")
                runs += 1
                // (aislfd-convert --check meets every weights fixture in ConvertCommandTests; the
                // readers' messages are the same in aislfd-run's model loading.)
                if Self.images.contains(ext) {
                    check(try Commands.run("aislfd-run", ["Weights/lisrd.h5", path, "-o", out]), "run image \(path)")
                    runs += 1
                }
                if ext == "npy" {
                    check(try Commands.run("aislfd-run", ["Weights/lisrd.h5", "Tests/Fixtures/images/synth_48x64.png", "-o", out,
                                                          "--keypoints", path]), "run keypoints \(path)")
                    runs += 1
                }
            }
        }
        print("one-line check: \(runs) command runs")
        XCTAssertGreaterThan(runs, 250)
    }

    /// Arguments are input too: an unknown option, a bad value, a path with a newline.
    func testUsageErrorsAreOneLine() throws {
        for tool in CLIConventionsTests.tools {
            for arguments in [["--nope"], ["--arch", "x\ny", "a", "b"], ["a\nb", "c", "-o", "d\u{07}"], []] {
                let r = try Commands.run(tool, arguments)
                check(r, "\(tool) \(arguments)")
                XCTAssertEqual(r.status, 2, "\(tool) \(arguments)")
            }
        }
    }

    /// An .aisw tensor key with a newline, named by a checksum error.
    func testAnAISWKeyWithANewlineIsEscaped() throws {
        let path = folder.appendingPathComponent("key.aisw").path
        let metadata = try AISWFile.open(path: Fixtures.path("aisw/fp32.aisw"), verifyData: true).metadata
        try AISWWriter(metadata: metadata, tensors: [.fp32(key: "conv\nweight\u{1B}[2J", shape: [2], values: [1, 2], role: "conv_weight")])
            .write(to: path)
        var bytes = try fileBytes(path)
        bytes[bytes.count - 1] ^= 0x55
        try writeBytes(bytes, to: path)
        let r = try Commands.run("aislfd-inspect", [path])
        check(r, "inspect key.aisw")
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("tensor conv\\nweight\\x1b[2J: data checksum mismatch"), r.stderr)
    }
}
