import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

final class ConvertCommandTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testCheckAcceptsEverySampleAndNamesTheArchitecture() throws {
        var text = ""
        for file in ["lisrd.h5", "aislfd-a.pth", "aislfd-b.npz", "aislfd-c.safetensors"] {
            let r = try Commands.run("aislfd-convert", ["Weights/\(file)", "--check"])
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            XCTAssertEqual(r.stderr, "")
            text += "$ aislfd-convert Weights/\(file) --check\n" + r.stdout
        }
        try Commands.assertSnapshot(text, named: "check-samples")
    }

    /// Every kind of problem in one run: a missing key, an unexpected key, a wrong shape,
    /// NaN/Inf values, a negative running variance, an integer weight.
    func testCheckListsEveryProblemOfABrokenCheckpoint() throws {
        var contents = try NPZReader.read(path: Fixtures.repoPath("Weights/aislfd-b.npz"))
        func edit(_ key: String, _ change: (inout NamedTensor) -> Void) {
            let i = contents.tensors.firstIndex { $0.key == key }!
            change(&contents.tensors[i])
        }
        contents.tensors.removeAll { $0.key == "msfe.layer1.bn.running_mean" }
        contents.tensors.append(NamedTensor(key: "msfe.extra.weight", shape: [2], floats: [1, 2]))
        edit("msfe.lateral2.weight") { $0 = NamedTensor(key: $0.key, shape: [256, 128, 3, 3], floats: [Float](repeating: 0.5, count: 256 * 128 * 9)) }
        edit("msfe.stem.conv.weight") { t in var v = t.floats(); v[0] = .nan; v[1] = .infinity; t = NamedTensor(key: t.key, shape: t.shape, floats: v) }
        edit("msfe.smooth.bn.running_var") { t in var v = t.floats(); v[3] = -1; t = NamedTensor(key: t.key, shape: t.shape, floats: v) }
        edit("msfe.heads.rot_var_illum_var.conv2.bias") { t in t = NamedTensor(key: t.key, shape: t.shape, int64: [Int64](repeating: 1, count: 128)) }
        try NPZWriter.write(contents.tensors, to: folder.appendingPathComponent("broken.npz").path)

        let r = try Commands.run("aislfd-convert", ["broken.npz", "--check"], in: folder)
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "")
        try Commands.assertSnapshot(r.stdout, named: "check-broken")

        let json = try Commands.run("aislfd-convert", ["broken.npz", "--check", "--json"], in: folder)
        XCTAssertEqual(json.status, 1)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["valid"] as? Bool, false)
        let kinds = Set((report["problems"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String })
        XCTAssertEqual(kinds, ["missing", "unexpected", "shape", "nonfinite", "negative_variance", "dtype"])

        // Converting refuses it and writes nothing.
        let convert = try Commands.run("aislfd-convert", ["broken.npz", "out.aisw"], in: folder)
        XCTAssertEqual(convert.status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.aisw").path))
    }

    /// A prefix other than the wrappers removed on their own gets a hint naming --strip-prefix,
    /// which then makes the file valid.
    func testPrefixedNamesGetAHint() throws {
        var contents = try SafetensorsReader.read(path: Fixtures.repoPath("Weights/aislfd-c.safetensors"))
        contents.tensors = contents.tensors.map { NamedTensor(key: "net." + $0.key, dtype: $0.dtype, shape: $0.shape, data: $0.data) }
        try NPZWriter.write(contents.tensors, to: folder.appendingPathComponent("prefixed.npz").path)
        let r = try Commands.run("aislfd-convert", ["prefixed.npz", "--check", "--arch", "aislfd-c"], in: folder)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("only by a prefix"), r.stdout)
        XCTAssertTrue(r.stdout.contains("(--strip-prefix net.)"), r.stdout)
        let stripped = try Commands.run("aislfd-convert", ["prefixed.npz", "--check", "--strip-prefix", "net."], in: folder)
        XCTAssertEqual(stripped.status, 0, stripped.stdout)
        XCTAssertTrue(stripped.stdout.contains("note: stripped 'net.' from the tensor names"), stripped.stdout)
        // The wrappers need no flag.
        contents.tensors = contents.tensors.map { NamedTensor(key: "module." + $0.key.dropFirst(4), dtype: $0.dtype, shape: $0.shape, data: $0.data) }
        try NPZWriter.write(contents.tensors, to: folder.appendingPathComponent("wrapped.npz").path)
        XCTAssertEqual(try Commands.run("aislfd-convert", ["wrapped.npz", "--check"], in: folder).status, 0)
    }

    /// The fp16 file is at most 52% of the source's fp32 payload and the int8 file at most
    /// 27%; each converted file opens in aislfd-inspect with every checksum verified.
    func testConvertsEverySampleToEveryPrecisionWithinTheSizeLimits() throws {
        // The spec's size table: values of all entries x 4 bytes.
        let payload = ["lisrd.h5": 14_910_384, "aislfd-a.pth": 15_670_064, "aislfd-b.npz": 22_353_844, "aislfd-c.safetensors": 23_113_524]
        for (file, fp32Payload) in payload.sorted(by: { $0.key < $1.key }) {
            for (precision, limit) in [("fp32", 1.0), ("fp16", 0.52), ("int8", 0.27)] {
                let out = folder.appendingPathComponent("\(file)-\(precision).aisw").path
                let r = try Commands.run("aislfd-convert", [Fixtures.repoPath("Weights/\(file)"), out, "--precision", precision])
                XCTAssertEqual(r.status, 0, r.stderr)
                if precision == "int8" { XCTAssertTrue(r.stdout.contains("gptq"), "calibrated int8 rounds with GPTQ") }
                let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: out)[.size] as? Int)
                print("size \(file) \(precision): \(size) bytes, \(Double(size) / Double(fp32Payload) * 100)% of the fp32 payload")
                XCTAssertLessThanOrEqual(Double(size), limit * Double(fp32Payload) + (precision == "fp32" ? 65_536 : 0), "\(file) \(precision)")
                let inspect = try Commands.run("aislfd-inspect", [out])
                XCTAssertEqual(inspect.status, 0, inspect.stderr)
                XCTAssertTrue(inspect.stdout.contains("checksums verified"))
            }
        }
    }

    /// --no-calibration rounds every weight on its own: no GPTQ, nothing promoted.
    func testNoCalibrationRoundsPlainly() throws {
        let out = folder.appendingPathComponent("plain.aisw").path
        let r = try Commands.run("aislfd-convert", [Fixtures.repoPath("Weights/lisrd.h5"), out, "--precision", "int8", "--no-calibration"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("int8"))
        XCTAssertFalse(r.stdout.contains("gptq"))
        XCTAssertFalse(r.stdout.contains("promoted"))
    }

    func testUsageErrorsAndUnreadableFilesExitTwoWithOneLine() throws {
        let cases: [[String]] = [
            ["Weights/lisrd.h5"],                               // no OUTPUT, no --check
            ["Weights/lisrd.h5", "x.aisw", "--check"],           // both
            ["Weights/lisrd.h5", "--check", "--arch", "vgg"],    // unknown architecture
            ["Weights/lisrd.h5", "Weights/lisrd.h5"],           // OUTPUT is INPUT
            ["no-such-file.h5", "--check"],
            ["README.md", "--check"],                            // not a weights file
            ["Weights/lisrd.h5", "x.aisw", "--precision", "int8", "--size-budget", "1.5"],
            ["Weights/lisrd.h5", "x.aisw", "--precision", "int8", "--size-budget", "0"],
            ["Weights/lisrd.h5", "x.aisw", "--precision", "int8", "--size-budget", "nan"],
            ["Weights/lisrd.h5", "x.aisw", "--size-budget", "0.3"],                  // fp32 has no budget
            ["Weights/lisrd.h5", "x.aisw", "--precision", "int8", "--no-calibration", "--size-budget", "0.3"],
        ]
        for arguments in cases {
            let r = try Commands.run("aislfd-convert", arguments)
            XCTAssertEqual(r.status, 2, "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "\(arguments)")
            XCTAssertFalse(r.stderr.isEmpty, "\(arguments)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: Fixtures.repoPath("x.aisw")))
        let budget = try Commands.run("aislfd-convert", ["Weights/lisrd.h5", "x.aisw", "--precision", "int8", "--size-budget", "1.5"])
        XCTAssertTrue(budget.stderr.contains("--size-budget must be a fraction above 0 and at most 1, got 1.5"), budget.stderr)
        let same = try Commands.run("aislfd-convert", ["Weights/lisrd.h5", "Weights/lisrd.h5"])
        XCTAssertTrue(same.stderr.hasPrefix("Weights/lisrd.h5: "), same.stderr)
        XCTAssertEqual(same.stderr.split(separator: "\n").count, 1)
    }

    /// Every hostile or broken reader fixture: a clear one-line error naming the file,
    /// exit status 1 or 2, never a crash, within a second.
    func testHostileFilesGetOneLineAndNeverCrash() throws {
        var count = 0, slowest = (seconds: 0.0, path: "")
        for folderName in ["hdf5", "hdf5/training", "safetensors", "npz", "torch", "torch/training", "zip", "aisw"] {
            let dir = Fixtures.path(folderName)
            for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            where [".h5", ".safetensors", ".npz", ".pth", ".zip", ".aisw"].contains(where: name.hasSuffix) {
                let path = "Tests/Fixtures/\(folderName)/\(name)"
                let r = try Commands.run("aislfd-convert", [path, "--check"])
                count += 1
                if r.seconds > slowest.seconds { slowest = (r.seconds, path) }
                XCTAssertFalse(r.crashed, path)
                XCTAssertLessThan(r.seconds, Fixtures.hangLimit, path)
                guard r.status != 0 else { continue }  // a fixture that happens to be a valid... none is, but do not assume
                XCTAssertTrue([1, 2].contains(r.status), "\(path): status \(r.status)")
                if r.status == 2 {
                    XCTAssertEqual(r.stdout, "", path)
                    XCTAssertTrue(r.stderr.hasPrefix(path + ": "), "\(path): \(r.stderr)")
                    XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(path): \(r.stderr)")
                }
            }
        }
        XCTAssertGreaterThan(count, 60)
        print("hostile files: \(count), slowest \(slowest.path) in \(slowest.seconds) s")
    }
}
