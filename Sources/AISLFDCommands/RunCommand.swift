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
        MODEL is a .aisw file or any source weights file (a training checkpoint is searched for its \
        weights, as aislfd-convert does). Writes an NPZ with image, desc.*, meta.* and, with \
        --keypoints, keypoints, kp_desc and kp_meta. Keypoints outside the image get a warning. \
        RUN.npz must not be one of the inputs (exit 2).

        \(imageReadingHelp)
        """,
        version: AISLFDVersion.text)

    @Argument(help: ArgumentHelp("A .aisw model or a source weights file.", valueName: "model"))
    var model: String

    @Argument(help: ArgumentHelp("PNG, JPEG or .npy image.", valueName: "image"))
    var image: String

    @Option(name: .short, help: ArgumentHelp("The run file to write (NPZ).", valueName: "run.npz"))
    var output: String

    @Option(help: ArgumentHelp("Keypoints, .npy [N, 2] of pixel coordinates (x, y): float32, float64 or integers.", valueName: "kp.npy"))
    var keypoints: String?

    @Option(name: .customLong("repeat"), help: ArgumentHelp("Run the forward pass this many times and report min and median seconds per pass.", valueName: "count"))
    var repetitions: Int = 1

    @Flag(help: "Also write the intermediate activations act.* (for comparing layer by layer).")
    var activations = false

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var stateDict: StateDictOptions
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var format: OutputOptions

    public init() {}

    public func validate() throws {
        if repetitions < 1 { throw ValidationError("--repeat must be at least 1") }
    }

    struct Summary: Encodable {
        var architecture: String
        var precision: String
        var image: [Int]
        var desc: [Int]
        var meta: [Int]
        var keypoints: Int?
        var passes: Int
        var minSeconds: Double
        var medianSeconds: Double
        var threads: Int
        var output: String
    }

    public func run() throws {
        let console = Console.current
        try FileSystem.refuseOverwriting(outputs: [output], inputs: [model, image] + (keypoints.map { [$0] } ?? []))
        // The inputs first: a bad image is refused before the model is loaded.
        let input = try console.image(image, imageOptions)
        let points = try keypoints.map { try console.keypoints($0, for: input) }
        let loaded = try console.model(model, architecture, stateDict)
        let network = try loaded.makeModel(runtime.configuration)

        func timedPass() throws -> (ModelOutputs, Double) {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try blame(image) { try network.forward(image: input, recordActivations: activations) }
            return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        // Earlier passes' outputs are dropped at once: a pass must not run while another
        // holds the buffers it would reuse (it would copy them first).
        let (outputs, times) = try console.withProgress("aislfd-run: \(input.height)x\(input.width) image") { step in
            var times: [Double] = []
            for i in 1..<repetitions {
                step("pass \(i) of \(repetitions)")
                times.append(try timedPass().1)
            }
            step("pass \(repetitions) of \(repetitions)")
            let (outputs, seconds) = try timedPass()
            return (outputs, times + [seconds])
        }

        var arrays = [NamedTensor(key: "image", shape: [1, 3, input.height, input.width], floats: input.values)]
        arrays += outputs.namedArrays.map(NamedTensor.init)
        if let points, let keypoints {
            let described = try blame(keypoints) { try outputs.describe(points) }
            arrays.append(NamedTensor(key: "keypoints", shape: [points.count, 2], floats: points.flatMap { [$0.x, $0.y] }))
            arrays += described.namedArrays.map(NamedTensor.init)
        }
        try NPZWriter.write(arrays, to: output)

        let desc = outputs.desc[0], meta = outputs.meta[0]
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let summary = Summary(architecture: loaded.architecture.rawValue, precision: loaded.precision.rawValue,
                              image: [input.height, input.width], desc: [128, desc.height, desc.width],
                              meta: [meta.channels, meta.height, meta.width], keypoints: points?.count, passes: times.count,
                              minSeconds: sorted[0], medianSeconds: median, threads: network.configuration.threads, output: output)
        var line = "\(summary.architecture) \(summary.precision): \(input.height)x\(input.width) image -> desc 128x\(desc.height)x\(desc.width), meta \(meta.channels)x\(meta.height)x\(meta.width)"
        if let points { line += ", \(points.count) keypoints" }
        let timing = String(format: "forward: %d pass%@, min %.4f s, median %.4f s per pass (%d threads)",
                            times.count, times.count == 1 ? "" : "es", sorted[0], median, network.configuration.threads)
        var lines = [line, timing]
        if LayerTimes.isEnabled {
            // Per pass: each kind's seconds, and the rest of the forward pass.
            let totals = LayerTimes.totals, passes = Double(times.count)
            let kinds = LayerTimes.kinds.map { String(format: "%@ %.4f s", $0, (totals[$0] ?? 0) / passes) }
            let rest = (times.reduce(0, +) - totals.values.reduce(0, +)) / passes
            lines.append("time by layer kind per pass: " + kinds.joined(separator: ", ") + String(format: ", rest %.4f s", rest))
            for (key, seconds) in LayerTimes.layerTotals { lines.append(String(format: "  %.4f s  %@", seconds / passes, key)) }
        }
        lines.append("wrote \(output)")
        try console.report(human: lines.joined(separator: "\n"), document: summary)
    }
}
