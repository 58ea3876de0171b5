import AISLFDCore
import AISLFDFormat

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
    /// fp16 and int8: run the network on calibration images to round int8 weights with GPTQ
    /// and to store the tensors whose rounding costs the outputs most at the next wider
    /// storage, within `sizeBudget`. nil: plain rounding, every weight at `precision`.
    /// Needs an architecture the runtime knows; for others the passes say why they did nothing.
    public var calibration: CalibrationSettings?
    /// Largest output file as a fraction of the source's fp32 payload that the promotion of
    /// sensitive tensors may fill; nil: `Precision.defaultSizeBudget`.
    public var sizeBudget: Double?
    /// int8: store the weights in int8 but compute every layer in fp32 (`--weights-only`;
    /// the file is format version 1). false: calibration chooses the layers that compute in int8.
    public var weightsOnly: Bool

    public init(precision: Precision = .fp32, fold: Bool = true, clamp: Bool = false, keep: [String] = [],
                calibration: CalibrationSettings? = CalibrationSettings(), sizeBudget: Double? = nil, weightsOnly: Bool = false) {
        self.weightsOnly = weightsOnly
        self.precision = precision
        self.fold = fold
        self.clamp = clamp
        self.keep = keep
        self.calibration = calibration
        self.sizeBudget = sizeBudget
    }

    /// The budget in force: `sizeBudget`, else the precision's default.
    public var effectiveSizeBudget: Double? { sizeBudget ?? precision.defaultSizeBudget }

    /// Whether this conversion calibrates (fp16 or int8 with calibration settings).
    var calibrates: Bool { calibration != nil && precision != .fp32 }

    /// The record stored in the file's metadata.
    var metadataOptions: AISWMetadata.Options {
        var other: [String: JSONValue] = ["clamp": .bool(clamp)]
        if calibrates, let c = calibration {
            other["calibration"] = c.metadata
            if let b = effectiveSizeBudget { other["size_budget"] = .double(b) }
        } else if precision != .fp32 {
            other["calibration"] = .null
        }
        if precision == .int8 && calibrates { other["weights_only"] = .bool(weightsOnly) }
        return AISWMetadata.Options(precision: precision.rawValue, fold: fold, keep: keep, other: other)
    }
}

extension Precision {
    /// The largest file, as a fraction of the source's fp32 payload, that promoting sensitive
    /// tensors fills by default: 52% for fp16 and 27% for int8, the limits the project holds
    /// converted files to (fp16 alone is about 50.1%, int8 about 25.2-25.4%).
    public var defaultSizeBudget: Double? {
        switch self {
        case .fp32: return nil
        case .fp16: return 0.52
        case .int8: return 0.27
        }
    }
}

/// The calibration run: which images, how many, and GPTQ's damping.
public struct CalibrationSettings: Codable, Equatable, Sendable {
    /// Seed of the first image; image i of the GPTQ set uses seed + i, image i of the
    /// sensitivity set seed + 1000 + i (`CalibrationImages.deadLeaves`).
    public var seed: UInt64
    /// Images whose layer inputs give GPTQ its second moments.
    public var images: Int
    public var height: Int
    public var width: Int
    /// Other images, on which each tensor's effect on the outputs is measured.
    public var sensitivityImages: Int
    public var sensitivityHeight: Int
    public var sensitivityWidth: Int
    /// GPTQ's damping, a fraction of the mean diagonal of the inputs' second moments.
    public var damping: Double

    public init(seed: UInt64 = 1, images: Int = 8, height: Int = 192, width: Int = 256,
                sensitivityImages: Int = 4, sensitivityHeight: Int = 128, sensitivityWidth: Int = 160,
                damping: Double = GPTQ.defaultDamping) {
        self.seed = seed
        self.images = images
        self.height = height
        self.width = width
        self.sensitivityImages = sensitivityImages
        self.sensitivityHeight = sensitivityHeight
        self.sensitivityWidth = sensitivityWidth
        self.damping = damping
    }

    public func gptqImageSeed(_ i: Int) -> UInt64 { seed &+ UInt64(i) }
    public func sensitivityImageSeed(_ i: Int) -> UInt64 { seed &+ 1000 &+ UInt64(i) }

    var metadata: JSONValue {
        .object([
            "generator": .string("dead leaves (CalibrationImages.deadLeaves)"),
            "seed": .double(Double(seed)),
            "gptq_images": .object(["count": .int(images), "height": .int(height), "width": .int(width)]),
            "sensitivity_images": .object(["count": .int(sensitivityImages), "height": .int(sensitivityHeight),
                                           "width": .int(sensitivityWidth)]),
            "gptq_damping": .double(damping),
        ])
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
