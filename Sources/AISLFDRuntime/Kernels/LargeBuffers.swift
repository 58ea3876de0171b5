import Foundation
#if os(Linux)
import Glibc
#endif

/// Large float buffers whose pages come from transparent huge pages where
/// the system allows it (Linux, `madvise` mode): a fresh 78 MB activation
/// then costs ~40 page faults instead of ~19,000, which took ~10% of a
/// forward pass at 480 x 640.
enum LargeBuffers {
    /// Below this, 4 KB pages are as good.
    static let hugePageThreshold = 4 << 20
    static let hugePageSize = 2 << 20

    /// An array of `count` floats the caller overwrites completely.
    static func uninitialized(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { adviseHugePages(UnsafeMutableRawPointer(base), bytes: count * 4) }
            initialized = count
        }
    }

    /// Asks for huge pages on the 2 MB-aligned part of a fresh, untouched allocation.
    static func adviseHugePages(_ start: UnsafeMutableRawPointer, bytes: Int) {
        #if os(Linux)
        guard bytes >= hugePageThreshold else { return }
        let address = UInt(bitPattern: start)
        let first = (address + UInt(hugePageSize - 1)) & ~UInt(hugePageSize - 1)
        let end = (address + UInt(bytes)) & ~UInt(hugePageSize - 1)
        guard end > first, let aligned = UnsafeMutableRawPointer(bitPattern: first) else { return }
        // Only advice: where it is refused the pages are ordinary ones.
        _ = madvise(aligned, Int(end - first), MADV_HUGEPAGE)
        #endif
    }
}

/// One float array kept between calls of a layer. `take` hands it out when it
/// has the size asked for (else a fresh one); `keep` stores the array the
/// layer returned. If the previous result is still referenced (by a caller's
/// outputs), writing into the array copies it first (copy-on-write), so the
/// caller's values never change. Safe for concurrent forward passes: a second
/// caller while the buffer is out simply gets a fresh array.
final class ReusableBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Float] = []

    func take(count: Int) -> [Float] {
        lock.lock()
        var array: [Float] = []
        if stored.count == count { swap(&array, &stored) }
        lock.unlock()
        return array.count == count ? array : LargeBuffers.uninitialized(count)
    }

    func keep(_ array: [Float]) {
        lock.lock()
        stored = array
        lock.unlock()
    }
}
