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
    static func uninitialized(_ count: Int) -> [Float] { uninitialized(count, of: Float.self) }

    /// An array of `count` elements the caller overwrites completely.
    static func uninitialized<Element: BitwiseCopyable>(_ count: Int, of: Element.Type) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { adviseHugePages(UnsafeMutableRawPointer(base), bytes: count * MemoryLayout<Element>.stride) }
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

/// One array (of floats, or of bytes for int8 layers) kept between calls of a layer. `take` hands it out when it
/// has the size asked for (else a fresh one); `keep` stores the array the
/// layer returned. If the previous result is still referenced (by a caller's
/// outputs), writing into the array copies it first (copy-on-write), so the
/// caller's values never change. Safe for concurrent forward passes: a second
/// caller while the buffer is out simply gets a fresh array.
///
/// Arrays above `largestKept` bytes are not kept: a layer's output on a
/// large photo (130 MB at 1920 x 1080) held until the next pass would add up,
/// over the layers, to more than the pass itself needs.
final class ReusableBuffer<Element: BitwiseCopyable & ExpressibleByIntegerLiteral>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Element] = []
    /// 64 MB: every output at 480 x 640 is kept.
    static var largestKept: Int { 64 << 20 }

    /// The kept array resized to `count` within its capacity (a layer's last band can be
    /// shorter; a fresh array each time would come back as pages the system zeroes).
    func take(count: Int) -> [Element] {
        lock.lock()
        var array: [Element] = []
        swap(&array, &stored)
        lock.unlock()
        guard count > 0, array.capacity >= count else { return LargeBuffers.uninitialized(count, of: Element.self) }
        if array.count > count {
            array.removeLast(array.count - count)
        } else if array.count < count {
            array.append(contentsOf: repeatElement(0, count: count - array.count))
        }
        return array
    }

    func keep(_ array: [Element]) {
        lock.lock()
        stored = array.count * MemoryLayout<Element>.stride <= Self.largestKept ? array : []
        lock.unlock()
    }
}

/// Scratch memory of the kernels' workers, kept between calls and passes: a
/// buffer freed and allocated again each band would come back as fresh pages
/// the system zeroes first (a fifth of a pass at 480 x 640). One pool serves
/// every layer of a model (layers run one after another, so it holds about one
/// layer's scratch per thread); buffers are handed out whole to one caller at a
/// time, so concurrent passes simply get more of them.
final class ScratchPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [UnsafeMutableBufferPointer<Float>] = []

    deinit { for b in free { b.deallocate() } }

    /// Runs `body` with a buffer of at least `count` floats (zeroed when new;
    /// afterwards holding whatever the last user left).
    func withBuffer<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        let buffer = take(max(1, count))
        defer { give(buffer) }
        return body(buffer.baseAddress!)
    }

    private func take(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        lock.lock()
        // The smallest one that fits; else the largest is replaced by a bigger one.
        let fitting = free.indices.filter { free[$0].count >= count }.min { free[$0].count < free[$1].count }
        if let i = fitting { let b = free.remove(at: i); lock.unlock(); return b }
        if let i = free.indices.max(by: { free[$0].count < free[$1].count }) { free.remove(at: i).deallocate() }
        lock.unlock()
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        b.initialize(repeating: 0)
        return b
    }

    private func give(_ buffer: UnsafeMutableBufferPointer<Float>) {
        lock.lock()
        free.append(buffer)
        lock.unlock()
    }
}
