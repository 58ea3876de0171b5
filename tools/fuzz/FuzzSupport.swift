// Shared by every fuzz target (compiled into each): the input as bytes or as a file, and the
// checks every outcome must pass. A failed check is a crash, so libFuzzer keeps the input.
import AISLFDCore
import Foundation

enum Fuzz {
    /// A file holding the input, for the readers that take paths (one per process: /dev/shm when there is one).
    static let path: String = {
        let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return "\(folder)/aislfd-fuzz-\(getpid())"
    }()

    static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    static func write(_ bytes: [UInt8]) {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { fatalError("cannot write \(path)") }
    }

    /// Runs a read; a thrown error must be a FileError with status 1 or 2 whose message is one
    /// line of bounded length (the path, plus what the input may echo once escaped and cut).
    static func expectCleanOutcome(_ read: () throws -> Void) {
        do {
            try read()
        } catch let error as FileError {
            check(error.description, status: error.status)
        } catch {
            check(String(describing: error), status: .unreadable)
        }
    }

    static func check(_ message: String, status: ExitStatus) {
        if message.contains(where: { $0.isNewline }) { fatalError("message spans lines: \(message.debugDescription)") }
        if message.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            fatalError("control character in message: \(message.debugDescription)")
        }
        if message.count > 2000 { fatalError("message of \(message.count) characters: \(message.prefix(200))…") }
        if status == .success { fatalError("an error with status 0: \(message)") }
    }
}
