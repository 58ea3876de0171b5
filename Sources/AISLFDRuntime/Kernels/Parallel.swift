import COpenBLAS
import Dispatch
import Foundation

/// How many threads the runtime uses. Work is split into independent
/// pieces (bands of output rows, blocks of attention rows) run by
/// `concurrentPerform`; each piece calls a single-threaded OpenBLAS, so
/// no thread pool waits or yields while the rest of the work runs.
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

    /// Splits `0..<n` into at most `count` contiguous chunks of at least
    /// `minimumChunk` items and runs them in parallel.
    static func forEachChunk(_ n: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard n > 0 else { return }
        let chunks = min(count, max(1, n / max(1, minimumChunk)))
        if chunks == 1 { body(0..<n); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { i in
            body((n * i / chunks)..<(n * (i + 1) / chunks))
        }
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
