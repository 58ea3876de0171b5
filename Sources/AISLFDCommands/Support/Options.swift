import AISLFDSchema
import ArgumentParser

/// `--json`: one JSON document on stdout instead of the human report.
public struct OutputOptions: ParsableArguments {
    @Flag(name: .customLong("json"), help: "Print one JSON document on stdout instead of the human report.")
    public var json = false

    public init() {}
}

/// `--arch ID`: skip detection and check against this architecture.
public struct ArchitectureOption: ParsableArguments {
    @Option(name: .customLong("arch"), help: ArgumentHelp("Architecture id; detected from the tensor names when omitted.",
                                                          valueName: SchemaLibrary.ids.joined(separator: "|")))
    public var id: String?

    public init() {}

    public func validate() throws {
        if let id, !SchemaLibrary.ids.contains(id) {
            throw ValidationError("unknown architecture '\(id)'; expected one of \(SchemaLibrary.ids.joined(separator: ", "))")
        }
    }
}
