import Foundation
import XCTest
import AISLFDCore
import AISLFDFormat
import AISLFDTestSupport

/// Sample content shared by the .aisw tests and by tools/test_aisw_py.py, which recomputes
/// the same formulas in NumPy. All values are exact in float32 (and in fp16 where stored so).
enum AISWSamples {
    /// k/64 for k in -50...50: exact in fp16 and fp32.
    static func value(_ i: Int) -> Float { Float((i * 37) % 101 - 50) / 64 }
    /// Quantized values in -127...127.
    static func quantized(_ i: Int) -> Int8 { Int8((i * 53) % 255 - 127) }
    static func scale(_ c: Int) -> Float { Float(c + 1) / 128 }

    static func values(_ shape: [Int]) -> [Float] { (0..<shape.reduce(1, *)).map(value) }

    static func metadata(precision: String = "fp32", history: [String: [String]] = [:]) -> AISWMetadata {
        AISWMetadata(
            architecture: "aislfd-c",
            architectureConfig: ["descriptor_dim": .int(128), "variants": .array([.string("rot_var_illum_var")]),
                                 "eps": .double(1e-5), "note": .string("quote \" backslash \\ tab \t é")],
            schema: .init(id: "aislfd-c", sha256: String(repeating: "ab", count: 32)),
            source: .init(fileName: "weights.h5", sha256: String(repeating: "cd", count: 32), format: "hdf5", byteCount: 123_456),
            converter: .init(name: "aislfd-convert", version: "0.1.0"),
            options: .init(precision: precision, fold: true, keep: ["*.bias"], other: ["clamp": .bool(false)]),
            passes: [.init(name: "FoldBatchNorm", details: .object(["folded": .int(2)])), .init(name: "Quantize")],
            folds: [.init(kind: "batchnorm-into-preceding-conv", from: "msfe.stem.bn", into: "msfe.stem.conv")],
            tensorHistory: history,
            extra: [:])
    }

    /// Rank 4, rank 1, rank 0 and an empty tensor, all fp32.
    static func fp32Tensors() -> [AISWTensor] {
        [
            .fp32(key: "msfe.stem.conv.weight", shape: [4, 3, 3, 3], values: values([4, 3, 3, 3]), role: "conv.weight"),
            .fp32(key: "msfe.stem.conv.bias", shape: [4], values: values([4]), role: "conv.bias"),
            .fp32(key: "scalar", shape: [], values: [value(7)], role: "scalar"),
            .fp32(key: "empty", shape: [0, 5], values: [], role: "empty"),
        ]
    }

    static func fp16Tensors() -> [AISWTensor] {
        [
            .fp16(key: "head.conv1.weight", shape: [8, 4, 3, 3], bits: values([8, 4, 3, 3]).map { Float16($0).bitPattern }, role: "conv.weight"),
            .fp16(key: "head.conv2.bias", shape: [5], bits: values([5]).map { Float16($0).bitPattern }, role: "conv.bias"),
        ]
    }

    static func int8Tensors() -> [AISWTensor] {
        [
            .int8(key: "layer.conv.weight", shape: [6, 2, 3, 3], values: (0..<108).map(quantized),
                  scales: (0..<6).map(scale), role: "conv.weight"),
            .fp32(key: "layer.conv.bias", shape: [6], values: values([6]), role: "conv.bias"),
            .int8(key: "psa.query.weight", shape: [3, 5], values: (0..<15).map(quantized),
                  scales: (0..<3).map(scale), role: "linear.weight"),
        ]
    }

    static func mixedWriter() -> AISWWriter {
        AISWWriter(metadata: metadata(precision: "int8", history: ["layer.conv.weight": ["int8 per channel"]]),
                   tensors: fp32Tensors() + fp16Tensors() + int8Tensors())
    }
}

/// An independent reading of the layout in docs/aisw-format.md, used to find and patch
/// fields of a file (hostile-file tests), so these tests do not trust the reader's parsing.
struct AISWBytes {
    var bytes: [UInt8]

    func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
    func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[o + $1]) << (8 * $1) } }
    func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[o + $1]) << (8 * $1) } }
    mutating func set16(_ o: Int, _ v: Int) { for i in 0..<2 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func set32(_ o: Int, _ v: UInt32) { for i in 0..<4 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func set64(_ o: Int, _ v: UInt64) { for i in 0..<8 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }

    var metadataLength: Int { Int(u32(24)) }
    var tableLength: Int { Int(u32(28)) }
    var tensorCount: Int { Int(u32(32)) }
    var tableOffset: Int { 64 + (metadataLength + 7) / 8 * 8 }
    var dataOffset: Int { (tableOffset + tableLength + 63) / 64 * 64 }

    /// Start of each table entry.
    var entries: [Int] {
        var out: [Int] = []
        var o = tableOffset
        for _ in 0..<tensorCount {
            out.append(o)
            let strings = (48 + u16(o) + u16(o + 2) + 7) / 8 * 8
            o += strings + 8 * Int(bytes[o + 5])
        }
        return out
    }

    func key(_ entry: Int) -> String { String(decoding: bytes[(entry + 48)..<(entry + 48 + u16(entry))], as: UTF8.self) }
    func dims(_ entry: Int) -> Int { entry + (48 + u16(entry) + u16(entry + 2) + 7) / 8 * 8 }

    /// Recomputes the header checksum so a patch reaches the checks behind it (over what
    /// exists when a patched length points past the end).
    mutating func fixChecksum() {
        let head = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[0..<60])) }
        let crc = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[64..<min(dataOffset, bytes.count)]), seed: head) }
        set32(60, crc)
    }
}

enum AISWTest {
    static func write(_ bytes: [UInt8], name: String = "f.aisw") throws -> String {
        let path = try Fixtures.temporaryDirectory().appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The AISWError inside the FileError thrown by `body`, or a test failure.
    static func error(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> AISWError? {
        do {
            try body()
            XCTFail("no error thrown", file: file, line: line)
        } catch let e as FileError {
            if let a = e.problem as? AISWError { return a }
            XCTFail("not an AISWError: \(e)", file: file, line: line)
        } catch {
            XCTFail("not a FileError: \(error)", file: file, line: line)
        }
        return nil
    }

    static func openError(_ bytes: [UInt8], verifyData: Bool = true, file: StaticString = #filePath, line: UInt = #line) -> AISWError? {
        guard let path = try? write(bytes) else { XCTFail("cannot write temporary file"); return nil }
        return error(file: file, line: line) { _ = try AISWFile.open(path: path, verifyData: verifyData) }
    }
}

