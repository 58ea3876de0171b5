import AISLFDCore
import AISLFDInputs
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

extension Console {
    /// A model file as `ModelFile.load` reads it; what was taken from a checkpoint is said in notes.
    func model(_ path: String, _ architecture: ArchitectureOption, _ stateDict: StateDictOptions) throws -> ModelFile {
        let loaded = try ModelFile.load(path: path, architecture: architecture.id, selection: stateDict.selection, hdf5Isolation: .thisProgram)
        for line in loaded.notes { note(echoed(path, limit: 4096) + ": " + line) }
        return loaded
    }

    /// An image as `InputFiles.image` reads it, its warnings and notes said.
    func image(_ path: String, _ options: ImageOptions) throws -> Image {
        let input = try InputFiles.image(path: path, orientation: options.orientation)
        input.warnings.forEach(warn)
        input.notes.forEach(note)
        return input.image
    }

    /// Keypoints for `image`, with a warning when some lie outside it.
    func keypoints(_ path: String, for image: Image) throws -> [Keypoint] {
        let points = try InputFiles.keypoints(path: path)
        if let line = InputFiles.keypointWarning(points, path: path, image: image) { warn(line) }
        return points
    }
}
