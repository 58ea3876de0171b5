import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

/// Expectations come from tools/fixtures/make_hdf5_fixtures.py (h5py + numpy).
final class HDF5ReaderTests: XCTestCase {
    let manifest = try! TensorManifest(path: Fixtures.path("hdf5/manifest.json"))

    func testEveryReadableFixtureMatchesTheManifestBitForBit() throws {
        XCTAssertEqual(manifest.readableFiles.count, 8)
        for name in manifest.readableFiles {
            let contents = try HDF5Reader.read(path: Fixtures.path("hdf5/" + name))
            let expected = try XCTUnwrap(manifest.entries[name])
            XCTAssertEqual(TensorManifest.describe(contents), expected.tensors, name)
            XCTAssertEqual(contents.metadata, expected.metadata, name)
            XCTAssertEqual(contents.format, "hdf5")
        }
    }

    func testEveryDTypeScalarsAndEmptyTensors() throws {
        let contents = try HDF5Reader.read(path: Fixtures.path("hdf5/dtypes.h5"))
        let dtypes = Set(contents.tensors.map(\.dtype))
        XCTAssertEqual(dtypes, Set(DType.allCases).subtracting([.bfloat16]))
        XCTAssertEqual(contents["bn.num_batches_tracked"]?.shape, [])
        XCTAssertEqual(contents["bn.num_batches_tracked"]?.data, Array(withUnsafeBytes(of: Int64(123456789).littleEndian, Array.init)))
        XCTAssertEqual(contents["flag"]?.data, [1])
        XCTAssertEqual(contents["empty"]?.shape, [0, 3])
        XCTAssertEqual(contents["empty"]?.data, [])
    }

    func testRootAttributesBecomeMetadata() throws {
        let contents = try HDF5Reader.read(path: Fixtures.path("hdf5/dtypes.h5"))
        XCTAssertEqual(contents.metadata["arch"], "aislfd-c")
        XCTAssertEqual(contents.metadata["framework"], "pytorch 2.15")
        XCTAssertEqual(contents.metadata["eps"], "1e-05")
        XCTAssertEqual(contents.metadata["image_size"], "[240, 320]")
        XCTAssertEqual(contents.metadata.count, 7)
    }

    /// libhdf5 1.10 crashes or hangs reading a variable-length string through a
    /// damaged global heap; the reader skips such an attribute and says so.
    func testStringAttributesBehindADamagedHeapAreSkippedWithANote() throws {
        let intact = try HDF5Reader.read(path: Fixtures.path("hdf5/dtypes.h5"))
        XCTAssertEqual(intact.notes, [])
        for name in ["heap_object_size.h5", "heap_object_tiling.h5", "heap_address.h5"] {
            let contents = try HDF5Reader.read(path: Fixtures.path("hdf5/" + name))
            XCTAssertNil(contents.metadata["arch"], name)
            XCTAssertEqual(contents.metadata["epoch"], "12", name)
            XCTAssertEqual(contents.notes.count, 1, name)
            XCTAssertTrue(contents.notes.first?.contains("'arch'") ?? false, "\(name): \(contents.notes)")
            XCTAssertEqual(TensorManifest.describe(contents), TensorManifest.describe(intact), name)
        }
    }

    func testBigEndianDataIsConvertedToLittleEndian() throws {
        let contents = try HDF5Reader.read(path: Fixtures.path("hdf5/big_endian.h5"))
        let tensor = try XCTUnwrap(contents["be.float32"])
        // The first value written is float32's largest finite number.
        XCTAssertEqual(tensor.floats().first, Float.greatestFiniteMagnitude)
        // The check would catch a missing swap: the stored (big-endian) bytes hash differently.
        var stored = tensor.data
        for i in stride(from: 0, to: stored.count, by: 4) { stored[i..<(i + 4)].reverse() }
        let expected = manifest.entries["big_endian.h5"]?.tensors.first { $0.key == "be.float32" }?.sha256
        XCTAssertEqual(SHA256.hex(tensor.data), expected)
        XCTAssertNotEqual(SHA256.hex(stored), expected)
    }

    func testNestedGroupsAreJoinedWithDotsInNameOrder() throws {
        let keys = try HDF5Reader.read(path: Fixtures.path("hdf5/nested.h5")).tensors.map(\.key)
        XCTAssertEqual(keys, ["_backbone._bn1_1.num_batches_tracked", "_backbone._bn1_1.running_var",
                              "_backbone._conv1_1.bias", "_backbone._conv1_1.weight",
                              "conv_illum_var_rot_var_1.weight", "vlad_rot_var_illum_var.centroids"])
    }

    /// Groups are the file's containers (where a checkpoint's state_dict may sit).
    func testGroupsAreListedAsContainers() throws {
        let nested = try HDF5Reader.read(path: Fixtures.path("hdf5/nested.h5"))
        XCTAssertEqual(nested.containers, ["_backbone", "_backbone._bn1_1", "_backbone._conv1_1", "conv_illum_var_rot_var_1",
                                           "vlad_rot_var_illum_var"])
        let checkpoint = try HDF5Reader.read(path: Fixtures.path("hdf5/training/model_state_dict.h5"))
        XCTAssertEqual(checkpoint.containers, ["model_state_dict", "optimizer_state_dict"])
        XCTAssertEqual(checkpoint.tensors.count, 105)
    }

    /// An LZF dataset (h5py's filter, absent from libhdf5) names the filter, read here or in isolation.
    func testAnUnavailableFilterIsNamed() throws {
        let path = Fixtures.path("hdf5/training/lzf.h5")
        for isolation in [nil, HDF5Isolation(executable: try Fixtures.builtExecutable("aislfd-inspect").path)] {
            guard let (message, problem) = expectFailure(path, as: HDF5Error.self, { _ = try HDF5Reader.read(path: path, isolation: isolation) }) else { continue }
            XCTAssertEqual(problem, .unavailableFilter(tensor: "conv.weight", filter: "LZF"))
            XCTAssertTrue(message.contains("filter LZF is not available in libhdf5"), message)
        }
    }

    func testTrackedCreationOrderIsKept() throws {
        let keys = try HDF5Reader.read(path: Fixtures.path("hdf5/creation_order.h5")).tensors.map(\.key)
        XCTAssertEqual(keys, ["z.weight", "a.weight", "m.bias", "b.running_mean", "b.num_batches_tracked",
                              "heads.zeta", "heads.alpha"])
    }

    func testHostileFixturesGiveTheirTypedError() throws {
        XCTAssertEqual(manifest.hostileFiles.count, 20)
        for name in manifest.hostileFiles {
            let entry = try XCTUnwrap(manifest.entries[name])
            let path = Fixtures.path("hdf5/" + name)
            // The crashers need another process; the rest are refused by checks made here.
            let isolation = name.hasPrefix("crash_") ? HDF5Isolation(executable: try Fixtures.builtExecutable("aislfd-inspect").path) : nil
            guard let (error, message) = expectFileError(HDF5Error.self, path: path, { _ = try HDF5Reader.read(path: path, isolation: isolation) })
            else { continue }
            XCTAssertEqual(caseName(error), entry.error, "\(name): \(message)")
            if let tensor = entry.tensor { XCTAssertTrue(message.contains("'\(tensor)'"), "\(name): \(message)") }
        }
    }

    /// Found by fuzzing as a libhdf5 crasher (H5Dread copies a whole claimed chunk):
    /// the reader checks the chunk shape first, so even the in-process read is safe.
    func testAChunkShapePastTheDatasetIsRefused() throws {
        let path = Fixtures.path("hdf5/chunk_past_shape.h5")
        guard let (error, message) = expectFileError(HDF5Error.self, path: path, { _ = try HDF5Reader.read(path: path) }) else { return }
        XCTAssertEqual(caseName(error), "corrupt")
        XCTAssertTrue(message.hasSuffix(": dataset '_backbone._conv1_1.weight': corrupt HDF5 structure (chunk shape [8, 3, 4099, 3] does not fit the dataset's maximum shape [8, 3, 3, 3])"), message)
    }

    func testTruncatedFilesAreRefused() throws {
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hdf5/dtypes.h5"))))
        for cut in [0, 7, 8, 100, 512, 2048, whole.count / 2, whole.count - 100, whole.count - 1] {
            let path = try temporaryFile("truncated-\(cut).h5", Array(whole.prefix(cut)))
            guard let (error, message) = expectFileError(HDF5Error.self, path: path, { _ = try HDF5Reader.read(path: path) }) else { continue }
            XCTAssertEqual(caseName(error), "cannotOpen", "cut at \(cut): \(message)")
        }
    }

    func testRandomBytesAreRefused() throws {
        for (i, prefix) in [[UInt8]]([[], [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]]).enumerated() {
            let path = try temporaryFile("random-\(i).h5", prefix + pseudoRandomBytes(count: 8192, seed: UInt64(i + 1)))
            guard let (error, _) = expectFileError(HDF5Error.self, path: path, { _ = try HDF5Reader.read(path: path) }) else { continue }
            XCTAssertEqual(caseName(error), "cannotOpen")
        }
        let missing = "/nonexistent/weights.h5"
        _ = expectFileError(HDF5Error.self, path: missing) { _ = try HDF5Reader.read(path: missing) }
    }

    func testSignatureSniffing() throws {
        let plain = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hdf5/dtypes.h5"))).prefix(HDF5Reader.prefixLength))
        let userBlock = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hdf5/userblock.h5"))).prefix(HDF5Reader.prefixLength))
        XCTAssertTrue(HDF5Reader.matches(prefix: plain))
        XCTAssertTrue(HDF5Reader.matches(prefix: Array(plain.prefix(8))))
        XCTAssertTrue(HDF5Reader.matches(prefix: userBlock))
        XCTAssertFalse(HDF5Reader.matches(prefix: Array(userBlock.prefix(519))))
        XCTAssertFalse(HDF5Reader.matches(prefix: Array(plain.prefix(7))))
        XCTAssertFalse(HDF5Reader.matches(prefix: Array("PK\u{3}\u{4}whatever".utf8)))
        var shifted = [UInt8](repeating: 0, count: 300) + plain.prefix(8)
        XCTAssertFalse(HDF5Reader.matches(prefix: shifted), "signature at a non-user-block offset")
        shifted = [UInt8](repeating: 0, count: 4096) + plain.prefix(8)
        XCTAssertTrue(HDF5Reader.matches(prefix: shifted))
    }
}
