import COpenBLAS
import Dispatch
import Foundation

/// How many threads one model's work is split over. Work is split into
/// independent pieces (bands of output rows, blocks of attention rows) run by
/// `concurrentPerform`; each piece calls single-threaded kernels (CKernels
/// or OpenBLAS), so no thread pool waits or yields while the rest of the
/// work runs.
struct Workers: Sendable, Equatable {
    let count: Int

    init(_ count: Int) {
        self.count = max(1, min(count, 256))
        Workers.openBLASSingleThreaded
    }

    /// Pieces per thread that `forEachChunk` aims for.
    static let piecesPerThread = 4

    /// Pieces of work that keep every thread busy when one of them is slowed down.
    var pieces: Int { count * Workers.piecesPerThread }

    /// OpenBLAS is called from the workers, one call per piece: its own threads would only
    /// compete with them. (A process-wide OpenBLAS setting: an app that uses OpenBLAS itself
    /// with threads gets them back with `openblas_set_num_threads`.)
    private static let openBLASSingleThreaded: Void = openblas_set_num_threads(1)

    /// Runs `body` on contiguous pieces of `0..<n` (at least `minimumChunk`
    /// items each) on at most `count` threads. There are up to
    /// `piecesPerThread` times more pieces than threads, taken in turn: when
    /// other work on the machine slows one thread down, the others take more
    /// pieces instead of waiting for its half.
    func forEachChunk(_ n: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard n > 0 else { return }
        let possible = max(1, n / max(1, minimumChunk))
        let threads = min(count, possible)
        if threads == 1 { body(0..<n); return }
        let pieces = min(possible, threads * Workers.piecesPerThread)
        let next = PieceCounter()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while let i = next.take(below: pieces) {
                body((n * i / pieces)..<(n * (i + 1) / pieces))
            }
        }
    }
}

/// Hands out 0, 1, 2, ... to whichever thread asks next.
private final class PieceCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }
}

/// Row-major `C = alpha * op(A) op(B) + beta * C` through OpenBLAS (one thread).
@inline(__always)
func sgemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
