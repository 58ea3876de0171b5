import AISLFDCore
import AISLFDInputs
import AISLFDReaders
import AISLFDRuntime

public enum ReferenceProblem: Error, CustomStringConvertible, Equatable, Sendable {
    case missingImage
    case badArray(name: String, problem: String)
    case nothingToCompare

    public var description: String {
        switch self {
        case .missingImage: return "no 'image' array of shape [1, 3, H, W] float32: not a reference file"
        case .badArray(let name, let problem): return "tensor \(name): \(problem)"
        case .nothingToCompare: return "holds no desc.*, meta.*, kp_desc or kp_meta array to compare"
        }
    }
}

/// The outcome of comparing a run with a reference (interfaces.md, `aislfd-verify`).
public struct VerificationReport: Codable, Sendable {
    public var model: String
    public var reference: String
    public var architecture: String
    public var precision: String
    public var folded: Bool
    public var tolerances: Tolerances
    public var outputs: [ArrayComparison]
    /// Reference outputs the run did not produce.
    public var missing: [String]
    /// With --per-layer: every `act.*` present in both, in the reference's (network) order.
    public var layers: [ArrayComparison]?
    /// With --per-layer: reference activations this model does not compute (folded away).
    public var layersNotComputed: [String]?
    public var firstLayerOutOfTolerance: String?
    public var pass: Bool
}

/// Runs a model on a reference's inputs and compares every output present in both.
public enum Verifier {
    public static func verify(_ model: ModelFile, referencePath: String, perLayer: Bool = false) throws -> VerificationReport {
        let reference = try NPZReader.read(path: referencePath)
        var arrays: [(name: String, shape: [Int], values: [Float])] = []
        for t in reference.tensors where t.dtype == .float32 { arrays.append((t.key, t.shape, t.floats())) }
        func array(_ name: String) -> (name: String, shape: [Int], values: [Float])? { arrays.first { $0.name == name } }

        guard let image = array("image"), image.shape.count == 4, image.shape[0] == 1, image.shape[1] == 3 else {
            throw FileError(path: referencePath, problem: ReferenceProblem.missingImage)
        }
        let input = try Image(channels: 3, height: image.shape[2], width: image.shape[3], values: image.values)
        let network = try model.makeModel()
        let outputs: ModelOutputs
        do { outputs = try network.forward(image: input, recordActivations: perLayer) } catch {
            throw FileError(path: referencePath, problem: error)
        }
        var run = outputs.namedArrays
        if let kp = array("keypoints") {
            guard kp.shape.count == 2, kp.shape[1] == 2 else {
                throw FileError(path: referencePath, problem: ReferenceProblem.badArray(name: "keypoints", problem: "shape \(kp.shape), expected [N, 2]"))
            }
            let points = (0..<kp.shape[0]).map { Keypoint(x: kp.values[2 * $0], y: kp.values[2 * $0 + 1]) }
            do { run += try outputs.describe(points).namedArrays } catch { throw FileError(path: referencePath, problem: error) }
        }
        let byName = Dictionary(run.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

        let tolerances = Tolerances.forPrecision(model.precision)
        let hasKeypoints = array("kp_desc") != nil || array("kp_meta") != nil
        var comparisons: [ArrayComparison] = [], missing: [String] = []
        for ref in arrays where isOutput(ref.name) {
            guard let ours = byName[ref.name] else { missing.append(ref.name); continue }
            var c = Figures.compare(name: ref.name, shape: ref.shape, run: ours.values, reference: ref.values)
            if ours.shape != ref.shape {
                c.criterion = "shape \(ref.shape)"
                c.pass = false
                comparisons.append(c)
                continue
            }
            if ref.name == "kp_desc" {
                c.nearestNeighbourAgreement = Figures.nearestNeighbourAgreement(shape: ref.shape, run: ours.values, reference: ref.values)
            }
            decide(&c, tolerances: tolerances, hasKeypoints: hasKeypoints)
            comparisons.append(c)
        }
        if comparisons.isEmpty && missing.isEmpty { throw FileError(path: referencePath, problem: ReferenceProblem.nothingToCompare) }

        var report = VerificationReport(
            model: model.path, reference: referencePath, architecture: model.architecture.rawValue, precision: model.precision.rawValue,
            folded: model.folded, tolerances: tolerances, outputs: comparisons, missing: missing,
            layers: nil, layersNotComputed: nil, firstLayerOutOfTolerance: nil,
            pass: missing.isEmpty && comparisons.allSatisfy(\.pass))
        if perLayer {
            var layers: [ArrayComparison] = [], notComputed: [String] = []
            for ref in arrays where ref.name.hasPrefix("act.") {
                guard let ours = byName[ref.name], ours.shape == ref.shape else { notComputed.append(ref.name); continue }
                var c = Figures.compare(name: ref.name, shape: ref.shape, run: ours.values, reference: ref.values)
                if let limit = tolerances.mapRelativeError {
                    c.criterion = "relative max error <= \(limit)"
                    c.pass = c.relativeMaxError <= limit
                } else {
                    c.criterion = "least vector cosine >= \(tolerances.keypointDescriptorCosine)"
                    c.pass = c.minCosine >= tolerances.keypointDescriptorCosine
                }
                layers.append(c)
            }
            report.layers = layers
            report.layersNotComputed = notComputed
            report.firstLayerOutOfTolerance = layers.first { !$0.pass }?.name
        }
        return report
    }

    static func isOutput(_ name: String) -> Bool {
        name.hasPrefix("desc.") || name.hasPrefix("meta.") || name == "kp_desc" || name == "kp_meta"
    }

    /// interfaces.md: for fp32 the maps' max abs error decides as well; for fp16 and int8 the
    /// maps are reported, and keypoint cosines and nearest-neighbour agreement decide
    /// (per-position cosines of the maps where the reference has no keypoints).
    static func decide(_ c: inout ArrayComparison, tolerances t: Tolerances, hasKeypoints: Bool) {
        let isMeta = c.name.hasPrefix("meta.") || c.name == "kp_meta"
        let cosineLimit = isMeta ? t.keypointMetaCosine : t.keypointDescriptorCosine
        if c.name.hasPrefix("desc.") || c.name.hasPrefix("meta.") {
            if let limit = t.mapRelativeError {
                c.criterion = "relative max error <= \(limit)"
                c.pass = c.relativeMaxError <= limit
            } else if !hasKeypoints {
                c.criterion = "least position cosine >= \(cosineLimit)"
                c.pass = c.minCosine >= cosineLimit
            }
            return
        }
        var criteria = ["least cosine >= \(cosineLimit)"]
        c.pass = c.minCosine >= cosineLimit
        if let agreement = c.nearestNeighbourAgreement, let limit = t.nearestNeighbourAgreement {
            criteria.append("nearest-neighbour agreement >= \(limit)")
            c.pass = c.pass && agreement >= limit
        }
        c.criterion = criteria.joined(separator: ", ")
    }
}
