import AISLFDCore
import AISLFDReaders
import ArgumentParser
import Foundation

/// Runs a command with the exit statuses of interfaces.md: ArgumentParser's own
/// usage errors (which it would report as 64) become 2, and our typed errors
/// carry their own status.
public enum CommandMain {
    public static func run<C: ParsableCommand>(_ command: C.Type) -> Never {
        // Started again by itself to read an HDF5 file in isolation (HDF5Isolation.thisProgram).
        HDF5Isolation.serveIfAsked()
        exit(status(of: command, arguments: nil))
    }

    public static func status<C: ParsableCommand>(of command: C.Type, arguments: [String]?) -> Int32 {
        do {
            var parsed = try command.parseAsRoot(arguments)
            try parsed.run()
            return ExitStatus.success.rawValue
        } catch let error as FileError {
            Output.printError(error.description)
            return error.status.rawValue
        } catch let error as CommandFailure {
            if let message = error.message { Output.printError(message) }
            return error.status.rawValue
        } catch {
            let code = command.exitCode(for: error)
            let message = command.fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                return ExitStatus.success.rawValue
            }
            if !message.isEmpty { Output.printError(message) }
            return ExitStatus.unreadable.rawValue
        }
    }
}

/// Ends a command with a status after it has printed its own report
/// (for example a validation report with problems: status 1, no extra message).
public struct CommandFailure: Error {
    public let status: ExitStatus
    public let message: String?

    public init(_ status: ExitStatus, _ message: String? = nil) {
        self.status = status
        self.message = message
    }
}
