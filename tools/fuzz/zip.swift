// Zip archives as the NPZ and torch readers take them: the central directory, local headers,
// stored and deflated entries, then whichever reader the archive's entries call for — through
// WeightsReader as the commands call it (sniffing, file handling, FileError wrapping).
import AISLFDCore
import AISLFDReaders

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Fuzz.bytes(data, size)
    // Not HDF5, which libhdf5 reads (the hdf5 target).
    guard WeightsReader.format(ofPrefix: Array(bytes.prefix(WeightsReader.prefixLength))) != .hdf5 else { return 0 }
    Fuzz.write(bytes)
    Fuzz.expectCleanOutcome { _ = try WeightsReader.read(path: Fuzz.path) }
    // A zip the sniffing does not take as one (its first entry is elsewhere) through the archive reader.
    if ZipArchive.hasZipSignature(bytes), WeightsReader.format(ofPrefix: Array(bytes.prefix(WeightsReader.prefixLength))) == nil {
        Fuzz.expectCleanOutcome { _ = try NPZReader.read(archive: try ZipArchive(bytes: bytes)) }
    }
    return 0
}
