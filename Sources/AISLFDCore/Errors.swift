
/// Exit statuses of every command (interfaces.md).
public enum ExitStatus: Int32, Sendable {
    case success = 0
    /// The input is readable but wrong: invalid weights, parity out of tolerance.
    case invalid = 1
    /// Usage error, or an unreadable or corrupt file.
    case unreadable = 2
}

/// A problem with one file. Every format's error enum is wrapped in this so the
/// one-line message always starts with the file's path.
public struct FileError: Error, CustomStringConvertible {
    public let path: String
    public let problem: any Error
    public let status: ExitStatus

    public init(path: String, problem: any Error, status: ExitStatus = .unreadable) {
        self.path = path
        self.problem = problem
        self.status = status
    }

    /// `path: problem` on one line (a path with control characters shows them escaped).
    public var description: String { "\(echoed(path, limit: 4096)): \(String(describing: problem))" }
}

/// Runs `body`; an error that is not already a `FileError` becomes a problem of `path`
/// (a runtime refusal of an image's size, a keypoint outside the image, ...).
public func blame<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as FileError { throw e } catch { throw FileError(path: path, problem: error) }
}
