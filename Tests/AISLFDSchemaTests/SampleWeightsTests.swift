import AISLFDCore
import AISLFDReaders
import AISLFDSchema
import AISLFDTestSupport
import Foundation
import XCTest

/// The bundled samples (Weights/, made by tools/make_samples.py) read through the
/// content-sniffing dispatcher bit for bit as the exporter's manifest says, and
/// validate as the architecture they were made for. The .pth sample is a training
/// checkpoint: its state_dict sits under `model_state_dict` (the commands find it there:
/// AISLFDInputsTests).
final class SampleWeightsTests: XCTestCase {
    static let samples = [
        ("lisrd.h5", "lisrd", "hdf5", ""), ("aislfd-a.pth", "aislfd-a", "pytorch", "model_state_dict."),
        ("aislfd-b.npz", "aislfd-b", "npz", ""), ("aislfd-c.safetensors", "aislfd-c", "safetensors", ""),
    ]

    /// The sample's state_dict, under its own names.
    static func stateDict(_ path: String, under entry: String) throws -> WeightsContents {
        var contents = try WeightsReader.read(path: path)
        contents.tensors = contents.tensors.filter { $0.key.hasPrefix(entry) }.map { t in
            var t = t
            t.key = String(t.key.dropFirst(entry.count))
            return t
        }
        return contents
    }

    struct Manifest: Decodable {
        struct Tensor: Decodable { var key: String; var dtype: String; var shape: [Int]; var sha256: String }
        var arch: String
        var tensors: [Tensor]
    }

    func manifest(_ file: String) throws -> Manifest {
        let name = file.split(separator: ".").first.map(String.init) ?? file
        let url = URL(fileURLWithPath: Fixtures.repoPath("Weights/\(name).manifest.json"))
        return try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url))
    }

    func testSamplesReadBitIdenticalToManifest() throws {
        for (file, arch, format, entry) in Self.samples {
            let path = Fixtures.repoPath("Weights/\(file)")
            let contents = try Self.stateDict(path, under: entry)
            XCTAssertEqual(try WeightsReader.read(path: path).tensors.count, contents.tensors.count, "\(file): only the state_dict's tensors")
            XCTAssertEqual(contents.format, format, file)
            let expected = try manifest(file)
            XCTAssertEqual(expected.arch, arch)
            let found = Dictionary(uniqueKeysWithValues: contents.tensors.map { ($0.key, $0) })
            XCTAssertEqual(Set(found.keys), Set(expected.tensors.map(\.key)), file)
            for t in expected.tensors {
                guard let tensor = found[t.key] else { continue }
                XCTAssertEqual(tensor.shape, t.shape, "\(file) \(t.key)")
                XCTAssertEqual(SHA256.hex(tensor.data), t.sha256, "\(file) \(t.key)")
            }
        }
    }

    func testSamplesValidateAsTheirArchitecture() throws {
        for (file, arch, _, entry) in Self.samples {
            let path = Fixtures.repoPath("Weights/\(file)")
            let report = try Validator.check(Self.stateDict(path, under: entry), file: path)
            XCTAssertEqual(report.architecture, arch, file)
            XCTAssertTrue(report.detected)
            XCTAssertTrue(report.valid, report.humanReadable)
        }
    }

    /// The manifest comparison can fail: one flipped value changes the digest.
    func testManifestComparisonDetectsAChangedValue() throws {
        let contents = try WeightsReader.read(path: Fixtures.repoPath("Weights/lisrd.h5"))
        var tensor = contents.tensors[0]
        tensor.data[0] ^= 1
        let expected = try manifest("lisrd.h5").tensors.first { $0.key == tensor.key }
        XCTAssertNotEqual(SHA256.hex(tensor.data), expected?.sha256)
    }
}
