import AISLFDCore
import AISLFDSchema
import XCTest

final class DetectorTests: XCTestCase {
    func testCompleteKeySetsFromTheSpec() throws {
        for id in SchemaLibrary.ids {
            let d = try ArchitectureDetector.detect(keys: Array(SpecKeys.keys(id).keys))
            XCTAssertEqual(d.architecture, id)
            XCTAssertEqual(d.tied, [], id)
            XCTAssertFalse(d.lowOverlap, id)
            XCTAssertNil(d.prefixHint, id)
            XCTAssertEqual(d.candidates.first?.coverage, 1, id)
            XCTAssertEqual(d.candidates.first?.unexpected, 0, id)
        }
    }

    func testKeySetsWithAFewKeysMissing() throws {
        for id in SchemaLibrary.ids {
            // Drop every 15th key (in sorted order), about seven keys, from all parts.
            let keys = SpecKeys.keys(id).keys.sorted().enumerated().filter { $0.offset % 15 != 0 }.map(\.element)
            let d = try ArchitectureDetector.detect(keys: keys)
            XCTAssertEqual(d.architecture, id)
            XCTAssertEqual(d.tied, [], id)
            XCTAssertFalse(d.lowOverlap, id)
        }
        // Without any meta keys at all plus one PSA key, the PSA one decides.
        let keys = SpecKeys.keys("lisrd").keys.filter { !$0.hasPrefix("vlad_") } + ["psa.rot_var_illum_var.query.weight"]
        XCTAssertEqual(try ArchitectureDetector.detect(keys: keys).architecture, "aislfd-a")
    }

    func testNamesThatCannotTellTwoArchitecturesApartAreATie() throws {
        // Backbone and heads only: LISRD and Ours-A have the same ones.
        let keys = SpecKeys.keys("lisrd").keys.filter { !$0.hasPrefix("vlad_") }
        let d = try ArchitectureDetector.detect(keys: Array(keys))
        XCTAssertEqual(d.architecture, "lisrd")  // fewer keys missing
        XCTAssertEqual(d.tied, ["aislfd-a"])
        XCTAssertTrue(d.summary.contains("as good a match: aislfd-a"), d.summary)
        // The validator passes the tie on as a note.
        let contents = WeightsContents(format: "test", tensors: keys.sorted().map { NamedTensor(key: $0, shape: [], floats: [0]) })
        XCTAssertTrue(try Validator.check(contents).notes.contains { $0.hasPrefix("detection: lisrd:") })
    }

    func testLowOverlap() throws {
        let keys = Array(SpecKeys.keys("aislfd-c").keys.sorted().prefix(10)) + (0..<50).map { "head.fc\($0).weight" }
        let d = try ArchitectureDetector.detect(keys: keys)
        XCTAssertTrue(d.lowOverlap)
        XCTAssertNil(d.prefixHint)
        XCTAssertEqual(d.candidates.first?.matched, 10)
        XCTAssertTrue(d.summary.hasSuffix("low overlap"), d.summary)
    }

    func testNothingMatches() throws {
        let d = try ArchitectureDetector.detect(keys: ["fc.weight", "fc.bias"])
        XCTAssertNil(d.architecture)
        XCTAssertTrue(d.lowOverlap)
        XCTAssertEqual(try ArchitectureDetector.detect(keys: []).architecture, nil)
    }

    func testPrefixToRemove() throws {
        for (id, prefix) in [("aislfd-c", "model."), ("lisrd", "net."), ("aislfd-b", "module.model.")] {
            let keys = SpecKeys.keys(id).keys.map { prefix + $0 }
            let d = try ArchitectureDetector.detect(keys: keys)
            XCTAssertEqual(d.architecture, id)
            XCTAssertTrue(d.lowOverlap)
            let hint = try XCTUnwrap(d.prefixHint)
            XCTAssertEqual(hint.change, .strip)
            XCTAssertEqual(hint.prefix, prefix)
            XCTAssertEqual(hint.count, keys.count)
            XCTAssertEqual(hint.apply(to: prefix + "msfe.stem.conv.weight"), "msfe.stem.conv.weight")
        }
    }

    func testPrefixToAdd() throws {
        // An MSFE backbone saved as its own module: every name lacks "msfe.".
        let keys = SpecKeys.keys("aislfd-c").keys.filter { $0.hasPrefix("msfe.") }.map { String($0.dropFirst(5)) }
        let d = try ArchitectureDetector.detect(keys: keys)
        let hint = try XCTUnwrap(d.prefixHint)
        XCTAssertEqual(hint.change, .add)
        XCTAssertEqual(hint.prefix, "msfe.")
        XCTAssertEqual(hint.count, 60 + 32)  // backbone and heads
        XCTAssertEqual(d.architecture, "aislfd-b")  // the first of the two MSFE architectures; they tie on these names
        XCTAssertEqual(hint.apply(to: "stem.conv.weight"), "msfe.stem.conv.weight")
    }
}
