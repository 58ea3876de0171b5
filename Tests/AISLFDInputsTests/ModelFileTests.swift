import AISLFDCore
import AISLFDInputs
import AISLFDRuntime
import AISLFDTestSupport
import XCTest

/// Loading "any model file": the kind is recognised by content, and a converted file of
/// another architecture than asked for is refused in one clear line.
final class ModelFileTests: XCTestCase {
    func testSampleKindsAreRecognisedByContent() throws {
        let expected: [String: FileKind] = ["lisrd": .source(.hdf5), "aislfd-a": .source(.pytorch), "aislfd-b": .source(.npz),
                                            "aislfd-c": .source(.safetensors)]
        for (arch, file) in Fixtures.sampleFiles {
            XCTAssertEqual(try FileKind.of(path: Fixtures.repoPath("Weights/" + file)), expected[arch], file)
        }
        XCTAssertEqual(try FileKind.of(path: Fixtures.path("aisw/fp32.aisw")), .aisw)
        XCTAssertNil(try FileKind.of(path: Fixtures.path("images/synth_61x83.png")))
    }

    func testAnAISWOfAnotherArchitectureIsRefusedByName() throws {
        let path = Fixtures.path("aisw/fp32.aisw")
        let held = try ModelFile.load(path: path).architecture
        let other = Architecture.allCases.first { $0 != held }!
        guard let (problem, message) = expectFileError(ModelFileError.self, path: path, status: .invalid, {
            _ = try ModelFile.load(path: path, architecture: other.rawValue)
        }) else { return }
        XCTAssertEqual(problem, .architectureMismatch(asked: other.rawValue, found: held.rawValue))
        XCTAssertEqual(message, "\(path): the file holds a \(held.rawValue) model, not the \(other.rawValue) asked for")
        XCTAssertNoThrow(try ModelFile.load(path: path, architecture: held.rawValue))
    }
}
