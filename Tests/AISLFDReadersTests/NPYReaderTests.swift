import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import XCTest

final class NPYReaderTests: XCTestCase {
    func testVersionsAndLayoutsMatchTheManifest() throws {
        let names = ["v1.npy", "v2.npy", "v3.npy", "fortran.npy", "bigendian.npy", "be_fortran.npy",
                     "scalar.npy", "empty.npy", "bool.npy"]
        for name in names {
            let tensor = try NPYReader.read(path: Fixtures.path("npz/" + name))
            assertMatchesManifest([tensor], try XCTUnwrap(NPZReaderTests.manifest[name]), name)
        }
    }

    func testShapeLies() {
        for (name, actual) in [("bad_shape_short.npy", 8), ("bad_shape_long.npy", 80)] {
            let path = Fixtures.path("npz/" + name)
            guard let (message, problem) = expectFailure(path, as: NPYError.self, { _ = try NPYReader.read(path: path) }) else { continue }
            XCTAssertEqual(problem, .dataSizeMismatch(descr: "<f4", shape: [10], expected: 40, actual: actual))
            XCTAssertTrue(message.contains(actual < 40 ? "shorter" : "longer"), message)
        }
    }

    func testMalformedHeaders() {
        let cases: [(String, (NPYError) -> Bool)] = [
            ("bad_header_eval.npy", { if case .malformedHeader = $0 { return true }; return false }),
            ("bad_header_unterminated.npy", { if case .malformedHeader = $0 { return true }; return false }),
            ("bad_header_missing_key.npy", { $0 == .malformedHeader("missing key 'fortran_order'") }),
            ("bad_header_extra_key.npy", { $0 == .malformedHeader("unexpected key 'x'") }),
            ("bad_header_not_a_dict.npy", { if case .malformedHeader = $0 { return true }; return false }),
            ("bad_header_dtype_object.npy", { $0 == .unsupportedDType("|O") }),
            ("bad_header_dtype_complex.npy", { $0 == .unsupportedDType("<c8") }),
            ("bad_header_negative_dim.npy", { $0 == .badShape("negative dimension -3") }),
            ("bad_header_huge_shape.npy", { if case .badShape = $0 { return true }; return false }),
            ("bad_magic.npy", { $0 == .badMagic }),
            ("bad_version.npy", { $0 == .unsupportedVersion(major: 9, minor: 9) }),
            ("bad_header_length.npy", { $0 == .truncatedHeader(needed: 900012, available: 20) }),
        ]
        for (name, isExpected) in cases {
            let path = Fixtures.path("npz/" + name)
            guard let (message, problem) = expectFailure(path, as: NPYError.self, { _ = try NPYReader.read(path: path) }) else { continue }
            XCTAssertTrue(isExpected(problem), "\(name): \(message)")
        }
    }

    func testTruncatedAtManyPoints() throws {
        let whole = try fileBytes(Fixtures.path("npz/fortran.npy"))
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        for cut in [0, 5, 9, 11, 64, 127, 128, 129, whole.count - 1] {
            let path = folder.appendingPathComponent("cut\(cut).npy").path
            try writeBytes(Array(whole[..<cut]), to: path)
            _ = expectFailure(path, as: NPYError.self, { _ = try NPYReader.read(path: path) })
        }
    }

    func testKeyIsTheFileName() throws {
        XCTAssertEqual(try NPYReader.read(path: Fixtures.path("npz/scalar.npy")).key, "scalar")
    }
}
