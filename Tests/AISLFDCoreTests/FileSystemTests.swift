import AISLFDCore
import AISLFDTestSupport
import Foundation
import XCTest

/// No output over an input, and several outputs all or none.
final class FileSystemTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func testAnOutputThatIsAnInputIsRefusedThroughLinks() throws {
        try writeBytes([1, 2, 3], to: path("input.bin"))
        try FileManager.default.createSymbolicLink(atPath: path("soft"), withDestinationPath: path("input.bin"))
        try FileManager.default.linkItem(atPath: path("input.bin"), toPath: path("hard"))
        for output in [path("input.bin"), path("soft"), path("hard"), folder.path + "/./input.bin", folder.path + "/../" + folder.lastPathComponent + "/input.bin"] {
            guard let (problem, message) = expectFileError(FileSystemError.self, path: output, {
                try FileSystem.refuseOverwriting(outputs: [output], inputs: [path("other"), path("input.bin")])
            }) else { continue }
            XCTAssertEqual(problem, .wouldOverwriteInput(path("input.bin")))
            XCTAssertTrue(message.contains("refusing to overwrite it"), message)
        }
        XCTAssertNoThrow(try FileSystem.refuseOverwriting(outputs: [path("new.bin")], inputs: [path("input.bin")]))
        XCTAssertNoThrow(try FileSystem.refuseOverwriting(outputs: [path("input.bin")], inputs: [path("missing")]))
    }

    func testTwoOutputsNamingOneFileAreRefused() throws {
        for (a, b) in [(path("m.npz"), path("m.npz")), (path("m.npz"), folder.path + "/./m.npz")] {
            guard let (problem, _) = expectFileError(FileSystemError.self, path: b, {
                try FileSystem.refuseOverwriting(outputs: [a, b], inputs: [])
            }) else { continue }
            XCTAssertEqual(problem, .sameAsOtherOutput(a))
        }
        try writeBytes([0], to: path("exists"))
        XCTAssertThrowsError(try FileSystem.refuseOverwriting(outputs: [path("exists"), path("exists")], inputs: []))
        XCTAssertNoThrow(try FileSystem.refuseOverwriting(outputs: [path("a"), path("b")], inputs: []))
    }

    func testSeveralFilesAreWrittenAllOrNone() throws {
        try FileSystem.writeAtomically([(path("a"), [1]), (path("b"), [2, 2])])
        XCTAssertEqual(try fileBytes(path("a")), [1])
        XCTAssertEqual(try fileBytes(path("b")), [2, 2])
        // The second's folder does not exist: neither is written, the first keeps its old bytes.
        XCTAssertThrowsError(try FileSystem.writeAtomically([(path("a"), [9]), (path("missing/b"), [9])])) { error in
            XCTAssertEqual((error as? FileError)?.path, path("missing/b"))
        }
        XCTAssertEqual(try fileBytes(path("a")), [1])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), ["a", "b"], "no temporary left")
    }
}
