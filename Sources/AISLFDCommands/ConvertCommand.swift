import AISLFDCore
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
        The weights are checked against the architecture's schema first; every problem is listed \
        and nothing is written unless they are valid. Exit status: 0 success, 1 invalid weights, \
        2 usage error or unreadable file.
        """)

    @Argument(help: "The source weights file.")
    var input: String

    @Argument(help: "The .aisw file to write (not with --check).")
    var output: String?

    @Flag(help: "Only validate the weights (for CI); write nothing.")
    var check = false

    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var conversion: ConversionArguments
    @OptionGroup var format: OutputOptions

    public init() {}

    public func validate() throws {
        if check, output != nil { throw ValidationError("--check writes nothing; drop OUTPUT") }
        if !check, output == nil { throw ValidationError("missing OUTPUT.aisw (or --check to only validate)") }
    }

    public func run() throws {
        let contents = try WeightsReader.read(path: input, hdf5Isolation: .thisProgram)
        let report: ValidationReport
        do {
            report = try Validator.check(contents, file: input, architecture: architecture.id)
        } catch let error as SchemaError {
            throw FileError(path: input, problem: error, status: .invalid)
        }
        if check {
            Output.print(format.json ? try report.jsonText() : report.humanReadable)
            if !report.valid { throw CommandFailure(.invalid) }
            return
        }
        guard report.valid else {
            // The report goes to stderr: stdout is reserved for the conversion report.
            Output.printError(report.humanReadable)
            throw CommandFailure(.invalid, "\(input): not converted: the weights do not match \(report.architecture)")
        }
        guard let output else { return }
        try conversion.convert(contents, inputPath: input, architecture: report.architecture, to: output, json: format.json)
    }
}
