import AISLFDCore
import Foundation
import XCTest

/// One expected tensor from a fixture manifest written by tools/fixtures/*.py.
public struct ManifestTensor: Decodable {
    public let key: String
    public let dtype: String
    public let shape: [Int]
    public let sha256: String
}

/// Runs a read that must fail, and returns its `FileError` and the typed problem
/// inside it. Fails the test if it succeeds, takes a second or more, names
/// another file, or carries another error type.
public func expectFailure<Problem: Error>(
    _ path: String, as _: Problem.Type, status: ExitStatus = .unreadable,
    file: StaticString = #filePath, line: UInt = #line, _ read: () throws -> Void
) -> (message: String, problem: Problem)? {
    let start = Date()
    do {
        try read()
        XCTFail("\(path): read succeeded but must fail", file: file, line: line)
        return nil
    } catch let error as FileError {
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, Fixtures.hangLimit, "\(path): took \(seconds) s to fail", file: file, line: line)
        XCTAssertEqual(error.path, path, file: file, line: line)
        XCTAssertTrue(error.description.hasPrefix(path + ": "), error.description, file: file, line: line)
        XCTAssertEqual(error.status, status, file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), "message is not one line: \(error.description)", file: file, line: line)
        guard let problem = error.problem as? Problem else {
            XCTFail("\(path): problem is \(type(of: error.problem)): \(error.problem)", file: file, line: line)
            return nil
        }
        return (error.description, problem)
    } catch {
        XCTFail("\(path): threw \(type(of: error)), not FileError: \(error)", file: file, line: line)
        return nil
    }
}

/// Compares tensors with a manifest entry by entry: key, dtype, shape, sha256 of the bytes.
public func assertMatchesManifest(_ tensors: [NamedTensor], _ expected: [ManifestTensor], _ label: String,
                           file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(tensors.map(\.key), expected.map(\.key), "\(label): keys", file: file, line: line)
    for (t, e) in zip(tensors, expected) {
        XCTAssertEqual(t.dtype.rawValue, e.dtype, "\(label) \(e.key): dtype", file: file, line: line)
        XCTAssertEqual(t.shape, e.shape, "\(label) \(e.key): shape", file: file, line: line)
        XCTAssertEqual(SHA256.hex(t.data), e.sha256, "\(label) \(e.key): bytes", file: file, line: line)
    }
}

/// How far resident memory rose above its starting level while `body` ran, in
/// bytes. On Linux the kernel's high-water mark (VmHWM) is reset first, so the
/// answer is about `body` alone; `getrusage` would report the peak of the
/// process that launched the tests. Returns nil where this cannot be measured.
public func peakMemoryGrowth(_ body: () throws -> Void) rethrows -> Int? {
    #if os(Linux)
    func status(_ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }
    // Writing 5 to clear_refs resets the peak resident size (Linux >= 4.0).
    guard (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil,
          let start = status("VmRSS") else {
        try body()
        return nil
    }
    try body()
    return status("VmHWM").map { $0 - start }
    #else
    try body()
    return nil
    #endif
}

public func fileBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

public func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}
