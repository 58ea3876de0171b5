import AISLFDCore

/// Why a conversion stopped. Every case names the tensor (or layer) concerned; the command
/// wraps it in `FileError` with the input's path, and exits 1 (the file is readable but its
/// contents cannot be converted as asked).
public enum ConversionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A tensor the schema requires is not in the input.
    case missingTensor(key: String, role: String)
    /// The input holds a tensor the schema does not know (validation should have caught it).
    case unexpectedTensor(key: String)
    case duplicateTensor(key: String)
    case wrongShape(key: String, expected: [Int], found: [Int])
    /// A float role stored as an integer or bool.
    case wrongDType(key: String, dtype: DType, role: String)
    /// NaN or infinite values in the source, or float64 values outside float32's range.
    case nonFinite(key: String, count: Int, firstIndex: Int)
    /// A folded value overflowed float32 (a huge weight times a huge BatchNorm scale).
    case foldOverflow(key: String, index: Int)
    /// running_var + eps is not positive (or NaN): the BatchNorm divides by zero.
    case invalidVariance(key: String, channel: Int, value: Double)
    /// fp16 without clamping: values whose rounding to fp16 overflows (|x| >= 65520).
    case fp16Overflow(key: String, count: Int, largest: Float)
    /// The schema's wiring contradicts the tensors (e.g. a BatchNorm reading nothing).
    case inconsistentLayer(layer: String, problem: String)
    /// `ConversionOptions.sizeBudget` is not a fraction in (0, 1] (the command refuses it first).
    case invalidSizeBudget(Double)

    public var description: String {
        switch self {
        case .missingTensor(let key, let role): return "tensor \(key): missing (\(role))"
        case .unexpectedTensor(let key): return "tensor \(key): not a tensor of this architecture"
        case .duplicateTensor(let key): return "tensor \(key): appears more than once"
        case .wrongShape(let key, let expected, let found):
            return "tensor \(key): shape \(expected) expected, found \(found)"
        case .wrongDType(let key, let dtype, let role):
            return "tensor \(key): dtype \(dtype.rawValue) cannot become float32 (\(role) must be floating-point)"
        case .nonFinite(let key, let count, let first):
            return "tensor \(key): \(count) values are NaN, infinite or outside float32's range (first at index \(first))"
        case .foldOverflow(let key, let index):
            return "tensor \(key): folding the BatchNorm overflows float32 at index \(index)"
        case .invalidVariance(let key, let channel, let value):
            return "tensor \(key): running_var + eps is \(value) at channel \(channel), must be positive"
        case .fp16Overflow(let key, let count, let largest):
            return "tensor \(key): \(count) values overflow fp16 (largest magnitude \(largest), fp16 holds up to 65504); use clamping or keep the tensor at fp32"
        case .inconsistentLayer(let layer, let problem): return "layer \(layer): \(problem)"
        case .invalidSizeBudget(let fraction): return "size budget \(fraction): must be a fraction above 0 and at most 1"
        }
    }
}
