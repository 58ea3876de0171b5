#if os(Linux)
import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import Glibc
import XCTest

/// The framing between the isolated reading process and the parent: exact round
/// trips, and a decoder that refuses truncated, oversized or inconsistent streams
/// before it allocates, and stops at its deadline.
final class HDF5ResultStreamTests: XCTestCase {
    /// One float32 tensor "w" of shape [2], no metadata or notes. Its layout:
    /// 0 "H5RS", 4 tensor tag, 5 key length, 13 "w", 14 dtype length, 22 "float32",
    /// 29 rank, 33 dim, 41 byte count, 49 data, 57 end tag, 58 metadata count,
    /// 66 note count, 74 group count, 82 "DONE".
    let small = WeightsContents(format: "hdf5", tensors: [NamedTensor(key: "w", shape: [2], floats: [1.5, -2])])

    func testContentsAndErrorsRoundTripExactly() throws {
        let dtypes = try HDF5Reader.read(path: Fixtures.path("hdf5/dtypes.h5"))
        let heap = try HDF5Reader.read(path: Fixtures.path("hdf5/heap_address.h5"))
        XCTAssertFalse(heap.notes.isEmpty)
        let groups = try HDF5Reader.read(path: Fixtures.path("hdf5/training/model_state_dict.h5"))
        XCTAssertEqual(groups.containers, ["model_state_dict", "optimizer_state_dict"])
        for contents in [dtypes, heap, groups, small, WeightsContents(format: "hdf5", tensors: [])] {
            let back = try decode(encode(.success(contents))).get()
            XCTAssertEqual(back.tensors, contents.tensors)
            XCTAssertEqual(back.metadata, contents.metadata)
            XCTAssertEqual(back.notes, contents.notes)
            XCTAssertEqual(back.containers, contents.containers)
            XCTAssertEqual(back.format, "hdf5")
        }
        let errors: [HDF5Error] = [
            .corrupt(tensor: nil, reason: "H5Oopen_by_idx failed"), .corrupt(tensor: "a.b", reason: "x"),
            .tooLarge(tensor: "ü.weight", reason: "claims 10 bytes"), .badBool(tensor: "m", value: 7),
            .libraryCrashed(signal: SIGSEGV), .timedOut(seconds: 20), .tooManyLinks(limit: 3),
        ]
        for error in errors {
            XCTAssertThrowsError(try decode(encode(.failure(error))).get()) { XCTAssertEqual($0 as? HDF5Error, error) }
        }
    }

    /// The reader fails after sending some tensors: the caller gets the error alone.
    func testAnErrorAfterTensorsWins() throws {
        let tensor = try encode(.success(small)).prefix(57)
        let error = HDF5Error.readFailed(tensor: "x", reason: "inflate failed")
        let failure = try encode(.failure(error)).dropFirst(4)
        XCTAssertThrowsError(try decode(Array(tensor + failure)).get()) { XCTAssertEqual($0 as? HDF5Error, error) }
    }

    func testEveryTruncationEndsEarly() throws {
        let whole = try encode(.success(small))
        XCTAssertEqual(whole.count, 86)
        for cut in 0..<whole.count {
            XCTAssertThrowsError(try decode(Array(whole.prefix(cut))), "cut at \(cut)") {
                XCTAssertEqual($0 as? HDF5ResultStream.Problem, .endedEarly, "cut at \(cut)")
            }
        }
    }

    func testSizesPastTheBoundsAreRefusedBeforeAllocating() throws {
        let whole = try encode(.success(small))
        func patched(_ offset: Int, _ value: UInt64) -> [UInt8] { patchedIn(whole, offset, value) }
        var badDType = whole
        badDType.replaceSubrange(22..<29, with: Array("float99".utf8))
        var badRank = whole
        badRank.replaceSubrange(29..<33, with: [0xE8, 0x03, 0, 0])
        let huge: UInt64 = 1 << 38
        let cases: [(String, [UInt8])] = [
            ("key length", patched(5, 1 << 60)),
            ("dtype", badDType),
            ("rank", badRank),
            ("negative dimension", patched(33, UInt64(bitPattern: -2))),
            ("byte count not the shape's", patched(41, 12)),
            // A consistent claim of 1 TiB, far past what the reader returns for a 1000-byte file.
            ("tensor size", patchedIn(patched(33, huge), 41, huge * 4)),
            ("metadata count", patched(58, UInt64.max)),
            ("magic", [0x58] + whole.dropFirst()),
            ("record kind", Array(whole.prefix(4)) + [9] + whole.dropFirst(5)),
            ("second end record", Array(whole.prefix(57)) + [9] + whole.dropFirst(58)),
            ("trailer", whole.dropLast() + [0x21]),
        ]
        for (what, bytes) in cases {
            XCTAssertThrowsError(try decode(bytes, fileSize: 1000), what) { error in
                guard case .malformed = error as? HDF5ResultStream.Problem else { return XCTFail("\(what): \(error)") }
            }
        }
        // The untouched stream decodes with the same file size: the checks above can pass.
        XCTAssertNoThrow(try decode(whole, fileSize: 1000).get())
        XCTAssertEqual(HDF5ResultStream.maxTensorBytes(fileSize: 1000), 1_100_000)
        XCTAssertEqual(HDF5ResultStream.maxTensorBytes(fileSize: 1 << 30), 1 << 32)
        XCTAssertEqual(HDF5ResultStream.maxTensorBytes(fileSize: 5 << 30), 5 << 30)
    }

    func testASilentWriterTimesOutAndAClosedOneEndsEarly() throws {
        var ends: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&ends), 0)
        defer { close(ends[0]) }
        let start = HDF5ResultStream.monotonicSeconds()
        XCTAssertThrowsError(try HDF5ResultStream.readResult(from: ends[0], fileSize: 100, deadline: start + 0.2)) {
            XCTAssertEqual($0 as? HDF5ResultStream.Problem, .timedOut)
        }
        let waited = HDF5ResultStream.monotonicSeconds() - start
        XCTAssertGreaterThanOrEqual(waited, 0.2)
        XCTAssertLessThan(waited, 5)  // the deadline held, with room for a loaded machine
        close(ends[1])
        XCTAssertThrowsError(try HDF5ResultStream.readResult(from: ends[0], fileSize: 100, deadline: start + 10)) {
            XCTAssertEqual($0 as? HDF5ResultStream.Problem, .endedEarly)
        }
    }

    /// A result far larger than the pipe's buffer arrives while it is written.
    func testALargeResultThroughAPipe() throws {
        let values = (0..<1_000_000).map { Float($0) * 0.5 }
        let contents = WeightsContents(format: "hdf5", tensors: [NamedTensor(key: "big", shape: [values.count], floats: values)],
                                       metadata: ["arch": "lisrd"], notes: ["n"])
        var ends: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&ends), 0)
        defer { close(ends[0]) }
        let writeEnd = ends[1]
        let writer = Thread {
            _ = HDF5ResultStream.writeResult(.success(contents), to: writeEnd)
            close(writeEnd)
        }
        writer.start()
        let back = try HDF5ResultStream.readResult(from: ends[0], fileSize: 4_000_000,
                                                   deadline: HDF5ResultStream.monotonicSeconds() + 20).get()
        XCTAssertEqual(back.tensors, contents.tensors)
        XCTAssertEqual(back.metadata, contents.metadata)
        XCTAssertEqual(back.notes, contents.notes)
    }

    // MARK: Helpers

    func encode(_ result: Result<WeightsContents, HDF5Error>) throws -> [UInt8] {
        let path = try temporaryFile("stream.bin", [])
        let fd = open(path, O_WRONLY | O_TRUNC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertTrue(HDF5ResultStream.writeResult(result, to: fd))
        close(fd)
        return try fileBytes(path)
    }

    /// Decodes from a file: poll() reports a regular file always readable, and read() gives 0 at its end.
    func decode(_ bytes: [UInt8], fileSize: Int = 1 << 20) throws -> Result<WeightsContents, HDF5Error> {
        let path = try temporaryFile("stream.bin", bytes)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        return try HDF5ResultStream.readResult(from: fd, fileSize: fileSize, deadline: HDF5ResultStream.monotonicSeconds() + 10)
    }
}

private func patchedIn(_ bytes: [UInt8], _ offset: Int, _ value: UInt64) -> [UInt8] {
    var out = bytes
    withUnsafeBytes(of: value.littleEndian) { out.replaceSubrange(offset..<(offset + 8), with: $0) }
    return out
}
#endif
