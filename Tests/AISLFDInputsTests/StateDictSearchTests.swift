import AISLFDCore
import AISLFDInputs
import AISLFDReaders
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// Finding the state_dict in what training code saves. The checkpoints and what must be found
/// in them come from tools/fixtures/make_checkpoint_fixtures.py (real torch objects around the
/// real lisrd model: Adam + MultiStepLR, torch.compile, DataParallel, Lightning-style, EMA,
/// weights_only extras, an HDF5 group).
final class StateDictSearchTests: XCTestCase {
    struct Manifest: Decodable {
        struct File: Decodable {
            var entry: String
            var stripped: [String]
            var architecture: String
            var also_matching: [String]
            var state_dict: String
        }
        var files: [String: File]
        var state_dicts: [String: [ManifestTensor]]
    }

    func manifest(_ folder: String) throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(fileBytes(Fixtures.path(folder + "/manifest.json"))))
    }

    func testTrainingCheckpointsAreFoundAndUnwrapped() throws {
        var checked = 0
        for folder in ["torch/training", "hdf5/training"] {
            let m = try manifest(folder)
            for (name, expected) in m.files.sorted(by: { $0.key < $1.key }) {
                // "file#entry": the same file with --entry.
                let parts = name.split(separator: "#").map(String.init)
                let path = Fixtures.path(folder + "/" + parts[0])
                let selection = StateDictSelection(entry: parts.count > 1 ? parts[1] : nil)
                let source = try SourceWeights.load(path: path, selection: selection)
                XCTAssertEqual(source.choice.entry, expected.entry, name)
                XCTAssertEqual(source.choice.stripped, expected.stripped, name)
                XCTAssertEqual(source.choice.architecture, expected.architecture, name)
                XCTAssertEqual(source.choice.alsoMatching, expected.also_matching, name)
                XCTAssertTrue(source.report.valid, "\(name): \(source.report.humanReadable)")
                // HDF5 lists a group's datasets in name order, torch.save in the state_dict's.
                let sorted = folder.hasPrefix("hdf5")
                let expectedTensors = try XCTUnwrap(m.state_dicts[expected.state_dict])
                assertMatchesManifest(sorted ? source.contents.tensors.sorted { $0.key < $1.key } : source.contents.tensors,
                                      sorted ? expectedTensors.sorted { $0.key < $1.key } : expectedTensors, name)
                if !expected.entry.isEmpty {
                    XCTAssertTrue(source.contents.notes.contains { $0.hasPrefix("took the state_dict under '\(expected.entry)'") }, name)
                }
                if !expected.stripped.isEmpty {
                    XCTAssertTrue(source.contents.notes.contains { $0.hasPrefix("stripped '\(expected.stripped[0])'") }, name)
                }
                checked += 1
            }
        }
        XCTAssertEqual(checked, 10)
    }

    /// The search is what makes them valid: as read, the names carry the checkpoint's entry
    /// and the wrappers' prefixes, and validation fails.
    func testWithoutTheSearchTheCheckpointsDoNotValidate() throws {
        for name in ["adam_multisteplr.pth", "compiled.pth", "lightning.pth", "model_entry.pth", "dataparallel_compiled.pth"] {
            let path = Fixtures.path("torch/training/" + name)
            let report = try Validator.check(WeightsReader.read(path: path), file: path, architecture: "lisrd")
            XCTAssertFalse(report.valid, name)
        }
        // Taking the EMA gives other values than the model: the manifests tell them apart.
        let m = try manifest("torch/training")
        XCTAssertNotEqual(m.state_dicts["model"]?.map(\.sha256), m.state_dicts["ema"]?.map(\.sha256))
    }

    func testTheSamplesAreFoundWhereTheyAre() throws {
        for (arch, file) in Fixtures.sampleFiles {
            let source = try SourceWeights.load(path: Fixtures.repoPath("Weights/" + file))
            XCTAssertEqual(source.choice.architecture, arch, file)
            XCTAssertEqual(source.choice.entry + (source.choice.entry.isEmpty ? "" : "."), Fixtures.sampleEntries[arch] ?? "", file)
            XCTAssertEqual(source.choice.stripped, [], file)
            XCTAssertTrue(source.report.valid, file)
        }
    }

    /// A lisrd state_dict renamed by `rename`, as a flat file would hold it.
    func renamedSample(_ rename: (String) -> String) throws -> WeightsContents {
        var contents = try WeightsReader.read(path: Fixtures.repoPath("Weights/lisrd.h5"))
        contents.tensors = contents.tensors.map { t in
            var t = t
            t.key = rename(t.key)
            return t
        }
        return contents
    }

    /// Only the three wrappers come off on their own; anything else needs --strip-prefix, which
    /// the validation report suggests.
    func testOtherPrefixesNeedStripPrefix() throws {
        let contents = try renamedSample { "net.backbone." + $0 }
        let plain = try SourceWeights.check(contents, path: "renamed.npz")
        XCTAssertNil(plain.choice.architecture)
        XCTAssertFalse(plain.report.valid)
        XCTAssertTrue(plain.report.problems.contains { $0.kind == .prefix && $0.message.contains("(--strip-prefix net.backbone.)") },
                      plain.report.humanReadable)
        let stripped = try SourceWeights.check(contents, path: "renamed.npz", selection: StateDictSelection(stripPrefixes: ["net.backbone."]))
        XCTAssertEqual(stripped.choice.stripped, ["net.backbone."])
        XCTAssertEqual(stripped.choice.architecture, "lisrd")
        XCTAssertTrue(stripped.report.valid, stripped.report.humanReadable)
    }

    /// A wrapper comes off only when every name has it: one name without makes it no match.
    func testAWrapperOnSomeNamesOnlyIsNotStripped() throws {
        var first = true
        let contents = try renamedSample { key in
            defer { first = false }
            return first ? key : "module." + key
        }
        let source = try SourceWeights.check(contents, path: "partly.npz")
        XCTAssertEqual(source.choice.stripped, [])
        XCTAssertFalse(source.report.valid)
        let all = try SourceWeights.check(try renamedSample { "module._orig_mod.model." + $0 }, path: "all.npz")
        XCTAssertEqual(all.choice.stripped, ["module.", "_orig_mod.", "model."])
        XCTAssertTrue(all.report.valid)
    }

    func testAnEntryThatDoesNotExistIsNamed() throws {
        let path = Fixtures.path("torch/training/model_and_ema.pth")
        guard let (problem, message) = expectFileError(StateDictSearchError.self, path: path, {
            _ = try SourceWeights.load(path: path, selection: StateDictSelection(entry: "swa"))
        }) else { return }
        XCTAssertEqual(problem, .noSuchEntry("swa", available: ["model", "ema"]))
        XCTAssertTrue(message.hasSuffix("no entry 'swa' holds tensors (entries: 'model', 'ema')"), message)
    }

    /// `ModelFile.load` takes the same search: a checkpoint loads as a model, the EMA on request.
    func testModelFileLoadsCheckpoints() throws {
        let path = Fixtures.path("torch/training/model_and_ema.pth")
        let model = try ModelFile.load(path: path)
        let ema = try ModelFile.load(path: path, selection: StateDictSelection(entry: "ema"))
        XCTAssertEqual(model.architecture, .lisrd)
        XCTAssertTrue(model.notes.contains { $0.contains("'ema' also holds lisrd weights") }, "\(model.notes)")
        XCTAssertTrue(ema.notes.contains { $0.hasPrefix("took the state_dict under 'ema'") }, "\(ema.notes)")
        XCTAssertNotEqual(model.weights.tensors["_backbone._conv1_1.weight"]?.values, ema.weights.tensors["_backbone._conv1_1.weight"]?.values)
    }

    /// A file without tensors (Tests/Fixtures/zip/plain.zip, a zip of text files) ends the
    /// search: "every name has the prefix" holds for no names at all, and the wrappers' loop
    /// once stripped forever, until memory ran out (found by the one-line command test).
    func testAFileWithoutTensorsEndsTheSearch() throws {
        let empty = WeightsContents(format: "npz", tensors: [])
        let (found, choice) = try StateDictSearch.locate(empty, among: try SchemaLibrary.all)
        XCTAssertEqual(found.tensors.count, 0)
        XCTAssertEqual(choice.stripped, [])
        XCTAssertNil(choice.architecture)
    }
}
