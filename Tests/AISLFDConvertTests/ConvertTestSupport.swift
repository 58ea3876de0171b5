import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// Loads what tools/make_fold_fixtures.py wrote to Tests/Fixtures/convert/.
enum ConvertFixtures {
    static func json(_ file: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("convert/" + file)))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], file)
    }

    static func uint32s(_ any: Any?) throws -> [UInt32] {
        try XCTUnwrap(any as? [NSNumber]).map { $0.uint32Value }
    }

    static func floats(_ any: Any?) throws -> [Float] { try uint32s(any).map(Float.init(bitPattern:)) }

    static func uint16s(_ any: Any?) throws -> [UInt16] {
        try XCTUnwrap(any as? [NSNumber]).map { $0.uint16Value }
    }

    /// One small module: its schema, its source weights and PyTorch's arrays.
    struct FoldCase {
        let name: String
        let schema: ArchitectureSchema
        let contents: WeightsContents
        let arrays: [String: (shape: [Int], values: [Float])]

        func array(_ key: String) throws -> (shape: [Int], values: [Float]) {
            try XCTUnwrap(arrays[key], "\(name): no array \(key)")
        }

        /// PyTorch's input as a map (batch 1).
        func input() throws -> Reference.Map {
            let a = try array("input")
            return Reference.Map(channels: a.shape[1], height: a.shape[2], width: a.shape[3], values: a.values.map(Double.init))
        }
    }

    static func foldCases() throws -> [FoldCase] {
        let root = try json("folds.json")
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        return try cases.map(foldCase)
    }

    static func foldCase(_ name: String) throws -> FoldCase {
        try XCTUnwrap(try foldCases().first { $0.name == name }, name)
    }

    private static func foldCase(_ c: [String: Any]) throws -> FoldCase {
        let name = try XCTUnwrap(c["name"] as? String)
        let bin = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("convert/" + (try XCTUnwrap(c["bin"] as? String)))))
        var arrays: [String: (shape: [Int], values: [Float])] = [:]
        for a in try XCTUnwrap(c["arrays"] as? [[String: Any]]) {
            let key = try XCTUnwrap(a["key"] as? String)
            let shape = try XCTUnwrap(a["shape"] as? [Int])
            let offset = try XCTUnwrap(a["offset"] as? Int)
            let count = shape.reduce(1, *)
            XCTAssertLessThanOrEqual(offset + count * 4, bin.count, "\(name): \(key) outside the .bin")
            let values = bin.withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + $0 * 4, as: UInt32.self))) }
            }
            arrays[key] = (shape, values)
        }
        var tensors: [NamedTensor] = []
        for entry in try XCTUnwrap(c["state_dict"] as? [[String: Any]]) {
            let key = try XCTUnwrap(entry["key"] as? String)
            if entry["dtype"] as? String == "int64" {
                tensors.append(int64Scalar(key, Int64(try XCTUnwrap(entry["value"] as? Int))))
            } else {
                let a = try XCTUnwrap(arrays[key], key)
                tensors.append(NamedTensor(key: key, shape: a.shape, floats: a.values))
            }
        }
        let block = try XCTUnwrap(c["block"] as? [String: Any])
        let blockText = String(decoding: try JSONSerialization.data(withJSONObject: block, options: [.sortedKeys]), as: UTF8.self)
        let schema = try composeSchema(blocks: [name: blockText], parts: [("net", name)])
        return FoldCase(name: name, schema: schema, contents: WeightsContents(format: "fixture", tensors: tensors), arrays: arrays)
    }

    /// A one-variant architecture made of `parts` (name, block id), each reading the one before.
    static func composeSchema(blocks: [String: String], parts: [(String, String)], id: String = "fixture") throws -> ArchitectureSchema {
        let composer = SchemaComposer(metaSchema: try SchemaLibrary.metaSchema(), blockText: { blocks[$0] })
        var partTexts: [String] = []
        var input = "$image"
        for (name, block) in parts {
            partTexts.append(#"{"name": "\#(name)", "block": "\#(block)", "prefix": "", "input": "\#(input)"}"#)
            input = name
        }
        let text = #"{"kind": "architecture", "id": "\#(id)", "version": 1, "variants": ["rot_var_illum_var"], "parts": [\#(partTexts.joined(separator: ", "))]}"#
        return try composer.compose(architectureText: text, file: id + ".json")
    }

    /// A schema of one block holding a conv weight of `shape` (role conv_weight, no bias),
    /// for tests of the quantizers and dtype conversion.
    static func singleConvSchema(_ shape: [Int]) throws -> ArchitectureSchema {
        let block = #"""
        {"kind": "block", "id": "one-conv", "layers": [{"name": "conv", "op": "conv2d", "inChannels": \#(shape[1]),
         "outChannels": \#(shape[0]), "kernel": \#(shape[2]), "stride": 1, "padding": 0, "bias": false,
         "inputs": [{"from": "$input"}],
         "tensors": [{"name": "weight", "shape": [\#(shape.map(String.init).joined(separator: ", "))], "dtype": "float", "role": "conv_weight"}]}]}
        """#
        return try composeSchema(blocks: ["one-conv": block], parts: [("net", "one-conv")])
    }

    static func int64Scalar(_ key: String, _ value: Int64) -> NamedTensor {
        withUnsafeBytes(of: value.littleEndian) { NamedTensor(key: key, dtype: .int64, shape: [], data: Array($0)) }
    }

    static let source = AISWMetadata.Source(fileName: "weights.bin", sha256: String(repeating: "0", count: 64), format: "fixture", byteCount: 0)
}

/// Weights of the right shapes for a whole architecture, from a seeded generator: conv and
/// linear weights of He-like size, BatchNorms away from the identity. Only sizes and wiring
/// are tested with these; their values never decide an expected number.
enum SyntheticWeights {
    static func contents(_ schema: ArchitectureSchema, seed: UInt64 = 1) -> WeightsContents {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func uniform() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)  // [0, 1)
        }
        var tensors: [NamedTensor] = []
        for spec in schema.tensors {
            if spec.role == .bnNumBatchesTracked {
                tensors.append(ConvertFixtures.int64Scalar(spec.key, 1000))
                continue
            }
            let fanIn = spec.shape.count > 1 ? spec.shape.dropFirst().reduce(1, *) : 1
            let width = Float(2) / Float(fanIn).squareRoot()
            let values: [Float] = (0..<spec.elementCount).map { _ in
                switch spec.role {
                case .bnRunningVar: return 0.01 + 4 * uniform()
                case .bnWeight: return 0.4 + 1.8 * uniform()
                case .bnRunningMean, .bnBias: return 4 * uniform() - 2
                default: return width * (2 * uniform() - 1)
                }
            }
            tensors.append(NamedTensor(key: spec.key, shape: spec.shape, floats: values))
        }
        return WeightsContents(format: "synthetic", tensors: tensors)
    }
}

/// Direct convolution in Double: simple loops, no tricks, for checking folds.
enum Reference {
    struct Map {
        var channels: Int, height: Int, width: Int
        var values: [Double]
        subscript(c: Int, y: Int, x: Int) -> Double { values[(c * height + y) * width + x] }
    }

    static func conv(_ input: Map, weight: [Float], bias: [Float]?, outChannels: Int, kernel: Int, stride: Int, padding: Int) -> Map {
        let h = (input.height + 2 * padding - kernel) / stride + 1
        let w = (input.width + 2 * padding - kernel) / stride + 1
        var out = Map(channels: outChannels, height: h, width: w, values: [Double](repeating: 0, count: outChannels * h * w))
        for o in 0..<outChannels {
            for oy in 0..<h {
                for ox in 0..<w {
                    var sum = Double(bias?[o] ?? 0)
                    for i in 0..<input.channels {
                        for ky in 0..<kernel {
                            let y = oy * stride - padding + ky
                            guard y >= 0 && y < input.height else { continue }
                            for kx in 0..<kernel {
                                let x = ox * stride - padding + kx
                                guard x >= 0 && x < input.width else { continue }
                                sum += Double(weight[((o * input.channels + i) * kernel + ky) * kernel + kx]) * input[i, y, x]
                            }
                        }
                    }
                    out.values[(o * h + oy) * w + ox] = sum
                }
            }
        }
        return out
    }

    static func relu(_ m: Map) -> Map {
        var m = m
        m.values = m.values.map { max($0, 0) }
        return m
    }

    static func affine(_ m: Map, scale: [Float], shift: [Float]) -> Map {
        var m = m
        let plane = m.height * m.width
        for i in m.values.indices { m.values[i] = m.values[i] * Double(scale[i / plane]) + Double(shift[i / plane]) }
        return m
    }

    /// max |a - expected| / max |expected|; infinity when the sizes differ.
    static func relativeError(_ a: Map, _ expected: [Float]) -> Double {
        guard a.values.count == expected.count else { return .infinity }
        var err = 0.0, peak = 0.0
        for (x, e) in zip(a.values, expected) {
            err = max(err, abs(x - Double(e)))
            peak = max(peak, abs(Double(e)))
        }
        return err / peak
    }
}

extension Conversion {
    /// A stored tensor's values as float32 (dequantized), failing the test when absent.
    func values(_ key: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
        try XCTUnwrap(storedTensors().first { $0.key == key }, "no stored tensor \(key)", file: file, line: line).floats()
    }

    func stored(_ key: String) -> AISWTensor? { writer.tensors.first { $0.key == key } }
    var storedKeys: [String] { writer.tensors.map(\.key) }
}
