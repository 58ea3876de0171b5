import AISLFDRuntime

/// Every kernel path this CPU can run: the portable one (OpenBLAS and Swift)
/// and, on x86-64, the AVX2 and AVX-512 kernels it supports.
let availableSIMDLevels = SIMDLevel.allCases.filter { $0 <= SIMDLevel.detected }

/// Runs `body` once per available level with that level's configuration (for models) and
/// kernel operations.
func forEachSIMDLevel(_ body: (SIMDLevel, RuntimeConfiguration, KernelOps) throws -> Void) rethrows {
    for level in availableSIMDLevels {
        let configuration = RuntimeConfiguration(simd: level)
        try body(level, configuration, KernelOps(configuration))
    }
}
