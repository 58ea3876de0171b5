import AISLFDCore
import Foundation

/// Locates committed test files from the repository root, so tests run the
/// same from `swift test` in any working directory.
public enum Fixtures {
    /// Seconds a hostile input may take to be refused: "within a second" is the promise
    /// (a guard against hangs and work driven by forged sizes, not a speed measure; speed is
    /// measured by the scripts in tools/). An honest refusal takes milliseconds; the slowest
    /// fixture, through the command and with the machine fully loaded, took 0.24 s.
    public static let hangLimit = 1.0

    /// The committed sample checkpoint of each architecture, under Weights/ (one format each).
    public static let sampleFiles = ["lisrd": "lisrd.h5", "aislfd-a": "aislfd-a.pth", "aislfd-b": "aislfd-b.npz",
                                     "aislfd-c": "aislfd-c.safetensors"]

    /// Where a sample keeps its state_dict when not at the top: aislfd-a.pth is a training
    /// checkpoint (iteration, model and optimizer state). The commands find it there on their
    /// own (AISLFDInputsTests checks that they find exactly this).
    public static let sampleEntries = ["aislfd-a": "model_state_dict."]

    /// A sample's state_dict under its own names, as a reader of the file gives it.
    public static func sampleStateDict(_ contents: WeightsContents, arch: String) -> WeightsContents {
        guard let entry = sampleEntries[arch] else { return contents }
        var c = contents
        c.tensors = contents.tensors.filter { $0.key.hasPrefix(entry) }.map { t in
            var t = t
            t.key = String(t.key.dropFirst(entry.count))
            return t
        }
        return c
    }

    public static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TestSupport
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    /// A path under `Tests/Fixtures/`.
    public static func path(_ relative: String) -> String {
        repoRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
    }

    /// A path under the repository root (for `Weights/`, `Schemas/`, ...).
    public static func repoPath(_ relative: String) -> String {
        repoRoot.appendingPathComponent(relative).path
    }

    public struct MissingExecutable: Error, CustomStringConvertible {
        public let description: String
    }

    /// A command-line tool built next to the tests. A missing one is an error, never a
    /// skip: without the tools, the command and isolation tests would prove nothing.
    public static func builtExecutable(_ name: String) throws -> URL {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for folder in [here, here.deletingLastPathComponent()] {
            let url = folder.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw MissingExecutable(description: "\(name) is not built next to the tests (\(here.path)); run `swift build` first")
    }

    /// A fresh empty folder under the system temporary directory.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("aislfd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
