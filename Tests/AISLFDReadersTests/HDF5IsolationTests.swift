#if os(Linux)
import AISLFDCore
import AISLFDReaders
import AISLFDTestSupport
import Foundation
import XCTest

/// libhdf5 runs in another process (a command started with HDF5Isolation.childArgument):
/// files that crash the library (found by tools/fixtures/fuzz_hdf5.py, made by
/// make_hdf5_fixtures.py) give a typed error, the isolated reader returns exactly what the
/// in-process one does, and a library caller that asks for no isolation starts no process.
final class HDF5IsolationTests: XCTestCase {
    let manifest = try! TensorManifest(path: Fixtures.path("hdf5/manifest.json"))
    var isolation: HDF5Isolation { get throws { HDF5Isolation(executable: try Fixtures.builtExecutable("aislfd-inspect").path) } }

    var crashFixtures: [String] { manifest.hostileFiles.filter { $0.hasPrefix("crash_") } }

    /// The isolated reader reports `libraryCrashed` only when the child died by a
    /// signal, so this shows that libhdf5 itself crashes on each of these files
    /// when read in process, and that the caller gets one line naming the file.
    func testFilesThatCrashLibHDF5GiveATypedErrorQuickly() throws {
        XCTAssertGreaterThanOrEqual(crashFixtures.count, 3)
        let before = childProcesses()
        for name in crashFixtures {
            let path = Fixtures.path("hdf5/" + name)
            guard let (error, message) = expectFileError(HDF5Error.self, path: path, { _ = try HDF5Reader.read(path: path, isolation: isolation) }) else { continue }
            guard case .libraryCrashed(let signal) = error else {
                XCTFail("\(name): \(message)")
                continue
            }
            XCTAssertTrue([SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL].contains(signal), "\(name): \(message)")
            XCTAssertTrue(message.contains(": libhdf5 crashed (signal \(signal), SIG"), message)
            XCTAssertTrue(message.hasSuffix(") reading this file: the file is corrupt"), message)
        }
        XCTAssertEqual(childProcesses(), before, "every child is reaped")
    }

    /// The check above can fail: the undamaged file the crashers were made from reads.
    func testTheUndamagedFilesDoNotCrash() throws {
        for name in manifest.readableFiles {
            XCTAssertNoThrow(try HDF5Reader.read(path: Fixtures.path("hdf5/" + name)), name)
        }
    }

    /// Everything the in-process reader returns or throws comes through the pipe unchanged.
    func testIsolatedAndInProcessReadsAgree() throws {
        let names = (manifest.readableFiles + manifest.hostileFiles).filter { !$0.hasPrefix("crash_") }
        XCTAssertGreaterThan(names.count, 20)
        for name in names {
            let path = Fixtures.path("hdf5/" + name)
            XCTAssertEqual(outcome { try HDF5Reader.read(path: path, isolation: isolation) },
                           outcome { try HDF5Reader.read(path: path) }, name)
        }
        let lisrd = Fixtures.repoPath("Weights/lisrd.h5")
        XCTAssertEqual(outcome { try HDF5Reader.read(path: lisrd, isolation: isolation) }, outcome { try HDF5Reader.read(path: lisrd) })
        // The comparison can fail: another file's contents differ.
        XCTAssertNotEqual(outcome { try HDF5Reader.read(path: Fixtures.path("hdf5/nested.h5"), isolation: isolation) },
                          outcome { try HDF5Reader.read(path: Fixtures.path("hdf5/dtypes.h5"), isolation: isolation) })
    }

    /// A child that does not finish in time is killed and reaped, and the caller
    /// is told in one line (a 15 MB file cannot be read in 1 ms).
    func testASlowReadIsStoppedAtTheTimeout() throws {
        let path = Fixtures.repoPath("Weights/lisrd.h5")
        let before = childProcesses()
        guard let (error, message) = expectFileError(HDF5Error.self, path: path, {
            _ = try HDF5Reader.read(path: path, isolation: isolation, timeout: 0.001)
        }) else { return }
        XCTAssertEqual(error, .timedOut(seconds: 1), message)
        XCTAssertTrue(message.contains("did not finish reading this file within 1 s"), message)
        XCTAssertEqual(childProcesses(), before, "the killed child is reaped")
        XCTAssertEqual(HDF5Reader.isolationTimeout(fileSize: 0), 20)
        XCTAssertEqual(HDF5Reader.isolationTimeout(fileSize: 80 << 20), 30)
    }

    /// Processes started from many threads at once, several reads at once, crashers among them.
    func testConcurrentIsolatedReadsFromManyThreads() throws {
        let names = manifest.readableFiles + crashFixtures
        let isolation = try isolation
        let expected = names.map { name in outcome { try HDF5Reader.read(path: Fixtures.path("hdf5/" + name), isolation: isolation) } }
        let results = Results(count: names.count * 4)
        DispatchQueue.concurrentPerform(iterations: names.count * 4) { i in
            let path = Fixtures.path("hdf5/" + names[i % names.count])
            results.set(i, outcome { try HDF5Reader.read(path: path, isolation: isolation) })
        }
        for i in 0..<(names.count * 4) {
            XCTAssertEqual(results.get(i), expected[i % names.count], names[i % names.count])
        }
    }

    /// Without isolation the library is called in this process: no child ever appears.
    func testALibraryCallerIsNeverForked() throws {
        let before = childProcesses()
        for name in manifest.readableFiles {
            XCTAssertNoThrow(try HDF5Reader.read(path: Fixtures.path("hdf5/" + name)), name)
        }
        XCTAssertNoThrow(try HDF5Reader.read(path: Fixtures.repoPath("Weights/lisrd.h5")))
        XCTAssertEqual(childProcesses(), before)
        // The check can fail: a child process shows in it.
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["5"]
        try sleeper.run()
        XCTAssertNotEqual(childProcesses(), before)
        sleeper.terminate()
        sleeper.waitUntilExit()
    }

    func testMissingAndSpecialFilesFailBeforeAnyChildStarts() throws {
        for path in ["/nonexistent/weights.h5", "/dev/null", NSTemporaryDirectory()] {
            guard let (error, _) = expectFileError(HDF5Error.self, path: path, { _ = try HDF5Reader.read(path: path, isolation: isolation) }) else { continue }
            XCTAssertEqual(caseName(error), "cannotOpen", path)
        }
    }

    // MARK: Helpers

    /// What a read gave, comparable: every tensor's key, dtype, shape and bytes,
    /// metadata and notes, or the error's message.
    enum Outcome: Equatable {
        case contents([NamedTensor], [String: String], [String])
        case error(String)
    }

    func outcome(_ read: () throws -> WeightsContents) -> Outcome {
        do {
            let c = try read()
            return .contents(c.tensors, c.metadata, c.notes)
        } catch {
            return .error(String(describing: error))
        }
    }

    final class Results: @unchecked Sendable {
        private var values: [Outcome?]
        private let lock = NSLock()
        init(count: Int) { values = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ value: Outcome) { lock.lock(); values[i] = value; lock.unlock() }
        func get(_ i: Int) -> Outcome? { lock.lock(); defer { lock.unlock() }; return values[i] }
    }

    /// The process IDs of this process's children (zombies included), from every thread.
    func childProcesses() -> Set<String> {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        var children: Set<String> = []
        for task in tasks {
            let text = (try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8)) ?? ""
            children.formUnion(text.split(separator: " ").map(String.init))
        }
        return children
    }
}
#endif
