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
