import AISLFDCore
import Foundation

/// The metadata section of an `.aisw` file: what the weights are and exactly how they were
/// made. Every field is required (empty collections are fine), so a file either says all of
/// this or does not open. JSON names are snake_case; docs/aisw-format.md lists them.
public struct AISWMetadata: Codable, Equatable, Sendable {
    public struct Schema: Codable, Equatable, Sendable {
        /// Schema id, e.g. `aislfd-c`.
        public var id: String
        /// SHA-256 (hex) of the schema file the weights were validated against.
        public var sha256: String

        public init(id: String, sha256: String) {
            self.id = id
            self.sha256 = sha256
        }
    }

    public struct Source: Codable, Equatable, Sendable {
        /// File name only (no folders), e.g. `weights.h5`.
        public var fileName: String
        /// SHA-256 (hex) of the whole source file.
        public var sha256: String
        /// Source format: `hdf5`, `npz`, `pytorch`, `safetensors`.
        public var format: String
        public var byteCount: Int

        public init(fileName: String, sha256: String, format: String, byteCount: Int) {
            self.fileName = fileName
            self.sha256 = sha256
            self.format = format
            self.byteCount = byteCount
        }

        enum CodingKeys: String, CodingKey {
            case fileName = "file_name", sha256, format, byteCount = "byte_count"
        }
    }

    public struct Converter: Codable, Equatable, Sendable {
        public var name: String
        public var version: String

        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }
    }

    public struct Options: Codable, Equatable, Sendable {
        /// `fp32`, `fp16` or `int8`: what was asked for (single tensors may be kept wider;
        /// the table says what each one is).
        public var precision: String
        /// Whether folding was on (`--no-fold` makes it false).
        public var fold: Bool
        /// Patterns of tensors kept at fp32 whatever the precision.
        public var keep: [String]
        /// Any other option as given (e.g. a clamp setting), by option name.
        public var other: [String: JSONValue]

        public init(precision: String, fold: Bool, keep: [String] = [], other: [String: JSONValue] = [:]) {
            self.precision = precision
            self.fold = fold
            self.keep = keep
            self.other = other
        }
    }

    /// One pass of the converter, in the order they ran.
    public struct Pass: Codable, Equatable, Sendable {
        public var name: String
        /// What the pass did, in its own terms (counts, tolerances, errors measured, ...).
        public var details: JSONValue

        public init(name: String, details: JSONValue = .object([:])) {
            self.name = name
            self.details = details
        }
    }

    /// One folding step: the module `from` was folded into the module `into` and removed.
    public struct Fold: Codable, Equatable, Sendable {
        /// e.g. `batchnorm-into-preceding-conv`.
        public var kind: String
        /// state_dict prefix of the removed module, e.g. `msfe.stem.bn`.
        public var from: String
        /// state_dict prefix of the module that absorbed it, e.g. `msfe.stem.conv`.
        public var into: String

        public init(kind: String, from: String, into: String) {
            self.kind = kind
            self.from = from
            self.into = into
        }
    }

    /// A convolution that computes in int8 (version 2): how its input becomes bytes,
    /// `q = clamp(round_half_even(x / input_scale) + input_zero_point, 0, 255)`.
    public struct Int8Compute: Codable, Equatable, Sendable {
        public var inputScale: Float
        public var inputZeroPoint: Int

        public init(inputScale: Float, inputZeroPoint: Int) {
            self.inputScale = inputScale
            self.inputZeroPoint = inputZeroPoint
        }

        enum CodingKeys: String, CodingKey {
            case inputScale = "input_scale", inputZeroPoint = "input_zero_point"
        }
    }

    /// Architecture id: `lisrd`, `aislfd-a`, `aislfd-b`, `aislfd-c`.
    public var architecture: String
    /// The architecture's configuration (channels, variants, meta module settings, ...).
    public var architectureConfig: [String: JSONValue]
    public var schema: Schema
    public var source: Source
    public var converter: Converter
    public var options: Options
    public var passes: [Pass]
    public var folds: [Fold]
    /// For each stored tensor that is not a plain copy of a source tensor: what was done to
    /// it, in order (e.g. "folded msfe.stem.bn", "int8 per channel, max abs error 3.1e-4").
    public var tensorHistory: [String: [String]]
    /// Anything else a user needs to know.
    public var extra: [String: JSONValue]
    /// Version 2: the convolutions that compute in int8, by weight key (each an int8 tensor
    /// with one scale per output channel); nil (absent) when every layer computes in fp32.
    public var int8Compute: [String: Int8Compute]?

    public init(architecture: String, architectureConfig: [String: JSONValue] = [:], schema: Schema,
                source: Source, converter: Converter, options: Options, passes: [Pass] = [],
                folds: [Fold] = [], tensorHistory: [String: [String]] = [:], extra: [String: JSONValue] = [:],
                int8Compute: [String: Int8Compute]? = nil) {
        self.architecture = architecture
        self.architectureConfig = architectureConfig
        self.schema = schema
        self.source = source
        self.converter = converter
        self.options = options
        self.passes = passes
        self.folds = folds
        self.tensorHistory = tensorHistory
        self.extra = extra
        self.int8Compute = int8Compute
    }

    enum CodingKeys: String, CodingKey {
        case architecture, architectureConfig = "architecture_config", schema, source, converter, options
        case passes, folds, tensorHistory = "tensor_history", extra, int8Compute = "int8_compute"
    }

    /// The canonical JSON bytes stored in the file.
    public func canonicalJSON() throws -> [UInt8] {
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(self)
        } catch {
            throw AISWError.invalidMetadata("cannot encode: \(error)")
        }
        do {
            // The writer checks the length itself, with its own error.
            return try AISWMetadata.parseJSON([UInt8](encoded), maxBytes: .max).canonicalBytes()
        } catch let error as JSONWriteError {
            throw AISWError.invalidMetadata(error.message)
        }
    }

    /// Strict JSON (no duplicate keys, depth capped), its errors as `invalidMetadata`.
    static func parseJSON(_ bytes: [UInt8], maxBytes: Int = AISWFormat.maxMetadataLength) throws -> JSONValue {
        do {
            return try JSONValue.parse(bytes, maxDepth: AISWFormat.maxMetadataDepth, maxBytes: maxBytes)
        } catch let error as JSONParseError {
            throw AISWError.invalidMetadata("JSON at byte \(error.offset): \(error.message)")
        }
    }

    /// Decodes stored metadata; `bytes` must already have passed `parseJSON`.
    static func decode(_ bytes: [UInt8]) throws -> AISWMetadata {
        do {
            return try JSONDecoder().decode(AISWMetadata.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, context) {
            throw AISWError.invalidMetadata("missing \(path(context.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, context) {
            throw AISWError.invalidMetadata("wrong type at \(path(context.codingPath))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw AISWError.invalidMetadata("null at \(path(context.codingPath))")
        } catch {
            throw AISWError.invalidMetadata("\(error)")
        }
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
