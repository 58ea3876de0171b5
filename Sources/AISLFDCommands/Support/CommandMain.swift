import AISLFDCore
import AISLFDReaders
import ArgumentParser
import Foundation

/// Runs a command with the exit statuses of interfaces.md: ArgumentParser's own
/// usage errors (which it would report as 64) become 2, and our typed errors
/// carry their own status. Every error is one line on stderr (with `--json` also one
/// JSON document on stdout).
public enum CommandMain {
    public static func run<C: ParsableCommand>(_ command: C.Type) -> Never {
        // Started again by itself to read an HDF5 file in isolation (HDF5Isolation.thisProgram).
        HDF5Isolation.serveIfAsked()
        exit(status(of: command, arguments: nil))
    }

    public static func status<C: ParsableCommand>(of command: C.Type, arguments: [String]?) -> Int32 {
        // Known before parsing, so that a usage error too comes out as --json asks.
        let options = (arguments ?? Array(CommandLine.arguments.dropFirst())).prefix { $0 != "--" }
        let console = Console(json: options.contains("--json"), quiet: options.contains("--quiet") || options.contains("-q"))
        Console.current = console
        do {
            var parsed = try command.parseAsRoot(arguments)
            try parsed.run()
            return ExitStatus.success.rawValue
        } catch let error as FileError {
            return console.fail(error.description, file: error.path, status: error.status)
        } catch let error as CommandFailure {
            guard let message = error.message else { return error.status.rawValue }
            return console.fail(message, file: error.file, status: error.status)
        } catch {
            let name = command._commandName
            if command.exitCode(for: error) == .success {
                // --help and --version: their text on stdout.
                Output.print(command.fullMessage(for: error))
                return ExitStatus.success.rawValue
            }
            let message = command.message(for: error).split(whereSeparator: \.isNewline).joined(separator: " ")
            return console.fail("\(name): \(echoed(message, limit: 400)) (see \(name) --help)", status: .unreadable)
        }
    }
}

/// Ends a command with a status after it has printed its own report
/// (for example a validation report with problems: status 1, no extra message).
public struct CommandFailure: Error {
    public let status: ExitStatus
    public let message: String?
    /// The file the message is about, for the `--json` document.
    public let file: String?

    public init(_ status: ExitStatus, _ message: String? = nil, file: String? = nil) {
        self.status = status
        self.message = message
        self.file = file
    }
}
