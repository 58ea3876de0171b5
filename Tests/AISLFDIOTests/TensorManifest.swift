import AISLFDCore
import AISLFDTestSupport
import Foundation
import XCTest

/// The expectations a fixture script wrote next to its files (`manifest.json`):
/// for a readable file, its tensors in order with sha256 of their little-endian
/// bytes and its metadata; for a hostile file, the error case and the tensor it names.
struct TensorManifest {
    struct Tensor: Equatable {
        var key: String
        var dtype: String
        var shape: [Int]
        var sha256: String
    }

    struct Entry {
        var tensors: [Tensor]
        var metadata: [String: String]
        var error: String?
        var tensor: String?
    }

    let entries: [String: Entry]

    init(path: String) throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        guard let files = json as? [String: [String: Any]] else { throw CocoaError(.fileReadCorruptFile) }
        var entries: [String: Entry] = [:]
        for (name, value) in files {
            let tensors = (value["tensors"] as? [[String: Any]] ?? []).map { t in
                Tensor(key: t["key"] as? String ?? "", dtype: t["dtype"] as? String ?? "",
                       shape: t["shape"] as? [Int] ?? [], sha256: t["sha256"] as? String ?? "")
            }
            entries[name] = Entry(tensors: tensors, metadata: value["metadata"] as? [String: String] ?? [:],
                                  error: value["error"] as? String, tensor: value["tensor"] as? String)
        }
        self.entries = entries
    }

    var readableFiles: [String] { entries.filter { $0.value.error == nil }.map(\.key).sorted() }
    var hostileFiles: [String] { entries.filter { $0.value.error != nil }.map(\.key).sorted() }

    static func describe(_ contents: WeightsContents) -> [Tensor] {
        contents.tensors.map { Tensor(key: $0.key, dtype: $0.dtype.rawValue, shape: $0.shape, sha256: SHA256.hex($0.data)) }
    }
}

/// The name of an enum case (without its associated values), to compare error cases with a manifest.
func caseName(_ value: Any) -> String {
    Mirror(reflecting: value).children.first?.label ?? String(describing: value)
}

/// Runs `body`, which must throw a `FileError` for `path` wrapping an error of type `E`;
/// returns that error and checks it came within a second.
func expectFileError<E: Error>(_ type: E.Type, path: String, file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> Void) -> (E, String)? {
    let start = Date()
    do {
        try body()
        XCTFail("\(path): read without error", file: file, line: line)
        return nil
    } catch let error as FileError {
        XCTAssertLessThan(Date().timeIntervalSince(start), Fixtures.hangLimit, "\(path): took too long to fail", file: file, line: line)
        XCTAssertEqual(error.path, path, file: file, line: line)
        let message = String(describing: error)
        XCTAssertTrue(message.hasPrefix(path + ": "), "message does not start with the path: \(message)", file: file, line: line)
        XCTAssertFalse(message.contains("\n"), "message is not one line: \(message)", file: file, line: line)
        guard let problem = error.problem as? E else {
            XCTFail("\(path): unexpected problem \(error.problem)", file: file, line: line)
            return nil
        }
        return (problem, message)
    } catch {
        XCTFail("\(path): not a FileError: \(error)", file: file, line: line)
        return nil
    }
}

/// Deterministic pseudo-random bytes (64-bit LCG), for "random file" tests.
func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

extension XCTestCase {
    /// Writes `bytes` to a file named `name` in a fresh folder removed after the test; returns its path.
    func temporaryFile(_ name: String, _ bytes: [UInt8]) throws -> String {
        let folder = try Fixtures.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
}
