import Foundation

/// NetVLAD meta descriptors (`vlad_<variant>.`): a 3x3 grid of 8-cluster
/// VLAD vectors, 1024 channels at 3 x 3.
final class NetVLADMeta: MetaModule {
    static let clusters = 8
    static let grid = NetVLADKernel.grid

    private let assignment: [Convolution]
    private let centroids: [[Float]]
    private let kernels: Kernels

    init(_ loader: WeightLoader, kernels: Kernels) throws {
        self.kernels = kernels
        let geometry = ConvGeometry(inChannels: descriptorChannels, outChannels: NetVLADMeta.clusters, kernel: 1)
        var convs: [Convolution] = [], centres: [[Float]] = []
        for v in Variant.allCases {
            let prefix = "vlad_\(v.rawValue)"
            centres.append(try loader.tensor("\(prefix).centroids", shape: [NetVLADMeta.clusters, descriptorChannels]))
            let conv = try loader.convolution("\(prefix).conv", geometry, biasRequired: true)
            convs.append(kernels.makeConvolution(geometry, weight: conv.weight, epilogue: Epilogue(bias: conv.bias),
                                                 form: try loader.layer("\(prefix).conv", geometry)))
        }
        assignment = convs
        centroids = centres
    }

    func forward(_ raw: FeatureMap, variant: Variant, _ recorder: ActivationRecorder) -> FeatureMap {
        NetVLADMeta.metaMap(raw, assignment: assignment[variant.index], centroids: centroids[variant.index], kernels: kernels)
    }

    static func metaMap(_ raw: FeatureMap, assignment: Convolution, centroids: [Float], kernels: Kernels) -> FeatureMap {
        let g = NetVLADMeta.grid
        let h = g * (raw.height / g), w = g * (raw.width / g)
        var x = (h == raw.height && w == raw.width) ? raw : kernels.resizeBilinear(raw, height: h, width: w)
        kernels.normalizePositions(&x)
        let logits = assignment.apply(x)
        return kernels.netVLAD(normalized: x, logits: logits, centroids: centroids)
    }
}
