// Every C call on files made by the project lives in this file: whole and prefix reads,
// regular-file checks, file identity, atomic writes with fsync, and read-only mappings.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum FileSystemError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotOpen(String)
    case notARegularFile
    case readFailed(String)
    case tooLarge(Int, limit: Int)
    /// The file changed size while it was being read.
    case changedWhileReading
    /// A system call of a write failed: which one, and the system's reason.
    case writeFailed(call: String, reason: String)
    case cannotMap(String)
    /// An output path names a file the command reads (after following links).
    case wouldOverwriteInput(String)
    /// Two outputs of one command name the same file.
    case sameAsOtherOutput(String)

    public var description: String {
        switch self {
        case .cannotOpen(let reason): return "cannot open: \(reason)"
        case .notARegularFile: return "not a regular file"
        case .readFailed(let reason): return "read failed: \(reason)"
        case .tooLarge(let n, let limit): return "file is \(n) bytes, more than the \(limit) this reader accepts"
        case .changedWhileReading: return "file changed size while being read"
        case .writeFailed(let call, let reason): return "\(call) failed: \(reason)"
        case .cannotMap(let reason): return "cannot map the file: \(reason)"
        case .wouldOverwriteInput(let input):
            return "output is the same file as the input \(echoed(input, limit: 1000)); refusing to overwrite it"
        case .sameAsOtherOutput(let other): return "output is the same file as the output \(echoed(other, limit: 1000))"
        }
    }
}

public enum FileSystem {
    /// 16 GiB: far above any weights file or image this project handles.
    public static let defaultReadLimit = 1 << 34

    /// The whole of a regular file, at most `limit` bytes.
    public static func readAll(path: String, limit: Int = defaultReadLimit) throws -> [UInt8] {
        try read(path) { size in
            guard size <= limit else { throw FileSystemError.tooLarge(size, limit: limit) }
            return (size, true)
        }
    }

    /// The first `count` bytes (fewer for a shorter file), for recognising a format.
    public static func readPrefix(path: String, count: Int) throws -> [UInt8] {
        try read(path) { size in (min(size, count), false) }
    }

    /// The size of a regular file; anything else (a folder, a FIFO, a device) is refused.
    public static func regularFileSize(path: String) throws -> Int {
        let fd = try openRegular(path)
        defer { close(fd.descriptor) }
        return fd.size
    }

    /// What makes two paths the same file: device and inode, after following links.
    public struct Identity: Hashable, Sendable {
        public let device: UInt64
        public let inode: UInt64
    }

    /// The identity of an existing file, or nil when there is none at `path`.
    public static func identity(of path: String) -> Identity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Identity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Refuses, before a command does any work, an output that is one of its inputs (same
    /// device and inode after following links, so links and hard links count) or the same file
    /// as another output: a `FileError` naming the output, exit status 2.
    public static func refuseOverwriting(outputs: [String], inputs: [String]) throws {
        var inputFiles: [Identity: String] = [:]
        for input in inputs {
            if let id = identity(of: input), inputFiles[id] == nil { inputFiles[id] = input }
        }
        // An output not written yet is known by its folder and name.
        enum Target: Hashable { case file(Identity), new(folder: Identity?, name: String) }
        var outputFiles: [Target: String] = [:]
        for output in outputs {
            let target: Target
            if let id = identity(of: output) {
                if let input = inputFiles[id] { throw FileError(path: output, problem: FileSystemError.wouldOverwriteInput(input)) }
                target = .file(id)
            } else {
                let slash = output.lastIndex(of: "/")
                let folder = slash.map { String(output[...$0]) } ?? "."
                target = .new(folder: identity(of: folder), name: slash.map { String(output[output.index(after: $0)...]) } ?? output)
            }
            if let other = outputFiles[target] { throw FileError(path: output, problem: FileSystemError.sameAsOtherOutput(other)) }
            outputFiles[target] = output
        }
    }

    /// Writes every file or none: each goes to a temporary file beside its destination and is
    /// flushed to disk, and only when all are complete are they renamed into place. A failure
    /// before that removes every temporary and leaves every destination untouched; the error
    /// names the file that failed.
    public static func writeAtomically(_ files: [(path: String, bytes: [UInt8])]) throws {
        var pending: [(file: PendingFile, path: String)] = []
        func discardAll() { for p in pending { p.file.discard() } }
        for (path, bytes) in files {
            do {
                let file = try PendingFile(beside: path)
                pending.append((file, path))
                try file.append(bytes)
                try file.flush()
            } catch {
                discardAll()
                throw FileError(path: path, problem: error)
            }
        }
        for (i, p) in pending.enumerated() {
            do { try p.file.commit(to: p.path) } catch {
                for later in pending[(i + 1)...] { later.file.discard() }
                throw FileError(path: p.path, problem: error)
            }
        }
    }

    /// Writes `bytes` so that `path` either keeps its old content or gets all of the new one.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        try writeAtomically(to: path) { try $0.append(bytes) }
    }

    /// Lets `body` append to a temporary file in `path`'s folder, then flushes it to disk and
    /// renames it over `path` (and syncs the folder). If `body` or any step fails, the
    /// temporary is removed and `path` is untouched.
    public static func writeAtomically(to path: String, _ body: (PendingFile) throws -> Void) throws {
        let file = try PendingFile(beside: path)
        do {
            try body(file)
            try file.commit(to: path)
        } catch {
            file.discard()
            throw error
        }
    }

    /// A file being written next to its destination.
    public final class PendingFile {
        let path: String
        private var fd: Int32
        private let folder: String

        init(beside destination: String) throws {
            let slash = destination.lastIndex(of: "/")
            folder = slash.map { String(destination[..<$0]) } ?? "."
            let name = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
            var attempt = 0
            while true {
                let candidate = (slash == nil ? "" : folder + "/") + ".\(name).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
                let d = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                if d >= 0 {
                    path = candidate
                    fd = d
                    return
                }
                attempt += 1
                guard errno == EEXIST, attempt < 100 else {
                    throw FileSystemError.writeFailed(call: "open (temporary file in '\(folder)')", reason: FileSystem.reason(errno))
                }
            }
        }

        public func append(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try append($0) }
        }

        public func append(_ raw: UnsafeRawBufferPointer) throws {
            guard let base = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let n = write(fd, base + done, min(raw.count - done, 1 << 30))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileSystemError.writeFailed(call: "write", reason: FileSystem.reason(errno))
                }
                done += n
            }
        }

        /// Flushes the data to disk and closes the file; `commit` then only renames.
        func flush() throws {
            guard fd >= 0 else { return }
            guard fsync(fd) == 0 else { throw FileSystemError.writeFailed(call: "fsync", reason: FileSystem.reason(errno)) }
            let closed = close(fd)
            fd = -1
            guard closed == 0 else { throw FileSystemError.writeFailed(call: "close", reason: FileSystem.reason(errno)) }
        }

        func commit(to destination: String) throws {
            try flush()
            guard rename(path, destination) == 0 else { throw FileSystemError.writeFailed(call: "rename", reason: FileSystem.reason(errno)) }
            // Make the rename itself durable; a folder that cannot be synced is not an error.
            let dir = open(folder, O_RDONLY | O_CLOEXEC)
            if dir >= 0 {
                _ = fsync(dir)
                close(dir)
            }
        }

        func discard() {
            if fd >= 0 { close(fd); fd = -1 }
            unlink(path)
        }

        deinit {
            if fd >= 0 { close(fd) }
        }
    }

    /// An open regular file read at given offsets, each read checked against the size it had
    /// when it was opened (a file that shrinks meanwhile gives `changedWhileReading`).
    public final class ReadHandle {
        public let size: Int
        private let descriptor: Int32

        public init(path: String) throws {
            (descriptor, size) = try FileSystem.openRegular(path)
        }

        deinit { close(descriptor) }

        /// `count` bytes at `offset`; the range must lie within `size`.
        public func read(at offset: Int, count: Int) throws -> [UInt8] {
            guard offset >= 0, count >= 0, count <= size, offset <= size - count else {
                throw FileSystemError.readFailed("\(count) bytes at offset \(offset) lie past the end (\(size) bytes)")
            }
            return try FileSystem.readBytes(descriptor, at: offset, count: count, exact: true)
        }
    }

    /// A whole regular file mapped read-only; the mapping lives as long as this object.
    public final class Mapping: @unchecked Sendable {
        public let bytes: UnsafeRawBufferPointer

        public init(path: String) throws {
            let file = try FileSystem.openRegular(path)
            defer { close(file.descriptor) }
            guard file.size > 0 else {
                bytes = UnsafeRawBufferPointer(start: nil, count: 0)
                return
            }
            let p = mmap(nil, file.size, PROT_READ, MAP_PRIVATE, file.descriptor, 0)
            guard let p, p != MAP_FAILED else { throw FileSystemError.cannotMap(FileSystem.reason(errno)) }
            bytes = UnsafeRawBufferPointer(start: p, count: file.size)
        }

        deinit {
            if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
        }
    }

    /// The system's text for an errno value.
    public static func reason(_ code: Int32) -> String {
        guard let s = strerror(code) else { return "error \(code)" }
        return String(cString: s)
    }

    /// Opens without blocking (a FIFO would otherwise hang the open) and accepts regular files only.
    private static func openRegular(_ path: String) throws -> (descriptor: Int32, size: Int) {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.cannotOpen(reason(errno)) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let why = reason(errno)
            close(fd)
            throw FileSystemError.readFailed(why)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw FileSystemError.notARegularFile
        }
        return (fd, Int(info.st_size))
    }

    /// Reads the number of bytes `plan` picks from the file's size; `exact`: the file must
    /// still hold them all (it did not shrink meanwhile).
    private static func read(_ path: String, plan: (Int) throws -> (count: Int, exact: Bool)) throws -> [UInt8] {
        let file = try openRegular(path)
        defer { close(file.descriptor) }
        let (count, exact) = try plan(file.size)
        return try readBytes(file.descriptor, at: 0, count: count, exact: exact)
    }

    /// `count` bytes from `offset` (fewer if the file ends first and not `exact`).
    private static func readBytes(_ fd: Int32, at offset: Int, count: Int, exact: Bool) throws -> [UInt8] {
        var failure: FileSystemError?
        var done = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            defer { initialized = done }
            guard let base = buffer.baseAddress else { return }
            while done < count {
                let n = pread(fd, base + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    failure = .readFailed(reason(errno))
                    return
                }
                if n == 0 {
                    if exact { failure = .changedWhileReading }
                    return
                }
                done += n
            }
        }
        if let failure { throw failure }
        return bytes
    }
}

/// Digests of whole files, for the provenance an .aisw records.
public enum FileDigest {
    public static func sha256(path: String) throws -> (hex: String, byteCount: Int) {
        do {
            let bytes = try FileSystem.readAll(path: path)
            return (SHA256.hex(bytes), bytes.count)
        } catch {
            throw FileError(path: path, problem: error)
        }
    }
}
