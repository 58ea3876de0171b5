import AISLFDCore
import AISLFDInputs
import AISLFDRuntime
import AISLFDVerify
import ArgumentParser

/// `aislfd-verify MODEL --reference REF.npz`: parity against PyTorch.
public struct VerifyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aislfd-verify",
        abstract: "Run a model on a PyTorch reference's inputs and check every output against it.",
        discussion: """
        Tolerances follow the precision the weights are stored in (docs/verification.md): fp32 maps within \
        1e-4 of their largest value and keypoint cosines >= 0.99999; fp16 cosines >= 0.99995 and \
        nearest-neighbour agreement >= 0.99; int8 cosines >= 0.998 (kp_desc) and 0.999 (kp_meta), \
        agreement >= 0.95. Exit status 1 when any decisive figure is out of tolerance.
        """,
        version: AISLFDVersion.text)

    @Argument(help: ArgumentHelp("A .aisw model or a source weights file.", valueName: "model"))
    var model: String

    @Option(help: ArgumentHelp("Reference NPZ written by tools/make_reference.py.", valueName: "ref.npz"))
    var reference: String

    @Flag(name: .customLong("per-layer"), help: "Also compare the reference's act.* activations and name the first layer out of tolerance.")
    var perLayer = false

    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var stateDict: StateDictOptions
    @OptionGroup var format: OutputOptions

    public init() {}

    public func run() throws {
        let console = Console.current
        let loaded = try console.model(model, architecture, stateDict)
        let report = try Verifier.verify(loaded, referencePath: reference, perLayer: perLayer)
        try console.report(human: report.humanReadable, document: report, status: report.pass ? .success : .invalid)
    }
}
