import AISLFDRuntime

/// The parity a converted model must keep, by the precision its weights were stored
/// in. Measured with trained-like weights on all four architectures; never loosened.
public struct Tolerances: Codable, Equatable, Sendable {
    /// fp32 only: every `desc.*` / `meta.*` map's max abs error at most this times
    /// the map's max abs value. nil: maps are reported, not decisive.
    public var mapRelativeError: Double?
    /// Least cosine of every `kp_desc` vector (per keypoint and variant).
    public var keypointDescriptorCosine: Double
    /// Least cosine of every `kp_meta` vector.
    public var keypointMetaCosine: Double
    /// Least share of keypoints whose nearest neighbour agrees (nil: reported only).
    public var nearestNeighbourAgreement: Double?

    public static func forPrecision(_ precision: Precision) -> Tolerances {
        switch precision {
        case .fp16:
            return Tolerances(mapRelativeError: nil, keypointDescriptorCosine: 0.99995, keypointMetaCosine: 0.99995,
                              nearestNeighbourAgreement: 0.99)
        case .int8:
            return Tolerances(mapRelativeError: nil, keypointDescriptorCosine: 0.998, keypointMetaCosine: 0.999,
                              nearestNeighbourAgreement: 0.95)
        case .fp32:
            return Tolerances(mapRelativeError: 1e-4, keypointDescriptorCosine: 0.99999, keypointMetaCosine: 0.99999,
                              nearestNeighbourAgreement: nil)
        }
    }
}
