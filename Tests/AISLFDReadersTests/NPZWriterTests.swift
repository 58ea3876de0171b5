import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import XCTest

final class NPZWriterTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws { folder = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    private func sample() -> [NamedTensor] {
        func bytes(_ n: Int, _ seed: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ seed) } }
        return [
            NamedTensor(key: "image", shape: [1, 3, 2, 2], floats: (0..<12).map { Float($0) / 11 }),
            NamedTensor(key: "desc.rot_var_illum_var", dtype: .float64, shape: [2, 3], data: bytes(48, 1)),
            NamedTensor(key: "matches", dtype: .int64, shape: [3, 2], data: bytes(48, 2)),
            NamedTensor(key: "i32", dtype: .int32, shape: [5], data: bytes(20, 3)),
            NamedTensor(key: "u8", dtype: .uint8, shape: [2, 2], data: bytes(4, 4)),
            NamedTensor(key: "mask", dtype: .bool, shape: [3], data: [1, 0, 1]),
            NamedTensor(key: "scalar", dtype: .float32, shape: [], data: bytes(4, 5)),
            NamedTensor(key: "empty", dtype: .float32, shape: [0, 128], data: []),
        ]
    }

    func testRoundTrip() throws {
        let tensors = sample()
        try NPZWriter.write(tensors, to: path("out.npz"))
        let back = try NPZReader.read(path: path("out.npz"))
        XCTAssertEqual(back.tensors, tensors)
    }

    func testDeterministicBytes() throws {
        try NPZWriter.write(sample(), to: path("a.npz"))
        try NPZWriter.write(sample(), to: path("b.npz"))
        XCTAssertEqual(try fileBytes(path("a.npz")), try fileBytes(path("b.npz")))
        var changed = sample()
        changed[0].data[0] ^= 1
        try NPZWriter.write(changed, to: path("c.npz"))
        XCTAssertNotEqual(try fileBytes(path("a.npz")), try fileBytes(path("c.npz")))
    }

    /// Each `.npy` entry is byte for byte what `numpy.savez` wrote for the same
    /// array, so NumPy reads the writer's output as it reads its own.
    func testEntriesEqualNumPysOwnBytes() throws {
        let source = Fixtures.path("npz/dtypes.npz")
        let numpy = try ZipArchive(bytes: fileBytes(source))
        let keys = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1",
                    "scalar_f4", "scalar_i8", "empty_f4", "empty_i8", "special_f4"]
        let tensors = try NPZReader.read(path: source).tensors.filter { keys.contains($0.key) }
        XCTAssertEqual(tensors.count, keys.count)
        try NPZWriter.write(tensors, to: path("mine.npz"))
        let mine = try ZipArchive(bytes: fileBytes(path("mine.npz")))
        XCTAssertEqual(mine.entries.map(\.name), tensors.map { $0.key + ".npy" })
        for key in keys {
            let theirs = try numpy.read(XCTUnwrap(numpy.entry(named: key + ".npy")))
            let ours = try mine.read(XCTUnwrap(mine.entry(named: key + ".npy")))
            XCTAssertEqual(ours, theirs, key)
        }
        // The comparison can fail: a Fortran-ordered array's bytes differ from its C-order rewrite.
        let fortran = try XCTUnwrap(try NPZReader.read(path: source)["fortran_f4"])
        try NPZWriter.write([fortran], to: path("fortran.npz"))
        let rewritten = try ZipArchive(bytes: fileBytes(path("fortran.npz")))
        XCTAssertNotEqual(try rewritten.read(rewritten.entries[0]), try numpy.read(XCTUnwrap(numpy.entry(named: "fortran_f4.npy"))))
    }

    /// A refused write leaves no output and no temporary file, and keeps what was there.
    func testFailedWriteLeavesNothingBehind() throws {
        let target = path("keep.npz")
        try writeBytes([1, 2, 3], to: target)
        let bad = sample() + [NamedTensor(key: "bf", dtype: .bfloat16, shape: [1], data: [0, 0])]
        guard let (_, problem) = expectFailure(target, as: NPZWriteError.self, { try NPZWriter.write(bad, to: target) }) else { return }
        XCTAssertEqual(problem, .unsupportedDType(key: "bf", .bfloat16))
        let duplicate = sample() + [sample()[0]]
        guard let (_, again) = expectFailure(target, as: NPZWriteError.self, { try NPZWriter.write(duplicate, to: target) }) else { return }
        XCTAssertEqual(again, .duplicateKey("image"))
        XCTAssertEqual(try fileBytes(target), [1, 2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["keep.npz"])
    }

    func testUnwritableFolder() {
        let target = path("missing/out.npz")
        guard let (message, problem) = expectFailure(target, as: FileSystemError.self, { try NPZWriter.write(self.sample(), to: target) })
        else { return }
        guard case .writeFailed = problem else { return XCTFail(message) }
        XCTAssertTrue(message.contains("No such file or directory"), message)
    }

    func testEmptyArchive() throws {
        try NPZWriter.write([], to: path("empty.npz"))
        XCTAssertEqual(try NPZReader.read(path: path("empty.npz")).tensors, [])
        XCTAssertEqual(try fileBytes(path("empty.npz")).count, 22)
    }
}
