/// The state_dict keys and shapes of the four architectures, written down a
/// second time straight from ../shared/spec/architectures.md, independently
/// of Schemas/, so the tests compare the schema files against the spec.
enum SpecKeys {
    static let variants = ["rot_var_illum_var", "rot_invar_illum_var", "rot_var_illum_invar", "rot_invar_illum_invar"]

    /// The size table of architectures.md: state_dict entries and values.
    static let sizeTable: [String: (entries: Int, values: Int)] = [
        "lisrd": (104, 3_727_596),
        "aislfd-a": (116, 3_917_516),
        "aislfd-b": (104, 5_588_461),
        "aislfd-c": (116, 5_778_381),
    ]

    static func keys(_ arch: String) -> [String: [Int]] {
        let parts: [[String: [Int]]]
        switch arch {
        case "lisrd": parts = [vgg(), lisrdHeads(), netvlad()]
        case "aislfd-a": parts = [vgg(), lisrdHeads(), psa()]
        case "aislfd-b": parts = [msfe(), msfeHeads(), netvlad()]
        case "aislfd-c": parts = [msfe(), msfeHeads(), psa()]
        default: parts = []
        }
        return parts.reduce(into: [:]) { $0.merge($1) { a, _ in a } }
    }

    private static func conv(_ name: String, _ cin: Int, _ cout: Int, _ k: Int, bias: Bool) -> [String: [Int]] {
        var d = [name + ".weight": [cout, cin, k, k]]
        if bias { d[name + ".bias"] = [cout] }
        return d
    }

    private static func bn(_ name: String, _ c: Int) -> [String: [Int]] {
        [name + ".weight": [c], name + ".bias": [c], name + ".running_mean": [c], name + ".running_var": [c],
         name + ".num_batches_tracked": []]
    }

    private static func vgg() -> [String: [Int]] {
        var d: [String: [Int]] = [:]
        for (n, cin, cout) in [("1_1", 3, 64), ("1_2", 64, 64), ("2_1", 64, 64), ("2_2", 64, 64),
                               ("3_1", 64, 128), ("3_2", 128, 128), ("4_1", 128, 256), ("4_2", 256, 256)] {
            d.merge(conv("_backbone._conv" + n, cin, cout, 3, bias: true)) { a, _ in a }
            d.merge(bn("_backbone._bn" + n, cout)) { a, _ in a }
        }
        return d
    }

    private static func lisrdHeads() -> [String: [Int]] {
        var d: [String: [Int]] = [:]
        for v in variants {
            // rot_A_illum_B -> illumination first: conv_illum_B_rot_A_1
            let f = v.split(separator: "_")
            let stem = "illum_\(f[3])_rot_\(f[1])"
            d.merge(conv("conv_\(stem)_1", 256, 256, 3, bias: true)) { a, _ in a }
            d.merge(bn("bn_\(stem)_1", 256)) { a, _ in a }
            d.merge(conv("conv_\(stem)_2", 256, 128, 1, bias: true)) { a, _ in a }
        }
        return d
    }

    private static func msfe() -> [String: [Int]] {
        var d: [String: [Int]] = [:]
        for (b, cin, cout) in [("stem", 3, 64), ("layer1", 64, 64), ("layer2.0", 64, 128), ("layer2.1", 128, 128),
                               ("layer3.0", 128, 256), ("layer3.1", 256, 256), ("layer4.0", 256, 256), ("layer4.1", 256, 256),
                               ("smooth", 256, 256)] {
            d.merge(conv("msfe.\(b).conv", cin, cout, 3, bias: false)) { a, _ in a }
            d.merge(bn("msfe.\(b).bn", cout)) { a, _ in a }
        }
        d.merge(conv("msfe.lateral2", 128, 256, 1, bias: true)) { a, _ in a }
        d.merge(conv("msfe.lateral3", 256, 256, 1, bias: true)) { a, _ in a }
        d.merge(conv("msfe.lateral4", 256, 256, 1, bias: true)) { a, _ in a }
        return d
    }

    private static func msfeHeads() -> [String: [Int]] {
        var d: [String: [Int]] = [:]
        for v in variants {
            d.merge(conv("msfe.heads.\(v).conv1", 256, 256, 3, bias: false)) { a, _ in a }
            d.merge(bn("msfe.heads.\(v).bn1", 256)) { a, _ in a }
            d.merge(conv("msfe.heads.\(v).conv2", 256, 128, 1, bias: true)) { a, _ in a }
        }
        return d
    }

    private static func netvlad() -> [String: [Int]] {
        var d: [String: [Int]] = [:]
        for v in variants {
            d["vlad_\(v).centroids"] = [8, 128]
            d["vlad_\(v).conv.weight"] = [8, 128, 1, 1]
            d["vlad_\(v).conv.bias"] = [8]
        }
        return d
    }

    private static func psa() -> [String: [Int]] {
        var d: [String: [Int]] = [:]
        for v in variants {
            for p in ["query", "key", "value"] {
                d["psa.\(v).\(p).weight"] = [128, 128]
                d["psa.\(v).\(p).bias"] = [128]
            }
        }
        return d
    }
}
