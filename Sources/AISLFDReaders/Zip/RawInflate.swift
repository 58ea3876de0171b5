import CZlib

/// Every zlib call of the zip reader lives here, so buffer lengths and
/// status codes are handled in one place.
enum RawInflate {
    enum Failure: Error, Equatable {
        /// zlib refused the stream (`Z_DATA_ERROR`, `Z_NEED_DICT`, ...); the text is zlib's.
        case corrupt(String)
        /// The input ended before the deflate stream did.
        case truncated
        /// The stream holds more bytes than it was allowed to produce.
        case longerThanAllowed
        case outOfMemory
        case initFailed(Int32)
    }

    /// Inflates a raw deflate stream (no zlib header, windowBits -15).
    /// Stops after `limit` output bytes. With `exact`, the stream must end there:
    /// fewer bytes is `truncated` (or a short result), more is `longerThanAllowed`,
    /// and the check for "more" inflates at most one extra byte.
    /// Without `exact`, returns the first `min(limit, stream length)` bytes.
    static func inflate(_ input: UnsafeRawBufferPointer, limit: Int, exact: Bool) throws -> [UInt8] {
        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else {
            throw initStatus == Z_MEM_ERROR ? Failure.outOfMemory : Failure.initFailed(initStatus)
        }
        defer { inflateEnd(&stream) }

        var output = [UInt8](repeating: 0, count: limit)
        var consumed = 0
        var produced = 0
        var ended = false
        let chunk = Int(UInt32.max)

        try output.withUnsafeMutableBytes { out in
            // zlib counts in 32-bit lengths: hand it at most 4 GiB at a time.
            func step(into target: UnsafeMutableRawBufferPointer) throws -> (wrote: Int, status: Int32) {
                let inCount = min(input.count - consumed, chunk)
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.advanced(by: consumed).assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(inCount)
                let outCount = min(target.count, chunk)
                stream.next_out = target.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(outCount)
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                consumed += inCount - Int(stream.avail_in)
                let wrote = outCount - Int(stream.avail_out)
                switch status {
                case Z_OK, Z_STREAM_END, Z_BUF_ERROR:
                    return (wrote, status)
                case Z_MEM_ERROR:
                    throw Failure.outOfMemory
                default:
                    let text = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                    throw Failure.corrupt(text)
                }
            }

            while produced < limit {
                let target = UnsafeMutableRawBufferPointer(rebasing: out[produced...])
                let before = consumed
                let (wrote, status) = try step(into: target)
                produced += wrote
                if status == Z_STREAM_END { ended = true; break }
                if wrote == 0 && consumed == before { throw Failure.truncated }
            }
            guard exact, !ended else { return }
            // The output is full; the stream may still hold its end-of-block code.
            // Anything it still produces is beyond the allowed size.
            var probe: UInt8 = 0
            try withUnsafeMutableBytes(of: &probe) { probeBuffer in
                while true {
                    let before = consumed
                    let (wrote, status) = try step(into: probeBuffer)
                    if wrote > 0 { throw Failure.longerThanAllowed }
                    if status == Z_STREAM_END { ended = true; return }
                    if consumed == before { throw Failure.truncated }
                }
            }
        }
        if exact && !ended { throw Failure.truncated }
        if produced < limit { output.removeSubrange(produced...) }
        return output
    }
}
