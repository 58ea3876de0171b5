import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

/// Expectations come from tools/fixtures/make_safetensors_fixtures.py (torch + safetensors).
final class SafetensorsReaderTests: XCTestCase {
    let manifest = try! TensorManifest(path: Fixtures.path("safetensors/manifest.json"))

    func testReadableFixturesMatchTheManifestBitForBit() throws {
        XCTAssertEqual(manifest.readableFiles, ["dtypes.safetensors", "offset_order.safetensors", "state_dict.safetensors"])
        for name in manifest.readableFiles {
            let contents = try SafetensorsReader.read(path: Fixtures.path("safetensors/" + name))
            let expected = try XCTUnwrap(manifest.entries[name])
            XCTAssertEqual(TensorManifest.describe(contents), expected.tensors, name)
            XCTAssertEqual(contents.metadata, expected.metadata, name)
            XCTAssertEqual(contents.format, "safetensors")
        }
    }

    func testEveryDTypeScalarsAndEmptyTensors() throws {
        let contents = try SafetensorsReader.read(path: Fixtures.path("safetensors/dtypes.safetensors"))
        XCTAssertEqual(Set(contents.tensors.map(\.dtype)), Set(DType.allCases))
        XCTAssertEqual(contents["bn.num_batches_tracked"]?.shape, [])
        XCTAssertEqual(contents["bn.num_batches_tracked"]?.data, Array(withUnsafeBytes(of: Int64(123456789).littleEndian, Array.init)))
        XCTAssertEqual(contents["bn.momentum"]?.floats(), [0.1])
        XCTAssertEqual(contents["empty"]?.shape, [0, 3])
        XCTAssertEqual(contents["layer.bfloat16"]?.floats().first, Float(bitPattern: 0x7F7F_0000), "bfloat16's largest finite value")
        XCTAssertEqual(contents.metadata["arch"], "aislfd-c")
    }

    func testTensorsComeInDataOffsetOrder() throws {
        // Neither header order (m, z, a) nor name order (a, m, z).
        XCTAssertEqual(try SafetensorsReader.read(path: Fixtures.path("safetensors/offset_order.safetensors")).tensors.map(\.key), ["z", "m", "a"])
        let keys = try SafetensorsReader.read(path: Fixtures.path("safetensors/state_dict.safetensors")).tensors.map(\.key)
        // safetensors lays out by alignment (8-byte dtypes first), then by name.
        XCTAssertEqual(keys, ["_backbone._bn1_1.num_batches_tracked", "_backbone._conv1_1.bias",
                              "_backbone._conv1_1.weight", "psa.rot_var_illum_var.query.weight"])
    }

    func testHostileFixturesGiveTheirTypedError() throws {
        XCTAssertEqual(manifest.hostileFiles.count, 22)
        for name in manifest.hostileFiles {
            let entry = try XCTUnwrap(manifest.entries[name])
            let path = Fixtures.path("safetensors/" + name)
            guard let (error, message) = expectFileError(SafetensorsError.self, path: path, { _ = try SafetensorsReader.read(path: path) }) else { continue }
            XCTAssertEqual(caseName(error), entry.error, "\(name): \(message)")
            if let tensor = entry.tensor { XCTAssertTrue(message.contains("'\(tensor)'"), "\(name): \(message)") }
        }
    }

    func testHeaderLengthOf2To62IsRefusedWithoutAllocating() throws {
        let path = Fixtures.path("safetensors/header_length_2e62.safetensors")
        let result = expectFileError(SafetensorsError.self, path: path) { _ = try SafetensorsReader.read(path: path) }
        XCTAssertEqual(result?.0, .headerTooLarge(length: 1 << 62, limit: 2))
    }

    func testTruncatedFilesAreRefused() throws {
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("safetensors/dtypes.safetensors"))))
        let headerEnd = 8 + Int(whole[0]) + Int(whole[1]) << 8
        let expected: [(Int, String)] = [(0, "fileTooShort"), (7, "fileTooShort"), (8, "headerTooLarge"), (100, "headerTooLarge"),
                                         (headerEnd - 1, "headerTooLarge"), (headerEnd, "offsetsOutOfRange"),
                                         (headerEnd + 100, "offsetsOutOfRange"), (whole.count - 1, "offsetsOutOfRange")]
        for (cut, errorCase) in expected {
            let path = try temporaryFile("truncated-\(cut).safetensors", Array(whole.prefix(cut)))
            guard let (error, message) = expectFileError(SafetensorsError.self, path: path, { _ = try SafetensorsReader.read(path: path) }) else { continue }
            XCTAssertEqual(caseName(error), errorCase, "cut at \(cut): \(message)")
        }
    }

    func testRandomBytesAreRefused() throws {
        for seed in 1...5 {
            let path = try temporaryFile("random-\(seed).safetensors", pseudoRandomBytes(count: 4096, seed: UInt64(seed)))
            _ = expectFileError(SafetensorsError.self, path: path) { _ = try SafetensorsReader.read(path: path) }
        }
        let missing = "/nonexistent/weights.safetensors"
        let result = expectFileError(SafetensorsError.self, path: missing) { _ = try SafetensorsReader.read(path: missing) }
        XCTAssertEqual(result.map { caseName($0.0) }, "cannotRead")
    }

    func testSniffing() throws {
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("safetensors/dtypes.safetensors"))))
        XCTAssertTrue(SafetensorsReader.matches(prefix: Array(whole.prefix(SafetensorsReader.prefixLength))))
        XCTAssertFalse(SafetensorsReader.matches(prefix: Array(whole.prefix(8))))
        var huge = whole
        huge[7] = 1  // header length past the cap
        XCTAssertFalse(SafetensorsReader.matches(prefix: huge))
        var notBrace = whole
        notBrace[8] = UInt8(ascii: "[")
        XCTAssertFalse(SafetensorsReader.matches(prefix: notBrace))
        XCTAssertFalse(SafetensorsReader.matches(prefix: [0x89] + Array("HDF\r\n\u{1A}\n".utf8) + [0]))
    }

    /// A ~23 MB file (the size of aislfd-c's fp32 weights) written here reads back byte for byte.
    func testReadsTwentyThreeMegabytesExactly() throws {
        let count = 23_000_000 / 4
        let header = Array(#"{"w":{"dtype":"F32","shape":[\#(count)],"data_offsets":[0,\#(count * 4)]}}"#.utf8)
        var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        let block = pseudoRandomBytes(count: 1 << 20, seed: 9)
        while bytes.count < 8 + header.count + count * 4 { bytes += block.prefix(8 + header.count + count * 4 - bytes.count) }
        let path = try temporaryFile("large.safetensors", bytes)
        let contents = try SafetensorsReader.read(path: path)
        XCTAssertEqual(contents.tensors.first?.data.count, count * 4)
        XCTAssertTrue(contents.tensors[0].data.withUnsafeBytes { read in
            bytes.withUnsafeBytes { all in
                guard let a = read.baseAddress, let b = all.baseAddress else { return false }
                return memcmp(a, b + 8 + header.count, count * 4) == 0
            }
        })
    }
}
