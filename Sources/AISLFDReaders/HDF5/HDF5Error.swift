#if canImport(Glibc)
import AISLFDCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What can be wrong with an HDF5 weights file. Readers wrap it in `FileError`,
/// so the printed message starts with the file's path; every case that concerns
/// one dataset names it by its state_dict key.
public enum HDF5Error: Error, CustomStringConvertible, Equatable, Sendable, Codable {
    /// libhdf5 could not open the file: not HDF5, truncated, or corrupt metadata.
    case cannotOpen(reason: String)
    /// A library call on the file's structure failed (corrupt object headers, B-trees, ...).
    case corrupt(tensor: String?, reason: String)
    /// The dataset's type is not a number or bool type a state_dict holds (strings, compounds, ...).
    case unsupportedType(tensor: String, type: String)
    /// A bool dataset (h5py's int8 enum FALSE/TRUE) holding a byte other than 0 or 1.
    case badBool(tensor: String, value: UInt8)
    /// A dataset with a null dataspace (`h5py.Empty`): it has no value at all.
    case nullDataspace(tensor: String)
    /// The dataset's claimed size is past the bound tied to the file's size, or overflows.
    case tooLarge(tensor: String, reason: String)
    /// The data or link lives in another file (external link, external storage, virtual dataset).
    case outsideFile(tensor: String, reason: String)
    /// Soft links are not followed: they may loop or alias other datasets.
    case softLink(tensor: String)
    /// A hard link leads back to a group already being read (a cycle), or an object is reached twice.
    case linkLoop(tensor: String)
    /// Groups nested deeper than the reader follows.
    case tooDeep(tensor: String, limit: Int)
    /// Two datasets give the same state_dict key (e.g. flat "a.b" and nested "a/b").
    case duplicateKey(tensor: String)
    /// Reading the dataset's values failed (corrupt chunk, missing filter, truncated data).
    case readFailed(tensor: String, reason: String)
    /// The dataset is compressed with a filter this libhdf5 lacks (LZF, Blosc, ... are plugins).
    case unavailableFilter(tensor: String, filter: String)
    /// The file holds more links than the reader visits.
    case tooManyLinks(limit: Int)
    /// libhdf5 crashed reading the file (in the isolated child process): the file is corrupt
    /// in a way the library does not check. SIGKILL from elsewhere usually means lack of memory.
    case libraryCrashed(signal: Int32)
    /// libhdf5 did not finish within the time allowed for a file of this size and was stopped.
    case timedOut(seconds: Int)
    /// The isolated read could not be run or gave no usable result (no process could be
    /// started, it exited without a result, or its result was malformed).
    case isolationFailed(reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let reason):
            return "not a readable HDF5 file (\(echoed(reason, limit: 300)))"
        case .corrupt(let tensor, let reason):
            if let tensor { return "dataset '\(echoed(tensor))': corrupt HDF5 structure (\(echoed(reason, limit: 300)))" }
            return "corrupt HDF5 structure (\(echoed(reason, limit: 300)))"
        case .unsupportedType(let tensor, let type):
            return "dataset '\(echoed(tensor))': \(type) datasets are not supported (expected float, integer or bool numbers)"
        case .badBool(let tensor, let value):
            return "dataset '\(echoed(tensor))': bool dataset holds the byte \(value), not 0 or 1"
        case .nullDataspace(let tensor):
            return "dataset '\(echoed(tensor))': has a null dataspace (no value)"
        case .tooLarge(let tensor, let reason):
            return "dataset '\(echoed(tensor))': too large: \(reason)"
        case .outsideFile(let tensor, let reason):
            return "dataset '\(echoed(tensor))': refusing to read outside this file: \(reason)"
        case .softLink(let tensor):
            return "'\(echoed(tensor))' is a soft link; only hard links are read (soft links may loop or alias)"
        case .linkLoop(let tensor):
            return "'\(echoed(tensor))' leads to an object already reached by another path (hard-link loop or alias)"
        case .tooDeep(let tensor, let limit):
            return "'\(echoed(tensor))': groups nested deeper than \(limit) levels"
        case .duplicateKey(let tensor):
            return "dataset '\(echoed(tensor))': two datasets give this state_dict key"
        case .readFailed(let tensor, let reason):
            return "dataset '\(echoed(tensor))': cannot read the values (\(echoed(reason, limit: 300)))"
        case .unavailableFilter(let tensor, let filter):
            return "dataset '\(echoed(tensor))': filter \(filter) is not available in libhdf5; re-save the file with gzip compression or none"
        case .tooManyLinks(let limit):
            return "more than \(limit) links in the file"
        case .libraryCrashed(let signal) where signal == SIGKILL:
            return "the process reading this file with libhdf5 was killed (signal \(signal), SIGKILL), most likely for lack of memory"
        case .libraryCrashed(let signal):
            return "libhdf5 crashed (signal \(signal)\(Self.signalName(signal))) reading this file: the file is corrupt"
        case .timedOut(let seconds):
            return "libhdf5 did not finish reading this file within \(seconds) s and was stopped: the file is corrupt or hostile"
        case .isolationFailed(let reason):
            return "cannot read this file in a separate process: \(reason)"
        }
    }

    /// A filter as people know it: the registered name for the common plugins, else the
    /// name the file stores and the id.
    static func filterName(id: Int32, stored: String) -> String {
        let known: [Int32: String] = [32000: "LZF", 32001: "Blosc", 32004: "LZ4", 307: "BZIP2", 32008: "bitshuffle",
                                      32013: "ZFP", 32015: "Zstandard", 32017: "SZ", 32026: "Blosc2"]
        if let name = known[id] { return name }
        return (stored.isEmpty ? "" : "'\(echoed(stored, limit: 40))' ") + "(HDF5 filter id \(id))"
    }

    private static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGABRT: "SIGABRT", SIGFPE: "SIGFPE",
                                      SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", SIGALRM: "SIGALRM", SIGXCPU: "SIGXCPU"]
        return names[signal].map { ", " + $0 } ?? ""
    }
}
