import AISLFDCore
import AISLFDInputs
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
