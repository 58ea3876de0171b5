// Every C library call of the .aisw code lives in this file.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum AISWSystem {
    static func errorMessage(_ code: Int32) -> String {
        guard let s = strerror(code) else { return "error \(code)" }
        return String(cString: s)
    }

    /// Identity of an existing file (device, inode), following symbolic links.
    static func fileIdentity(_ path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Writes `bytes` to `path` so that `path` either keeps its old content or gets all of the
    /// new one: a temporary file in the same folder is written, flushed to disk and renamed over
    /// `path`. On any failure the temporary is removed.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = (slash == nil ? "" : folder + "/") + ".\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AISWError.system(call: "open \(temporary)", errno: errno) }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        try bytes.withUnsafeBytes { raw in
            guard let start = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let n = write(fd, start + done, min(raw.count - done, 1 << 30))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AISWError.system(call: "write", errno: errno)
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw AISWError.system(call: "fsync", errno: errno) }
        closed = true
        guard close(fd) == 0 else { throw AISWError.system(call: "close", errno: errno) }
        guard rename(temporary, path) == 0 else { throw AISWError.system(call: "rename", errno: errno) }
        renamed = true
        // Make the rename itself durable; a folder that cannot be synced is not an error.
        let dir = open(folder, O_RDONLY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}

/// A whole file mapped read-only. The mapping lives as long as this object.
final class AISWMapping {
    let base: UnsafeRawPointer?
    let length: Int

    /// Opens without blocking (a FIFO would otherwise hang) and maps only regular files.
    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw AISWError.system(call: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AISWError.system(call: "fstat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw AISWError.notRegularFile }
        length = Int(st.st_size)
        if length == 0 {
            base = nil
            return
        }
        let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw AISWError.system(call: "mmap", errno: errno) }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), length) }
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: length) }
}
