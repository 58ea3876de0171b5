import Foundation

/// Parallel self-attention meta descriptors (`psa.<variant>.`):
/// Y = softmax(Q K^T / sqrt(128)) V on the L2-normalised raw map, 128 x h x w.
final class PSAMeta: MetaModule {
    /// Query, key and value projections of one variant as a single 1x1
    /// convolution with 3 x 128 outputs (a Linear on each position).
    private let projections: [Convolution]
    private let kernels: Kernels

    init(_ loader: WeightLoader, kernels: Kernels) throws {
        self.kernels = kernels
        let c = descriptorChannels
        var convs: [Convolution] = []
        for v in Variant.allCases {
            var weight: [Float] = [], bias: [Float] = [], forms: [LayerForm] = []
            let geometry = ConvGeometry(inChannels: c, outChannels: 3 * c, kernel: 1)
            for name in ["query", "key", "value"] {
                weight += try loader.tensor("psa.\(v.rawValue).\(name).weight", shape: [c, c])
                bias += try loader.tensor("psa.\(v.rawValue).\(name).bias", shape: [c])
                forms.append(try loader.layer("psa.\(v.rawValue).\(name)", ConvGeometry(inChannels: c, outChannels: c, kernel: 1)))
            }
            convs.append(kernels.makeConvolution(geometry, weight: weight, epilogue: Epilogue(bias: bias), form: LayerForm.stacked(forms)))
        }
        projections = convs
    }

    func forward(_ raw: FeatureMap, variant: Variant, _ recorder: ActivationRecorder) -> FeatureMap {
        PSAMeta.metaMap(raw, projection: projections[variant.index], kernels: kernels,
                        record: { name, shape, values in recorder.record("psa.\(variant.rawValue).\(name)", shape: shape, values: values()) })
    }

    /// `record` receives query, key and value as [1, N, 128].
    static func metaMap(_ raw: FeatureMap, projection: Convolution, kernels: Kernels,
                        record: (String, [Int], () -> [Float]) -> Void) -> FeatureMap {
        let c = raw.channels
        var x = raw
        kernels.normalizePositions(&x)
        let qkv = projection.apply(x)
        for (i, name) in ["query", "key", "value"].enumerated() {
            record(name, [1, qkv.planeSize, c], { transposed(qkv.channelSlice((i * c)..<((i + 1) * c))) })
        }
        return kernels.attention(qkv, scale: 1 / Float(c).squareRoot())
    }

    /// C x N -> N x C, the [N, 128] layout the reference stores.
    private static func transposed(_ m: FeatureMap) -> [Float] {
        let n = m.planeSize, c = m.channels
        var out = [Float](repeating: 0, count: n * c)
        for ch in 0..<c { for p in 0..<n { out[p * c + ch] = m.values[ch * n + p] } }
        return out
    }
}
