import Foundation

/// The settings of one model: they live with the model, never in process-wide state, so two
/// models in one app may run with different settings side by side.
public struct RuntimeConfiguration: Sendable, Equatable {
    /// Worker threads of a forward pass (and of sampling and matching with this model).
    public var threads: Int
    /// The kernels; a level the CPU lacks is lowered to the best it has.
    public var simd: SIMDLevel
    /// Larger images are refused rather than allocated.
    public var maximumPixels: Int
    /// Bytes a forward pass may need at most (`MemoryBudget.passBytes`, computed
    /// before anything is allocated); an image whose pass needs more is refused
    /// with `RuntimeError.memoryBudgetExceeded`.
    public var maximumMemory: Int

    /// Every core, the best kernels, images up to 4096 x 4096 whose pass fits in
    /// `MemoryBudget.defaultMaximum` (an eighth of physical memory). The environment
    /// variables AISLFD_THREADS=N and AISLFD_SIMD=portable|avx2|avx512 change these
    /// defaults (for benchmarks and tests of whole programs); values given here always win.
    public init(threads: Int? = nil, simd: SIMDLevel? = nil, maximumPixels: Int = 4096 * 4096,
                maximumMemory: Int? = nil) {
        self.threads = max(1, threads ?? RuntimeConfiguration.defaultThreads)
        self.simd = min(simd ?? RuntimeConfiguration.defaultSIMD, SIMDLevel.detected)
        self.maximumPixels = maximumPixels
        self.maximumMemory = maximumMemory ?? MemoryBudget.defaultMaximum
    }

    static let defaultThreads: Int = {
        if let text = ProcessInfo.processInfo.environment["AISLFD_THREADS"], let n = Int(text), n > 0 { return min(n, 256) }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    static let defaultSIMD: SIMDLevel = {
        ProcessInfo.processInfo.environment["AISLFD_SIMD"].flatMap(SIMDLevel.init(name:)) ?? SIMDLevel.detected
    }()

    var workers: Workers { Workers(threads) }
}
