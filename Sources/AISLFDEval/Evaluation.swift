import AISLFDCore
import AISLFDImages
import AISLFDReaders
import AISLFDRuntime
import Foundation

/// Where keypoints come from: the built-in detector, or LISRD's export files
/// (`<image>.NAME`, an NPZ with `keypoints` as (row, col) and `scores`).
public enum KeypointSource: Equatable, Sendable {
    case detector
    case files(String)

    public init?(_ text: String) {
        if text == "detector" { self = .detector; return }
        guard text.hasPrefix("files:"), text.count > 6 else { return nil }
        self = .files(String(text.dropFirst(6)))
    }
}

public struct EvaluationSettings: Sendable {
    public var layout: DatasetLayout? = nil
    public var reference = "day"
    public var numberOfKeypoints = 1000
    public var threshold = 3.0
    public var distance: DistanceKind = .eq1
    public var keypoints: KeypointSource = .detector
    /// (height, width): LISRD's resize-and-crop of both images, the homography adapted.
    public var resize: (height: Int, width: Int)? = nil

    public init() {}
}

/// One pair's outcome, and what `--dump` writes.
public struct PairResult: Sendable {
    public var pair: EvalPair
    public var metrics: PairMetrics
    public var keypoints0: [Keypoint]
    public var keypoints1: [Keypoint]
    public var matches: [(Int, Int)]
    /// The ground truth as used (after resizing).
    public var homography: Homography
    public var shape0: (height: Int, width: Int)
    public var shape1: (height: Int, width: Int)
}

/// The means over a set of pairs (docs/evaluation.md section 7).
public struct Summary: Sendable, Equatable, Encodable {
    public var pairs: Int
    public var hEstimation: Double
    public var precision: Double
    public var recall: Double
    public var mma: [Double]

    init?(_ results: [PairMetrics]) {
        guard !results.isEmpty else { return nil }
        let n = Double(results.count)
        pairs = results.count
        hEstimation = results.reduce(0) { $0 + $1.hEstimation } / n
        precision = results.reduce(0) { $0 + $1.precision } / n
        recall = results.reduce(0) { $0 + $1.recall } / n
        mma = (0..<10).map { t in results.reduce(0) { $0 + $1.mma[t] } / n }
    }

    enum CodingKeys: String, CodingKey {
        case pairs, hEstimation = "h_estimation", precision, recall, mma
    }
}

/// The evaluation of one model on one dataset.
public struct EvaluationResult: Sendable {
    public var layout: DatasetLayout
    public var pairs: [PairResult]
    public var mean: Summary? { Summary(pairs.map(\.metrics)) }
    public var illumination: Summary? { Summary(pairs.filter { $0.pair.subset == "illumination" }.map(\.metrics)) }
    public var viewpoint: Summary? { Summary(pairs.filter { $0.pair.subset == "viewpoint" }.map(\.metrics)) }
}

/// Runs the paper's evaluation: per pair, keypoints of both images (detector or files, as
/// float32), LISRD's select_k_best in each direction, descriptors sampled by the model at
/// the kept keypoints, mutual nearest neighbours under Eq. 1, then the metrics.
public final class Evaluator {
    public let settings: EvaluationSettings
    public let layout: DatasetLayout
    public let pairs: [EvalPair]
    /// Keypoints per image path, kept so a second model is evaluated on the very same ones.
    private var keypointCache: [String: (points: [Keypoint], scores: [Double])] = [:]

    /// Reads and checks the whole dataset first (every homography and image), so a bad file
    /// stops the run before any network does.
    public init(dataset: String, settings: EvaluationSettings) throws {
        self.settings = settings
        (layout, pairs) = try EvalDataset.read(dataset, layout: settings.layout, reference: settings.reference)
    }

    public func evaluate(_ model: Model, progress: ((Int, Int, PairResult) -> Void)? = nil) throws -> EvaluationResult {
        var results: [PairResult] = []
        var described: [String: ModelOutputs] = [:]   // the last two images' outputs (image 1 of a scene serves five pairs)
        var order: [String] = []
        for (n, pair) in pairs.enumerated() {
            let image0 = try load(pair.path0), image1 = try load(pair.path1)
            var truth = pair.homography
            if let size = settings.resize {
                truth = adaptHomography(truth, shape0: image0.shape, shape1: image1.shape, size: size)
            }
            let (rgb0, rgb1) = settings.resize.map { (resizeAndCrop(image0, to: $0), resizeAndCrop(image1, to: $0)) } ?? (image0, image1)
            let found0 = try keypoints(pair.path0, rgb0), found1 = try keypoints(pair.path1, rgb1)
            let points0 = found0.points.map { (x: Double($0.x), y: Double($0.y)) }, points1 = found1.points.map { (x: Double($0.x), y: Double($0.y)) }
            let selected0 = selectKBest(points0, scores: found0.scores, k: settings.numberOfKeypoints, h: truth, otherShape: rgb1.shape)
            let selected1 = selectKBest(points1, scores: found1.scores, k: settings.numberOfKeypoints, h: truth.inverse, otherShape: rgb0.shape)
            let kp0 = selected0.map { found0.points[$0] }, kp1 = selected1.map { found1.points[$0] }

            func outputs(_ path: String, _ rgb: DecodedRGB) throws -> ModelOutputs {
                if let o = described[path] { return o }
                let o = try blame(path) { try model.forward(image: Image(rgb: rgb.pixels, height: rgb.height, width: rgb.width)) }
                described[path] = o
                order.append(path)
                if order.count > 2 { described[order.removeFirst()] = nil }
                return o
            }
            let d0 = try blame(pair.path0) { try outputs(pair.path0, rgb0).describe(kp0) }
            let d1 = try blame(pair.path1) { try outputs(pair.path1, rgb1).describe(kp1) }
            let matches = try Matching.mutualNearestNeighbours(d0, d1, kind: settings.distance, threads: model.configuration.threads)
                .map { ($0.index0, $0.index1) }
            let metrics = PairMetrics.compute(keypoints0: selected0.map { points0[$0] }, keypoints1: selected1.map { points1[$0] },
                                              matches: matches, truth: truth, shape0: rgb0.shape, threshold: settings.threshold)
            let result = PairResult(pair: pair, metrics: metrics, keypoints0: kp0, keypoints1: kp1, matches: matches,
                                    homography: truth, shape0: rgb0.shape, shape1: rgb1.shape)
            results.append(result)
            progress?(n + 1, pairs.count, result)
        }
        return EvaluationResult(layout: layout, pairs: results)
    }

    /// Keypoints of one image as float32 (the dump stores float32; every later step sees the
    /// same coordinates), with their scores.
    private func keypoints(_ path: String, _ rgb: DecodedRGB) throws -> (points: [Keypoint], scores: [Double]) {
        if let known = keypointCache[path] { return known }
        let found: (points: [Keypoint], scores: [Double])
        switch settings.keypoints {
        case .detector:
            let detected = CornerDetector.detect(rgb: rgb.pixels, height: rgb.height, width: rgb.width)
            found = (detected.map(\.keypoint), detected.map(\.score))
        case .files(let name):
            found = try Self.keypointFile(path + "." + name)
        }
        keypointCache[path] = found
        return found
    }

    /// LISRD's export layout: `keypoints` [N, 2] as (row, col) and `scores` [N].
    static func keypointFile(_ path: String) throws -> (points: [Keypoint], scores: [Double]) {
        guard FileManager.default.fileExists(atPath: path) else { throw FileError(path: path, problem: DatasetProblem.missing("keypoint file")) }
        let contents = try NPZReader.read(path: path)
        guard let k = contents["keypoints"] ?? contents["keypoints.npy"], let s = contents["scores"] ?? contents["scores.npy"] else {
            throw FileError(path: path, problem: DatasetProblem.missing("`keypoints` or `scores` array"))
        }
        guard k.shape.count == 2, k.shape[1] == 2, s.shape == [k.shape[0]], k.dtype.isFloatingPoint || k.dtype.isInteger,
              s.dtype.isFloatingPoint || s.dtype.isInteger else {
            throw FileError(path: path, problem: DatasetProblem.missing("keypoints [N, 2] and scores [N]"))
        }
        let v = k.doubles(), scores = s.doubles()
        return ((0..<k.shape[0]).map { Keypoint(x: Float(v[2 * $0 + 1]), y: Float(v[2 * $0])) }, scores)
    }

    /// Decoded 8-bit RGB, cached per path for the pair being evaluated.
    private var lastImages: [(String, DecodedRGB)] = []

    private func load(_ path: String) throws -> DecodedRGB {
        if let hit = lastImages.first(where: { $0.0 == path }) { return hit.1 }
        let d = try ImageReader.readRGB(path: path)
        let image = DecodedRGB(pixels: d.rgb, height: d.height, width: d.width)
        lastImages.append((path, image))
        if lastImages.count > 2 { lastImages.removeFirst() }
        return image
    }
}

/// 8-bit RGB, row-major, three bytes per pixel.
struct DecodedRGB: Sendable {
    var pixels: [UInt8]
    var height: Int
    var width: Int
    var shape: (height: Int, width: Int) { (height, width) }
}

extension NamedTensor {
    /// Every value as Double (float and integer dtypes).
    func doubles() -> [Double] {
        if dtype == .float64 {
            return data.withUnsafeBytes { raw in
                (0..<elementCount).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            }
        }
        if dtype == .int64 {
            return data.withUnsafeBytes { raw in
                (0..<elementCount).map { Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
            }
        }
        return floats().map(Double.init)
    }
}
