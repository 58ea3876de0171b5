import AISLFDConvert
import AISLFDCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes to stdout and stderr; commands print only through these so reports
/// and errors go where interfaces.md says.
enum Output {
    static func print(_ text: String) {
        FileHandle.standardOutput.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}

/// What a command says, and where (interfaces.md): the report on stdout — for people, or
/// with `--json` one JSON document holding the exit status and every warning and note —
/// warnings and notes on stderr (none with `--quiet`), progress on stderr only when it is a
/// terminal, and errors on stderr as one line (with `--json` also as the document).
final class Console: @unchecked Sendable {
    /// The console of this process's command, set up by `CommandMain` from the arguments.
    nonisolated(unsafe) static var current = Console(json: false, quiet: false)

    let json: Bool
    let quiet: Bool
    private let lock = NSLock()
    private var messages: [String] = []

    init(json: Bool, quiet: Bool) {
        self.json = json
        self.quiet = quiet
    }

    func warn(_ line: String) { emit("warning: " + line) }
    func note(_ line: String) { emit("note: " + line) }

    private func emit(_ line: String) {
        lock.lock()
        messages.append(line)
        lock.unlock()
        if !json && !quiet { Output.printError(line) }
    }

    /// Prints the outcome: `human` for people (nothing with `--quiet`), or `document` with
    /// `status` and `messages` added. A status other than success then ends the command with it.
    func report<Document: Encodable>(human: @autoclosure () -> String, document: Document, status: ExitStatus = .success) throws {
        if json {
            Output.print(try prettyJSON(Reported(document: document, status: status.rawValue, messages: messages)))
        } else if !quiet {
            Output.print(human())
        }
        if status != .success { throw CommandFailure(status) }
    }

    /// An error as the last word: one line on stderr; with `--json` also the document
    /// `{"status", "error", "file", "messages"}` on stdout.
    func fail(_ message: String, file: String? = nil, status: ExitStatus) -> Int32 {
        Output.printError(message)
        if json {
            struct Failure: Encodable { var error: String; var file: String? }
            let text = (try? prettyJSON(Reported(document: Failure(error: message, file: file), status: status.rawValue, messages: messages)))
            Output.print(text ?? "{\"status\": \(status.rawValue)}")
        }
        return status.rawValue
    }

    /// Runs `work`, which may say what step it is at; when stderr is a terminal (and neither
    /// `--quiet` nor `--json` is given) and the work takes over two seconds, one line on stderr
    /// shows `label`, the step and the seconds so far, and is cleared at the end.
    func withProgress<T>(_ label: String, _ work: (_ step: @escaping ConversionProgress) throws -> T) rethrows -> T {
        guard !json, !quiet, isatty(STDERR_FILENO) == 1 else { return try work { _ in } }
        let ticker = ProgressLine(label: label)
        ticker.start()
        defer { ticker.stop() }
        return try work { ticker.step = $0 }
    }
}

/// The document `--json` prints: the command's own fields plus `status` and `messages`.
private struct Reported<Document: Encodable>: Encodable {
    let document: Document
    let status: Int32
    let messages: [String]

    enum Keys: String, CodingKey { case status, messages }

    func encode(to encoder: any Encoder) throws {
        try document.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(status, forKey: .status)
        try c.encode(messages, forKey: .messages)
    }
}

/// The one line of progress on a terminal, redrawn twice a second from a timer thread.
private final class ProgressLine: @unchecked Sendable {
    let label: String
    private let lock = NSLock()
    private var current = ""
    private var shown = false
    private var stopped = false
    private let began = DispatchTime.now().uptimeNanoseconds
    private let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))

    init(label: String) { self.label = label }

    var step: String {
        get { lock.lock(); defer { lock.unlock() }; return current }
        set { lock.lock(); current = newValue; lock.unlock() }
    }

    func start() {
        timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
        timer.setEventHandler { [weak self] in self?.draw() }
        timer.resume()
    }

    private func draw() {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        guard seconds >= 2 else { return }
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        shown = true
        Self.write("\r\u{1B}[K\(label)\(current.isEmpty ? "" : ": " + current) (\(Int(seconds)) s)")
    }

    func stop() {
        lock.lock()
        stopped = true
        if shown { Self.write("\r\u{1B}[K") }
        lock.unlock()
        timer.cancel()
    }

    private static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
