// HDF5 read in this process (no isolation), run under libFuzzer's -fork mode so that a crash
// inside libhdf5 ends one job, not the run: that is what HDF5Isolation does for the commands.
// A crash is kept as an artifact; tools/fuzz.sh replays each through aislfd-inspect, which
// must report it in one line (libraryCrashed) rather than crash.
import AISLFDCore
import AISLFDReaders

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHDF5(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.write(Fuzz.bytes(data, size))
    Fuzz.expectCleanOutcome { _ = try HDF5Reader.read(path: Fuzz.path) }
    return 0
}
