import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import AISLFDSchema
import ArgumentParser

extension Precision: ExpressibleByArgument {}

/// The options that shape an .aisw file.
public struct ConversionArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Storage precision of the weights.", valueName: "fp32|fp16|int8"))
    var precision: Precision = .fp32

    @Flag(name: .customLong("no-fold"), help: "Keep every source tensor as it was (no BatchNorm folding).")
    var noFold = false

    @Flag(help: "Clamp fp16 values beyond +-65504 instead of refusing them.")
    var clamp = false

    @Option(name: .customLong("keep"), help: ArgumentHelp("Keep tensors whose key matches the pattern (* and ?) at fp32; repeatable.", valueName: "pattern"))
    var keep: [String] = []

    @Flag(name: .customLong("no-calibration"),
          help: "fp16/int8: round every weight on its own (no calibration images, GPTQ or mixed precision); fast, less accurate.")
    var noCalibration = false

    @Flag(name: .customLong("weights-only"),
          help: "int8: store the weights in int8 but compute every layer in fp32 (no int8 arithmetic; a version 1 file).")
    var weightsOnly = false

    @Option(name: .customLong("size-budget"),
            help: ArgumentHelp("fp16/int8 with calibration: the file may grow to this fraction of the source's fp32 payload "
                               + "by storing the most sensitive weights wider (default 0.52 for fp16, 0.27 for int8).", valueName: "fraction"))
    var sizeBudget: Double?

    public init() {}

    public func validate() throws {
        guard let sizeBudget else { return }
        guard sizeBudget.isFinite, sizeBudget > 0, sizeBudget <= 1 else {
            throw ValidationError("--size-budget must be a fraction above 0 and at most 1, got \(sizeBudget)")
        }
        guard precision != .fp32, !noCalibration else {
            throw ValidationError("--size-budget needs --precision fp16 or int8 with calibration (no --no-calibration)")
        }
    }

    var options: ConversionOptions {
        ConversionOptions(precision: precision, fold: !noFold, clamp: clamp, keep: keep,
                          calibration: noCalibration ? nil : CalibrationSettings(), sizeBudget: sizeBudget, weightsOnly: weightsOnly)
    }

    /// Converts validated weights; `progress` hears about each calibration step.
    func convert(_ contents: WeightsContents, inputPath: String, architecture: String,
                 progress: ConversionProgress? = nil) throws -> Conversion {
        let schema = try SchemaLibrary.load(id: architecture)
        let digest = try FileDigest.sha256(path: inputPath)
        let fileName = inputPath.split(separator: "/").last.map(String.init) ?? inputPath
        let source = AISWMetadata.Source(fileName: fileName, sha256: digest.hex, format: contents.format, byteCount: digest.byteCount)
        do {
            return try Converter.convert(contents, schema: schema, source: source, options: options, progress: progress)
        } catch let error as ConversionError {
            throw FileError(path: inputPath, problem: error, status: .invalid)
        }
    }
}
