import AISLFDCore
import AISLFDIO
import AISLFDSchema

public enum ModelFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Source weights that do not match their architecture's schema; the first problem and a count.
    case invalidWeights(architecture: String, firstProblem: String, count: Int)

    public var description: String {
        switch self {
        case .invalidWeights(let arch, let first, let count):
            return "not valid \(arch) weights (\(count) problem\(count == 1 ? "" : "s"); first: \(first)); run aislfd-convert --check for all"
        }
    }
}

/// A model's weights as loaded from any supported file: a converted `.aisw` of any
/// precision (dequantized once, here), or a source weights file checked against its
/// architecture's schema first.
public struct ModelFile: Sendable {
    public let path: String
    public let weights: ModelWeights
    /// How the weights were stored: `fp32`, `fp16` or `int8`; this picks verification tolerances.
    public let precision: String
    /// Whether BatchNorms were folded by a converter.
    public let folded: Bool
    /// `aisw`, or the source format (`hdf5`, `npz`, `pytorch`, `safetensors`).
    public let format: String

    public var architecture: String { weights.arch }

    public static func load(path: String, architecture: String? = nil) throws -> ModelFile {
        if try WeightsReader.kind(ofFileAt: path) == .aisw {
            let file = try AISWFile.open(path: path, verifyData: true)
            var tensors: [String: WeightTensor] = [:]
            for entry in file.tensors {
                tensors[entry.key] = WeightTensor(shape: entry.shape, values: try file.floats(entry.key))
            }
            let meta = file.metadata
            if let architecture, architecture != meta.architecture {
                throw FileError(path: path, problem: RuntimeError.unknownArchitecture("\(architecture) asked for, the file holds \(meta.architecture)"))
            }
            let weights = ModelWeights(arch: meta.architecture, tensors: tensors, foldedLayers: Set(meta.folds.map(\.from)))
            return ModelFile(path: path, weights: weights, precision: meta.options.precision, folded: !meta.folds.isEmpty, format: "aisw")
        }
        let contents = try WeightsReader.read(path: path)
        let report: ValidationReport
        do {
            report = try Validator.check(contents, file: path, architecture: architecture)
        } catch {
            throw FileError(path: path, problem: error, status: .invalid)
        }
        guard report.valid else {
            throw FileError(path: path, problem: ModelFileError.invalidWeights(
                architecture: report.architecture, firstProblem: report.problems.first?.message ?? "", count: report.problems.count),
                status: .invalid)
        }
        let halfPrecision = contents.tensors.contains { $0.dtype == .float16 || $0.dtype == .bfloat16 }
        return ModelFile(path: path, weights: ModelWeights(arch: report.architecture, contents: contents),
                         precision: halfPrecision ? "fp16" : "fp32", folded: false, format: contents.format)
    }

    /// The network, prepared; load errors name the file.
    public func makeModel() throws -> Model {
        do { return try Model(weights: weights) } catch { throw FileError(path: path, problem: error, status: .invalid) }
    }
}
