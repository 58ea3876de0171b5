import AISLFDCore
import Foundation

public enum ProblemKind: String, Codable, Sendable {
    case missing
    case unexpected
    case shape
    case dtype
    case nonfinite
    case negativeVariance = "negative_variance"
    case prefix
}

/// What a problem expected or found: a shape (JSON: an array of integers) or a text (a
/// dtype class, a key).
public enum ProblemDetail: Codable, Equatable, Sendable, ExpressibleByStringLiteral {
    case shape([Int])
    case text(String)

    public init(stringLiteral value: String) { self = .text(value) }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let shape = try? c.decode([Int].self) { self = .shape(shape) } else { self = .text(try c.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .shape(let shape): try c.encode(shape)
        case .text(let text): try c.encode(text)
        }
    }
}

public struct Problem: Codable, Equatable, Sendable {
    public let kind: ProblemKind
    /// The tensor's key; for `prefix`, the prefix.
    public let key: String
    /// One line naming the tensor and the problem.
    public let message: String
    public let expected: ProblemDetail?
    public let found: ProblemDetail?
    /// nonfinite: NaN and infinite values; negative_variance: negative values;
    /// prefix: keys the rename explains.
    public let count: Int?

    public init(kind: ProblemKind, key: String, message: String, expected: ProblemDetail? = nil, found: ProblemDetail? = nil, count: Int? = nil) {
        self.kind = kind
        self.key = key
        self.message = message
        self.expected = expected
        self.found = found
        self.count = count
    }
}

/// Everything wrong with one weights file against one architecture, found in
/// one pass. The JSON field names are an interface (`--json`): keep them.
public struct ValidationReport: Codable, Equatable, Sendable {
    public var file: String?
    public var format: String
    public var architecture: String
    public var schemaSha256: String
    /// Whether the architecture was detected from the names (rather than given).
    public var detected: Bool
    public var valid: Bool
    public var tensorCount: Int
    public var valueCount: Int
    public var problems: [Problem]
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case file, format, architecture, schemaSha256, detected, valid, tensorCount, valueCount, problems, notes
    }

    // `file` is written as null rather than left out, so every field is always there.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(file, forKey: .file)
        try c.encode(format, forKey: .format)
        try c.encode(architecture, forKey: .architecture)
        try c.encode(schemaSha256, forKey: .schemaSha256)
        try c.encode(detected, forKey: .detected)
        try c.encode(valid, forKey: .valid)
        try c.encode(tensorCount, forKey: .tensorCount)
        try c.encode(valueCount, forKey: .valueCount)
        try c.encode(problems, forKey: .problems)
        try c.encode(notes, forKey: .notes)
    }

    /// The `--json` document: pretty-printed, keys sorted.
    public func jsonText() throws -> String { try prettyJSON(self) }

    /// One line per problem (prefixed with the file when known), the notes,
    /// then a summary line.
    public var humanReadable: String {
        let lead = file.map { "\($0): " } ?? ""
        var lines = problems.map { lead + $0.message }
        lines += notes.map { lead + "note: " + $0 }
        let name = architecture + (detected ? " (detected from the names)" : "")
        if valid {
            lines.append("OK: \(name), \(tensorCount) tensors, \(grouped(valueCount)) values")
        } else {
            lines.append("\(name): \(tensorCount) tensors, \(problems.count) problem\(problems.count == 1 ? "" : "s")")
        }
        return lines.joined(separator: "\n")
    }
}

public enum Validator {
    /// Checks names, shapes, dtypes and values of `contents` against `schema`.
    /// Float roles take any floating-point dtype (it becomes float32); integer
    /// and bool tensors are refused for them: a weight stored as an integer is
    /// a broken export, not something to convert silently. Integer roles take
    /// any integer dtype.
    public static func validate(_ contents: WeightsContents, against schema: ArchitectureSchema,
                                file: String? = nil, detected: Bool = false) -> ValidationReport {
        var problems: [Problem] = []
        var notes = contents.notes
        let arch = schema.id

        var firstIndex: [String: Int] = [:]
        var unexpected: [Problem] = []
        for (i, tensor) in contents.tensors.enumerated() {
            if firstIndex[tensor.key] != nil {
                unexpected.append(Problem(kind: .unexpected, key: tensor.key, message: "\(echoed(tensor.key)): appears more than once"))
                continue
            }
            firstIndex[tensor.key] = i
            if schema.tensor(tensor.key) == nil {
                unexpected.append(Problem(kind: .unexpected, key: tensor.key,
                                          message: "\(echoed(tensor.key)): not a tensor of \(arch) (\(tensor.dtype.rawValue) \(shapeText(tensor.shape)))",
                                          found: .shape(tensor.shape)))
            }
        }

        let absent = schema.tensors.filter { firstIndex[$0.key] == nil }
        let missing = absent.filter { !$0.optional }.map { spec in
            Problem(kind: .missing, key: spec.key,
                    message: "\(spec.key): missing (\(spec.role.rawValue), shape \(shapeText(spec.shape)))",
                    expected: .shape(spec.shape))
        }
        let absentOptional = absent.filter(\.optional)
        if !absentOptional.isEmpty {
            let roles = Set(absentOptional.map(\.role.rawValue)).sorted().joined(separator: ", ")
            notes.append("\(absentOptional.count) optional tensors absent (\(roles)): not needed for inference")
        }

        if !missing.isEmpty,
           let hint = PrefixHint.best(unmatched: contents.tensors.map(\.key).filter { schema.tensor($0) == nil },
                                      wanted: Set(absent.map(\.key)), architecture: arch),
           hint.count * 2 >= missing.count {
            problems.append(Problem(kind: .prefix, key: hint.prefix,
                                    message: "names differ from \(arch) only by a prefix: \(hint.description)"
                                        + (hint.change == .strip ? " (--strip-prefix \(echoed(hint.prefix)))" : ""),
                                    expected: .text(hint.exampleExpected), found: .text(hint.exampleFound), count: hint.count))
        }
        problems += missing
        problems += unexpected

        for spec in schema.tensors {
            guard let i = firstIndex[spec.key] else { continue }
            problems += check(contents.tensors[i], against: spec)
        }

        return ValidationReport(file: file, format: contents.format, architecture: arch, schemaSha256: schema.sha256,
                                detected: detected, valid: problems.isEmpty, tensorCount: contents.tensors.count,
                                valueCount: contents.tensors.reduce(0) { $0 + $1.elementCount },
                                problems: problems, notes: notes)
    }

    /// Validates against `architecture`, or against the architecture the names
    /// point to when it is nil. Throws when the id is unknown or no
    /// architecture matches the names.
    public static func check(_ contents: WeightsContents, file: String? = nil, architecture: String? = nil) throws -> ValidationReport {
        if let architecture {
            return validate(contents, against: try SchemaLibrary.load(id: architecture), file: file, detected: false)
        }
        let detection = try ArchitectureDetector.detect(keys: contents.tensors.map(\.key))
        guard let id = detection.architecture else { throw SchemaError.undetected(detection.summary) }
        var report = validate(contents, against: try SchemaLibrary.load(id: id), file: file, detected: true)
        if !detection.tied.isEmpty || detection.lowOverlap { report.notes.append("detection: " + detection.summary) }
        return report
    }

    private static func check(_ tensor: NamedTensor, against spec: TensorSpec) -> [Problem] {
        var problems: [Problem] = []
        let key = spec.key
        if tensor.shape != spec.shape {
            problems.append(Problem(kind: .shape, key: key,
                                    message: "\(key): shape \(shapeText(spec.shape)) expected, found \(shapeText(tensor.shape))",
                                    expected: .shape(spec.shape), found: .shape(tensor.shape)))
        }
        if !spec.dtypeClass.accepts(tensor.dtype) {
            let message: String
            switch spec.dtypeClass {
            case .float: message = "\(key): dtype \(tensor.dtype.rawValue) cannot become float32 (\(spec.role.rawValue) must be floating-point)"
            case .integer: message = "\(key): dtype \(tensor.dtype.rawValue) found, an integer type expected (\(spec.role.rawValue))"
            }
            problems.append(Problem(kind: .dtype, key: key, message: message,
                                    expected: .text(spec.dtypeClass.rawValue), found: .text(tensor.dtype.rawValue)))
        }
        if tensor.dtype.isFloatingPoint {
            let (nan, inf) = tensor.nonFiniteCounts()
            if nan + inf > 0 {
                let parts = [nan > 0 ? "\(grouped(nan)) NaN" : nil, inf > 0 ? "\(grouped(inf)) infinite" : nil].compactMap { $0 }
                problems.append(Problem(kind: .nonfinite, key: key,
                                        message: "\(key): \(parts.joined(separator: " and ")) of \(grouped(tensor.elementCount)) values",
                                        count: nan + inf))
            }
            if spec.role == .bnRunningVar {
                let negative = tensor.floats().reduce(0) { $0 + ($1 < 0 ? 1 : 0) }
                if negative > 0 {
                    problems.append(Problem(kind: .negativeVariance, key: key,
                                            message: "\(key): \(grouped(negative)) of \(grouped(tensor.elementCount)) running variances are negative",
                                            count: negative))
                }
            }
        }
        return problems
    }
}

