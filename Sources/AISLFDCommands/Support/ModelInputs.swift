import AISLFDCore
import AISLFDRuntime
import ArgumentParser

/// `--threads N`: worker threads for the forward pass (default: every core).
public struct RuntimeOptions: ParsableArguments {
    @Option(help: "Worker threads for the forward pass (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("max-memory"), help: ArgumentHelp(
        "Refuse an image whose forward pass would need more memory than this, e.g. 2G or 500M (default: an eighth of physical memory).",
        valueName: "SIZE"))
    var maxMemory: String?

    public init() {}

    public func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let maxMemory, MemoryBudget.parse(maxMemory) == nil {
            throw ValidationError("--max-memory: '\(maxMemory)' is not a size (bytes, or a number with K, M, G or T)")
        }
    }

    var configuration: RuntimeConfiguration {
        RuntimeConfiguration(threads: threads, maximumMemory: maxMemory.flatMap(MemoryBudget.parse))
    }
}

extension NamedTensor {
    /// A runtime array as a float32 tensor for an NPZ run file.
    init(_ array: NamedArray) {
        self.init(key: array.name, shape: array.shape, floats: array.values)
    }
}
