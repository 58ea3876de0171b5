/// What can go wrong when building or running a model. Every case that
/// concerns a tensor names it, so callers can wrap the error in
/// `FileError(path:problem:)` and print one complete line.
public enum RuntimeError: Error, CustomStringConvertible, Equatable, Sendable {
    case unknownArchitecture(String)
    case missingTensor(String)
    case wrongShape(tensor: String, expected: [Int], found: [Int])
    case valueCountMismatch(name: String, shape: [Int], count: Int)
    case invalidValue(tensor: String, problem: String)
    /// A BatchNorm listed as folded must have no tensors left.
    case foldedLayerHasTensor(layer: String, tensor: String)
    /// A BatchNorm given both as PyTorch statistics and as scale/shift.
    case conflictingBatchNormForms(layer: String)
    case imageNotRGB(channels: Int)
    case imageTooSmall(height: Int, width: Int, minimum: Int)
    case imageTooLarge(height: Int, width: Int, maximumPixels: Int)
    /// The pass over an image this size would need more memory than the configuration allows.
    case memoryBudgetExceeded(height: Int, width: Int, needed: Int, allowed: Int)
    case nonFiniteKeypoint(index: Int)
    case incompatibleDescriptors(String)
    case unknownPrecision(String)
    case invalidMetadata(String)

    public var description: String {
        switch self {
        case .unknownArchitecture(let a):
            return "unknown architecture '\(a)' (expected one of \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .missingTensor(let t): return "tensor \(t): missing"
        case .wrongShape(let t, let e, let f): return "tensor \(t): shape \(f), expected \(e)"
        case .valueCountMismatch(let n, let s, let c): return "\(n): \(c) values do not fill shape \(s)"
        case .invalidValue(let t, let p): return "tensor \(t): \(p)"
        case .foldedLayerHasTensor(let l, let t):
            return "tensor \(t): layer \(l) is listed as folded but still has tensors"
        case .conflictingBatchNormForms(let l):
            return "layer \(l): has both BatchNorm statistics (weight, bias, running_mean, running_var) and scale/shift"
        case .imageNotRGB(let c): return "image has \(c) channels, expected 3 (RGB)"
        case .imageTooSmall(let h, let w, let m): return "image is \(h)x\(w); height and width must be at least \(m)"
        case .imageTooLarge(let h, let w, let m): return "image is \(h)x\(w); at most \(m) pixels are supported"
        case .memoryBudgetExceeded(let h, let w, let needed, let allowed):
            return "image is \(h)x\(w); its forward pass needs about \(MemoryBudget.text(needed)), "
                + "more than the \(MemoryBudget.text(allowed)) allowed (--max-memory, RuntimeConfiguration.maximumMemory)"
        case .nonFiniteKeypoint(let i): return "keypoint \(i) has a non-finite coordinate"
        case .incompatibleDescriptors(let s): return "descriptors cannot be compared: \(s)"
        case .unknownPrecision(let p): return "unknown storage precision '\(p)' (expected fp32, fp16 or int8)"
        case .invalidMetadata(let s): return "invalid metadata: \(s)"
        }
    }
}
