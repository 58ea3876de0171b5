import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import XCTest

final class NPZReaderTests: XCTestCase {
    static let manifest: [String: [ManifestTensor]] = {
        let data = (try? fileBytes(Fixtures.path("npz/manifest.json"))) ?? []
        return (try? JSONDecoder().decode([String: [ManifestTensor]].self, from: Data(data))) ?? [:]
    }()

    func testNumPyArchivesMatchTheManifest() throws {
        XCTAssertFalse(Self.manifest.isEmpty, "manifest.json missing or unreadable")
        for name in ["dtypes.npz", "dtypes_compressed.npz", "zip64.npz"] {
            let contents = try NPZReader.read(path: Fixtures.path("npz/" + name))
            XCTAssertEqual(contents.format, "npz")
            assertMatchesManifest(contents.tensors, try XCTUnwrap(Self.manifest[name]), name)
        }
    }

    /// Every dtype and layout is present, so a reader that mishandled one would fail above.
    func testFixtureCoversEveryDTypeAndLayout() throws {
        let contents = try NPZReader.read(path: Fixtures.path("npz/dtypes.npz"))
        let dtypes = Set(contents.tensors.map(\.dtype))
        XCTAssertEqual(dtypes, Set(DType.allCases).subtracting([.bfloat16]))
        XCTAssertEqual(contents["scalar_f4"]?.shape, [])
        XCTAssertEqual(contents["scalar_f4"]?.floats(), [3.5])
        XCTAssertEqual(contents["empty_f4"]?.shape, [0, 3])
        XCTAssertEqual(contents["empty_f4"]?.data, [])
    }

    /// The checks can fail: the raw file bytes of a Fortran-ordered or
    /// big-endian array are not what the manifest says the tensor holds.
    func testManifestDistinguishesUnconvertedBytes() throws {
        let archive = try ZipArchive(bytes: fileBytes(Fixtures.path("npz/dtypes.npz")))
        let expected = try XCTUnwrap(Self.manifest["dtypes.npz"])
        for key in ["fortran_f4", "be_f4", "be_fortran_f8"] {
            let raw = try archive.read(XCTUnwrap(archive.entry(named: key + ".npy")))
            let sha = try XCTUnwrap(expected.first { $0.key == key }).sha256
            XCTAssertNotEqual(SHA256.hex(Array(raw[128...])), sha, key)
        }
    }

    func testSniffing() throws {
        func prefix(_ name: String) throws -> [UInt8] { Array(try fileBytes(Fixtures.path(name)).prefix(256)) }
        XCTAssertTrue(NPZReader.matches(prefix: try prefix("npz/dtypes.npz")))
        XCTAssertTrue(NPZReader.matches(prefix: try prefix("npz/dtypes_compressed.npz")))
        XCTAssertFalse(NPZReader.matches(prefix: try prefix("torch/state_dict.pth")))
        XCTAssertFalse(NPZReader.matches(prefix: try prefix("npz/v1.npy")))
        XCTAssertTrue(NPYReader.matches(prefix: try prefix("npz/v1.npy")))
        XCTAssertFalse(NPYReader.matches(prefix: try prefix("npz/dtypes.npz")))
    }

    func testArraysThatLieAboutTheirShape() {
        for (name, actual) in [("npz/bad_shape_short.npz", 8), ("npz/bad_shape_long.npz", 80)] {
            let path = Fixtures.path(name)
            guard let (message, problem) = expectFailure(path, as: NPZError.self, { _ = try NPZReader.read(path: path) })
            else { continue }
            XCTAssertEqual(problem, .badArray(entry: "w.npy", .dataSizeMismatch(descr: "<f4", shape: [10], expected: 40, actual: actual)))
            XCTAssertTrue(message.contains("tensor 'w'"), message)
        }
    }

    func testMalformedHeaderInArchive() {
        let path = Fixtures.path("npz/bad_header.npz")
        guard let (_, problem) = expectFailure(path, as: NPZError.self, { _ = try NPZReader.read(path: path) }) else { return }
        guard case .badArray("w.npy", .malformedHeader) = problem else { return XCTFail("\(problem)") }
    }

    /// 256 MiB of zeros behind a header that declares 16 bytes: refused from
    /// the sizes alone, or, when the zip lies too, by stopping at the declared size.
    func testDeflateBombs() throws {
        let growth = peakMemoryGrowth(readBombs)
        XCTAssertLessThan(growth ?? 0, 16 << 20)
    }

    /// The measurement can fail: inflating the bomb in full (declared size
    /// ignored) takes its 256 MiB.
    func testMemoryMeasurementSeesAFullInflate() throws {
        let archive = try ZipArchive(bytes: fileBytes(Fixtures.path("npz/bad_deflate_bomb.npz")))
        let growth = try peakMemoryGrowth { _ = try archive.read(archive.entries[0]) }
        // Linux, where the suite runs, always measures; nil here would make the bomb test prove nothing.
        XCTAssertNotNil(growth, "peak memory cannot be measured here")
        XCTAssertGreaterThan(growth ?? 0, 200 << 20)
    }

    private func readBombs() {
        let honest = Fixtures.path("npz/bad_deflate_bomb.npz")
        if let (_, problem) = expectFailure(honest, as: NPZError.self, { _ = try NPZReader.read(path: honest) }) {
            guard case .badArray("w.npy", .dataSizeMismatch(_, [4], 16, 256 << 20)) = problem else { return XCTFail("\(problem)") }
        }
        let lying = Fixtures.path("npz/bad_deflate_bomb_lying.npz")
        if let (message, problem) = expectFailure(lying, as: ZipError.self, { _ = try NPZReader.read(path: lying) }) {
            XCTAssertEqual(problem, .inflatesBeyondDeclaredSize(entry: "w.npy", declared: 144))
            XCTAssertTrue(message.contains("'w.npy'"), message)
        }
    }

    func testCorruptArchives() throws {
        let cases: [(String, (ZipError) -> Bool)] = [
            ("npz/bad_crc.npz", { if case .crcMismatch("f2.npy", _, _) = $0 { return true }; return false }),
            ("npz/bad_truncated.npz", { $0 == .notAZip(byteCount: 3633) }),
            ("npz/bad_random.npz", { $0 == .notAZip(byteCount: 4096) }),
            ("npz/bad_random_after_signature.npz", { $0 == .notAZip(byteCount: 4100) }),
            ("zip/claims_terabytes_stored.zip", { if case .outOfBounds = $0 { return true }; return false }),
            ("zip/claims_terabytes_deflate.zip", { if case .impossibleRatio = $0 { return true }; return false }),
            ("zip/claims_many_entries.zip", { if case .outOfBounds = $0 { return true }; return false }),
            ("zip/bad_directory_offset.zip", { if case .outOfBounds = $0 { return true }; return false }),
            ("zip/bad_local_offset.zip", { if case .badSignature = $0 { return true }; return false }),
            ("zip/bad_entry_size.zip", { if case .outOfBounds = $0 { return true }; return false }),
            ("zip/bad_deflate_data.zip", { if case .corruptDeflate("a.npy", _) = $0 { return true }; return false }),
            ("zip/bad_method.zip", { $0 == .unsupportedMethod(entry: "a.npy", method: 12) }),
        ]
        for (name, isExpected) in cases {
            let path = Fixtures.path(name)
            guard let (message, problem) = expectFailure(path, as: ZipError.self, { _ = try NPZReader.read(path: path) }) else { continue }
            XCTAssertTrue(isExpected(problem), "\(name): \(message)")
        }
    }

    func testTruncatedAtManyPoints() throws {
        let whole = try fileBytes(Fixtures.path("npz/dtypes_compressed.npz"))
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        for cut in [0, 3, 30, 200, whole.count / 3, whole.count - 100, whole.count - 1] {
            let path = folder.appendingPathComponent("cut\(cut).npz").path
            try writeBytes(Array(whole[..<cut]), to: path)
            _ = expectFailure(path, as: ZipError.self, { _ = try NPZReader.read(path: path) })
        }
    }

    func testMissingFile() {
        let path = Fixtures.path("npz/does_not_exist.npz")
        guard let (message, _) = expectFailure(path, as: FileSystemError.self, { _ = try NPZReader.read(path: path) }) else { return }
        XCTAssertTrue(message.contains("No such file"), message)
    }

    /// Names from the file stay one escaped line in messages and notes: an entry name with a
    /// newline, an ignored entry with a bell (`expectFailure` checks the line count).
    func testNamesWithControlCharactersAreEscaped() throws {
        let path = Fixtures.path("npz/bad_entry_newline.npz")
        if let (_, message) = expectFileError(NPZError.self, path: path, { _ = try NPZReader.read(path: path) }) {
            XCTAssertTrue(message.contains("tensor 'conv\\nweight' (entry 'conv\\nweight.npy')"), message)
        }
        let bell = try NPZReader.read(path: Fixtures.path("npz/bad_duplicate_bell.npz"))
        XCTAssertEqual(bell.notes, ["ignored entries that are not .npy arrays: w\\x07"])
        let dtype = Fixtures.path("npz/bad_header_newline_dtype.npy")
        _ = expectFileError(NPYError.self, path: dtype) { _ = try NPYReader.read(path: dtype) }
    }
}
