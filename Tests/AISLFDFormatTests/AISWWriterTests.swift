import Foundation
import XCTest
import AISLFDCore
import AISLFDFormat
import AISLFDTestSupport

final class AISWWriterTests: XCTestCase {
    private func contents(_ folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    func testRefusesToOverwriteTheInputEvenThroughALink() throws {
        let folder = try Fixtures.temporaryDirectory()
        let input = folder.appendingPathComponent("weights.h5").path
        try Data("original".utf8).write(to: URL(fileURLWithPath: input))
        let link = folder.appendingPathComponent("link.aisw").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: input)
        let hard = folder.appendingPathComponent("hard.aisw").path
        try FileManager.default.linkItem(atPath: input, toPath: hard)
        for output in [input, link, hard, folder.appendingPathComponent("./weights.h5").path] {
            XCTAssertEqual(AISWTest.error { try AISWSamples.mixedWriter().write(to: output, refusing: input) },
                           .sameFileAsInput(input: input), output)
        }
        XCTAssertEqual(try String(contentsOfFile: input, encoding: .utf8), "original")
        XCTAssertEqual(try contents(folder), ["hard.aisw", "link.aisw", "weights.h5"], "no temporary left behind")
        // A different output is fine.
        try AISWSamples.mixedWriter().write(to: folder.appendingPathComponent("out.aisw").path, refusing: input)
    }

    func testFailedWriteLeavesNoOutputAndNoTemporary() throws {
        let folder = try Fixtures.temporaryDirectory()
        let output = folder.appendingPathComponent("out.aisw").path
        var writer = AISWSamples.mixedWriter()
        writer.tensors[0].data.removeLast()
        XCTAssertNotNil(AISWTest.error { try writer.write(to: output) })
        XCTAssertEqual(try contents(folder), [])
        // Nowhere to write.
        guard case .file(.writeFailed) = AISWTest.error({ try AISWSamples.mixedWriter().write(to: folder.appendingPathComponent("no/such/out.aisw").path) }) else {
            return XCTFail()
        }
        // A failure at rename (the target is a non-empty folder) removes the temporary.
        let blocker = folder.appendingPathComponent("taken.aisw")
        try FileManager.default.createDirectory(at: blocker.appendingPathComponent("inside"), withIntermediateDirectories: true)
        guard case .file(.writeFailed(call: "rename", _)) = AISWTest.error({ try AISWSamples.mixedWriter().write(to: blocker.path) }) else {
            return XCTFail()
        }
        XCTAssertEqual(try contents(folder), ["taken.aisw"])
    }

    func testReplacesAnExistingOutputWhole() throws {
        let folder = try Fixtures.temporaryDirectory()
        let output = folder.appendingPathComponent("out.aisw").path
        try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: output))
        try AISWSamples.mixedWriter().write(to: output)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: output)), Data(try AISWSamples.mixedWriter().encode()))
        XCTAssertEqual(try contents(folder), ["out.aisw"])
    }

    func testRefusesTensorsItCouldNotStoreFaithfully() {
        let meta = AISWSamples.metadata()
        func refusal(_ tensors: [AISWTensor], _ metadata: AISWMetadata? = nil) -> AISWError? {
            do {
                _ = try AISWWriter(metadata: metadata ?? meta, tensors: tensors).encode()
                XCTFail("accepted")
            } catch let e as AISWError {
                return e
            } catch {
                XCTFail("\(error)")
            }
            return nil
        }
        let ok = AISWTensor.fp32(key: "a", shape: [2], values: [1, 2], role: "r")
        XCTAssertEqual(refusal([ok, ok]), .duplicateKey("a"))
        XCTAssertEqual(refusal([.fp32(key: "a", shape: [3], values: [1, 2], role: "")]),
                       .invalidTensor(key: "a", problem: "8 data bytes, shape [3] needs 12"))
        XCTAssertEqual(refusal([AISWTensor(key: "q", shape: [2], storage: .int8, data: [1, 2], role: "")]),
                       .invalidTensor(key: "q", problem: "int8 storage needs rank >= 1 and one scale per index of axis 0"))
        XCTAssertEqual(refusal([.int8(key: "q", shape: [], values: [1], scales: [1], role: "")]),
                       .invalidTensor(key: "q", problem: "int8 storage needs rank >= 1 and one scale per index of axis 0"))
        XCTAssertEqual(refusal([.int8(key: "q", shape: [2, 1], values: [1, 2], scales: [1], role: "")]),
                       .invalidTensor(key: "q", problem: "1 scales for 2 channels"))
        guard case .invalidScale(key: "q", channel: 1, _) = refusal([.int8(key: "q", shape: [2], values: [1, 2], scales: [1, .nan], role: "")]) else {
            return XCTFail()
        }
        XCTAssertEqual(refusal([.int8(key: "q", shape: [2], values: [1, -128], scales: [1, 1], role: "")]),
                       .invalidTensor(key: "q", problem: "int8 value -128 (symmetric quantization stores -127 ... 127)"))
        XCTAssertEqual(refusal([AISWTensor(key: "a", shape: [1], storage: .fp32, data: [0, 0, 0, 0], scales: [1], role: "")]),
                       .invalidTensor(key: "a", problem: "scales given for fp32 storage"))
        XCTAssertEqual(refusal([.fp32(key: "a", shape: [Int](repeating: 1, count: 9), values: [1], role: "")]),
                       .limitExceeded(what: "rank of tensor a", value: 9, limit: 8))
        let long = String(repeating: "k", count: 513)
        XCTAssertEqual(refusal([.fp32(key: long, shape: [1], values: [1], role: "")]),
                       .limitExceeded(what: "key length of tensor \(long)", value: 513, limit: 512))
        XCTAssertEqual(refusal([.fp32(key: "a", shape: [1], values: [1], role: String(repeating: "r", count: 129))]),
                       .limitExceeded(what: "role length of tensor a", value: 129, limit: 128))
        guard case .invalidTable = refusal([.fp32(key: "", shape: [1], values: [1], role: "")]) else { return XCTFail() }
        XCTAssertEqual(refusal([.fp32(key: "a", shape: [-1], values: [], role: "")]),
                       .limitExceeded(what: "dimension of tensor a", value: -1, limit: Int(Int32.max)))
        var badHistory = meta
        badHistory.tensorHistory = ["b": ["folded"]]
        XCTAssertEqual(refusal([ok], badHistory), .invalidMetadata("tensor_history names b, which is not stored"))
        var nanMeta = meta
        nanMeta.extra = ["x": .double(.nan)]
        guard case .invalidMetadata = refusal([ok], nanMeta) else { return XCTFail() }
    }

    func testWrapsErrorsWithTheOutputPath() throws {
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("out.aisw").path
        let writer = AISWWriter(metadata: AISWSamples.metadata(), tensors: [.fp32(key: "a", shape: [3], values: [1], role: "")])
        XCTAssertThrowsError(try writer.write(to: output)) { error in
            XCTAssertEqual("\(error)", "\(output): tensor a: 4 data bytes, shape [3] needs 12")
        }
    }
}
