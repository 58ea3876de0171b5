import AISLFDRuntime
import XCTest

/// Layers write into their previous output when nothing else holds it
/// (ReusableBuffer). Outputs a caller keeps must never change, and a pass
/// must not depend on the one before.
final class RepeatedPassTests: XCTestCase {
    func testKeptOutputsSurviveLaterPasses() throws {
        try forEachSIMDLevel { level, configuration, ops in
            for arch in ["lisrd", "aislfd-c"] {
                let model = try Model(weights: ModelWeights(architecture: Architecture(rawValue: arch)!, tensors: SpecWeights.make(arch)), configuration: configuration)
                let first = try SpecWeights.image(height: 61, width: 83, seed: 1)
                let second = try SpecWeights.image(height: 61, width: 83, seed: 2)
                let kept = try model.forward(image: first, recordActivations: true)
                let snapshot = kept.namedArrays.map { $0.values.map(\.bitPattern) }
                let other = try model.forward(image: second, recordActivations: true)
                XCTAssertEqual(kept.namedArrays.map { $0.values.map(\.bitPattern) }, snapshot, "\(arch) \(level): kept outputs changed")
                XCTAssertNotEqual(other.desc[0].values, kept.desc[0].values, "\(arch) \(level): the second image gives other maps")
                let again = try model.forward(image: first)
                for v in Variant.allCases {
                    XCTAssertEqual(again.desc[v].values, kept.desc[v].values, "\(arch) \(level) desc \(v.rawValue)")
                    XCTAssertEqual(again.meta[v].values, kept.meta[v].values, "\(arch) \(level) meta \(v.rawValue)")
                }
            }
        }
    }

    /// Two passes at once on one model (one thread each) give what one pass gives.
    func testConcurrentPassesOnOneModel() throws {
        let model = try Model(weights: ModelWeights(architecture: .aislfdC, tensors: SpecWeights.make("aislfd-c")))
        let images = try (1...4).map { try SpecWeights.image(height: 48, width: 64, seed: UInt64($0)) }
        let expected = try images.map { try model.forward(image: $0).meta[0].values }
        var results = [[Float]](repeating: [], count: images.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: images.count * 3) { i in
            let values = (try? model.forward(image: images[i % images.count]).meta[0].values) ?? []
            lock.lock()
            if results[i % images.count].isEmpty || results[i % images.count] == values { results[i % images.count] = values } else { results[i % images.count] = [.nan] }
            lock.unlock()
        }
        XCTAssertEqual(results, expected)
    }

    /// VGG's pooled blocks pool each band while it is in cache unless the
    /// pre-pool activation is recorded; both ways give the same bits
    /// (odd sizes: the floor drops a last row and column).
    func testPooledBandsEqualConvolutionThenPool() throws {
        try forEachSIMDLevel { level, configuration, ops in
            let model = try Model(weights: ModelWeights(architecture: .lisrd, tensors: SpecWeights.make("lisrd")), configuration: configuration)
            for (h, w) in [(61, 83), (48, 64)] {
                let image = try SpecWeights.image(height: h, width: w, seed: 3)
                let fused = try model.forward(image: image)
                let separate = try model.forward(image: image, recordActivations: true)
                XCTAssertFalse(separate.activations.isEmpty)
                for v in Variant.allCases {
                    XCTAssertEqual(fused.desc[v].values, separate.desc[v].values, "\(level) \(h)x\(w) desc \(v.rawValue)")
                    XCTAssertEqual(fused.meta[v].values, separate.meta[v].values, "\(level) \(h)x\(w) meta \(v.rawValue)")
                }
            }
        }
    }
}
