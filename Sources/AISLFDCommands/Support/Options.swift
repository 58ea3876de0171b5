import AISLFDImages
import AISLFDInputs
import AISLFDSchema
import ArgumentParser

/// `--json` and `--quiet`: what the command prints (see `Console`).
public struct OutputOptions: ParsableArguments {
    @Flag(name: .customLong("json"),
          help: "Print one JSON document on stdout instead of the human report, for every outcome (errors too), with the exit status in it.")
    public var json = false

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Print no report, warnings, notes or progress; errors only.")
    public var quiet = false

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

/// `--entry NAME` and `--strip-prefix PREFIX`: where a training checkpoint keeps the weights,
/// when the search (`StateDictSearch`) should not decide.
public struct StateDictOptions: ParsableArguments {
    @Option(name: .customLong("entry"),
            help: ArgumentHelp("Take the weights from this entry of a checkpoint (e.g. ema, model_state_dict; '' for the top level) "
                               + "instead of the one whose names match an architecture.", valueName: "name"))
    var entry: String?

    @Option(name: .customLong("strip-prefix"),
            help: ArgumentHelp("Remove this prefix from the tensor names (repeatable); module., _orig_mod. and model. "
                               + "are removed on their own when every name has them.", valueName: "prefix"))
    var stripPrefixes: [String] = []

    public init() {}

    var selection: StateDictSelection { StateDictSelection(entry: entry, stripPrefixes: stripPrefixes) }
}

/// `--ignore-orientation`: read images as stored, without their EXIF orientation.
public struct ImageOptions: ParsableArguments {
    @Flag(name: .customLong("ignore-orientation"),
          help: "Read PNG and JPEG pixels as stored; by default a photo's EXIF orientation turns them upright, as OpenCV's imread does.")
    var ignoreOrientation = false

    public init() {}

    var orientation: ImageReader.Orientation { ignoreOrientation ? .ignore : .apply }
}

/// How every command reads images, for `--help`.
let imageReadingHelp = """
Images: PNG and JPEG are read as RGB, each byte / 255 (alpha dropped, not blended; gray \
repeated into R, G and B; 16-bit samples cut to their high byte, as OpenCV's imread does; \
palettes expanded), turned upright by their EXIF orientation unless --ignore-orientation; \
binary PPM (P6) and PGM (P5) likewise, scaled to 8 bits when their maximum is below 255. \
Truncated or garbled pixel data is an error. An .npy image is float32 [3, H, W] or [1, 3, H, W] \
used as is: NaN or infinite values are an error (exit 1), values outside [0, 1] a warning.
"""
