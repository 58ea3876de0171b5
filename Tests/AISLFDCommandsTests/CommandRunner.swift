import AISLFDTestSupport
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif


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
        try runProgram(try Fixtures.builtExecutable(tool).path, arguments, in: directory)
    }

    static func runProgram(_ executable: String, _ arguments: [String], in directory: URL) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
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

    /// Runs a tool and reports its peak resident memory: the kernel's high-water mark of the
    /// child's own memory (VmHWM in /proc), read every millisecond while it runs, so the last
    /// reading is the peak up to its last millisecond. (wait4's ru_maxrss would not do: a child
    /// started with vfork and exec carries the test process's own peak.)
    static func runMeasured(_ tool: String, _ arguments: [String], in directory: URL = Fixtures.repoRoot) throws
        -> (result: CommandResult, peakBytes: Int) {
        let process = Process()
        process.executableURL = try Fixtures.builtExecutable(tool)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box(), errBox = Box()
        let group = DispatchGroup()
        let start = Date()
        try process.run()
        for (pipe, box) in [(out, outBox), (err, errBox)] {
            group.enter()
            DispatchQueue.global().async { box.data = pipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        }
        var peak = 0
        let status = "/proc/\(process.processIdentifier)/status"
        while process.isRunning {
            if let text = try? String(contentsOfFile: status, encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
               let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) {
                peak = max(peak, kb * 1024)
            }
            usleep(1000)
        }
        group.wait()
        process.waitUntilExit()
        let result = CommandResult(status: process.terminationStatus, crashed: process.terminationReason == .uncaughtSignal,
                                   stdout: String(decoding: outBox.data, as: UTF8.self), stderr: String(decoding: errBox.data, as: UTF8.self),
                                   seconds: Date().timeIntervalSince(start))
        return (result, peak)
    }

    /// Runs a tool with its stdout and stderr on a terminal (a pseudo-terminal made by
    /// util-linux's `script`), as a person at a shell sees it; both come back in `stdout`.
    static func runInTerminal(_ tool: String, _ arguments: [String], in directory: URL = Fixtures.repoRoot) throws -> CommandResult {
        let command = ([try Fixtures.builtExecutable(tool).path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        return try runProgram("/usr/bin/script", ["-q", "-e", "-c", command.joined(separator: " "), "/dev/null"], in: directory)
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
