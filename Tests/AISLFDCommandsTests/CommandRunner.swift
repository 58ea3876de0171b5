import AISLFDTestSupport
import Foundation
import XCTest

/// Runs the built command-line tools as a user would: a separate process, real
/// exit status, stdout and stderr.
struct CommandResult {
    var status: Int32
    var crashed: Bool
    var stdout: String
    var stderr: String
    var seconds: Double
}

enum Commands {
    static func run(_ tool: String, _ arguments: [String], in directory: URL = Fixtures.repoRoot) throws -> CommandResult {
        let process = Process()
        process.executableURL = try Fixtures.builtExecutable(tool)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let start = Date()
        try process.run()
        // Read both pipes to the end before waiting, so a large report cannot block the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let outData = outBox.data
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, crashed: process.terminationReason == .uncaughtSignal,
                             stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self),
                             seconds: Date().timeIntervalSince(start))
    }

    /// Compares `text` with `Tests/Fixtures/cli/<name>.txt`; with AISLFD_UPDATE_SNAPSHOTS=1 rewrites it.
    static func assertSnapshot(_ text: String, named name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = URL(fileURLWithPath: Fixtures.path("cli/\(name).txt"))
        if ProcessInfo.processInfo.environment["AISLFD_UPDATE_SNAPSHOTS"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(text, expected, "output differs from \(url.lastPathComponent) (AISLFD_UPDATE_SNAPSHOTS=1 rewrites it)", file: file, line: line)
    }
}
