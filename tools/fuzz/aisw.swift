// An .aisw file: header, metadata JSON, tensor table, regions and every checksum.
import AISLFDCore
import AISLFDFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAISW(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.write(Fuzz.bytes(data, size))
    Fuzz.expectCleanOutcome {
        let file = try AISWFile.open(path: Fuzz.path, verifyData: true)
        for t in file.tensors { _ = try file.floats(t.key) }
    }
    return 0
}
