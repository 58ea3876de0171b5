import AISLFDRuntime
import AISLFDTestSupport
import Foundation
import XCTest

/// Reads Tests/Fixtures/kernels/kernels.{json,bin} (made by
/// tools/make_kernel_fixtures.py): per case, float32 arrays and parameters.
struct KernelFixtures {
    struct Array {
        let shape: [Int]
        let values: [Float]
    }

    struct Case {
        let name: String
        let arrays: [String: Array]
        let params: [String: Any]

        func array(_ key: String) throws -> Array {
            guard let a = arrays[key] else { throw FixtureError("case \(name): no array \(key)") }
            return a
        }

        func map(_ key: String) throws -> FeatureMap {
            let a = try array(key)
            guard a.shape.count == 3 else { throw FixtureError("case \(name): \(key) is not C x H x W") }
            return try FeatureMap(channels: a.shape[0], height: a.shape[1], width: a.shape[2], values: a.values)
        }

        func tensor(_ key: String) throws -> WeightTensor {
            let a = try array(key)
            return WeightTensor(shape: a.shape, values: a.values)
        }

        func int(_ key: String) throws -> Int {
            guard let v = params[key] as? Int else { throw FixtureError("case \(name): no parameter \(key)") }
            return v
        }

        func ints(_ key: String) -> [Int] { params[key] as? [Int] ?? [] }
    }

    struct FixtureError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    let cases: [String: Case]

    static func load() throws -> KernelFixtures {
        let json = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("kernels/kernels.json")))
        let blob = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("kernels/kernels.bin")))
        let floats: [Float] = blob.withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        guard let root = try JSONSerialization.jsonObject(with: json) as? [String: Any],
              let cases = root["cases"] as? [String: [String: Any]] else { throw FixtureError("kernels.json: no cases") }
        var out: [String: Case] = [:]
        for (name, body) in cases {
            var arrays: [String: Array] = [:]
            for (key, spec) in body["arrays"] as? [String: [String: Any]] ?? [:] {
                guard let shape = spec["shape"] as? [Int], let offset = spec["offset"] as? Int else {
                    throw FixtureError("case \(name): bad array \(key)")
                }
                let count = shape.reduce(1, *)
                guard offset >= 0, offset + count <= floats.count else { throw FixtureError("case \(name): \(key) past the end") }
                arrays[key] = Array(shape: shape, values: Swift.Array(floats[offset..<(offset + count)]))
            }
            out[name] = Case(name: name, arrays: arrays, params: body["params"] as? [String: Any] ?? [:])
        }
        return KernelFixtures(cases: out)
    }

    func `case`(_ name: String) throws -> Case {
        guard let c = cases[name] else { throw FixtureError("no fixture case \(name)") }
        return c
    }
}

/// max |actual - expected| / max |expected|: the error measure every parity check uses.
func relativeError(_ actual: [Float], _ expected: [Float]) -> Float {
    guard actual.count == expected.count else { return .infinity }
    var maxError: Float = 0, maxValue: Float = 0
    for (a, e) in zip(actual, expected) {
        let d = abs(a - e)
        if !(d <= maxError) { maxError = d.isNaN ? .infinity : d }
        maxValue = max(maxValue, abs(e))
    }
    return maxValue > 0 ? maxError / maxValue : maxError
}

/// Checks actual against expected within `tolerance` (relative to the
/// largest expected magnitude) and prints the error reached.
@discardableResult
func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-5, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) -> Float {
    let e = relativeError(actual, expected)
    print("parity \(label): relative max error \(e)")
    XCTAssertEqual(actual.count, expected.count, "\(label): size", file: file, line: line)
    XCTAssertLessThanOrEqual(e, tolerance, "\(label)", file: file, line: line)
    return e
}
