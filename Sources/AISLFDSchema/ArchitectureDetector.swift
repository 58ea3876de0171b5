import AISLFDCore

/// A rename that would make a file's names match an architecture: a common
/// prefix to remove (`model.`, `net.`) or to add (a sub-module saved alone).
public struct PrefixHint: Codable, Equatable, Sendable {
    public enum Change: String, Codable, Sendable {
        case strip
        case add
    }

    public let architecture: String
    public let change: Change
    public let prefix: String
    /// How many of the file's keys the rename turns into keys of the architecture.
    public let count: Int
    /// One file key and what the rename makes of it.
    public let exampleFound: String
    public let exampleExpected: String

    public func apply(to key: String) -> String {
        switch change {
        case .strip: return key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key
        case .add: return prefix + key
        }
    }

    public var description: String {
        switch change {
        case .strip: return "remove the prefix \"\(echoed(prefix))\" from \(count) keys (\(echoed(exampleFound)) -> \(exampleExpected))"
        case .add: return "add the prefix \"\(prefix)\" to \(count) keys (\(echoed(exampleFound)) -> \(exampleExpected))"
        }
    }

    /// The one prefix change that turns the most `unmatched` file keys into
    /// `wanted` keys; prefixes end at a '.'. Ties go to removing, then to the
    /// shorter prefix, so the answer does not depend on dictionary order.
    static func best(unmatched: [String], wanted: Set<String>, architecture: String) -> PrefixHint? {
        struct Tally { var count: Int; let found: String; let expected: String }
        var tallies: [String: Tally] = [:]  // "-prefix" strips, "+prefix" adds
        func tally(_ id: String, found: String, expected: String) {
            tallies[id, default: Tally(count: 0, found: found, expected: expected)].count += 1
        }
        let unmatchedSet = Set(unmatched)
        for key in unmatched {
            for dot in key.indices where key[dot] == "." {
                let rest = String(key[key.index(after: dot)...])
                if wanted.contains(rest) { tally("-" + key[...dot], found: key, expected: rest) }
            }
        }
        for key in wanted.sorted() {
            for dot in key.indices where key[dot] == "." {
                let rest = String(key[key.index(after: dot)...])
                if unmatchedSet.contains(rest) { tally("+" + key[...dot], found: rest, expected: key) }
            }
        }
        let ranked = tallies.sorted { a, b in
            if a.value.count != b.value.count { return a.value.count > b.value.count }
            if a.key.first != b.key.first { return a.key.first == "-" }
            if a.key.count != b.key.count { return a.key.count < b.key.count }
            return a.key < b.key
        }
        guard let (id, tally) = ranked.first else { return nil }
        return PrefixHint(architecture: architecture, change: id.first == "-" ? .strip : .add, prefix: String(id.dropFirst()),
                          count: tally.count, exampleFound: tally.found, exampleExpected: tally.expected)
    }
}

/// Which architecture a set of tensor names belongs to, and how sure that is.
public struct Detection: Codable, Equatable, Sendable {
    public struct Candidate: Codable, Equatable, Sendable {
        public let architecture: String
        /// File keys that are keys of this architecture.
        public let matched: Int
        /// The architecture's keys a valid file must have, and how many of them the file has.
        public let required: Int
        public let requiredMatched: Int
        /// File keys this architecture does not have.
        public let unexpected: Int

        /// Share of the required keys present, 0...1.
        public var coverage: Double { required == 0 ? 0 : Double(requiredMatched) / Double(required) }
    }

    public let keyCount: Int
    /// Best first: most keys matched, then fewest required keys missing.
    public let candidates: [Candidate]
    /// The architecture to validate against; nil when no name matches any,
    /// even after a prefix change.
    public let architecture: String?
    /// Other architectures that match exactly as many keys as the best: the
    /// names cannot tell them apart (for example a file holding only a
    /// backbone and heads).
    public let tied: [String]
    /// The best match covers less than `ArchitectureDetector.minimumCoverage`
    /// of its required keys as the names stand.
    public let lowOverlap: Bool
    /// Set when the names match `prefixHint.architecture` only after a prefix change;
    /// `architecture` is then that architecture.
    public let prefixHint: PrefixHint?

    /// One line for people.
    public var summary: String {
        guard let architecture else {
            return "no architecture matches: none of the \(keyCount) tensor names is a key of the \(candidates.count) architectures"
        }
        if let hint = prefixHint { return "\(architecture) after a rename: \(hint.description)" }
        guard let best = candidates.first else { return architecture }
        var line = "\(architecture): \(best.requiredMatched) of \(best.required) keys present, \(best.unexpected) other"
        if !tied.isEmpty { line += "; as good a match: \(tied.joined(separator: ", ")) (use --arch)" }
        if lowOverlap { line += "; low overlap" }
        return line
    }
}

public enum ArchitectureDetector {
    /// Below this share of an architecture's required keys, a match is reported as low overlap.
    public static let minimumCoverage = 0.5

    /// Detects among the four embedded architectures.
    public static func detect(keys: [String]) throws -> Detection {
        detect(keys: keys, among: try SchemaLibrary.all)
    }

    public static func detect(keys: [String], among schemas: [ArchitectureSchema]) -> Detection {
        let fileKeys = Set(keys)
        let candidates = schemas.map { schema -> Detection.Candidate in
            let schemaKeys = Set(schema.keys)
            return Detection.Candidate(architecture: schema.id, matched: fileKeys.intersection(schemaKeys).count,
                             required: schema.requiredKeys.count,
                             requiredMatched: schema.requiredKeys.filter(fileKeys.contains).count,
                             unexpected: fileKeys.subtracting(schemaKeys).count)
        }.enumerated().sorted { a, b in
            if a.element.matched != b.element.matched { return a.element.matched > b.element.matched }
            let missingA = a.element.required - a.element.requiredMatched, missingB = b.element.required - b.element.requiredMatched
            if missingA != missingB { return missingA < missingB }
            return a.offset < b.offset
        }.map(\.element)

        let best = candidates.first
        let tied = candidates.dropFirst().filter { $0.matched == best?.matched && $0.matched > 0 }.map(\.architecture)
        let lowOverlap = (best?.coverage ?? 0) < minimumCoverage

        var hint: PrefixHint?
        if lowOverlap {
            // Look for a rename that makes one architecture match well.
            hint = schemas.compactMap { schema -> PrefixHint? in
                let schemaKeys = Set(schema.keys)
                return PrefixHint.best(unmatched: keys.filter { !schemaKeys.contains($0) },
                                       wanted: schemaKeys.subtracting(fileKeys), architecture: schema.id)
            }.filter { h in
                guard let c = candidates.first(where: { $0.architecture == h.architecture }) else { return false }
                return Double(c.requiredMatched + h.count) >= minimumCoverage * Double(c.required)
            }.max { $0.count < $1.count }
        }
        let architecture = hint?.architecture ?? best.flatMap { $0.matched > 0 ? $0.architecture : nil }
        return Detection(keyCount: fileKeys.count, candidates: candidates, architecture: architecture,
                         tied: hint == nil ? tied : [], lowOverlap: lowOverlap, prefixHint: hint)
    }
}
