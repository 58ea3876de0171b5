import COpenBLAS
import Dispatch
import Foundation

/// How many threads the runtime uses. Work is split into independent
/// pieces (bands of output rows, blocks of attention rows) run by
/// `concurrentPerform`; each piece calls single-threaded kernels (CKernels
/// or OpenBLAS), so no thread pool waits or yields while the rest of the
/// work runs.
public enum RuntimeThreads {
    /// The processor count, or the environment variable AISLFD_THREADS.
    nonisolated(unsafe) public private(set) static var count: Int = {
        openblas_set_num_threads(1)
        if let text = ProcessInfo.processInfo.environment["AISLFD_THREADS"], let n = Int(text), n > 0 { return min(n, 256) }
        return max(1, Int(openblas_get_num_procs()))
    }()

    public static func set(_ n: Int) {
        count = max(1, n)
        openblas_set_num_threads(1)
    }

    /// Pieces per thread that `forEachChunk` aims for.
    static let piecesPerThread = 4

    /// Runs `body` on contiguous pieces of `0..<n` (at least `minimumChunk`
    /// items each) on at most `count` threads. There are up to
    /// `piecesPerThread` times more pieces than threads, taken in turn: when
    /// other work on the machine slows one thread down, the others take more
    /// pieces instead of waiting for its half.
    static func forEachChunk(_ n: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard n > 0 else { return }
        let possible = max(1, n / max(1, minimumChunk))
        let threads = min(count, possible)
        if threads == 1 { body(0..<n); return }
        let pieces = min(possible, threads * piecesPerThread)
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

/// Row-major `C = alpha * op(A) op(B) + beta * C` through OpenBLAS.
@inline(__always)
func sgemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
