import AISLFDCore
import Foundation
import XCTest

/// The expectations a fixture script wrote next to its files (`manifest.json`):
/// for a readable file, its tensors in order with sha256 of their little-endian
/// bytes and its metadata; for a hostile file, the error case and the tensor it names.
public struct TensorManifest {
    public struct Tensor: Equatable {
        public var key: String
        public var dtype: String
        public var shape: [Int]
        public var sha256: String
    }

    public struct Entry {
        public var tensors: [Tensor]
        public var metadata: [String: String]
        public var error: String?
        public var tensor: String?
    }

    public let entries: [String: Entry]

    public init(path: String) throws {
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

    public var readableFiles: [String] { entries.filter { $0.value.error == nil }.map(\.key).sorted() }
    public var hostileFiles: [String] { entries.filter { $0.value.error != nil }.map(\.key).sorted() }

    public static func describe(_ contents: WeightsContents) -> [Tensor] {
        contents.tensors.map { Tensor(key: $0.key, dtype: $0.dtype.rawValue, shape: $0.shape, sha256: SHA256.hex($0.data)) }
    }
}

/// The name of an enum case (without its associated values), to compare error cases with a manifest.
public func caseName(_ value: Any) -> String {
    Mirror(reflecting: value).children.first?.label ?? String(describing: value)
}

/// `expectFailure` with the problem first (the order the reader tests destructure).
public func expectFileError<E: Error>(_ type: E.Type, path: String, status: ExitStatus = .unreadable, file: StaticString = #filePath,
                                      line: UInt = #line, _ body: () throws -> Void) -> (E, String)? {
    expectFailure(path, as: type, status: status, file: file, line: line, body).map { ($0.problem, $0.message) }
}

/// Deterministic pseudo-random bytes (64-bit LCG), for "random file" tests.
public func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

extension XCTestCase {
    /// Writes `bytes` to a file named `name` in a fresh folder removed after the test; returns its path.
    public func temporaryFile(_ name: String, _ bytes: [UInt8]) throws -> String {
        let folder = try Fixtures.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
}
