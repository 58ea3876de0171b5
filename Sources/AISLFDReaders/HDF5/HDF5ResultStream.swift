#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AISLFDCore
import Foundation

/// The framing in which the isolated reading process hands its result to the
/// parent through a pipe, and the parent's bounded decoding of it.
///
/// Layout (integers little-endian): "H5RS", then records, each a tag byte:
/// - 1, a tensor: key (string), dtype (string), rank (u32), dims (i64 each),
///   byte count (u64), bytes. Sent as soon as the reader has it.
/// - 2, the end of the contents: metadata count (u64) and key/value strings,
///   note count (u64) and strings, group count (u64) and keys; then "DONE".
/// - 3, an error: the `HDF5Error` as JSON (string), then "DONE". Tensors sent before it are dropped.
/// A string is its byte count (u64) and UTF-8 bytes.
///
/// The decoder trusts nothing it reads: every count and size is checked against
/// the bounds the reader itself keeps (a tensor cannot exceed what `HDF5Reader`
/// allows for a file of this size) before anything is allocated, and the byte
/// count must match the shape. It reads as the data arrives, so a writer that
/// fills the pipe never blocks forever, and it stops at the deadline.
public enum HDF5ResultStream {
    static let magic: [UInt8] = Array("H5RS".utf8)
    static let trailer: [UInt8] = Array("DONE".utf8)
    static let tensorTag: UInt8 = 1
    static let contentsEndTag: UInt8 = 2
    static let errorTag: UInt8 = 3
    /// HDF5's own limit on a dataspace's rank.
    static let maxRank = 32
    static let maxCount = HDF5Reader.maxLinks

    /// Why a stream gave no result.
    public enum Problem: Error, Equatable, Sendable {
        /// The stream ended before its trailer: the writer died or never wrote.
        case endedEarly
        /// The deadline passed before the whole result arrived.
        case timedOut
        /// The stream holds something no writer produces, or a size past the bounds.
        case malformed(String)
        /// read() or poll() failed with this errno.
        case readFailed(Int32)
    }

    // MARK: Writing (the child)

    /// Writes a whole result to `fd`; false when the pipe broke (the parent went away).
    public static func writeResult(_ result: Result<WeightsContents, HDF5Error>, to fd: Int32) -> Bool {
        var writer = Writer(fd: fd)
        switch result {
        case .success(let contents):
            for tensor in contents.tensors where !writer.send(tensor) { return false }
            return writer.finish(metadata: contents.metadata, notes: contents.notes, groups: contents.containers)
        case .failure(let error):
            return writer.fail(error)
        }
    }

    /// Writes one result record by record; each call says whether the pipe still works.
    struct Writer {
        let fd: Int32
        private var pending = magic

        init(fd: Int32) { self.fd = fd }

        mutating func send(_ tensor: NamedTensor) -> Bool {
            append([tensorTag])
            append(string: tensor.key)
            append(string: tensor.dtype.rawValue)
            append(UInt32(tensor.shape.count))
            for d in tensor.shape { append(UInt64(bitPattern: Int64(d))) }
            append(UInt64(tensor.data.count))
            return flush() && tensor.data.withUnsafeBytes { writeAll(fd, $0) }
        }

        mutating func finish(metadata: [String: String], notes: [String], groups: [String]) -> Bool {
            append([contentsEndTag])
            append(UInt64(metadata.count))
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                append(string: key)
                append(string: value)
            }
            append(UInt64(notes.count))
            for note in notes { append(string: note) }
            append(UInt64(groups.count))
            for group in groups { append(string: group) }
            append(trailer)
            return flush()
        }

        mutating func fail(_ error: HDF5Error) -> Bool {
            guard let json = try? JSONEncoder().encode(error) else { return false }
            append([errorTag])
            append(UInt64(json.count))
            append(Array(json))
            append(trailer)
            return flush()
        }

        private mutating func append(_ bytes: [UInt8]) { pending += bytes }
        private mutating func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { pending += $0 } }
        private mutating func append(string: String) {
            let utf8 = Array(string.utf8)
            append(UInt64(utf8.count))
            append(utf8)
        }

        private mutating func flush() -> Bool {
            defer { pending.removeAll(keepingCapacity: true) }
            return pending.withUnsafeBytes { writeAll(fd, $0) }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    // MARK: Reading (the parent)

    /// The largest tensor the reader returns for a file of `fileSize` bytes: a
    /// contiguous dataset fits in the file, a chunked one in `maxExpansion` times
    /// it and `maxChunkedBytes`.
    public static func maxTensorBytes(fileSize: Int) -> Int {
        max(fileSize, HDF5Reader.chunkedLimit(fileSize: fileSize))
    }

    /// The longest string the reader returns: keys are at most 64 names of 64 KiB,
    /// a string attribute is no longer than the file.
    static func maxStringBytes(fileSize: Int) -> Int {
        max(fileSize, (HDF5Reader.maxNameLength + 1) * (HDF5Reader.maxDepth + 2))
    }

    /// Reads one result from `fd` until its trailer, giving up at `deadline`
    /// (a `monotonicSeconds()` value) with `Problem.timedOut`.
    public static func readResult(from fd: Int32, fileSize: Int, deadline: Double) throws -> Result<WeightsContents, HDF5Error> {
        var reader = Reader(fd: fd, deadline: deadline, maxString: maxStringBytes(fileSize: fileSize))
        guard try reader.bytes(magic.count) == magic else { throw Problem.malformed("no header") }
        let maxBytes = maxTensorBytes(fileSize: fileSize)
        var tensors: [NamedTensor] = []
        while true {
            switch try reader.bytes(1)[0] {
            case tensorTag:
                guard tensors.count < maxCount else { throw Problem.malformed("more than \(maxCount) tensors") }
                tensors.append(try readTensor(&reader, maxTensorBytes: maxBytes))
            case contentsEndTag:
                var metadata: [String: String] = [:]
                for _ in 0..<(try reader.count()) {
                    let key = try reader.string()
                    metadata[key] = try reader.string()
                }
                var notes: [String] = []
                for _ in 0..<(try reader.count()) { notes.append(try reader.string()) }
                var groups: [String] = []
                for _ in 0..<(try reader.count()) { groups.append(try reader.string()) }
                try reader.expectTrailer()
                return .success(WeightsContents(format: "hdf5", tensors: tensors, metadata: metadata, notes: notes, containers: groups))
            case errorTag:
                let json = try reader.stringBytes()
                guard let error = try? JSONDecoder().decode(HDF5Error.self, from: Data(json)) else {
                    throw Problem.malformed("undecodable error")
                }
                try reader.expectTrailer()
                return .failure(error)
            case let tag:
                throw Problem.malformed("unknown record \(tag)")
            }
        }
    }

    private static func readTensor(_ reader: inout Reader, maxTensorBytes: Int) throws -> NamedTensor {
        let key = try reader.string()
        guard let dtype = DType(rawValue: try reader.string()) else { throw Problem.malformed("unknown dtype") }
        let rank = Int(try reader.integer(UInt32.self))
        guard rank <= maxRank else { throw Problem.malformed("rank \(rank)") }
        var shape: [Int] = []
        for _ in 0..<rank {
            let d = Int64(bitPattern: try reader.integer(UInt64.self))
            guard d >= 0, let n = Int(exactly: d) else { throw Problem.malformed("negative dimension") }
            shape.append(n)
        }
        let declared = try reader.integer(UInt64.self)
        guard let byteCount = try? Checked.byteCount(shape, dtype), UInt64(byteCount) == declared else {
            throw Problem.malformed("'\(key)': \(declared) bytes for shape \(shape) of \(dtype.rawValue)")
        }
        guard byteCount <= maxTensorBytes else {
            throw Problem.malformed("'\(key)': \(byteCount) bytes, more than the reader allows (\(maxTensorBytes))")
        }
        // Not zeroed first: every byte is either read or the array is dropped empty.
        let data = try [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, count in
            try reader.fill(UnsafeMutableRawBufferPointer(buffer))
            count = byteCount
        }
        return NamedTensor(key: key, dtype: dtype, shape: shape, data: data)
    }

    /// Seconds on a clock that never jumps, for deadlines.
    public static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    private struct Reader {
        let fd: Int32
        let deadline: Double
        let maxString: Int
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var start = 0
        var end = 0

        mutating func expectTrailer() throws {
            guard try bytes(trailer.count) == trailer else { throw Problem.malformed("no trailer") }
        }

        mutating func count() throws -> Int {
            let n = try integer(UInt64.self)
            guard n <= UInt64(maxCount) else { throw Problem.malformed("count \(n)") }
            return Int(n)
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            var value = T.zero
            try withUnsafeMutableBytes(of: &value) { try fill($0) }
            return T(littleEndian: value)
        }

        mutating func bytes(_ count: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            try out.withUnsafeMutableBytes { try fill($0) }
            return out
        }

        mutating func stringBytes() throws -> [UInt8] {
            let n = try integer(UInt64.self)
            guard n <= UInt64(maxString) else { throw Problem.malformed("string of \(n) bytes") }
            return try bytes(Int(n))
        }

        mutating func string() throws -> String {
            String(decoding: try stringBytes(), as: UTF8.self)
        }

        /// Fills `destination` from the buffer, then straight from the pipe.
        mutating func fill(_ destination: UnsafeMutableRawBufferPointer) throws {
            var done = 0
            while done < destination.count {
                if start == end {
                    if destination.count - done >= buffer.count {
                        done += try Self.receive(fd, deadline, into: UnsafeMutableRawBufferPointer(rebasing: destination[done...]))
                        continue
                    }
                    let (fd, deadline) = (fd, deadline)
                    let n = try buffer.withUnsafeMutableBytes { try Self.receive(fd, deadline, into: $0) }
                    start = 0
                    end = n
                }
                let n = min(end - start, destination.count - done)
                buffer.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: destination[done..<(done + n)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<(start + n)]))
                }
                start += n
                done += n
            }
        }

        /// One read of at least one byte, waiting no later than the deadline.
        private static func receive(_ fd: Int32, _ deadline: Double, into destination: UnsafeMutableRawBufferPointer) throws -> Int {
            while true {
                let remaining = deadline - HDF5ResultStream.monotonicSeconds()
                guard remaining > 0 else { throw Problem.timedOut }
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, Int32(min(remaining * 1000 + 1, 60_000)))
                if ready < 0 {
                    if errno == EINTR { continue }
                    throw Problem.readFailed(errno)
                }
                if ready == 0 { continue }
                let n = read(fd, destination.baseAddress, destination.count)
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    throw Problem.readFailed(errno)
                }
                if n == 0 { throw Problem.endedEarly }
                return n
            }
        }
    }
}
