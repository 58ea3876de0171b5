import AISLFDCore
import AISLFDFormat
import AISLFDReaders
import AISLFDRuntime
import AISLFDSchema
import Foundation

public enum ModelFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Source weights that do not match their architecture's schema; the first problem and a count.
    case invalidWeights(architecture: String, firstProblem: String, count: Int)
    /// `--arch` named another architecture than the converted file holds.
    case architectureMismatch(asked: String, found: String)
    case notAModel(String)

    public var description: String {
        switch self {
        case .invalidWeights(let arch, let first, let count):
            return "not valid \(arch) weights (\(count) problem\(count == 1 ? "" : "s"); first: \(first)); run aislfd-convert --check for all"
        case .architectureMismatch(let asked, let found):
            return "the file holds a \(found) model, not the \(asked) asked for"
        case .notAModel(let what): return "\(what), not a model"
        }
    }
}

/// The kinds of file the commands take, recognised by content, never by extension.
public enum FileKind: Equatable, Sendable {
    case aisw
    case source(SourceFormat)

    /// The kind of the file at `path`, or nil for a readable file of none of these kinds
    /// (an image, say). Reads the file's first bytes once.
    public static func of(path: String) throws -> FileKind? {
        let prefix: [UInt8]
        do { prefix = try FileSystem.readPrefix(path: path, count: WeightsReader.prefixLength) } catch { throw FileError(path: path, problem: error) }
        if prefix.starts(with: AISWFormat.magic) { return .aisw }
        return WeightsReader.format(ofPrefix: prefix).map(FileKind.source)
    }

    public var name: String {
        switch self {
        case .aisw: return "aisw"
        case .source(let f): return f.rawValue
        }
    }
}

/// A model's weights as loaded from any supported file: a converted `.aisw` of any
/// precision (dequantized once), or a source weights file checked against its
/// architecture's schema first.
public struct ModelFile: Sendable {
    public let path: String
    public let weights: ModelWeights
    /// Whether BatchNorms were folded by a converter.
    public let folded: Bool
    /// What reading a source file did: the entry taken, prefixes stripped (for the commands to show).
    public let notes: [String]

    public var architecture: Architecture { weights.architecture }
    /// How the weights were stored: this picks verification tolerances.
    public var precision: Precision { weights.precision }

    /// `architecture`: refuse a file of another one (and skip detection for source weights).
    /// `selection`: where in a source file the weights are, when the search should not decide.
    /// `hdf5Isolation`: how to read HDF5 in another process (the commands pass themselves).
    public static func load(path: String, architecture: String? = nil, selection: StateDictSelection = StateDictSelection(),
                            hdf5Isolation: HDF5Isolation? = nil) throws -> ModelFile {
        switch try FileKind.of(path: path) {
        case .aisw:
            let weights = try ModelWeights(contentsOf: URL(fileURLWithPath: path))
            if let architecture, architecture != weights.architecture.rawValue {
                throw FileError(path: path, problem: ModelFileError.architectureMismatch(asked: architecture, found: weights.architecture.rawValue),
                                status: .invalid)
            }
            return ModelFile(path: path, weights: weights, folded: !weights.foldedLayers.isEmpty, notes: [])
        case .source(.npy):
            throw FileError(path: path, problem: ModelFileError.notAModel("a single npy array"))
        case .source(let format):
            let source = try SourceWeights.load(path: path, format: format, architecture: architecture, selection: selection,
                                                hdf5Isolation: hdf5Isolation)
            return try fromSource(source, path: path)
        case nil:
            throw FileError(path: path, problem: WeightsReaderError.unrecognised)
        }
    }

    /// Validated source weights; the BatchNorm eps is the schema's.
    static func fromSource(_ source: SourceWeights, path: String) throws -> ModelFile {
        let report = source.report
        let schema: ArchitectureSchema
        do { schema = try SchemaLibrary.load(id: report.architecture) } catch {
            throw FileError(path: path, problem: error, status: .invalid)
        }
        guard report.valid, let arch = Architecture(rawValue: report.architecture) else {
            throw FileError(path: path, problem: ModelFileError.invalidWeights(
                architecture: report.architecture, firstProblem: report.problems.first?.message ?? "", count: report.problems.count),
                status: .invalid)
        }
        let epsilons = schema.batchNormEpsilons
        guard epsilons.count <= 1 else {
            throw FileError(path: path, problem: ModelFileError.notAModel("schema \(schema.id) gives its BatchNorms different eps (the runtime takes one)"),
                            status: .invalid)
        }
        let weights = ModelWeights(architecture: arch, contents: source.contents,
                                   batchNormEpsilon: epsilons.first ?? ModelWeights.pytorchBatchNormEpsilon)
        return ModelFile(path: path, weights: weights, folded: false, notes: source.contents.notes)
    }

    /// The network, prepared; load errors name the file.
    public func makeModel(_ configuration: RuntimeConfiguration = RuntimeConfiguration()) throws -> Model {
        do { return try Model(weights: weights, configuration: configuration) } catch { throw FileError(path: path, problem: error, status: .invalid) }
    }
}

/// Source weights as every command takes them: read by content, the state_dict found in the
/// file (`StateDictSearch`), and checked against its architecture's schema.
public struct SourceWeights: Sendable {
    /// The state_dict found, names unwrapped; its notes say what was taken.
    public let contents: WeightsContents
    public let choice: StateDictChoice
    public let report: ValidationReport

    /// Reads `path` (recognised by content unless `format` is given) and checks it.
    public static func load(path: String, format: SourceFormat? = nil, architecture: String? = nil,
                            selection: StateDictSelection = StateDictSelection(), hdf5Isolation: HDF5Isolation? = nil) throws -> SourceWeights {
        let raw = try format.map { try WeightsReader.read(path: path, format: $0, hdf5Isolation: hdf5Isolation) }
            ?? WeightsReader.read(path: path, hdf5Isolation: hdf5Isolation)
        return try check(raw, path: path, architecture: architecture, selection: selection)
    }

    /// Finds the state_dict in contents already read and validates it.
    public static func check(_ raw: WeightsContents, path: String, architecture: String? = nil,
                             selection: StateDictSelection = StateDictSelection()) throws -> SourceWeights {
        do {
            let (contents, choice) = try StateDictSearch.locate(raw, among: try SchemaLibrary.all, architecture: architecture, selection: selection)
            let report = try Validator.check(contents, file: path, architecture: architecture)
            return SourceWeights(contents: contents, choice: choice, report: report)
        } catch let e as StateDictSearchError {
            throw FileError(path: path, problem: e)
        } catch let e as FileError {
            throw e
        } catch {
            throw FileError(path: path, problem: error, status: .invalid)
        }
    }
}
