import AISLFDCore
import AISLFDReaders
import AISLFDRuntime
import Foundation

/// The `--json` document of docs/evaluation.md section 8.
public struct EvaluationReport: Encodable {
    public struct Pair: Encodable {
        var name: String, scene: String, image: String, subset: String?
        var numKeypoints0: Int, numKeypoints1: Int, numMatches: Int
        var hEstimation: Double, cornerError: Double?, precision: Double, recall: Double, mma: [Double]

        enum CodingKeys: String, CodingKey {
            case name, scene, image, subset, numKeypoints0 = "num_keypoints0", numKeypoints1 = "num_keypoints1", numMatches = "num_matches"
            case hEstimation = "h_estimation", cornerError = "corner_error", precision, recall, mma
        }

        // Optionals are written as null, never left out: the layout stays the same for every pair.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name); try c.encode(scene, forKey: .scene); try c.encode(image, forKey: .image)
            try c.encode(subset, forKey: .subset); try c.encode(numKeypoints0, forKey: .numKeypoints0)
            try c.encode(numKeypoints1, forKey: .numKeypoints1); try c.encode(numMatches, forKey: .numMatches)
            try c.encode(hEstimation, forKey: .hEstimation); try c.encode(cornerError, forKey: .cornerError)
            try c.encode(precision, forKey: .precision); try c.encode(recall, forKey: .recall); try c.encode(mma, forKey: .mma)
        }
    }

    public var model: String
    public var architecture: String
    public var precisionStored: String
    public var layout: String
    public var mean: Summary?
    public var illumination: Summary?
    public var viewpoint: Summary?
    public var pairs: [Pair]

    enum CodingKeys: String, CodingKey {
        case model, architecture, precisionStored = "storage_precision", layout, mean, illumination, viewpoint, pairs
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model); try c.encode(architecture, forKey: .architecture)
        try c.encode(precisionStored, forKey: .precisionStored); try c.encode(layout, forKey: .layout)
        try c.encode(mean, forKey: .mean); try c.encode(illumination, forKey: .illumination)
        try c.encode(viewpoint, forKey: .viewpoint); try c.encode(pairs, forKey: .pairs)
    }

    public init(model: String, architecture: Architecture, precision: Precision, result: EvaluationResult) {
        self.model = model
        self.architecture = architecture.rawValue
        precisionStored = precision.rawValue
        layout = result.layout.rawValue
        mean = result.mean
        illumination = result.illumination
        viewpoint = result.viewpoint
        pairs = result.pairs.map { r in
            let m = r.metrics
            return Pair(name: r.pair.name, scene: r.pair.scene, image: r.pair.image, subset: r.pair.subset,
                        numKeypoints0: m.keypoints0, numKeypoints1: m.keypoints1, numMatches: m.matches,
                        hEstimation: m.hEstimation, cornerError: m.cornerError, precision: m.precision, recall: m.recall, mma: m.mma)
        }
    }
}

/// The table shaped like the paper's Table 1: per subset H-estimation, precision, recall,
/// one row per model (with `--compare`, a third row of differences), then the MMA of All.
public func evaluationTable(_ rows: [(name: String, result: EvaluationResult)]) -> String {
    guard let first = rows.first?.result else { return "" }
    let subsets: [(title: String, summary: (EvaluationResult) -> Summary?)] =
        (first.illumination != nil ? [("Illumination", { $0.illumination })] : [])
        + (first.viewpoint != nil ? [("Viewpoint", { $0.viewpoint })] : []) + [("All", { $0.mean })]
    var names = rows.map(\.name), values: [[Summary?]] = rows.map { r in subsets.map { $0.summary(r.result) } }
    if rows.count == 2 {
        names.append("difference")
        values.append(zip(values[0], values[1]).map { a, b in
            guard let a, let b else { return nil }
            return Summary(pairs: a.pairs, hEstimation: b.hEstimation - a.hEstimation, precision: b.precision - a.precision,
                           recall: b.recall - a.recall, mma: zip(b.mma, a.mma).map { $0 - $1 })
        })
    }
    let width = max(12, names.map(\.count).max() ?? 0)
    func centred(_ s: String, _ n: Int) -> String {
        let left = max(0, (n - s.count) / 2)
        return leftAligned(String(repeating: " ", count: left) + s, n)
    }
    var lines = [leftAligned("", width) + subsets.map { " | " + centred($0.title, 26) }.joined()]
    let sub = leftAligned("", width) + subsets.map { _ in " | " + rightAligned("H-est", 8) + " " + rightAligned("prec", 8) + " " + rightAligned("recall", 8) }.joined()
    lines += [sub, String(repeating: "-", count: sub.count)]
    func number(_ v: Double) -> String { rightAligned(String(format: "%.3f", v), 8) }
    for (name, row) in zip(names, values) {
        lines.append(leftAligned(name, width) + row.map { s in
            guard let s else { return " | " + leftAligned("", 26) }
            return " | " + number(s.hEstimation) + " " + number(s.precision) + " " + number(s.recall)
        }.joined())
    }
    lines.append("")
    lines.append(leftAligned("", width) + " | MMA at 1..10 px (All)")
    for (name, row) in zip(names, values) {
        lines.append(leftAligned(name, width) + " | " + (row.last??.mma.map { String(format: "%.3f", $0) }.joined(separator: " ") ?? ""))
    }
    return lines.joined(separator: "\n")
}

extension Summary {
    init(pairs: Int, hEstimation: Double, precision: Double, recall: Double, mma: [Double]) {
        self.pairs = pairs
        self.hEstimation = hEstimation
        self.precision = precision
        self.recall = recall
        self.mma = mma
    }
}

/// `--dump DIR`: one NPZ per pair, `<pair>.npz` (docs/evaluation.md section 8).
public enum EvaluationDump {
    public static func write(_ r: PairResult, to folder: String) throws {
        let estimated = r.metrics.estimated?.values ?? [Double](repeating: .nan, count: 9)
        try NPZWriter.write([
            NamedTensor(key: "keypoints0", shape: [r.keypoints0.count, 2], floats: r.keypoints0.flatMap { [$0.x, $0.y] }),
            NamedTensor(key: "keypoints1", shape: [r.keypoints1.count, 2], floats: r.keypoints1.flatMap { [$0.x, $0.y] }),
            NamedTensor(key: "matches", shape: [r.matches.count, 2], int64: r.matches.flatMap { [Int64($0.0), Int64($0.1)] }),
            NamedTensor(key: "homography", shape: [3, 3], float64: r.homography.values),
            NamedTensor(key: "estimated_homography", shape: [3, 3], float64: estimated),
            NamedTensor(key: "h_estimation", shape: [], float64: [r.metrics.hEstimation]),
            NamedTensor(key: "precision", shape: [], float64: [r.metrics.precision]),
            NamedTensor(key: "recall", shape: [], float64: [r.metrics.recall]),
            NamedTensor(key: "mma", shape: [10], float64: r.metrics.mma),
            NamedTensor(key: "image_shape0", shape: [2], int64: [Int64(r.shape0.height), Int64(r.shape0.width)]),
            NamedTensor(key: "image_shape1", shape: [2], int64: [Int64(r.shape1.height), Int64(r.shape1.width)]),
        ], to: folder + "/" + r.pair.name + ".npz")
    }
}

extension NamedTensor {
    init(key: String, shape: [Int], float64 values: [Double]) {
        var bytes = [UInt8](repeating: 0, count: values.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 8, as: UInt64.self) }
        }
        self.init(key: key, dtype: .float64, shape: shape, data: bytes)
    }
}
