// One .npy array: the header's Python-literal dict, dtypes, shapes, Fortran order.
import AISLFDCore
import AISLFDReaders

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.write(Fuzz.bytes(data, size))
    Fuzz.expectCleanOutcome { _ = try NPYReader.read(path: Fuzz.path).floats() }
    return 0
}
