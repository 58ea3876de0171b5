import AISLFDCore
import AISLFDImages
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

final class RunVerifyMatchCommandTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testInspectShowsAConvertedModelAndRefusesEveryCorruptedCopy() throws {
        let model = folder.appendingPathComponent("c.aisw").path
        XCTAssertEqual(try Commands.run("aislfd-convert", ["Weights/aislfd-c.safetensors", model, "--precision", "int8"]).status, 0)
        let ok = try Commands.run("aislfd-inspect", [model, "--json"])
        XCTAssertEqual(ok.status, 0)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["architecture"] as? String, "aislfd-c")
        XCTAssertEqual(json["checksums"] as? String, "verified")

        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: model)))
        // One byte in the header, the metadata, the table, the first tensor's data and the last byte.
        for offset in [20, 100, bytes.count / 2, bytes.count - 1] {
            var copy = bytes
            copy[offset] ^= 0x40
            let path = folder.appendingPathComponent("corrupt-\(offset).aisw").path
            try Data(copy).write(to: URL(fileURLWithPath: path))
            let r = try Commands.run("aislfd-inspect", [path])
            XCTAssertEqual(r.status, 2, "flipped byte \(offset)")
            XCTAssertTrue(r.stderr.hasPrefix(path + ": "), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1)
        }
        let truncated = folder.appendingPathComponent("truncated.aisw").path
        try Data(bytes.prefix(bytes.count - 100)).write(to: URL(fileURLWithPath: truncated))
        XCTAssertEqual(try Commands.run("aislfd-inspect", [truncated]).status, 2)
    }

    func testInspectSnapshotOfASourceFile() throws {
        let r = try Commands.run("aislfd-inspect", ["Weights/aislfd-a.pth"])
        XCTAssertEqual(r.status, 0)
        try Commands.assertSnapshot(r.stdout, named: "inspect-aislfd-a")
    }

    /// aislfd-run's run file has the reference's keys and agrees with it, and aislfd-verify
    /// passes it; a perturbed reference makes aislfd-verify exit 1.
    func testRunAndVerifyAgainstAPyTorchReference() throws {
        let out = folder.appendingPathComponent("run.npz").path
        let r = try Commands.run("aislfd-run", ["Weights/aislfd-c.safetensors", "Tests/Fixtures/images/synth_61x83.png", "-o", out,
                                                "--keypoints", "Tests/Fixtures/images/kp_61x83.npy", "--repeat", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 passes, min"), r.stdout)
        let run = try NPZReader.read(path: out)
        let reference = try NPZReader.read(path: Fixtures.path("reference/aislfd-c.npz"))
        let variants = ["rot_var_illum_var", "rot_invar_illum_var", "rot_var_illum_invar", "rot_invar_illum_invar"]
        let keys = ["image", "keypoints", "kp_desc", "kp_meta"] + variants.map { "desc.\($0)" } + variants.map { "meta.\($0)" }
        for key in keys {
            let a = try XCTUnwrap(run[key], key), b = try XCTUnwrap(reference[key], key)
            XCTAssertEqual(a.shape, b.shape, key)
            let scale = b.floats().map(abs).max() ?? 1
            let error = zip(a.floats(), b.floats()).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(error, 1e-4 * scale, key)
        }

        let verify = try Commands.run("aislfd-verify", ["Weights/aislfd-c.safetensors", "--reference", "Tests/Fixtures/reference/aislfd-c.npz", "--per-layer"])
        XCTAssertEqual(verify.status, 0, verify.stdout)
        XCTAssertTrue(verify.stdout.contains("PASS"))
        XCTAssertTrue(verify.stdout.contains("every layer within tolerance"))

        var perturbed = reference
        let i = perturbed.tensors.firstIndex { $0.key == "kp_desc" }!
        let t = perturbed.tensors[i]
        perturbed.tensors[i] = NamedTensor(key: t.key, shape: t.shape, floats: t.floats().enumerated().map { $0.offset % 7 == 0 ? -$0.element : $0.element })
        let bad = folder.appendingPathComponent("bad-ref.npz").path
        try NPZWriter.write(perturbed.tensors, to: bad)
        let fail = try Commands.run("aislfd-verify", ["Weights/aislfd-c.safetensors", "--reference", bad, "--json"])
        XCTAssertEqual(fail.status, 1)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(fail.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["pass"] as? Bool, false)
    }

    /// Mutual nearest neighbours under Eq. 1 and the squared distance, as PyTorch computed
    /// them (Tests/Fixtures/matching/, tools/make_fixtures.py), and a picture.
    func testMatchAgreesWithPyTorch() throws {
        for (arch, file) in [("lisrd", "lisrd.h5"), ("aislfd-c", "aislfd-c.safetensors")] {
            let expected = try NPZReader.read(path: Fixtures.path("matching/\(arch).npz"))
            for distance in ["eq1", "squared"] {
                let out = folder.appendingPathComponent("\(arch)-\(distance).npz").path
                let picture = folder.appendingPathComponent("\(arch)-\(distance).png").path
                let r = try Commands.run("aislfd-match", [
                    "Weights/\(file)", "Tests/Fixtures/images/synth_61x83.png", "Tests/Fixtures/images/synth_61x83_rot3.png",
                    "--keypoints0", "Tests/Fixtures/matching/kp0.npy", "--keypoints1", "Tests/Fixtures/matching/kp1.npy",
                    "-o", out, "--distance", distance, "--draw", picture])
                XCTAssertEqual(r.status, 0, r.stderr)
                let ours = try NPZReader.read(path: out)
                XCTAssertEqual(ours["matches"]?.data, expected["matches.\(distance)"]?.data, "\(arch) \(distance)")
                let d0 = try XCTUnwrap(ours["distance"]).floats(), d1 = try XCTUnwrap(expected["distance.\(distance)"]).floats()
                XCTAssertEqual(d0.count, d1.count)
                for (a, b) in zip(d0, d1) { XCTAssertEqual(a, b, accuracy: 1e-4) }
                let png = try ImageReader.readRGB(path: picture)
                XCTAssertGreaterThanOrEqual(png.height, 400)
            }
        }
    }

    func testRunRefusesBadInputsWithOneLine() throws {
        let out = folder.appendingPathComponent("x.npz").path
        let cases: [([String], String)] = [
            (["Weights/lisrd.h5", "Tests/Fixtures/images-io/not_an_image.bin", "-o", out], "Tests/Fixtures/images-io/not_an_image.bin: "),
            (["Weights/lisrd.h5", "Tests/Fixtures/images/kp_61x83.npy", "-o", out], "Tests/Fixtures/images/kp_61x83.npy: "),
            (["Weights/lisrd.h5", "Tests/Fixtures/images/synth_61x83.png", "-o", out, "--keypoints", "Tests/Fixtures/images/synth_61x83.npy"],
             "Tests/Fixtures/images/synth_61x83.npy: "),
            (["Tests/Fixtures/images/synth_61x83.png", "Tests/Fixtures/images/synth_61x83.png", "-o", out], "Tests/Fixtures/images/synth_61x83.png: "),
        ]
        for (arguments, prefix) in cases {
            let r = try Commands.run("aislfd-run", arguments)
            XCTAssertEqual(r.status, 2, "\(arguments): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix(prefix), "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }

    /// --max-memory: a pass beyond it is refused with one line naming the image,
    /// what it needs and what is allowed; a size that is not one is a usage error.
    func testMaxMemoryRefusesAPassBeyondIt() throws {
        let out = folder.appendingPathComponent("budget.npz").path
        let image = "Tests/Fixtures/images/synth_61x83.png"
        let refused = try Commands.run("aislfd-run", ["Weights/lisrd.h5", image, "-o", out, "--max-memory", "1M"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.hasPrefix("\(image): image is 61x83; its forward pass needs about "), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("more than the 1.0 MB allowed"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let match = try Commands.run("aislfd-match", ["Weights/lisrd.h5", image, image, "--keypoints0", "Tests/Fixtures/matching/kp0.npy",
                                                      "--keypoints1", "Tests/Fixtures/matching/kp1.npy", "-o", out, "--max-memory", "1M"])
        XCTAssertEqual(match.status, 2, match.stderr)
        XCTAssertTrue(match.stderr.contains("allowed"), match.stderr)
        let bad = try Commands.run("aislfd-run", ["Weights/lisrd.h5", image, "-o", out, "--max-memory", "lots"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--max-memory"), bad.stderr)
        let allowed = try Commands.run("aislfd-run", ["Weights/lisrd.h5", image, "-o", out, "--max-memory", "2G"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
    }
}
