#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AISLFDCore

public enum InputFileError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotOpen(String)
    case notARegularFile
    case readFailed(String)
    case tooLarge(Int, limit: Int)
    /// The file changed size while it was being read.
    case changedWhileReading

    public var description: String {
        switch self {
        case .cannotOpen(let reason): return "cannot open: \(reason)"
        case .notARegularFile: return "not a regular file"
        case .readFailed(let reason): return "read failed: \(reason)"
        case .tooLarge(let n, let limit): return "file is \(n) bytes, more than the \(limit) this reader accepts"
        case .changedWhileReading: return "file changed size while being read"
        }
    }
}

/// Whole-file reads for the readers that parse from memory (zip, npy, torch).
enum InputFile {
    /// 16 GiB: far above any weights file this project handles.
    static let defaultLimit = 1 << 34

    static func readAll(path: String, limit: Int = defaultLimit) throws -> [UInt8] {
        try read(path) { size in
            guard size <= limit else { throw InputFileError.tooLarge(size, limit: limit) }
            return (size, true)
        }
    }

    /// The first `count` bytes (fewer for a shorter file), for recognising a format.
    static func readPrefix(path: String, count: Int) throws -> [UInt8] {
        try read(path) { size in (min(size, count), false) }
    }

    /// Opens a regular file and reads the number of bytes `plan` picks from its size;
    /// `exact`: the file must still hold them all (it did not shrink meanwhile).
    private static func read(_ path: String, plan: (Int) throws -> (count: Int, exact: Bool)) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw InputFileError.cannotOpen(String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw InputFileError.readFailed(String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw InputFileError.notARegularFile }
        let (count, exact) = try plan(Int(info.st_size))

        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            while done < count {
                let n = Glibc.read(fd, base + done, count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw InputFileError.readFailed(String(cString: strerror(errno)))
                }
                if n == 0 {
                    if exact { throw InputFileError.changedWhileReading }
                    break
                }
                done += n
            }
        }
        return done == count ? bytes : Array(bytes[0..<done])
    }
}

/// Digests of whole files, for the provenance an .aisw records.
public enum FileDigest {
    public static func sha256(path: String) throws -> (hex: String, byteCount: Int) {
        do {
            let bytes = try InputFile.readAll(path: path)
            return (SHA256.hex(bytes), bytes.count)
        } catch {
            throw FileError(path: path, problem: error)
        }
    }
}
