import Foundation
import XCTest
import AISLFDIO
import AISLFDTestSupport

/// A file the size of the full AISLFD model (aislfd-c: 116 tensors, 5,778,381 values, 23 MB):
/// opening must stay in the milliseconds. Run with `-c release` for meaningful numbers.
final class AISWPerformanceTests: XCTestCase {
    func testOpeningAndVerifyingAModelSizedFileIsFast() throws {
        // 116 tensors: 29 of 199,254 values and 87 of 44 values add up to 5,778,394 values.
        var tensors: [AISWTensor] = []
        for i in 0..<116 {
            let n = i % 4 == 0 ? 199_254 : 44
            tensors.append(.fp32(key: "layer\(i).weight", shape: [n], values: (0..<n).map { Float($0 % 1000) / 7 }, role: "w"))
        }
        let path = try Fixtures.temporaryDirectory().appendingPathComponent("big.aisw").path
        let writer = AISWWriter(metadata: AISWSamples.metadata(), tensors: tensors)
        let clock = ContinuousClock()
        let writing = try clock.measure { try writer.write(to: path) }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        XCTAssertGreaterThan(size, 23_000_000)

        var opens: [Duration] = [], checks: [Duration] = [], bare: [Duration] = []
        for _ in 0..<5 {
            var file: AISWFile?
            opens.append(try clock.measure { file = try AISWFile.open(path: path) })
            checks.append(try clock.measure { try file?.verify() })
            bare.append(try clock.measure { _ = try AISWFile.open(path: path, verifyData: false) })
        }
        let ms = { (d: [Duration]) in String(format: "%.2f ms", Double(d.min()!.components.attoseconds) / 1e15 + Double(d.min()!.components.seconds) * 1e3) }
        print("aisw \(size) bytes: write \(writing), open+verify \(ms(opens)), verify \(ms(checks)), open without verify \(ms(bare)) (best of 5)")
        XCTAssertLessThan(opens.min()!, .seconds(1))
    }
}
