import CKernels

/// Which kernels a model uses. `avx512` and `avx2` are the CKernels
/// matrix products (direct convolution, packed weights, blocked attention),
/// chosen at run time from what the CPU supports, so a generic x86-64 build
/// runs everywhere. `portable` is OpenBLAS plus plain Swift: the path on
/// other CPUs, and a reference the tests compare the others with.
public enum SIMDLevel: Int, CaseIterable, Comparable, Sendable {
    case portable = 0, avx2 = 1, avx512 = 2

    public init?(name: String) {
        guard let level = SIMDLevel.allCases.first(where: { "\($0)" == name.lowercased() }) else { return nil }
        self = level
    }

    public static func < (a: SIMDLevel, b: SIMDLevel) -> Bool { a.rawValue < b.rawValue }

    /// The best level this CPU runs.
    public static let detected = SIMDLevel(rawValue: Int(ckernels_simd_level())) ?? .portable
}
