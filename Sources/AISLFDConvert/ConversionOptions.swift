import AISLFDIO

/// What the weights are stored as. Biases, BatchNorm-derived vectors and NetVLAD centroids
/// stay fp32 at every precision; fp16 and int8 apply to conv and linear weights.
public enum Precision: String, Codable, CaseIterable, Sendable {
    case fp32, fp16, int8
}

public struct ConversionOptions: Codable, Equatable, Sendable {
    public var precision: Precision
    /// Fold BatchNorms into scale/shift vectors and neighbouring convolutions. false is
    /// `--no-fold`: every source float tensor is kept under its own key and shape.
    public var fold: Bool
    /// fp16 only: clamp values whose fp16 rounding overflows to +-65504 (and count them)
    /// instead of refusing the tensor.
    public var clamp: Bool
    /// Patterns of stored keys kept at fp32 whatever the precision; `*` matches any run of
    /// characters (dots included), `?` one character.
    public var keep: [String]

    public init(precision: Precision = .fp32, fold: Bool = true, clamp: Bool = false, keep: [String] = []) {
        self.precision = precision
        self.fold = fold
        self.clamp = clamp
        self.keep = keep
    }

    /// The record stored in the file's metadata.
    var metadataOptions: AISWMetadata.Options {
        AISWMetadata.Options(precision: precision.rawValue, fold: fold, keep: keep, other: ["clamp": .bool(clamp)])
    }
}

/// Glob matching on whole keys: `*` any run of characters (possibly empty), `?` exactly one,
/// everything else literal.
public enum KeyPattern {
    public static func matches(_ pattern: String, _ key: String) -> Bool {
        let p = Array(pattern), k = Array(key)
        var pi = 0, ki = 0
        // Where the last `*` was and which key position it has absorbed up to; on a mismatch
        // the star takes one more character (the usual linear backtracking for one-star globs,
        // correct for many stars because a later star can absorb anything an earlier one could).
        var star: Int? = nil, starKey = 0
        while ki < k.count {
            if pi < p.count && (p[pi] == "?" || (p[pi] != "*" && p[pi] == k[ki])) {
                pi += 1
                ki += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi
                starKey = ki
                pi += 1
            } else if let s = star {
                pi = s + 1
                starKey += 1
                ki = starKey
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
