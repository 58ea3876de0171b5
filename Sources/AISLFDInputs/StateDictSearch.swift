import AISLFDCore
import AISLFDSchema

/// What the user said about where the weights are (`--entry`, `--strip-prefix`).
public struct StateDictSelection: Equatable, Sendable {
    /// The container to take the weights from (`ema`, `model_state_dict`); "" the file's top
    /// level; nil: search.
    public var entry: String?
    /// Prefixes to remove from the names besides the wrappers removed on their own.
    public var stripPrefixes: [String]

    public init(entry: String? = nil, stripPrefixes: [String] = []) {
        self.entry = entry
        self.stripPrefixes = stripPrefixes
    }
}

/// Where a file's weights were found and how their names were unwrapped.
public struct StateDictChoice: Equatable, Sendable {
    /// The container the tensors were taken from; "" for the file's top level.
    public var entry: String
    /// Prefixes removed from the names, outermost first (`module.`, `_orig_mod.`).
    public var stripped: [String]
    /// The architecture every taken name belongs to; nil when no entry matched one.
    public var architecture: String?
    /// Other entries whose names match that architecture as well (an EMA copy).
    public var alsoMatching: [String]
    public var tensorCount: Int
}

public enum StateDictSearchError: Error, CustomStringConvertible, Equatable, Sendable {
    case noSuchEntry(String, available: [String])

    public var description: String {
        switch self {
        case .noSuchEntry(let entry, let available):
            let list = available.prefix(12).map { "'\(echoed($0, limit: 60))'" }.joined(separator: ", ")
            return "no entry '\(echoed(entry))' holds tensors (entries: \(available.isEmpty ? "none" : list + (available.count > 12 ? ", …" : "")))"
        }
    }
}

/// Finds the state_dict in what a training script saved: the top level or one of the file's
/// containers (`model_state_dict`, `state_dict`, `model`, `ema`, HDF5 groups, ...), with the
/// wrapper prefixes that DataParallel (`module.`), torch.compile (`_orig_mod.`) and Lightning
/// (`model.`) put on every name removed in any combination. The entry taken is the one whose
/// names, so unwrapped, are all names of an architecture; among several (a model and its EMA
/// copy) the one covering most of the architecture's required tensors, then the first in file
/// order, with a note naming the others. When none matches, the entry and unwrapping that
/// match most names, so validation lists what is wrong with the likeliest candidate.
public enum StateDictSearch {
    /// Removed on their own when every name of an entry starts with one.
    public static let wrapperPrefixes = ["module.", "_orig_mod.", "model."]

    /// `contents` narrowed to the state_dict found, names unwrapped, with notes saying what was
    /// taken and stripped. `architecture` limits the search to that schema.
    public static func locate(_ contents: WeightsContents, among schemas: [ArchitectureSchema], architecture: String? = nil,
                              selection: StateDictSelection = StateDictSelection()) throws -> (WeightsContents, StateDictChoice) {
        let schemas = architecture.map { id in schemas.filter { $0.id == id } } ?? schemas
        let keySets = schemas.map { Set($0.keys) }
        let required = schemas.map { Set($0.requiredKeys) }

        let entries = try candidateEntries(contents, selection.entry)
        struct Candidate {
            var entry: String
            var indices: [Int]
            var names: [String]
            var stripped: [String]
            /// Per schema: names that are its keys, and its required keys among them.
            var known: [Int]
            var requiredFound: [Int]
        }
        func evaluate(_ c: inout Candidate) {
            c.known = keySets.map { keys in c.names.reduce(0) { $0 + (keys.contains($1) ? 1 : 0) } }
            c.requiredFound = required.map { keys in c.names.reduce(0) { $0 + (keys.contains($1) ? 1 : 0) } }
        }

        var states: [Candidate] = []
        for (entry, indices) in entries {
            let cut = entry.isEmpty ? 0 : entry.count + 1
            var c = Candidate(entry: entry, indices: indices, names: indices.map { String(contents.tensors[$0].key.dropFirst(cut)) },
                              stripped: [], known: [], requiredFound: [])
            // The user's prefixes come off wherever they are; the wrappers only when on every name.
            for p in selection.stripPrefixes where c.names.contains(where: { $0.hasPrefix(p) }) {
                c.names = c.names.map { $0.hasPrefix(p) ? String($0.dropFirst(p.count)) : $0 }
                c.stripped.append(p)
            }
            evaluate(&c)
            states.append(c)
            // (Every name of none has any prefix: an entry without tensors strips nothing.)
            while !c.names.isEmpty, let p = wrapperPrefixes.first(where: { p in c.names.allSatisfy { $0.hasPrefix(p) && $0.count > p.count } }) {
                c.names = c.names.map { String($0.dropFirst(p.count)) }
                c.stripped.append(p)
                evaluate(&c)
                states.append(c)
            }
        }

        // A match: every name is a name of the schema.
        var best: (state: Int, schema: Int)?
        var matches: [(state: Int, schema: Int)] = []
        for (i, c) in states.enumerated() where !c.names.isEmpty {
            for s in schemas.indices where c.known[s] == c.names.count {
                matches.append((i, s))
            }
        }
        // The same tensors reached two ways (the `model` entry, or `model.` stripped at the top)
        // count once, as the way that strips least.
        var fewest: [[Int]: (state: Int, schema: Int)] = [:]
        for m in matches {
            let key = states[m.state].indices
            if let kept = fewest[key], states[kept.state].stripped.count <= states[m.state].stripped.count { continue }
            fewest[key] = m
        }
        matches = matches.filter { m in fewest[states[m.state].indices].map { $0 == m } ?? false }
        if let top = matches.map({ states[$0.state].requiredFound[$0.schema] }).max() {
            let leading = matches.filter { states[$0.state].requiredFound[$0.schema] == top }
            best = leading.first
            matches = leading
        } else {
            // No entry matches: the one with the most names an architecture knows (ties: the
            // earlier, less unwrapped one), so the report is about the likeliest weights.
            var most = 0
            for (i, c) in states.enumerated() {
                for s in schemas.indices where c.known[s] > most {
                    most = c.known[s]
                    best = (i, s)
                }
            }
        }

        // Nothing any architecture knows: the first entry as asked (the top level unless --entry).
        let index = best?.state ?? 0
        let c = states[index]
        let matched = matches.contains { $0.state == index }
        let others = matches.filter { $0.state != index }.map { states[$0.state].entry }
        let choice = StateDictChoice(entry: c.entry, stripped: c.stripped, architecture: matched ? best.map { schemas[$0.schema].id } : nil,
                                     alsoMatching: others, tensorCount: c.indices.count)
        let tensors = zip(c.indices, c.names).map { i, name -> NamedTensor in
            var t = contents.tensors[i]
            t.key = name
            return t
        }
        let notes = contents.notes + describe(choice, total: contents.tensors.count)
        return (WeightsContents(format: contents.format, tensors: tensors, metadata: contents.metadata, notes: notes), choice)
    }

    /// The top level and every container that holds tensors, each with the tensors under it.
    private static func candidateEntries(_ contents: WeightsContents, _ asked: String?) throws -> [(String, [Int])] {
        var under: [String: [Int]] = [:]
        let containers = Set(contents.containers)
        for (i, t) in contents.tensors.enumerated() {
            // Each dot-prefix of the key that is a container holds this tensor.
            var prefix = Substring("")
            for part in t.key.split(separator: ".", omittingEmptySubsequences: false).dropLast() {
                prefix = prefix.isEmpty ? part : Substring(prefix + "." + part)
                let p = String(prefix)
                if containers.contains(p) { under[p, default: []].append(i) }
            }
        }
        var entries: [(String, [Int])] = [("", Array(contents.tensors.indices))]
        var listed = Set<String>()
        for c in contents.containers where listed.insert(c).inserted {
            if let indices = under[c] { entries.append((c, indices)) }
        }
        guard let asked else { return entries }
        guard let found = entries.first(where: { $0.0 == asked }) else {
            throw StateDictSearchError.noSuchEntry(asked, available: entries.map(\.0).filter { !$0.isEmpty })
        }
        return [found]
    }

    /// The notes for people: what was taken, what stripped, what else matched.
    static func describe(_ c: StateDictChoice, total: Int) -> [String] {
        var notes: [String] = []
        if !c.entry.isEmpty {
            notes.append("took the state_dict under '\(echoed(c.entry))' (\(c.tensorCount) of the file's \(total) tensors)")
        }
        if !c.stripped.isEmpty {
            notes.append("stripped " + c.stripped.map { "'\(echoed($0))'" }.joined(separator: " then ") + " from the tensor names")
        }
        if !c.alsoMatching.isEmpty, let arch = c.architecture {
            let others = c.alsoMatching.map { $0.isEmpty ? "the top level" : "'\(echoed($0))'" }.joined(separator: ", ")
            notes.append("\(others) also hold\(c.alsoMatching.count == 1 ? "s" : "") \(arch) weights; took \(c.entry.isEmpty ? "the top level" : "'\(echoed(c.entry))'") (the first in the file); choose with --entry")
        }
        return notes
    }
}
