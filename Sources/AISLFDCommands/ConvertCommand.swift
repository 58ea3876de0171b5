import AISLFDCore
import AISLFDInputs
import AISLFDReaders
import AISLFDSchema
import ArgumentParser

/// `aislfd-convert INPUT OUTPUT.aisw` and `aislfd-convert INPUT --check`.
public struct ConvertCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aislfd-convert",
        abstract: "Validate PyTorch-exported weights and convert them to a compact .aisw file.",
        discussion: """
        INPUT is an HDF5, NPZ, PyTorch (.pth/.pt) or safetensors file, recognised by its content. \
        A training checkpoint is searched for its weights: the top level or an entry (model_state_dict, \
        state_dict, model, ema, an HDF5 group, ...) whose names are an architecture's once the wrapper \
        prefixes module., _orig_mod. and model. are removed; a note says what was taken (--entry and \
        --strip-prefix decide otherwise). The weights are checked against the architecture's schema \
        first; every problem is listed and nothing is written unless they are valid. Exit status: \
        0 success, 1 invalid weights, 2 usage error, unreadable file, or OUTPUT being INPUT.
        """,
        version: AISLFDVersion.text)

    @Argument(help: ArgumentHelp("The source weights file.", valueName: "input"))
    var input: String

    @Argument(help: ArgumentHelp("The .aisw file to write (not with --check).", valueName: "output.aisw"))
    var output: String?

    @Flag(help: "Only validate the weights (for CI); write nothing.")
    var check = false

    @Flag(help: "Print every stored tensor's storage, size and rounding error, not only the summary.")
    var verbose = false

    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var stateDict: StateDictOptions
    @OptionGroup var conversion: ConversionArguments
    @OptionGroup var format: OutputOptions

    public init() {}

    public func validate() throws {
        if check, output != nil { throw ValidationError("--check writes nothing; drop OUTPUT") }
        if !check, output == nil { throw ValidationError("missing OUTPUT.aisw (or --check to only validate)") }
    }

    public func run() throws {
        let console = Console.current
        if let output { try FileSystem.refuseOverwriting(outputs: [output], inputs: [input]) }
        let source = try SourceWeights.load(path: input, architecture: architecture.id, selection: stateDict.selection,
                                            hdf5Isolation: .thisProgram)
        let report = source.report
        if check {
            try console.report(human: report.humanReadable, document: report, status: report.valid ? .success : .invalid)
            return
        }
        guard report.valid else {
            // stdout is reserved for the conversion report: people get the problems on stderr.
            if !console.json && !console.quiet { Output.printError(report.humanReadable) }
            Output.printError("\(echoed(input, limit: 4096)): not converted: the weights do not match \(report.architecture)")
            if console.json { try console.report(human: "", document: report, status: .invalid) }
            throw CommandFailure(.invalid)
        }
        guard let output else { return }
        for note in source.contents.notes { console.note(echoed(input, limit: 4096) + ": " + note) }
        let made = try console.withProgress("aislfd-convert: \(conversion.precision.rawValue)") { step in
            try conversion.convert(source.contents, inputPath: input, architecture: report.architecture, progress: step)
        }
        try made.write(to: output)
        let summary = verbose ? made.report.humanReadable : made.report.summary
        try console.report(human: summary + "\nwrote \(output)" + (verbose ? "" : " (--verbose: every tensor)"),
                           document: made.report)
    }
}
