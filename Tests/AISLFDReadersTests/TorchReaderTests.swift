import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import XCTest

final class TorchReaderTests: XCTestCase {
    struct Expected: Decodable {
        let tensors: [ManifestTensor]
        let containers: [String]
    }

    static let manifest: [String: Expected] = {
        let data = (try? fileBytes(Fixtures.path("torch/manifest.json"))) ?? []
        return (try? JSONDecoder().decode([String: Expected].self, from: Data(data))) ?? [:]
    }()

    func testTorchSaveFilesMatchTheManifest() throws {
        XCTAssertEqual(Set(Self.manifest.keys), [
            "state_dict.pth", "protocol4.pth", "checkpoint_model_state_dict.pth", "checkpoint_state_dict.pth",
            "dataparallel.pth", "parameters.pth", "renamed_folder.pth", "deflated.pth", "bigendian.pth",
            "weights_only_extras.pth", "protocol4_set.pth",
        ])
        for (name, expected) in Self.manifest {
            let contents = try TorchReader.read(path: Fixtures.path("torch/" + name))
            XCTAssertEqual(contents.format, "pytorch")
            assertMatchesManifest(contents.tensors, expected.tensors, name)
            XCTAssertEqual(contents.containers, expected.containers, name)
        }
    }

    /// What torch.load(weights_only=True) accepts besides tensors (torch.Size, torch.device,
    /// dtypes, qschemes, layouts, set, bytes, bytearray, complex, Counter, integers past 64
    /// bits, tensors with attributes, uint64 tensors; protocol 4's sets) is read as data and
    /// passed over; the manifest above holds the tensors. The training checkpoints made with
    /// real optimizers, schedulers and wrappers read too, each with its state_dict's container.
    func testWeightsOnlyDataAndTrainingCheckpointsRead() throws {
        let extras = try TorchReader.read(path: Fixtures.path("torch/weights_only_extras.pth"))
        XCTAssertEqual(extras["u64"]?.dtype, .uint64)
        XCTAssertEqual(extras["u64"]?.integers(), [Int64.max])  // 2^63 + 5 is past Int64: clamped by integers()
        XCTAssertEqual(extras["tensor_with_attr"]?.floats(), [0, 1, 2, 3, 4, 5])
        let training = try JSONSerialization.jsonObject(with: Data(fileBytes(Fixtures.path("torch/training/manifest.json")))) as? [String: Any]
        let files = try XCTUnwrap(training?["files"] as? [String: [String: Any]])
        XCTAssertEqual(files.count, 9)
        for (name, entry) in files.sorted(by: { $0.key < $1.key }) where !name.contains("#") {
            let contents = try TorchReader.read(path: Fixtures.path("torch/training/" + name))
            let container = try XCTUnwrap(entry["entry"] as? String)
            XCTAssertTrue(container.isEmpty || contents.containers.contains(container), "\(name): \(contents.containers)")
            XCTAssertGreaterThanOrEqual(contents.tensors.count, 104, name)
        }
        // Adam's per-parameter state sits under integer keys: not entered, not read.
        let adam = try TorchReader.read(path: Fixtures.path("torch/training/adam_multisteplr.pth"))
        XCTAssertEqual(adam.tensors.count, 104)
        XCTAssertEqual(adam.containers, ["model_state_dict"])
        XCTAssertEqual(adam.metadata["checkpoint.epoch"], "1")
    }

    /// torch.load(weights_only=True) refuses frozenset and defaultdict (the fixture script checks
    /// it does): so does this reader, naming the global.
    func testGlobalsTorchRefusesAreRefused() {
        for (name, global) in [("frozenset.pth", "__builtin__.frozenset"), ("defaultdict.pth", "collections.defaultdict")] {
            let path = Fixtures.path("torch/" + name)
            guard let (message, problem) = expectFailure(path, as: TorchError.self, { _ = try TorchReader.read(path: path) }) else { continue }
            guard case .pickle(_, .forbiddenGlobal(global, _)) = problem else { XCTFail("\(name): \(message)"); continue }
        }
    }

    /// Input echoed in a message is escaped and cut: a global name that swallowed kilobytes
    /// of the pickle, one with a newline and a bell, a byteorder record with a newline.
    /// (`expectFailure` checks that the message is one line.)
    func testEchoedInputIsEscapedAndBounded() {
        let cases = [("long_global.pth", "line 0 of the pickle it swallowed\\nline 1"), ("newline_global.pth", "'os\\nsystem\\x07.exec'"),
                     ("byteorder_newline.pth", "'little\\nbig'")]
        for (name, shown) in cases {
            let path = Fixtures.path("torch/" + name)
            guard let (message, _) = expectFailure(path, as: TorchError.self, { _ = try TorchReader.read(path: path) }) else { continue }
            XCTAssertTrue(message.contains(shown), message)
            XCTAssertLessThan(message.count, path.count + 300, message)
        }
    }

    func testViewsDTypesAndMetadata() throws {
        let contents = try TorchReader.read(path: Fixtures.path("torch/state_dict.pth"))
        XCTAssertEqual(Set(contents.tensors.map(\.dtype)), Set(DType.allCases).subtracting([.uint16, .uint32, .uint64]))
        XCTAssertEqual(contents["view_transposed"]?.shape, [6, 4])
        XCTAssertEqual(contents["view_slice"]?.floats(), [8, 9, 10, 14, 15, 16])
        XCTAssertEqual(contents["expanded"]?.floats(), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
        XCTAssertEqual(contents["bn.num_batches_tracked"]?.shape, [])
        XCTAssertEqual(contents.metadata["torch.archive"], "state_dict")
        XCTAssertEqual(contents.metadata["torch.byteorder"], "little")
        let renamed = try TorchReader.read(path: Fixtures.path("torch/renamed_folder.pth"))
        XCTAssertEqual(renamed.metadata["torch.archive"], "some_other_name")
        let checkpoint = try TorchReader.read(path: Fixtures.path("torch/checkpoint_model_state_dict.pth"))
        XCTAssertEqual(checkpoint.metadata["checkpoint.iter"], "7")
        XCTAssertEqual(checkpoint.tensors.count, 7)  // conv weight and bias, 5 BatchNorm entries; no optimizer state
    }

    /// The checks can fail: big-endian storages read without swapping, or a
    /// view read as the start of its storage, do not match the manifest.
    func testManifestDistinguishesUnconvertedBytes() throws {
        let expected = try XCTUnwrap(Self.manifest["bigendian.pth"]).tensors
        let archive = try ZipArchive(bytes: fileBytes(Fixtures.path("torch/bigendian.pth")))
        let little = try TorchReader.read(archive: archive)
        let conv = try XCTUnwrap(little["conv.weight"])
        let storage = try archive.read(XCTUnwrap(archive.entry(named: "state_dict/data/0")))
        XCTAssertEqual(storage.count, conv.byteCount)
        XCTAssertNotEqual(SHA256.hex(storage), try XCTUnwrap(expected.first { $0.key == "conv.weight" }).sha256)
        let base = try XCTUnwrap(little["base"])
        let slice = try XCTUnwrap(little["view_slice"])
        XCTAssertNotEqual(Array(base.data.prefix(slice.byteCount)), slice.data)
    }

    func testSniffingAndDispatch() throws {
        func prefix(_ name: String) throws -> [UInt8] { Array(try fileBytes(Fixtures.path(name)).prefix(256)) }
        XCTAssertTrue(TorchReader.matches(prefix: try prefix("torch/state_dict.pth")))
        XCTAssertTrue(TorchReader.matches(prefix: try prefix("torch/legacy.pth")))
        XCTAssertFalse(TorchReader.matches(prefix: try prefix("npz/dtypes.npz")))
        XCTAssertFalse(TorchReader.matches(prefix: try prefix("torch/random.pth")))
        let torch = try ZipArchive(bytes: fileBytes(Fixtures.path("torch/deflated.pth")))
        let npz = try ZipArchive(bytes: fileBytes(Fixtures.path("npz/dtypes.npz")))
        XCTAssertTrue(TorchReader.looksLikeTorch(torch))
        XCTAssertFalse(TorchReader.looksLikeTorch(npz))
    }

    func testRefusesGlobalsThatRunCode() {
        let cases = [
            ("evil_os_system.pth", "posix.system"),
            ("evil_exec.pth", "__builtin__.exec"),
            ("evil_eval_protocol4.pth", "builtins.eval"),
            ("evil_subprocess.pth", "subprocess.Popen"),
            ("evil_in_checkpoint.pth", "posix.system"),
        ]
        for (name, global) in cases {
            let path = Fixtures.path("torch/" + name)
            guard let (message, problem) = expectFailure(path, as: TorchError.self, { _ = try TorchReader.read(path: path) }) else { continue }
            guard case .pickle(let entry, .forbiddenGlobal(global, _)) = problem else { XCTFail("\(name): \(message)"); continue }
            XCTAssertTrue(entry.hasSuffix("/data.pkl"), entry)
            XCTAssertTrue(message.contains("'\(global)'"), message)
        }
        let inst = Fixtures.path("torch/evil_inst.pth")
        if let (_, problem) = expectFailure(inst, as: TorchError.self, { _ = try TorchReader.read(path: inst) }) {
            XCTAssertEqual(problem, .pickle(entry: "archive/data.pkl", .unsupportedOpcode(UInt8(ascii: "i"), offset: 18)))
        }
    }

    func testBrokenStoragesAndViews() {
        let missing = Fixtures.path("torch/missing_storage.pth")
        if let (message, problem) = expectFailure(missing, as: TorchError.self, { _ = try TorchReader.read(path: missing) }) {
            XCTAssertEqual(problem, .missingStorage(tensor: "conv.weight", entry: "state_dict/data/0"))
            XCTAssertTrue(message.contains("tensor 'conv.weight'"), message)
        }
        let short = Fixtures.path("torch/storage_size_mismatch.pth")
        if let (_, problem) = expectFailure(short, as: TorchError.self, { _ = try TorchReader.read(path: short) }) {
            XCTAssertEqual(problem, .storageSizeMismatch(tensor: "conv.weight", entry: "state_dict/data/0", expected: 432, actual: 428))
        }
        let outside = Fixtures.path("torch/strides_outside.pth")
        if let (message, problem) = expectFailure(outside, as: TorchError.self, { _ = try TorchReader.read(path: outside) }) {
            guard case .badTensor("outside", _) = problem else { return XCTFail(message) }
            XCTAssertTrue(message.contains("reaches element 303 of a storage of 12"), message)
        }
    }

    func testExpansionBeyondTheStoragesIsRefused() {
        let path = Fixtures.path("torch/expanded_huge.pth")
        var problem: TorchError?
        let growth = peakMemoryGrowth {
            problem = expectFailure(path, as: TorchError.self, { _ = try TorchReader.read(path: path) })?.problem
        }
        XCTAssertEqual(problem, .expandsTooFar(tensor: "huge", budget: 2 * 4 + (64 << 20)))
        XCTAssertLessThan(growth ?? 0, 16 << 20)
    }

    func testPickleLimits() {
        let cases: [(String, (PickleError) -> Bool)] = [
            ("deep_nesting.pth", { if case .limitExceeded = $0 { return true }; return false }),
            ("deep_marks.pth", { if case .limitExceeded = $0 { return true }; return false }),
            ("deep_lists.pth", { if case .limitExceeded = $0 { return true }; return false }),
            ("stack_flood.pth", { if case .limitExceeded = $0 { return true }; return false }),
            ("object_flood.pth", { if case .limitExceeded = $0 { return true }; return false }),
            ("huge_memo_index.pth", { if case .limitExceeded = $0 { return true }; return false }),
            ("huge_string.pth", { if case .limitExceeded = $0 { return true }; return false }),
            ("memo_never_stored.pth", { if case .malformed = $0 { return true }; return false }),
            ("unknown_persistent_id.pth", { if case .malformed = $0 { return true }; return false }),
            ("truncated_pickle.pth", { if case .truncated = $0 { return true }; return false }),
        ]
        for (name, isExpected) in cases {
            let path = Fixtures.path("torch/" + name)
            guard let (message, problem) = expectFailure(path, as: TorchError.self, { _ = try TorchReader.read(path: path) }) else { continue }
            guard case .pickle(_, let p) = problem, isExpected(p) else { XCTFail("\(name): \(message)"); continue }
        }
    }

    func testFilesThatAreNotStateDicts() {
        let legacy = Fixtures.path("torch/legacy.pth")
        if let (message, problem) = expectFailure(legacy, as: TorchError.self, { _ = try TorchReader.read(path: legacy) }) {
            XCTAssertEqual(problem, .legacyFormat)
            XCTAssertTrue(message.contains("legacy torch.save format; re-save with torch >= 1.6"), message)
        }
        let bare = Fixtures.path("torch/bare_pickle.pth")
        if let (_, problem) = expectFailure(bare, as: TorchError.self, { _ = try TorchReader.read(path: bare) }) {
            XCTAssertEqual(problem, .barePickle)
        }
        let single = Fixtures.path("torch/single_tensor.pth")
        if let (_, problem) = expectFailure(single, as: TorchError.self, status: .invalid, { _ = try TorchReader.read(path: single) }) {
            XCTAssertEqual(problem, .notAStateDict("the file holds a single tensor, not a dict"))
        }
        let none = Fixtures.path("torch/no_tensors.pth")
        if let (_, problem) = expectFailure(none, as: TorchError.self, status: .invalid, { _ = try TorchReader.read(path: none) }) {
            XCTAssertEqual(problem, .noTensors(topLevelKeys: ["iter", "model"]))
        }
        let random = Fixtures.path("torch/random.pth")
        if let (_, problem) = expectFailure(random, as: ZipError.self, { _ = try TorchReader.read(path: random) }) {
            XCTAssertEqual(problem, .notAZip(byteCount: 4096))
        }
        let npz = Fixtures.path("npz/dtypes.npz")
        if let (_, problem) = expectFailure(npz, as: TorchError.self, { _ = try TorchReader.read(path: npz) }) {
            XCTAssertEqual(problem, .notATorchArchive)
        }
    }

    func testTruncatedAtManyPoints() throws {
        let whole = try fileBytes(Fixtures.path("torch/state_dict.pth"))
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        for cut in [0, 2, 40, 500, whole.count / 2, whole.count - 30, whole.count - 1] {
            let path = folder.appendingPathComponent("cut\(cut).pth").path
            try writeBytes(Array(whole[..<cut]), to: path)
            _ = expectFailure(path, as: ZipError.self, { _ = try TorchReader.read(path: path) })
        }
    }
}
