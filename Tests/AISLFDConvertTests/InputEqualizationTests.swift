import AISLFDConvert
import AISLFDCore
import AISLFDFormat
import AISLFDReaders
import AISLFDRuntime
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// InputEqualization as ChooseInt8Compute applies it, on the trained LISRD sample (whose
/// layers compute in int8; the random samples' mostly do not), and the promoted weights it
/// takes back to int8 for int8 arithmetic: the producer's stored values
/// are the fp32 conversion's times one factor per channel, the consumer's int8 weight
/// is the fp32 one divided by the same factors, and a network scaled so is the fp32 network
/// to fp32 rounding — while the producer scaled alone is not.
final class InputEqualizationTests: XCTestCase {
    static let trained: (ArchitectureSchema, WeightsContents) = {
        var contents = try! WeightsReader.read(path: Fixtures.repoPath("Weights/trained/lisrd.pth"))
        let prefix = "model_state_dict."
        contents.tensors = contents.tensors.filter { $0.key.hasPrefix(prefix) }.map { t in
            var t = t
            t.key = String(t.key.dropFirst(prefix.count))
            return t
        }
        return (try! SchemaLibrary.load(id: "lisrd"), contents)
    }()
    static let settings = CalibrationSettings(images: 2, height: 96, width: 128, sensitivityImages: 2, sensitivityHeight: 96, sensitivityWidth: 128)

    private func values(_ conversion: Conversion, _ key: String) throws -> [Float] {
        let t = try XCTUnwrap(conversion.writer.tensors.first { $0.key == key }, key)
        switch t.storage {
        case .fp32: return NamedTensor(key: key, dtype: .float32, shape: [t.data.count / 4], data: t.data).floats()
        case .int8: return AISWDequantize.int8(t.data.map { Int8(bitPattern: $0) }, scales: t.scales ?? [], rows: t.shape[0], group: t.scaleGroup)
        default:
            XCTFail("\(key) is \(t.storage)")
            return []
        }
    }

    func testEqualizedLayersAreTheSameNetwork() throws {
        let (schema, contents) = Self.trained
        let int8 = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                         options: ConversionOptions(precision: .int8, calibration: Self.settings))
        let fp32 = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source, options: ConversionOptions(precision: .fp32))
        let record = try XCTUnwrap(int8.metadata.passes.first { $0.name == "ChooseInt8Compute" }?.details)
        guard case .array(let layers)? = record["layers"] else { return XCTFail("no layers") }
        let equalized = layers.compactMap { layer -> (producer: String, consumer: String)? in
            guard let producer = layer["input_equalized_by"]?.string, case .array(let keys)? = layer["weights"], let key = keys.first?.string
            else { return nil }
            return (producer, key)
        }
        XCTAssertFalse(equalized.isEmpty, "the trained sample equalizes some int8 layer's input")
        // The weights MixedPrecision promotes when nothing computes in int8 are measured at
        // their int8 form: some compute in int8, stored int8.
        let weightsOnly = try Converter.convert(contents, schema: schema, source: ConvertFixtures.source,
                                                options: ConversionOptions(precision: .int8, calibration: Self.settings, weightsOnly: true))
        let promoted = Set(weightsOnly.writer.tensors.filter { $0.storage == .fp16 }.map(\.key))
        let chosen = Set((int8.metadata.int8Compute ?? [:]).keys)
        XCTAssertFalse(promoted.isEmpty)
        XCTAssertFalse(chosen.isDisjoint(with: promoted), "promoted \(promoted.sorted()), chosen \(chosen.sorted())")
        for key in chosen { XCTAssertEqual(int8.writer.tensors.first { $0.key == key }?.storage, .int8, key) }

        let original = fp32.writer.tensors.reduce(into: [String: WeightTensor]()) { out, t in
            out[t.key] = WeightTensor(shape: t.shape, values: NamedTensor(key: t.key, dtype: .float32, shape: [t.data.count / 4], data: t.data).floats())
        }
        // Producer, consumer and the factors the int8 file applied.
        var links: [(producer: String, consumer: String, k: [Float], taps: Int)] = []
        for (producer, consumer) in equalized where original[producer + ".scale"] != nil {
            // BatchNorms kept as affines (fp32 in both files), as the VGG backbone's are.
            let scale = try values(int8, producer + ".scale"), before = original[producer + ".scale"]!.values
            let shift = try values(int8, producer + ".shift"), shiftBefore = original[producer + ".shift"]!.values
            var k = [Float]()
            for c in scale.indices {
                let ratio = scale[c] / before[c]
                XCTAssertGreaterThan(ratio, 0, "\(producer) channel \(c)")
                XCTAssertEqual(shift[c], shiftBefore[c] * ratio, accuracy: 1e-6 * abs(shift[c]) + 1e-30,
                               "\(producer) channel \(c): the shift scaled alike")
                k.append(ratio)
            }
            // The consumer is the fp32 weight divided by k per input channel, to int8 precision.
            let w = try values(int8, consumer), reference = original[consumer]!.values
            let taps = reference.count / original[consumer]!.shape[0] / k.count
            func sqnr(_ a: [Float], _ b: [Float]) -> Double {
                var signal = 0.0, noise = 0.0
                for (x, y) in zip(a, b) { signal += Double(y) * Double(y); noise += Double(x - y) * Double(x - y) }
                return 10 * log10(signal / noise)
            }
            let divided = reference.indices.map { reference[$0] / k[($0 / taps) % k.count] }
            XCTAssertGreaterThan(sqnr(w, divided), 30, consumer)
            XCTAssertGreaterThan(sqnr(w, divided), sqnr(w, reference) + 10, "\(consumer) as stored is not the fp32 weight: the factors are in it")
            links.append((producer, consumer, k, taps))
        }
        XCTAssertFalse(links.isEmpty, "an equalized producer kept as an affine")

        // The fp32 network with those factors applied: the producer's rows times k and, unless
        // `producerOnly`, the consumer's input channels divided by k.
        let folded = Set(fp32.metadata.folds.map(\.from))
        let image = try Image(channels: 3, height: 64, width: 80, values: CalibrationImages.deadLeaves(seed: 3, height: 64, width: 80))
        func outputs(scaled: Bool, producerOnly: Bool = false) throws -> [Float] {
            var tensors = original
            if scaled {
                for link in links {
                    for name in [".scale", ".shift"] { tensors[link.producer + name]!.values = zip(tensors[link.producer + name]!.values, link.k).map { $0 * $1 } }
                    if !producerOnly {
                        tensors[link.consumer]!.values = tensors[link.consumer]!.values.enumerated().map { $1 / link.k[($0 / link.taps) % link.k.count] }
                    }
                }
            }
            let out = try Model(weights: ModelWeights(architecture: .lisrd, tensors: tensors, foldedLayers: folded)).forward(image: image)
            return Variant.allCases.flatMap { out.desc[$0].values + out.meta[$0].values }
        }
        func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
            zip(a, b).map { abs($0 - $1) }.max()! / b.map(abs).max()!
        }
        let unchanged = try outputs(scaled: false)
        XCTAssertLessThan(relativeDifference(try outputs(scaled: true), unchanged), 1e-5, "the same function, to fp32 rounding")
        XCTAssertGreaterThan(relativeDifference(try outputs(scaled: true, producerOnly: true), unchanged), 1e-2, "the producer scaled alone")
    }
}
