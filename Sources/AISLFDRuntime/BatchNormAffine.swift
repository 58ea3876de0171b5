/// PyTorch's eval-mode BatchNorm, `(x - running_mean) / sqrt(running_var + eps) * weight +
/// bias`, as the per-channel affine `x * scale + shift` with
///     scale = weight / sqrt(running_var + eps),  shift = bias - running_mean * scale,
/// computed in Double so that whoever uses it (the runtime at load, the converter's folds)
/// rounds once. The one place this formula lives.
public struct BatchNormAffine: Sendable, Equatable {
    public var scale: [Double]
    public var shift: [Double]

    /// `running_var + eps` is not positive at `channel` (it would divide by zero or worse).
    public struct NonPositiveVariance: Error, Equatable {
        public let channel: Int
        public let value: Double
    }

    /// The four arrays have one value per channel (the caller checked their shapes).
    public init(weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Double) throws {
        let channels = weight.count
        scale = [Double](repeating: 0, count: channels)
        shift = [Double](repeating: 0, count: channels)
        for c in 0..<channels {
            let denominator = Double(variance[c]) + eps
            guard denominator > 0 else { throw NonPositiveVariance(channel: c, value: denominator) }
            let s = Double(weight[c]) / denominator.squareRoot()
            scale[c] = s
            shift[c] = Double(bias[c]) - Double(mean[c]) * s
        }
    }

    public init(scale: [Double], shift: [Double]) {
        self.scale = scale
        self.shift = shift
    }
}
