import AISLFDCore
import AISLFDInputs
import AISLFDReaders
import AISLFDRuntime
import ArgumentParser
import Foundation

/// `aislfd-run MODEL IMAGE -o RUN.npz`: descriptors of one image.
public struct RunCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aislfd-run",
        abstract: "Compute the descriptor and meta maps of an image (and descriptors at keypoints).",
        discussion: """
        MODEL is a .aisw file or any source weights file. IMAGE is PNG, JPEG, or .npy float32 \
        [3, H, W] or [1, 3, H, W] used as is. Writes an NPZ with image, desc.*, meta.* and, with \
        --keypoints, keypoints, kp_desc and kp_meta.
        """)

    @Argument(help: "A .aisw model or a source weights file.")
    var model: String

    @Argument(help: "PNG, JPEG or .npy image.")
    var image: String

    @Option(name: .short, help: "The run file to write (NPZ).")
    var output: String

    @Option(help: "Keypoints, .npy float32 [N, 2] of pixel coordinates (x, y).")
    var keypoints: String?

    @Option(name: .customLong("repeat"), help: ArgumentHelp("Run the forward pass N times and report min and median seconds per pass.", valueName: "N"))
    var repetitions: Int = 1

    @Flag(help: "Also write the intermediate activations act.* (for comparing layer by layer).")
    var activations = false

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var architecture: ArchitectureOption

    public init() {}

    public func validate() throws {
        if repetitions < 1 { throw ValidationError("--repeat must be at least 1") }
    }

    public func run() throws {
        let loaded = try ModelFile.load(path: model, architecture: architecture.id, hdf5Isolation: .thisProgram)
        let network = try loaded.makeModel(runtime.configuration)
        let input = try InputFiles.image(path: image)
        let points = try keypoints.map { try InputFiles.keypoints(path: $0) }

        func timedPass() throws -> (ModelOutputs, Double) {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try blame(image) { try network.forward(image: input, recordActivations: activations) }
            return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        // Earlier passes' outputs are dropped at once: a pass must not run while another
        // holds the buffers it would reuse (it would copy them first).
        var times = try (1..<repetitions).map { _ in try timedPass().1 }
        let (outputs, seconds) = try timedPass()
        times.append(seconds)

        var arrays = [NamedTensor(key: "image", shape: [1, 3, input.height, input.width], floats: input.values)]
        arrays += outputs.namedArrays.map(NamedTensor.init)
        if let points, let keypoints {
            let described = try blame(keypoints) { try outputs.describe(points) }
            arrays.append(NamedTensor(key: "keypoints", shape: [points.count, 2], floats: points.flatMap { [$0.x, $0.y] }))
            arrays += described.namedArrays.map(NamedTensor.init)
        }
        try NPZWriter.write(arrays, to: output)

        let desc = outputs.desc[0], meta = outputs.meta[0]
        var line = "\(loaded.architecture.rawValue) \(loaded.precision.rawValue): \(input.height)x\(input.width) image -> desc 128x\(desc.height)x\(desc.width), meta \(meta.channels)x\(meta.height)x\(meta.width)"
        if let points { line += ", \(points.count) keypoints" }
        Output.print(line)
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        Output.print(String(format: "forward: %d pass%@, min %.4f s, median %.4f s per pass (%d threads)",
                            times.count, times.count == 1 ? "" : "es", sorted[0], median, network.configuration.threads))
        if LayerTimes.isEnabled {
            // Per pass: each kind's seconds, and the rest of the forward pass.
            let totals = LayerTimes.totals, passes = Double(times.count)
            let kinds = LayerTimes.kinds.map { String(format: "%@ %.4f s", $0, (totals[$0] ?? 0) / passes) }
            let rest = (times.reduce(0, +) - totals.values.reduce(0, +)) / passes
            Output.print("time by layer kind per pass: " + kinds.joined(separator: ", ") + String(format: ", rest %.4f s", rest))
        }
        Output.print("wrote \(output)")
    }
}
