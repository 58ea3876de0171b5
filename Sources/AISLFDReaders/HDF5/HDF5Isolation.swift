#if os(Linux)
import Glibc
import AISLFDCore

// libhdf5 1.10 still crashes on about 0.1% of randomly damaged files (decoding
// datatype messages in H5Dopen and H5Aexists_by_name, copying chunks in H5Dread),
// past anything the reader can check from outside. So a caller may have the library
// run in another process: a crash or hang there becomes an `HDF5Error` here, memory it
// corrupts is not this process's. The process is a fresh program started with
// posix_spawn (never a fork of the caller, whose threads and locks a library must not
// copy): the commands start themselves with `HDF5Isolation.childArgument`, and the
// program answers by calling `HDF5Isolation.serve`.

/// How to start the reading process.
public struct HDF5Isolation: Sendable, Equatable {
    /// The program to start; it must call `HDF5Isolation.serveIfAsked()` first thing.
    public let executable: String

    public init(executable: String) { self.executable = executable }

    /// This program again (what the commands use).
    public static var thisProgram: HDF5Isolation { HDF5Isolation(executable: "/proc/self/exe") }

    /// The first argument that makes a program the reading process; the second is the file.
    public static let childArgument = "--aislfd-internal-read-hdf5"

    /// In the reading process (`arguments` are `CommandLine.arguments`), reads the file and
    /// writes the result to stdout, then exits; returns at once in any other process.
    public static func serveIfAsked(_ arguments: [String] = CommandLine.arguments) {
        guard arguments.count == 3, arguments[1] == childArgument else { return }
        HDF5Reader.serveChild(path: arguments[2])
    }
}

extension HDF5Reader {
    /// Time allowed for one isolated read: generous for decompressing up to the
    /// reader's limits, short enough that a hung library is noticed.
    public static func isolationTimeout(fileSize: Int) -> Double {
        20 + Double(fileSize) / Double(8 << 20)
    }

    static func readInChild(path: String, isolation: HDF5Isolation, timeout: Double) throws -> WeightsContents {
        let fileSize = try regularFileSize(path)
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw HDF5Error.isolationFailed(reason: "cannot create a pipe (\(String(cString: strerror(errno))))")
        }
        let (readEnd, writeEnd) = (ends[0], ends[1])
        // Close-on-exec, so a program that another thread starts does not hold the pipe open
        // (Swift does not see pipe2; if one slips into the gap, a crash is seen at the deadline).
        // The spawn's dup2 gives the child its own copy as stdout without the flag.
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        // A larger pipe buffer (F_SETPIPE_SZ; the default 64 KiB) means fewer switches between
        // the two processes for large results. Failing is harmless.
        _ = fcntl(writeEnd, 1031, Int32(1 << 20))
        let spawned = spawn(isolation.executable, path: path, stdout: writeEnd)
        close(writeEnd)
        defer { close(readEnd) }
        guard case .success(let pid) = spawned else {
            if case .failure(let code) = spawned {
                throw HDF5Error.isolationFailed(reason: "cannot start \(isolation.executable) (\(String(cString: strerror(code))))")
            }
            fatalError("unreachable")
        }

        let deadline = HDF5ResultStream.monotonicSeconds() + timeout
        let result: Result<WeightsContents, HDF5Error>
        do {
            result = try HDF5ResultStream.readResult(from: readEnd, fileSize: fileSize, deadline: deadline)
        } catch {
            // Without a whole result, the child's fate says what happened.
            let problem = error as? HDF5ResultStream.Problem ?? .malformed(String(describing: error))
            let status = reap(pid, until: problem == .endedEarly ? deadline : 0)
            throw childFailure(problem, status: status, timeout: timeout)
        }
        _ = reap(pid, until: deadline)
        return try result.get()
    }

    private enum Spawned { case success(pid_t), failure(Int32) }

    /// Starts `executable childArgument path` with stdout on `stdout`, stdin and stderr on
    /// /dev/null (nothing libhdf5 prints may reach the user's terminal), every signal at its
    /// default action and none blocked.
    private static func spawn(_ executable: String, path: String, stdout: Int32) -> Spawned {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout, STDOUT_FILENO)
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0)
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let words: [String] = [executable, HDF5Isolation.childArgument, path]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { word in word.withCString { strdup($0) } } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        return code == 0 ? .success(pid) : .failure(code)
    }

    private enum ChildStatus {
        case exited(Int32)
        case signalled(Int32)
        case killedByUs
        case unknown  // reaped elsewhere (SIGCHLD ignored)
    }

    private static func childFailure(_ problem: HDF5ResultStream.Problem, status: ChildStatus, timeout: Double) -> HDF5Error {
        switch (problem, status) {
        case (_, .signalled(let signal)):
            return .libraryCrashed(signal: signal)
        case (.timedOut, _), (.endedEarly, .killedByUs):
            return .timedOut(seconds: Int(timeout.rounded(.up)))
        case (.endedEarly, .exited(let code)):
            return .isolationFailed(reason: "the reading process exited with status \(code) without a result")
        case (.endedEarly, _):
            return .isolationFailed(reason: "the reading process ended without a result")
        case (.malformed(let what), _):
            return .isolationFailed(reason: "malformed result from the reading process (\(what))")
        case (.readFailed(let code), _):
            return .isolationFailed(reason: "cannot read from the reading process (\(String(cString: strerror(code))))")
        }
    }

    /// Waits for the child until `deadline`, then kills it; the child is always reaped.
    private static func reap(_ pid: pid_t, until deadline: Double) -> ChildStatus {
        var status: Int32 = 0
        var pause = timespec(tv_sec: 0, tv_nsec: 50_000)
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { return decode(status) }
            if done < 0 && errno == EINTR { continue }
            if done < 0 { return .unknown }
            if HDF5ResultStream.monotonicSeconds() >= deadline { break }
            nanosleep(&pause, nil)
            pause.tv_nsec = min(pause.tv_nsec * 2, 1_000_000)
        }
        kill(pid, SIGKILL)
        while true {
            let done = waitpid(pid, &status, 0)
            if done == pid {
                // It may have died on its own just before the kill.
                if case .signalled(SIGKILL) = decode(status) { return .killedByUs }
                return decode(status)
            }
            if done < 0 && errno == EINTR { continue }
            return .unknown
        }
    }

    private static func decode(_ status: Int32) -> ChildStatus {
        // WIFEXITED / WTERMSIG are macros Swift does not import.
        let signal = status & 0x7f
        if signal == 0 { return .exited((status >> 8) & 0xff) }
        return .signalled(signal)
    }

    /// The reading process: reads with the in-process reader, writes the result to stdout,
    /// leaves with `_exit` (no atexit handlers, nothing else of the program runs).
    static func serveChild(path: String) -> Never {
        let out = STDOUT_FILENO
        // A crash must end the child at once: no core file, no backtracer (which takes seconds).
        for signal in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGALRM, SIGPIPE, SIGXCPU] {
            _ = Glibc.signal(signal, SIG_DFL)
        }
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
        // Ends the child even if the parent died and can no longer kill it.
        let size = (try? regularFileSize(path)) ?? 0
        alarm(UInt32(min(isolationTimeout(fileSize: size).rounded(.up) + 5, Double(UInt32.max))))
        closeDescriptors(except: out)

        // Each tensor goes to the parent while the next is read, and is not kept here.
        var writer = HDF5ResultStream.Writer(fd: out)
        let sent: Bool
        do {
            let rest = try readContents(path: path) { tensor in
                if !writer.send(tensor) { _exit(1) }  // the parent is gone
            }
            sent = writer.finish(metadata: rest.metadata, notes: rest.notes, groups: rest.groups)
        } catch let error as HDF5Error {
            sent = writer.fail(error)
        } catch {
            sent = writer.fail(.corrupt(tensor: nil, reason: String(describing: error)))
        }
        _exit(sent ? 0 : 1)
    }

    /// Closes every inherited descriptor above stderr but `keep`: a pipe of another
    /// thread's isolated read, inherited without close-on-exec, would delay that reader's end of file.
    private static func closeDescriptors(except keep: Int32) {
        guard let folder = opendir("/proc/self/fd") else { return }
        let own = dirfd(folder)
        var open: [Int32] = []
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd > STDERR_FILENO, fd != keep, fd != own { open.append(fd) }
        }
        closedir(folder)
        for fd in open { close(fd) }
    }
}
#endif
