import AISLFDCore
import AISLFDRuntime
import ArgumentParser

/// `--threads N`: worker threads for the forward pass (default: every core).
public struct ThreadOption: ParsableArguments {
    @Option(help: "Worker threads for the forward pass (default: all cores).")
    var threads: Int?

    public init() {}

    public func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    var configuration: RuntimeConfiguration { RuntimeConfiguration(threads: threads) }
}

extension NamedTensor {
    /// A runtime array as a float32 tensor for an NPZ run file.
    init(_ array: NamedArray) {
        self.init(key: array.name, shape: array.shape, floats: array.values)
    }
}
