import AISLFDCore
import AISLFDEval
import AISLFDInputs
import AISLFDReaders
import AISLFDRuntime
import ArgumentParser
import Foundation

extension DatasetLayout: ExpressibleByArgument {}

/// `aislfd-eval MODEL DATASET`: the paper's evaluation (docs/evaluation.md).
public struct EvalCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aislfd-eval",
        abstract: "Evaluate a model on an HPatches- or RDNIM-layout dataset: homography estimation, precision, recall, MMA.",
        discussion: """
        As LISRD's evaluation defines them (docs/evaluation.md): per pair the detector's keypoints (or LISRD's \
        export files), the --num-kp best that stay 3 px inside the other image under the ground truth, mutual \
        nearest neighbours under Eq. 1, then H-estimation (RANSAC homography, mean corner error <= threshold), \
        precision, recall and MMA at 1..10 px; averaged per subset (illumination i_*, viewpoint v_*) and overall. \
        --compare evaluates a second model on the same keypoints and prints the difference (task-level parity \
        of a converted model). A missing or malformed file of the dataset is named, exit 2. --arch, --entry \
        and --strip-prefix apply to both models.
        """,
        version: AISLFDVersion.text)

    @Argument(help: ArgumentHelp("A .aisw model or a source weights file.", valueName: "model"))
    var model: String

    @Argument(help: ArgumentHelp("The dataset folder.", valueName: "dataset"))
    var dataset: String

    @Option(help: ArgumentHelp("hpatches or rdnim (default: rdnim when the folder has references/).", valueName: "layout"))
    var layout: DatasetLayout?

    @Option(help: ArgumentHelp("RDNIM reference: day or night.", valueName: "day|night"))
    var reference = "day"

    @Option(name: .customLong("num-kp"), help: ArgumentHelp("Keypoints kept per image.", valueName: "count"))
    var numberOfKeypoints = 1000

    @Option(help: ArgumentHelp("Correctness threshold in pixels.", valueName: "px"))
    var threshold = 3.0

    @Option(help: ArgumentHelp("eq1 (Eq. 1) or squared (LISRD's 2 - 2 l.l).", valueName: "eq1|squared"))
    var distance: DistanceKind = .eq1

    @Option(help: ArgumentHelp("detector (built in) or files:NAME (LISRD's export, <image>.NAME).", valueName: "source"))
    var keypoints = "detector"

    @Option(help: ArgumentHelp("LISRD's resize-and-crop of both images to HxW, homographies adapted.", valueName: "HxW"))
    var resize: String?

    @Option(help: ArgumentHelp("Draw the MMA curves (PNG).", valueName: "mma.png"))
    var plot: String?

    @Option(help: ArgumentHelp("Write one NPZ per pair into this folder (created).", valueName: "dir"))
    var dump: String?

    @Option(help: ArgumentHelp("A second model evaluated on the same keypoints.", valueName: "model"))
    var compare: String?

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var stateDict: StateDictOptions
    @OptionGroup var format: OutputOptions

    public init() {}

    public func validate() throws {
        if !["day", "night"].contains(reference) { throw ValidationError("--reference must be day or night") }
        if numberOfKeypoints < 1 { throw ValidationError("--num-kp must be at least 1") }
        if !(threshold > 0) || !threshold.isFinite { throw ValidationError("--threshold must be a positive number of pixels") }
        if KeypointSource(keypoints) == nil { throw ValidationError("--keypoints must be detector or files:NAME") }
        if let resize, Self.size(resize) == nil { throw ValidationError("--resize must be HxW with H, W >= 24, e.g. 480x640") }
    }

    static func size(_ text: String) -> (height: Int, width: Int)? {
        let parts = text.split(separator: "x")
        guard parts.count == 2, let h = Int(parts[0]), let w = Int(parts[1]), h >= Model.minimumImageSide, w >= Model.minimumImageSide,
              h <= 8192, w <= 8192 else { return nil }
        return (h, w)
    }

    public func run() throws {
        var settings = EvaluationSettings()
        settings.layout = layout
        settings.reference = reference
        settings.numberOfKeypoints = numberOfKeypoints
        settings.threshold = threshold
        settings.distance = distance
        settings.keypoints = KeypointSource(keypoints) ?? .detector
        settings.resize = resize.flatMap(Self.size)
        try refuseOutputsOverInputs()

        let console = Console.current
        let evaluator = try Evaluator(dataset: dataset, settings: settings)
        var runs: [(name: String, file: ModelFile, result: EvaluationResult)] = []
        for path in [model] + (compare.map { [$0] } ?? []) {
            let file = try console.model(path, architecture, stateDict)
            let network = try file.makeModel(runtime.configuration)
            let name = URL(fileURLWithPath: path).lastPathComponent
            let result = try console.withProgress("aislfd-eval") { step in
                try evaluator.evaluate(network) { n, total, r in
                    step("\(echoed(name, limit: 200)) pair \(n) of \(total) (\(r.pair.name))")
                }
            }
            runs.append((name, file, result))
        }
        try writeOutputs(runs.map(\.result))

        let reports = runs.map { EvaluationReport(model: $0.file.path, architecture: $0.file.architecture, precision: $0.file.precision, result: $0.result) }
        struct Compared: Encodable { var runs: [EvaluationReport] }
        let human = evaluationTable(runs.map { ($0.name, $0.result) })
        if reports.count == 1 {
            try console.report(human: human, document: reports[0])
        } else {
            try console.report(human: human, document: Compared(runs: reports))
        }
    }

    /// The plot and the dumps are written together at the end, all or none.
    private func writeOutputs(_ results: [EvaluationResult]) throws {
        var written: [String] = []
        do {
            if let dump {
                try blame(dump) { try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true) }
                for r in results[0].pairs {
                    try EvaluationDump.write(r, to: dump)
                    written.append(dump + "/" + r.pair.name + ".npz")
                }
            }
            if let plot {
                var curves: [MMAPlot.Curve] = []
                for (n, r) in results.enumerated() {
                    let name = n == 0 ? URL(fileURLWithPath: model).lastPathComponent : URL(fileURLWithPath: compare ?? "").lastPathComponent
                    for (label, s) in [("illumination", r.illumination), ("viewpoint", r.viewpoint), ("all", r.mean)] {
                        if let s { curves.append(MMAPlot.Curve(label: "\(name) \(label)", values: s.mma)) }
                    }
                }
                try MMAPlot.write(curves, dashedFrom: results.count > 1 ? curves.count / 2 : nil, to: plot)
            }
        } catch {
            for path in written { try? FileManager.default.removeItem(atPath: path) }
            throw error
        }
    }

    /// No output may be one of the inputs: the models, or anything inside the dataset.
    private func refuseOutputsOverInputs() throws {
        try FileSystem.refuseOverwriting(outputs: [plot].compactMap { $0 }, inputs: [model] + (compare.map { [$0] } ?? []))
        for output in [plot, dump].compactMap({ $0 }) {
            let resolved = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
            let folder = URL(fileURLWithPath: dataset).standardizedFileURL.resolvingSymlinksInPath().path
            if resolved == folder || resolved.hasPrefix(folder + "/") {
                throw FileError(path: output, problem: CommandProblem.outputIsInput(dataset))
            }
        }
    }
}

/// Problems of a command's arguments found by looking at the files.
enum CommandProblem: Error, CustomStringConvertible {
    case outputIsInput(String)

    var description: String {
        switch self {
        case .outputIsInput(let input): return "is inside the input \(echoed(input, limit: 400)); refusing to write there"
        }
    }
}
