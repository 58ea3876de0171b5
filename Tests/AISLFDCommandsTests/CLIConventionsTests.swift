import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

/// The conventions every command keeps (interfaces.md): --version, --quiet, --json for every
/// outcome, named placeholders in --help, progress on a terminal only, and never an output
/// over an input.
final class CLIConventionsTests: XCTestCase {
    static let tools = ["aislfd-convert", "aislfd-inspect", "aislfd-run", "aislfd-match", "aislfd-verify", "aislfd-eval"]
    var folder: URL!

    override func setUpWithError() throws { folder = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func temp(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func testEveryCommandPrintsItsVersion() throws {
        for tool in Self.tools {
            let r = try Commands.run(tool, ["--version"])
            XCTAssertEqual(r.status, 0, tool)
            XCTAssertEqual(r.stdout, AISLFDVersion.text + "\n", tool)
        }
    }

    /// --help of each command, as a snapshot: named placeholders (`-o <run.npz>`, not `-o <o>`),
    /// how images are read, the EXIF flag.
    func testHelpSnapshots() throws {
        for tool in Self.tools {
            let r = try Commands.run(tool, ["--help"])
            XCTAssertEqual(r.status, 0, tool)
            XCTAssertNil(r.stdout.range(of: "<[a-z0-9]>", options: .regularExpression), "\(tool): a placeholder named by its letter")
            try Commands.assertSnapshot(r.stdout, named: "help-\(tool)")
        }
        let run = try Commands.run("aislfd-run", ["--help"]).stdout
        for text in ["-o <run.npz>", "--ignore-orientation", "alpha dropped", "16-bit samples cut to their high byte", "EXIF orientation"] {
            XCTAssertTrue(run.contains(text), text)
        }
    }

    func testQuietPrintsOnlyErrors() throws {
        let out = temp("run.npz")
        let arguments = ["Weights/lisrd.h5", "Tests/Fixtures/inputs/out_of_range.npy", "-o", out,
                         "--keypoints", "Tests/Fixtures/inputs/kp_outside.npy"]
        let loud = try Commands.run("aislfd-run", arguments)
        XCTAssertEqual(loud.status, 0, loud.stderr)
        XCTAssertEqual(loud.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }.count, 2, loud.stderr)
        XCTAssertTrue(loud.stderr.contains("8 of 9,216 values lie outside [0, 1]"), loud.stderr)
        XCTAssertTrue(loud.stderr.contains("3 of 20 keypoints lie outside the 48x64 image"), loud.stderr)
        let quiet = try Commands.run("aislfd-run", arguments + ["--quiet"])
        XCTAssertEqual(quiet.status, 0)
        XCTAssertEqual(quiet.stdout + quiet.stderr, "")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        let failing = try Commands.run("aislfd-run", ["Weights/lisrd.h5", "Tests/Fixtures/inputs/nan_pixel.npy", "-o", temp("x.npz"), "-q"])
        XCTAssertEqual(failing.status, 1)
        XCTAssertEqual(failing.stdout, "")
        XCTAssertEqual(failing.stderr.split(separator: "\n").count, 1, failing.stderr)
    }

    /// With --json every outcome is one JSON document on stdout with its exit status: success,
    /// invalid input, an unreadable file, a usage error.
    func testJSONForEveryOutcome() throws {
        func document(_ tool: String, _ arguments: [String], status: Int32) throws -> [String: Any] {
            let r = try Commands.run(tool, arguments + ["--json"])
            XCTAssertEqual(r.status, status, "\(arguments): \(r.stderr)")
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(arguments): \(r.stdout)")
            XCTAssertEqual(json["status"] as? Int, Int(status), "\(arguments)")
            return json
        }
        let ok = try document("aislfd-run", ["Weights/lisrd.h5", "Tests/Fixtures/inputs/out_of_range.npy", "-o", temp("a.npz")], status: 0)
        XCTAssertEqual(ok["image"] as? [Int], [48, 64])
        XCTAssertEqual((ok["messages"] as? [String])?.count, 1)
        let invalid = try document("aislfd-run", ["Weights/lisrd.h5", "Tests/Fixtures/inputs/nan_pixel.npy", "-o", temp("b.npz")], status: 1)
        XCTAssertTrue((invalid["error"] as? String)?.contains("1 NaN and 2 infinite") ?? false)
        XCTAssertEqual(invalid["file"] as? String, "Tests/Fixtures/inputs/nan_pixel.npy")
        let unreadable = try document("aislfd-inspect", ["Tests/Fixtures/torch/evil_os_system.pth"], status: 2)
        XCTAssertTrue((unreadable["error"] as? String)?.contains("posix.system") ?? false)
        let usage = try document("aislfd-match", ["Weights/lisrd.h5"], status: 2)
        XCTAssertTrue((usage["error"] as? String)?.contains("see aislfd-match --help") ?? false)
        _ = try document("aislfd-convert", ["Weights/lisrd.h5", "--check"], status: 0)
        _ = try document("aislfd-verify", ["Weights/lisrd.h5", "--reference", "Tests/Fixtures/reference/lisrd.npz"], status: 0)
        _ = try document("aislfd-convert", ["Weights/lisrd.h5", temp("c.aisw")], status: 0)
    }

    /// The check's problems in JSON give shapes as arrays of integers.
    func testJSONShapesAreIntegerArrays() throws {
        var contents = try NPZReader.read(path: Fixtures.repoPath("Weights/aislfd-b.npz"))
        let i = contents.tensors.firstIndex { $0.key == "msfe.lateral2.weight" }!
        contents.tensors[i] = NamedTensor(key: contents.tensors[i].key, shape: [2, 2], floats: [0, 0, 0, 0])
        try NPZWriter.write(contents.tensors, to: temp("wrong.npz"))
        let r = try Commands.run("aislfd-convert", [temp("wrong.npz"), temp("out.aisw"), "--json"])
        XCTAssertEqual(r.status, 1)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(json["status"] as? Int, 1)
        let problem = try XCTUnwrap((json["problems"] as? [[String: Any]])?.first { $0["kind"] as? String == "shape" })
        XCTAssertEqual(problem["found"] as? [Int], [2, 2])
        XCTAssertEqual(problem["expected"] as? [Int], [256, 128, 1, 1])
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp("out.aisw")))
    }

    /// convert says a few lines by default; --verbose adds the per-tensor table.
    func testConvertSummaryAndVerboseTable() throws {
        let short = try Commands.run("aislfd-convert", ["Weights/lisrd.h5", temp("a.aisw")])
        XCTAssertEqual(short.status, 0, short.stderr)
        XCTAssertLessThanOrEqual(short.stdout.split(separator: "\n").count, 8, short.stdout)
        XCTAssertTrue(short.stdout.contains("every stored value is exact (fp32)"), short.stdout)
        XCTAssertFalse(short.stdout.contains(" inf "), short.stdout)
        let long = try Commands.run("aislfd-convert", ["Weights/lisrd.h5", temp("b.aisw"), "--verbose"])
        XCTAssertEqual(long.status, 0)
        XCTAssertGreaterThan(long.stdout.split(separator: "\n").count, 60)
        XCTAssertTrue(long.stdout.contains("SQNR dB"))
        XCTAssertEqual(try fileBytes(temp("a.aisw")), try fileBytes(temp("b.aisw")), "the report changes, not the file")
    }

    /// On a terminal a long conversion shows what it is at; piped, nothing but the report.
    func testProgressOnATerminalOnly() throws {
        let arguments = ["Weights/lisrd.h5", temp("p.aisw"), "--precision", "int8"]
        let terminal = try Commands.runInTerminal("aislfd-convert", arguments)
        XCTAssertEqual(terminal.status, 0, terminal.stdout)
        XCTAssertTrue(terminal.stdout.contains("\r\u{1B}[Kaislfd-convert: int8: calibration: sensitivity of weight "), terminal.stdout)
        let piped = try Commands.run("aislfd-convert", arguments)
        XCTAssertEqual(piped.status, 0)
        XCTAssertFalse((piped.stdout + piped.stderr).contains("calibration: "), piped.stderr)
        let quiet = try Commands.runInTerminal("aislfd-convert", arguments + ["--quiet"])
        XCTAssertEqual(quiet.stdout, "")
        // Forward passes too: a few seconds of them show which pass is running.
        let run = try Commands.runInTerminal("aislfd-run", ["Weights/lisrd.h5", "Tests/Fixtures/images/synth_61x83.png", "-o", temp("r.npz"),
                                                            "--repeat", "400", "--threads", "1"])
        XCTAssertEqual(run.status, 0, run.stdout)
        XCTAssertTrue(run.stdout.contains("\r\u{1B}[Kaislfd-run: 61x83 image: pass "), run.stdout)
    }

    /// No output may be an input, through a link, a hard link or another spelling of its path:
    /// exit 2, one line, the input untouched and nothing else written.
    func testNoCommandWritesOverItsInputs() throws {
        let model = temp("m.h5"), image = temp("img.png"), kp = temp("kp.npy"), aisw = temp("m.aisw")
        try FileManager.default.copyItem(atPath: Fixtures.repoPath("Weights/lisrd.h5"), toPath: model)
        try FileManager.default.copyItem(atPath: Fixtures.path("images/synth_61x83.png"), toPath: image)
        try FileManager.default.copyItem(atPath: Fixtures.path("images/kp_61x83.npy"), toPath: kp)
        XCTAssertEqual(try Commands.run("aislfd-convert", [model, aisw]).status, 0)
        try FileManager.default.createSymbolicLink(atPath: temp("link.png"), withDestinationPath: image)
        try FileManager.default.linkItem(atPath: aisw, toPath: temp("hard.aisw"))
        let before = try [model, image, kp, aisw].map { try SHA256.hex(fileBytes($0)) }
        let listing = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()

        let cases: [(String, [String], String)] = [
            ("aislfd-run", [aisw, image, "-o", aisw], aisw),
            ("aislfd-run", [aisw, image, "-o", image], image),
            ("aislfd-run", [aisw, image, "-o", kp, "--keypoints", kp], kp),
            ("aislfd-run", [aisw, image, "-o", temp("link.png")], temp("link.png")),
            ("aislfd-run", [aisw, image, "-o", temp("hard.aisw")], temp("hard.aisw")),
            ("aislfd-run", [aisw, image, "-o", folder.path + "/./img.png"], folder.path + "/./img.png"),
            ("aislfd-match", [aisw, image, image, "--keypoints0", kp, "--keypoints1", kp, "-o", aisw], aisw),
            ("aislfd-match", [aisw, image, image, "--keypoints0", kp, "--keypoints1", kp, "-o", temp("m.npz"), "--draw", image], image),
            ("aislfd-match", [aisw, image, image, "--keypoints0", kp, "--keypoints1", kp, "-o", temp("m.npz"), "--draw", temp("m.npz")], temp("m.npz")),
            ("aislfd-convert", [model, model], model),
            ("aislfd-convert", [aisw, temp("hard.aisw")], temp("hard.aisw")),
        ]
        for (tool, arguments, output) in cases {
            let r = try Commands.run(tool, arguments)
            XCTAssertEqual(r.status, 2, "\(tool) \(arguments): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix(output + ": output is the same file as"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertEqual(r.stdout, "")
        }
        XCTAssertEqual(try [model, image, kp, aisw].map { try SHA256.hex(fileBytes($0)) }, before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), listing)
    }

    /// aislfd-match writes the match file and the picture both or neither: a picture that
    /// cannot be written leaves no match file either.
    func testMatchWritesBothOutputsOrNeither() throws {
        let arguments = ["Weights/lisrd.h5", "Tests/Fixtures/images/synth_61x83.png", "Tests/Fixtures/images/synth_61x83_rot3.png",
                         "--keypoints0", "Tests/Fixtures/matching/kp0.npy", "--keypoints1", "Tests/Fixtures/matching/kp1.npy"]
        let failed = try Commands.run("aislfd-match", arguments + ["-o", temp("m.npz"), "--draw", temp("missing/m.png")])
        XCTAssertEqual(failed.status, 2, failed.stderr)
        let errors = failed.stderr.split(separator: "\n").filter { !$0.hasPrefix("warning: ") }
        XCTAssertEqual(errors.count, 1, failed.stderr)
        XCTAssertTrue(errors.first?.hasPrefix(temp("missing/m.png") + ": ") ?? false, failed.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
        let done = try Commands.run("aislfd-match", arguments + ["-o", temp("m.npz"), "--draw", temp("m.png")])
        XCTAssertEqual(done.status, 0, done.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), ["m.npz", "m.png"])
    }

    /// The checkpoints training code writes go through every command: found, unwrapped, said
    /// in a note; the EMA on request; LZF named.
    func testTrainingCheckpointsThroughTheCommands() throws {
        let dir = "Tests/Fixtures/torch/training/"
        for name in ["adam_multisteplr.pth", "compiled.pth", "dataparallel.pth", "dataparallel_compiled.pth", "extras.pth",
                     "lightning.pth", "model_and_ema.pth", "model_entry.pth"] {
            let r = try Commands.run("aislfd-convert", [dir + name, "--check"])
            XCTAssertEqual(r.status, 0, "\(name): \(r.stdout)")
            XCTAssertTrue(r.stdout.contains("note: took the state_dict") || r.stdout.contains("note: stripped"), r.stdout)
            XCTAssertTrue(r.stdout.contains("OK: lisrd"), r.stdout)
        }
        let h5 = try Commands.run("aislfd-convert", ["Tests/Fixtures/hdf5/training/model_state_dict.h5", temp("h.aisw")])
        XCTAssertEqual(h5.status, 0, h5.stderr)
        XCTAssertTrue(h5.stderr.contains("took the state_dict under 'model_state_dict'"), h5.stderr)

        let image = "Tests/Fixtures/images/synth_61x83.png"
        let model = try Commands.run("aislfd-run", [dir + "model_and_ema.pth", image, "-o", temp("model.npz")])
        XCTAssertTrue(model.stderr.contains("'ema' also holds lisrd weights; took 'model'"), model.stderr)
        let ema = try Commands.run("aislfd-run", [dir + "model_and_ema.pth", image, "-o", temp("ema.npz"), "--entry", "ema"])
        XCTAssertEqual(ema.status, 0, ema.stderr)
        XCTAssertNotEqual(try NPZReader.read(path: temp("model.npz"))["desc.rot_var_illum_var"]?.data,
                          try NPZReader.read(path: temp("ema.npz"))["desc.rot_var_illum_var"]?.data)
        let missing = try Commands.run("aislfd-run", [dir + "model_and_ema.pth", image, "-o", temp("x.npz"), "--entry", "swa"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("no entry 'swa' holds tensors (entries: 'model', 'ema')"), missing.stderr)

        let lzf = try Commands.run("aislfd-convert", ["Tests/Fixtures/hdf5/training/lzf.h5", "--check"])
        XCTAssertEqual(lzf.status, 2)
        XCTAssertEqual(lzf.stderr, "Tests/Fixtures/hdf5/training/lzf.h5: dataset 'conv.weight': filter LZF is not available in libhdf5; re-save the file with gzip compression or none\n")
    }

    /// The JPEGs of issue 13 (a few hundred bytes claiming 4000 x 4000, 1000 x 16384, 4096 x
    /// 1000 pixels) are refused by aislfd-run within a second and 300 MB of resident memory
    /// (the whole process, model loading included); truncated data too.
    func testImageBombsAreRefusedFastAndSmall() throws {
        for name in ["claims_4000x4000.jpg", "claims_1000x16384.jpg", "claims_4096x1000.jpg", "truncated.jpg", "truncated_eoi.jpg",
                     "truncated_rows.png"] {
            let path = "Tests/Fixtures/images-io/" + name
            let (r, peak) = try Commands.runMeasured("aislfd-run", ["Weights/lisrd.h5", path, "-o", temp("x.npz")])
            print("\(name): exit \(r.status), \(r.seconds) s, peak \(peak >> 20) MB")
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix(path + ": "), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertLessThan(r.seconds, Fixtures.hangLimit, name)
            XCTAssertLessThan(peak, 300 << 20, name)
            XCTAssertGreaterThan(peak, 1 << 20, "\(name): no memory reading")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp("x.npz")))
    }
}
