import AISLFDRuntime

/// Every kernel path this CPU can run: the portable one (OpenBLAS and Swift)
/// and, on x86-64, the AVX2 and AVX-512 kernels it supports.
let availableSIMDLevels = SIMDLevel.allCases.filter { $0 <= RuntimeSIMD.detected }

/// Runs `body` once per available level, with models and kernels built at that level.
func forEachSIMDLevel(_ body: (SIMDLevel) throws -> Void) rethrows {
    let saved = RuntimeSIMD.level
    defer { RuntimeSIMD.set(saved) }
    for level in availableSIMDLevels {
        RuntimeSIMD.set(level)
        try body(level)
    }
}
