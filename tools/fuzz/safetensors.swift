// A safetensors file: the header length, the JSON header, offsets, dtypes, shapes.
import AISLFDCore
import AISLFDReaders

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.write(Fuzz.bytes(data, size))
    Fuzz.expectCleanOutcome { _ = try SafetensorsReader.read(path: Fuzz.path) }
    return 0
}
